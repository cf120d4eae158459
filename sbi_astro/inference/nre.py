"""Neural ratio estimation (NRE): a classifier of joint vs marginal pairs; posterior by MCMC.

References:
    Durkan, Murray & Papamakarios (2020), "On contrastive learning for likelihood-free
    inference", ICML (NRE-B, sbi's default NRE).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import nle, sbi_adapter
from .nle import MCMCEstimator


class NREEstimator(MCMCEstimator):
    """A trained NRE classifier; ``log_prob`` is the log ratio plus the log prior."""

    method = "nre"

    def _condition(self, xf: Tensor) -> Tensor:
        """The classifier's embedding of each observation ``(n, E)``: computed once, not
        once per walker (the embedding, a CNN on a spectrum, costs far more than the rest)."""
        xf = xf.reshape(-1, *self.net.x_shape)
        rows = nle.rows_per_call(xf[0])
        return torch.cat([self.net.embedding_net_x(xf[i:i + rows])
                          for i in range(0, xf.shape[0], rows)])

    def _log_likelihood(self, th: Tensor, emb_x: Tensor) -> Tensor:
        s, n, d = th.shape  # row k of the flat batch: walker k // n, observation k % n
        return sbi_adapter.ratio_logits(self.net, th.reshape(s * n, d),
                                        emb_x.repeat(s, 1)).reshape(s, n)
