"""Neural ratio estimation (NRE): a classifier of joint vs marginal pairs; posterior by MCMC.

References:
    Durkan, Murray & Papamakarios (2020), "On contrastive learning for likelihood-free
    inference", ICML (NRE-B, sbi's default NRE).
"""

from __future__ import annotations

from torch import Tensor

from .nle import MCMCEstimator


class NREEstimator(MCMCEstimator):
    """A trained NRE classifier; ``log_prob`` is the log ratio plus the log prior."""

    method = "nre"

    def _log_likelihood(self, th: Tensor, xf: Tensor) -> Tensor:
        s, n, d = th.shape
        xs = xf[None].expand(s, *xf.shape).reshape(s * n, *xf.shape[1:])
        return self.net(th.reshape(s * n, d), xs).reshape(s, n)
