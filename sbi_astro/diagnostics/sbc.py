"""Simulation-based calibration (Talts et al. 2018): rank statistics per parameter.

For test pairs ``(theta_j, x_j)`` drawn from the joint and ``S`` posterior samples for each
``x_j``, the rank of ``theta_jd`` among the samples of parameter ``d`` is uniform on
``{0, ..., S}`` when the posterior is calibrated.  Departures have characteristic shapes:
a U-shaped histogram means an overconfident (too narrow) posterior, a hump an
underconfident (too wide) one, a slope a biased one.

Each parameter gets a chi-square test of the binned ranks against their exact discrete
uniform expectation and a Kolmogorov-Smirnov test of the mid-rank ``(r + 1/2) / (S + 1)``.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> theta = torch.randn(300, 2, generator=g)
    >>> x = theta + torch.randn(300, 2, generator=g)
    >>> post = x / 2 + (0.5 ** 0.5) * torch.randn(500, 300, 2, generator=g)  # exact posterior
    >>> res = sbc(post, theta)
    >>> res.ranks.shape
    torch.Size([300, 2])
    >>> bool((res.ks_pvalues > 0.001).all())
    True

References:
    Talts, Betancourt, Simpson, Vehtari & Gelman (2018), "Validating Bayesian inference
    algorithms with simulation-based calibration", arXiv:1804.06788.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ._common import check_samples_theta, ks_uniform


@dataclasses.dataclass
class SBCResult:
    """Outcome of :func:`sbc`.

    Attributes:
        ranks: ``(N, D)`` int64, number of posterior samples below the true value.
        num_posterior_samples: ``S`` (ranks lie in ``0..S``).
        num_bins: bins of the histograms and the chi-square test.
        histograms: ``(D, num_bins)`` counts of ranks.
        expected: ``(num_bins,)`` expected counts under uniformity.
        chi2_pvalues: ``(D,)`` chi-square p-values.
        ks_pvalues: ``(D,)`` Kolmogorov-Smirnov p-values.
    """

    ranks: Tensor
    num_posterior_samples: int
    num_bins: int
    histograms: Tensor
    expected: Tensor
    chi2_pvalues: Tensor
    ks_pvalues: Tensor

    @property
    def normalized_ranks(self) -> Tensor:
        """Mid-ranks ``(r + 1/2) / (S + 1)`` in ``(0, 1)``, ``(N, D)`` float64."""
        return (self.ranks.to(torch.float64) + 0.5) / (self.num_posterior_samples + 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_posterior_samples": self.num_posterior_samples,
            "num_bins": self.num_bins,
            "histograms": self.histograms.tolist(),
            "expected": self.expected.tolist(),
            "chi2_pvalues": self.chi2_pvalues.tolist(),
            "ks_pvalues": self.ks_pvalues.tolist(),
        }


def sbc_ranks(samples: Tensor, theta: Tensor) -> Tensor:
    """Ranks ``(N, D)``: number of samples strictly below ``theta`` (vectorised).

    Args:
        samples: posterior samples ``(S, N, D)``.
        theta: true parameters ``(N, D)``.
    """
    check_samples_theta(samples, theta, "sbc")
    theta = theta.to(samples)
    step = max(1, (1 << 22) // max(1, theta.numel()))
    ranks = torch.zeros(theta.shape, dtype=torch.int64, device=samples.device)
    for i in range(0, samples.shape[0], step):
        ranks += (samples[i:i + step] < theta).sum(0)
    return ranks


def rank_histogram(ranks: Tensor, num_posterior_samples: int, num_bins: int
                   ) -> tuple[Tensor, Tensor]:
    """Histograms ``(D, B)`` of ranks and their exact expected counts ``(B,)``.

    Rank ``r`` in ``0..S`` goes to bin ``floor(r * B / (S + 1))``; the expected count of a
    bin is ``N`` times the number of rank values it holds over ``S + 1``.
    """
    s1 = num_posterior_samples + 1
    if not 1 <= num_bins <= s1:
        raise ConfigError(f"num_bins must be in 1..{s1} (S + 1), got {num_bins}")
    n, d = ranks.shape
    bins = (ranks.cpu() * num_bins) // s1
    hist = torch.zeros(d, num_bins, dtype=torch.int64)
    hist.scatter_add_(1, bins.T.contiguous(), torch.ones_like(bins.T))
    per_bin = torch.bincount((torch.arange(s1) * num_bins) // s1, minlength=num_bins)
    return hist, n * per_bin.to(torch.float64) / s1


def sbc(samples: Tensor, theta: Tensor, *, num_bins: int | None = None) -> SBCResult:
    """SBC ranks with per-parameter uniformity tests.

    Args:
        samples: posterior samples ``(S, N, D)``.
        theta: true parameters ``(N, D)``.
        num_bins: histogram bins; default ``min(20, max(2, N // 10))`` so that each bin
            expects at least ~10 counts (the chi-square approximation holds).

    Returns:
        An :class:`SBCResult`.
    """
    from scipy.stats import chi2

    ranks = sbc_ranks(samples, theta)
    s = samples.shape[0]
    n = ranks.shape[0]
    bins = num_bins if num_bins is not None else min(20, max(2, n // 10), s + 1)
    hist, expected = rank_histogram(ranks, s, bins)
    stat = ((hist.to(torch.float64) - expected) ** 2 / expected).sum(1)
    chi2_p = torch.tensor(chi2.sf(stat.numpy(), bins - 1), dtype=torch.float64)
    u = (ranks.cpu().to(torch.float64) + 0.5) / (s + 1)
    ks_p = torch.tensor([ks_uniform(u[:, k])[1] for k in range(u.shape[1])],
                        dtype=torch.float64)
    return SBCResult(ranks=ranks.cpu(), num_posterior_samples=s, num_bins=bins, histograms=hist,
                     expected=expected, chi2_pvalues=chi2_p, ks_pvalues=ks_p)
