"""TARP: Tests of Accuracy with Random Points (Lemos et al. 2023).

For each test simulation ``j`` with true parameters ``theta_j`` and posterior samples
``samples[:, j]``, a reference point ``r_j`` is drawn (uniformly in the normalised parameter
box, or given).  The *coverage value* ``f_j`` is the fraction of posterior samples closer to
``r_j`` than ``theta_j`` is; ``theta_j`` lies inside the ball around ``r_j`` holding a
fraction ``alpha`` of the posterior mass iff ``f_j < alpha``.  The expected coverage
probability is ``ECP(alpha) = mean_j 1[f_j < alpha]``, i.e. the empirical CDF of ``f``; a
calibrated posterior gives ``ECP(alpha) = alpha`` (``f ~ Uniform(0, 1)``), which is also
sufficient for calibration when the references are random (Lemos et al., Thm. 3).

Shape of the curve: an overconfident (too narrow) posterior gives a U-shaped ``f``, so the
ECP lies above the diagonal for ``alpha < 0.5`` and below it after; an underconfident (too
wide) one the reverse.  :attr:`TarpResult.atc` (area between the curve and the diagonal for
``alpha >= 0.5``) is therefore negative for overconfident and positive for underconfident
posteriors (the sign convention of sbi's ``check_tarp``).  A bias also bends the curve; the
verdict (:mod:`sbi_astro.diagnostics.verdict`) separates it using marginal ranks.

Everything is vectorised torch and runs on the device of ``samples``.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> theta = torch.randn(500, 3, generator=g)                 # prior N(0, 1)
    >>> x = theta + torch.randn(500, 3, generator=g)               # likelihood N(theta, 1)
    >>> samples = x / 2 + 0.5**0.5 * torch.randn(1000, 500, 3, generator=g)  # exact posterior
    >>> res = tarp(samples, theta, seed=1)
    >>> res.alpha.shape, res.ecp.shape
    (torch.Size([51]), torch.Size([51]))
    >>> bool(res.ks_pvalue > 0.01)
    True

References:
    Lemos, Coogan, Hezaveh & Perreault-Levasseur (2023), "Sampling-based accuracy testing
    of posterior estimators for general inference", ICML, arXiv:2302.03026.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from ._common import check_samples_theta, ks_uniform, make_generator

Norm = Literal["bounds", "theta", "none"]

# Elements per chunk of the distance computation (keeps temporaries cache/memory friendly).
_CHUNK_ELEMENTS = 1 << 20
_SALT = 0x7A49


@dataclasses.dataclass
class TarpResult:
    """Outcome of :func:`tarp`.

    Attributes:
        alpha: credibility levels ``(G,)``, from 0 to 1.
        ecp: expected coverage probability at ``alpha`` ``(G,)``.
        ecp_low: lower edge of the bootstrap confidence band ``(G,)``.
        ecp_high: upper edge of the band ``(G,)``.
        coverage_values: ``f_j`` per simulation ``(N,)``.
        references: the reference points used ``(N, D)``, in normalised coordinates.
        atc: area between ECP and diagonal for ``alpha >= 0.5`` (< 0: overconfident).
        ks_statistic: ``max |ECP - alpha|`` as a Kolmogorov-Smirnov statistic of ``f``.
        ks_pvalue: p-value of ``f ~ Uniform(0, 1)``.
        confidence: confidence level of the band.
        num_bootstrap: number of bootstrap resamples behind the band.
    """

    alpha: Tensor
    ecp: Tensor
    ecp_low: Tensor
    ecp_high: Tensor
    coverage_values: Tensor
    references: Tensor
    atc: float
    ks_statistic: float
    ks_pvalue: float
    confidence: float
    num_bootstrap: int

    @property
    def diagonal_in_band(self) -> float:
        """Fraction of grid points where the diagonal lies inside the band."""
        inside = (self.alpha >= self.ecp_low - 1e-12) & (self.alpha <= self.ecp_high + 1e-12)
        return inside.double().mean().item()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (curves as lists)."""
        return {
            "alpha": self.alpha.tolist(), "ecp": self.ecp.tolist(),
            "ecp_low": self.ecp_low.tolist(), "ecp_high": self.ecp_high.tolist(),
            "atc": self.atc, "ks_statistic": self.ks_statistic, "ks_pvalue": self.ks_pvalue,
            "confidence": self.confidence, "num_bootstrap": self.num_bootstrap,
            "diagonal_in_band": self.diagonal_in_band,
        }


def _normalisation(theta: Tensor, norm: Norm, bounds: tuple[Tensor, Tensor] | None
                   ) -> tuple[Tensor, Tensor]:
    """Offset and width ``(D,)`` mapping parameters into the unit box."""
    if norm == "none":
        return torch.zeros_like(theta[0]), torch.ones_like(theta[0])
    if norm == "theta":
        lo, hi = theta.min(0).values, theta.max(0).values
        return lo, hi - lo + 1e-10  # the +1e-10 of the tarp package, for identical numbers
    if norm == "bounds":
        if bounds is None:
            raise ConfigError("tarp(norm='bounds') needs bounds=(low, high), e.g. the prior's "
                              "prior.low and prior.high; or use norm='theta'")
        lo = torch.as_tensor(bounds[0]).to(theta)
        hi = torch.as_tensor(bounds[1]).to(theta)
        if lo.shape != theta.shape[-1:] or hi.shape != theta.shape[-1:]:
            raise ShapeError(f"bounds must be two tensors of shape ({theta.shape[-1]},), got "
                             f"{tuple(lo.shape)} and {tuple(hi.shape)}")
        if not (torch.isfinite(lo).all() and torch.isfinite(hi).all() and (hi > lo).all()):
            raise ConfigError("tarp(norm='bounds') needs finite bounds with high > low; for "
                              "unbounded priors use norm='theta'")
        return lo, hi - lo
    raise ConfigError(f"norm must be 'bounds', 'theta' or 'none', got {norm!r}")


def coverage_values(samples: Tensor, theta: Tensor, references: Tensor, *,
                    norm: Norm = "theta", bounds: tuple[Tensor, Tensor] | None = None,
                    metric: Literal["euclidean", "manhattan"] = "euclidean") -> Tensor:
    """TARP coverage values ``f_j`` (Lemos et al. 2023, Algorithm 2).

    Args:
        samples: posterior samples ``(S, N, D)``.
        theta: true parameters ``(N, D)``.
        references: reference points ``(N, D)`` in *normalised* coordinates (the unit box
            for ``norm='bounds'`` or ``'theta'``; raw parameter units for ``'none'``).
        norm: ``'bounds'`` rescales with ``bounds`` (e.g. the prior box), ``'theta'`` with
            the range of ``theta`` (as the ``tarp`` package's ``norm=True``), ``'none'`` not.
        bounds: ``(low, high)``, each ``(D,)``, for ``norm='bounds'``.
        metric: distance in the normalised space.

    Returns:
        ``f (N,)`` in float64: fraction of samples strictly closer to the reference than
        ``theta``.
    """
    check_samples_theta(samples, theta, "tarp")
    if references.shape != theta.shape:
        raise ShapeError(f"tarp: references must have shape {tuple(theta.shape)} (one per "
                         f"simulation), got {tuple(references.shape)}")
    if metric not in ("euclidean", "manhattan"):
        raise ConfigError(f"metric must be 'euclidean' or 'manhattan', got {metric!r}")
    dtype = samples.dtype if samples.is_floating_point() else torch.float32
    samples = samples.to(dtype)
    theta = theta.to(samples)
    lo, width = _normalisation(theta, norm, bounds)
    inv_w = 1.0 / width
    ref = references.to(samples)
    # Distances are ||(s - c) / w|| with c = lo + r * w the reference in raw units, so the
    # samples are never normalised into a copy.  Per chunk of samples (cache-sized): one
    # subtraction into a reused buffer, an in-place square and a matrix-vector product with
    # the weights 1/w^2 (a BLAS reduction over D, much faster than torch's sum(-1) there).
    centre = lo + ref * width if norm != "none" else ref
    weights = inv_w * inv_w if metric == "euclidean" else inv_w
    s, n, d = samples.shape

    def dist(v: Tensor, out: Tensor) -> Tensor:
        torch.sub(v, centre, out=out)
        if metric == "euclidean":
            out.mul_(out)  # squared distance: same ordering as the distance
        else:
            out.abs_()
        return (out.view(-1, d) @ weights).view(out.shape[:-1])

    d_theta = dist(theta, torch.empty_like(theta))  # (N,)
    step = max(1, _CHUNK_ELEMENTS // max(1, n * d))
    buf = torch.empty((min(step, s), n, d), dtype=samples.dtype, device=samples.device)
    closer = torch.zeros(n, dtype=torch.int64, device=samples.device)
    for i in range(0, s, step):
        chunk = samples[i:i + step]
        closer += (dist(chunk, buf[:chunk.shape[0]]) < d_theta).sum(0)
    return closer.to(torch.float64) / s


def draw_references(num: int, dim: int, *, seed: int | torch.Generator | None = 0,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64
                    ) -> Tensor:
    """Random references, uniform in the unit box ``(num, dim)`` (seeded)."""
    gen = make_generator(seed, _SALT)
    return torch.rand(num, dim, generator=gen, dtype=torch.float64).to(device, dtype)


def ecp_curve(f: Tensor, alpha: Tensor) -> Tensor:
    """``ECP(alpha) = mean(f < alpha)``, with ``ECP = 1`` at the last grid point.

    The last point is closed, like the last bin of a histogram, so the curve ends at 1.
    """
    fs = torch.sort(f.to(torch.float64)).values
    below = torch.searchsorted(fs, alpha.to(fs), right=False).to(torch.float64)
    ecp = below / fs.shape[0]
    ecp[-1] = 1.0
    return ecp


def _tarp_package_grid(f: Tensor, num_bins: int) -> Tensor:
    """The bin edges ``numpy.histogram(f, bins=num_bins)`` uses (``np.linspace`` exactly)."""
    first, last = f.min().item(), f.max().item()
    if first == last:
        first, last = first - 0.5, last + 0.5
    step = (last - first) / num_bins
    edges = torch.arange(num_bins + 1, dtype=torch.float64) * step + first
    edges[-1] = last
    return edges.to(f.device)


def tarp_ecp(samples: Tensor, theta: Tensor, references: Tensor, *, norm: Norm = "none",
             bounds: tuple[Tensor, Tensor] | None = None,
             metric: Literal["euclidean", "manhattan"] = "euclidean",
             num_alpha_bins: int | None = None, grid: Literal["unit", "data"] = "unit"
             ) -> tuple[Tensor, Tensor]:
    """ECP and credibility grid ``(G,)``, ``(G,)`` for given references.

    With ``grid='data'`` and ``norm`` ``'none'`` or ``'theta'`` this reproduces
    ``tarp.get_tarp_coverage(samples, theta, references, norm=..., num_alpha_bins=...)``
    (whose grid runs from ``min f`` to ``max f``); ``grid='unit'`` uses ``[0, 1]``.

    Returns:
        ``(ecp, alpha)`` in float64.
    """
    f = coverage_values(samples, theta, references, norm=norm, bounds=bounds, metric=metric)
    bins = num_alpha_bins if num_alpha_bins is not None else max(1, theta.shape[0] // 10)
    if grid == "data":
        alpha = _tarp_package_grid(f, bins)
        ecp = ecp_curve(f, alpha)
        ecp[0] = 0.0  # the package prepends 0 at the first edge
        return ecp, alpha
    if grid != "unit":
        raise ConfigError(f"grid must be 'unit' or 'data', got {grid!r}")
    alpha = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64, device=f.device)
    return ecp_curve(f, alpha), alpha


def bootstrap_ecp(f: Tensor, alpha: Tensor, *, num_bootstrap: int = 500,
                  seed: int | torch.Generator | None = 0) -> Tensor:
    """ECP curves of bootstrap resamples ``(B, G)``.

    Simulations (with their references and coverage values) are resampled with
    replacement; references are not redrawn and the inputs are never modified.  All
    resamples at once: multiplicity counts ``(B, N)`` times the indicator ``(N, G)``.
    """
    n = f.shape[0]
    gen = make_generator(seed, _SALT)
    idx = torch.randint(0, n, (num_bootstrap, n), generator=gen).to(f.device)
    counts = torch.zeros(num_bootstrap, n, dtype=torch.float64, device=f.device)
    counts.scatter_add_(1, idx, torch.ones_like(counts))
    below = (f.to(torch.float64)[:, None] < alpha.to(torch.float64)[None, :]).to(torch.float64)
    ecp = counts @ below / n
    ecp[:, -1] = 1.0
    return ecp


def tarp(samples: Tensor, theta: Tensor, *, references: Tensor | None = None,
         seed: int | torch.Generator | None = 0, norm: Norm | None = None,
         bounds: tuple[Tensor, Tensor] | None = None,
         metric: Literal["euclidean", "manhattan"] = "euclidean",
         num_alpha_bins: int = 50, num_bootstrap: int = 500, confidence: float = 0.95
         ) -> TarpResult:
    """Runs TARP: ECP curve on ``[0, 1]`` with a bootstrap band, ATC and a KS test.

    Args:
        samples: posterior samples ``(S, N, D)``, one posterior per test simulation.
        theta: true parameters ``(N, D)``.
        references: reference points ``(N, D)`` in normalised coordinates; ``None`` draws
            them uniformly in the unit box with ``seed``.
        seed: seeds the references and the bootstrap (an int or a CPU generator).
        norm: ``'bounds'`` (default when ``bounds`` are given: the prior box), ``'theta'``
            (range of ``theta``; default otherwise) or ``'none'``.
        bounds: ``(low, high)`` of the prior box, each ``(D,)``.
        metric: ``'euclidean'`` or ``'manhattan'``.
        num_alpha_bins: number of intervals of the credibility grid (``G = bins + 1``).
        num_bootstrap: bootstrap resamples of the simulations for the band.
        confidence: two-sided confidence level of the pointwise band.

    Returns:
        A :class:`TarpResult`.
    """
    check_samples_theta(samples, theta, "tarp")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if norm is None:
        norm = "bounds" if bounds is not None else "theta"
    gen = make_generator(seed, _SALT)
    n, d = theta.shape
    if references is None:
        if norm == "none":
            lo, hi = theta.min(0).values, theta.max(0).values
            references = lo + (hi - lo) * draw_references(n, d, seed=gen, device=theta.device,
                                                          dtype=theta.dtype)
        else:
            references = draw_references(n, d, seed=gen, device=theta.device, dtype=theta.dtype)
    f = coverage_values(samples, theta, references, norm=norm, bounds=bounds, metric=metric)
    alpha = torch.linspace(0.0, 1.0, num_alpha_bins + 1, dtype=torch.float64, device=f.device)
    ecp = ecp_curve(f, alpha)
    boot = bootstrap_ecp(f, alpha, num_bootstrap=num_bootstrap, seed=gen)
    q = torch.tensor([(1 - confidence) / 2, (1 + confidence) / 2], dtype=torch.float64,
                     device=boot.device)
    low, high = torch.quantile(boot, q, dim=0)
    mid = alpha.shape[0] // 2
    dalpha = (alpha[1] - alpha[0]).item()
    atc = ((ecp[mid:] - alpha[mid:]) * dalpha).sum().item()
    # KS on mid-ranks u = (k + 1/2) / (S + 1): the continuous version of f = k / S.
    s = samples.shape[0]
    ks_stat, ks_p = ks_uniform((f * s + 0.5) / (s + 1))
    return TarpResult(alpha=alpha.cpu(), ecp=ecp.cpu(), ecp_low=low.cpu(), ecp_high=high.cpu(),
                      coverage_values=f.cpu(), references=references.detach().cpu(), atc=atc,
                      ks_statistic=ks_stat, ks_pvalue=ks_p, confidence=confidence,
                      num_bootstrap=num_bootstrap)
