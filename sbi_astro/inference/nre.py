"""Neural ratio estimation (NRE): a classifier of joint vs marginal pairs; posterior by MCMC.

References:
    Durkan, Murray & Papamakarios (2020), "On contrastive learning for likelihood-free
    inference", ICML (NRE-B, sbi's default NRE).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import nle
from .nle import MCMCEstimator


class NREEstimator(MCMCEstimator):
    """A trained NRE classifier; ``log_prob`` is the log ratio plus the log prior."""

    method = "nre"

    def _condition(self, xf: Tensor) -> Tensor:
        """The classifier's embedding of each observation ``(n, E)``: computed once, not
        once per walker (the embedding, a CNN on a spectrum, costs far more than the rest)."""
        xf = xf.reshape(-1, *self.net.x_shape)
        rows = max(1, nle.EVAL_VALUES // max(1, xf[0].numel()))
        return torch.cat([self.net.embedding_net_x(xf[i:i + rows])
                          for i in range(0, xf.shape[0], rows)])

    def _log_likelihood(self, th: Tensor, emb_x: Tensor) -> Tensor:
        # sbi's RatioEstimator.unnormalized_log_ratio with x's embedding computed beforehand
        s, n, d = th.shape
        emb_theta = self.net.embedding_net_theta(th.reshape(s * n, d))
        z = torch.cat([emb_theta, emb_x.repeat(s, 1)], -1)  # row k: walker k // n, obs k % n
        return self.net.net(z).squeeze(-1).reshape(s, n)
