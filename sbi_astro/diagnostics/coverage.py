"""Expected coverage of highest-posterior-density (HPD) regions.

With the estimator's log-density ``log q(theta | x)``, the HPD region of credibility
``alpha`` is the set where ``q`` exceeds the level that holds a fraction ``alpha`` of the
posterior mass.  The true ``theta_j`` lies inside it iff its *HPD level*
``l_j = fraction of samples s with q(s | x_j) > q(theta_j | x_j)`` is below ``alpha``.
The expected coverage ``C(alpha) = mean_j 1[l_j < alpha]`` equals ``alpha`` for a
calibrated posterior.  A curve *below* the diagonal means the regions are too small
(overconfident), *above* too large (underconfident) - the usual convention of coverage
plots (Hermans et al. 2022; Deistler et al. 2022).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> lp_theta = torch.randn(400, generator=g)                 # log q(theta_j | x_j)
    >>> lp_samples = torch.randn(1000, 400, generator=g)         # log q(s | x_j)
    >>> res = expected_coverage(lp_samples, lp_theta)
    >>> res.alpha.shape == res.coverage.shape
    True

References:
    Hermans, Delaunoy, Rozet, Wehenkel, Begy & Louppe (2022), "A trust crisis in
    simulation-based inference? Your posterior approximations can be unfaithful", TMLR.
    Deistler, Goncalves & Macke (2022), "Truncated proposals for scalable and hassle-free
    simulation-based inference", NeurIPS (sample-based expected coverage).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import torch
from torch import Tensor

from ..errors import NonFiniteError, ShapeError
from ._common import ks_uniform, make_generator
from .tarp import bootstrap_ecp, ecp_curve


class HasLogProb(Protocol):
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor: ...


@dataclasses.dataclass
class CoverageResult:
    """Outcome of :func:`expected_coverage`.

    Attributes:
        alpha: credibility levels ``(G,)``.
        coverage: empirical coverage of the HPD regions ``(G,)``.
        coverage_low: lower edge of the bootstrap band ``(G,)``.
        coverage_high: upper edge ``(G,)``.
        levels: HPD level of each true parameter ``(N,)`` (uniform if calibrated).
        ks_pvalue: p-value of ``levels ~ Uniform(0, 1)``.
        mean_deviation: ``mean(C(alpha) - alpha)``; < 0 overconfident, > 0 underconfident.
    """

    alpha: Tensor
    coverage: Tensor
    coverage_low: Tensor
    coverage_high: Tensor
    levels: Tensor
    ks_pvalue: float
    mean_deviation: float

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha.tolist(), "coverage": self.coverage.tolist(),
                "coverage_low": self.coverage_low.tolist(),
                "coverage_high": self.coverage_high.tolist(), "ks_pvalue": self.ks_pvalue,
                "mean_deviation": self.mean_deviation}


def hpd_levels(log_prob_samples: Tensor, log_prob_theta: Tensor) -> Tensor:
    """HPD level ``(N,)`` of each true parameter: fraction of samples with higher density.

    Args:
        log_prob_samples: ``log q(s | x_j)`` of the posterior samples ``(S, N)``.
        log_prob_theta: ``log q(theta_j | x_j)`` ``(N,)``.
    """
    if log_prob_samples.dim() != 2 or log_prob_theta.shape != log_prob_samples.shape[1:]:
        raise ShapeError("hpd_levels needs log_prob_samples (S, N) and log_prob_theta (N,), got "
                         f"{tuple(log_prob_samples.shape)} and {tuple(log_prob_theta.shape)}")
    if torch.isnan(log_prob_samples).any() or torch.isnan(log_prob_theta).any():
        raise NonFiniteError("log-densities contain NaN; check the estimator")
    s = log_prob_samples.shape[0]
    # Ties (e.g. flat regions) count half, so a constant density gives level 1/2.
    above = (log_prob_samples > log_prob_theta).sum(0).to(torch.float64)
    ties = (log_prob_samples == log_prob_theta).sum(0).to(torch.float64)
    return ((above + 0.5 * ties) / s).cpu()


def expected_coverage(log_prob_samples: Tensor, log_prob_theta: Tensor, *,
                      num_alpha_bins: int = 50, num_bootstrap: int = 500,
                      confidence: float = 0.95, seed: int | torch.Generator | None = 0
                      ) -> CoverageResult:
    """Expected coverage curve of HPD regions, with a bootstrap band over simulations.

    Args:
        log_prob_samples: ``(S, N)`` log-densities of the posterior samples.
        log_prob_theta: ``(N,)`` log-densities of the true parameters.
        num_alpha_bins: intervals of the credibility grid.
        num_bootstrap: bootstrap resamples of the simulations.
        confidence: level of the pointwise band.
        seed: seeds the bootstrap.
    """
    levels = hpd_levels(log_prob_samples, log_prob_theta)
    s = log_prob_samples.shape[0]
    alpha = torch.linspace(0.0, 1.0, num_alpha_bins + 1, dtype=torch.float64)
    cov = ecp_curve(levels, alpha)
    gen = make_generator(seed, 0xC0BE)
    boot = bootstrap_ecp(levels, alpha, num_bootstrap=num_bootstrap, seed=gen)
    q = torch.tensor([(1 - confidence) / 2, (1 + confidence) / 2], dtype=torch.float64)
    low, high = torch.quantile(boot, q, dim=0)
    _, p = ks_uniform((levels * s + 0.5) / (s + 1))
    return CoverageResult(alpha=alpha, coverage=cov, coverage_low=low, coverage_high=high,
                          levels=levels, ks_pvalue=p,
                          mean_deviation=(cov - alpha).mean().item())


def posterior_log_probs(posterior: HasLogProb, samples: Tensor, theta: Tensor, x: Tensor, *,
                        chunk: int = 256) -> tuple[Tensor, Tensor]:
    """Batched ``log q`` of samples ``(S, N)`` and of true parameters ``(N,)``.

    Calls ``posterior.log_prob(theta (S', N, D), x (N, *E)) -> (S', N)`` on chunks of the
    sample dimension: a handful of batched calls instead of one per simulation.
    """
    with torch.no_grad():
        lp_theta = posterior.log_prob(theta[None], x)
        if lp_theta.shape != (1, theta.shape[0]):
            raise ShapeError(f"posterior.log_prob(theta (1, N, D), x (N, ...)) must return "
                             f"(1, N) = (1, {theta.shape[0]}), got {tuple(lp_theta.shape)}")
        parts = [posterior.log_prob(samples[i:i + chunk], x)
                 for i in range(0, samples.shape[0], chunk)]
    return torch.cat(parts, 0), lp_theta[0]
