"""Calibration of high-dimensional posteriors: images, maps, spectra with thousands of pixels.

Given posterior samples of ``N`` test images ``(S, N, *M)`` (``M`` the pixel shape) and the
true images ``(N, *M)``, :func:`image_calibration` reports:

* **TARP over all pixels** (Lemos et al. 2023): each image is one point of dimension
  ``prod(M)``, references drawn uniformly in the prior's pixel range (``bounds``) or else in
  the box spanned by the true images; calibrated posteriors give a diagonal
  expected-coverage curve (TARP's test holds in any dimension).
* **per-pixel z-scores** ``z = (truth - posterior mean) / posterior std`` over every pixel
  of every image: for a calibrated posterior of roughly Gaussian marginals, mean 0, standard
  deviation 1, and ``|z| < 1`` for 68.3 % of pixels, ``|z| < 2`` for 95.4 % (too narrow
  posteriors give a wider z distribution, biased ones a shifted mean);
* **per-pixel 90 % interval coverage**: the fraction of true pixel values inside the
  central 90 % interval of their posterior samples (finite-sample reference
  ``0.9 (S - 1) / (S + 1)``, as in :mod:`.ppc`);
* **reduced chi^2 of the model images**: ``sum((data - model)^2 / sigma^2) / n`` per
  observation, for ``model`` the forward model of the posterior (the caller applies its
  operator, e.g. to the posterior mean) against the data it was fitted to; ~1 for a good
  fit, ``1 +- sqrt(2 / n)``;
* a few **examples** (truth, data, posterior mean, posterior std) for maps in a report.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = torch.randn(200, 8, 8, generator=g)          # prior N(0, 1) per pixel
    >>> data = truth + torch.randn(200, 8, 8, generator=g)   # noise N(0, 1)
    >>> samples = data / 2 + 0.5**0.5 * torch.randn(400, 200, 8, 8, generator=g)  # exact
    >>> res = image_calibration(samples, truth, seed=1)
    >>> round(res.z_std, 1), bool(res.tarp.ks_pvalue > 0.01)
    (1.0, True)

References:
    Lemos, Coogan, Hezaveh & Perreault-Levasseur (2023), ICML, arXiv:2302.03026 (TARP);
    Adam et al. (2022), arXiv:2211.03812, who calibrate lensed-source posteriors with TARP
    over all pixels.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from .ppc import expected_interval_coverage
from .tarp import TarpResult, tarp

#: the fractions of a standard normal within 1 and 2 of 0
NORMAL_WITHIN = {1: math.erf(1 / math.sqrt(2)), 2: math.erf(2 / math.sqrt(2))}


@dataclasses.dataclass
class ImageCalibrationResult:
    """Outcome of :func:`image_calibration`.

    Attributes:
        tarp: TARP over all pixels (each image one point).
        z: per-pixel z-scores ``(N, *M)``.
        z_mean, z_std: their mean and standard deviation (0 and 1 when calibrated).
        within: ``{1: fraction |z| < 1, 2: fraction |z| < 2}`` (0.683, 0.954).
        interval90_coverage: fraction of true pixels inside their central 90 % interval.
        interval90_expected: the finite-sample reference for ``S`` samples.
        reduced_chi2: per observation ``(N,)``, or None without data and model.
        examples: the first few ``truth``, ``mean``, ``std`` ``(k, *M)`` and ``data``
            ``(k, *D)`` (if given), on the CPU.
    """

    tarp: TarpResult
    z: Tensor
    z_mean: float
    z_std: float
    within: dict[int, float]
    interval90_coverage: float
    interval90_expected: float
    reduced_chi2: Tensor | None
    examples: dict[str, Tensor]

    def to_dict(self) -> dict[str, Any]:
        out = {"num_images": int(self.z.shape[0]),
               "num_pixels": int(self.z[0].numel()),
               "tarp_atc": self.tarp.atc, "tarp_ks_pvalue": self.tarp.ks_pvalue,
               "z_mean": self.z_mean, "z_std": self.z_std,
               "fraction_abs_z_below_1": self.within[1],
               "fraction_abs_z_below_1_expected": NORMAL_WITHIN[1],
               "fraction_abs_z_below_2": self.within[2],
               "fraction_abs_z_below_2_expected": NORMAL_WITHIN[2],
               "interval90_coverage": self.interval90_coverage,
               "interval90_expected": self.interval90_expected}
        if self.reduced_chi2 is not None:
            out["reduced_chi2_mean"] = float(self.reduced_chi2.mean())
            out["reduced_chi2_median"] = float(self.reduced_chi2.median())
        return out


def image_calibration(samples: Tensor, truth: Tensor, *, data: Tensor | None = None,
                      model: Tensor | None = None, noise_sigma: float | Tensor | None = None,
                      bounds: tuple[float, float] | None = None, seed: int = 0,
                      num_examples: int = 4) -> ImageCalibrationResult:
    """Calibration of posterior samples of images against the true images.

    Args:
        samples: posterior samples ``(S, N, *M)``.
        truth: the true images ``(N, *M)``.
        data: the observations ``(N, *D)`` (for the reduced chi^2 and the example maps).
        model: the forward model of each posterior, ``(N, *D)`` (e.g. the operator applied
            to the posterior mean), compared with ``data``.
        noise_sigma: the data's noise standard deviation (a number, or per pixel ``(N, *D)``
            or ``D``-shaped), for the reduced chi^2.
        bounds: ``(low, high)`` of a pixel under the prior, where TARP draws its reference
            points; default: each pixel's range over the true images.
        seed: seeds TARP's references and bootstrap.
        num_examples: images kept for maps.

    Raises:
        ShapeError: shapes that do not pair up; ConfigError: fewer than 2 samples or
        images, or ``model`` without ``data`` and ``noise_sigma``.
    """
    if samples.dim() < 3 or tuple(samples.shape[1:]) != tuple(truth.shape):
        raise ShapeError(f"samples must be (S, N, *M) with truth (N, *M); got "
                         f"{tuple(samples.shape)} and {tuple(truth.shape)}")
    s, n = samples.shape[:2]
    if s < 2 or n < 2:
        raise ConfigError(f"image_calibration needs at least 2 samples and 2 images, got {s} "
                          f"and {n}")
    samples = samples.to(torch.float64)
    truth = truth.to(samples)
    flat = samples.reshape(s, n, -1)
    flat_truth = truth.reshape(n, -1)
    if bounds is not None:  # references uniform in the prior's box
        lo, hi = (torch.full_like(flat_truth[0], float(v)) for v in bounds)
        if not bool((hi > lo).all()):
            raise ConfigError(f"bounds must be (low, high) with low < high, got {bounds}")
    else:  # in the box the true images span (each pixel's range)
        lo, hi = flat_truth.min(0).values, flat_truth.max(0).values
        hi = torch.where(hi > lo, hi, lo + 1.0)
    tarp_res = tarp(flat, flat_truth, bounds=(lo, hi), seed=seed)
    mean, std = samples.mean(0), samples.std(0)
    z = (truth - mean) / std.clamp_min(1e-12)
    q = _quantiles_by_image(flat)
    inside = ((flat_truth >= q[0]) & (flat_truth <= q[1])).double().mean().item()
    chi2 = _reduced_chi2(data, model, noise_sigma)
    k = min(num_examples, n)
    examples = {"truth": truth[:k].cpu(), "mean": mean[:k].cpu(), "std": std[:k].cpu()}
    if data is not None:
        examples["data"] = data[:k].detach().to(torch.float64).cpu()
    za = z.abs()
    return ImageCalibrationResult(
        tarp=tarp_res, z=z.cpu(), z_mean=float(z.mean()), z_std=float(z.std()),
        within={1: float((za < 1).double().mean()), 2: float((za < 2).double().mean())},
        interval90_coverage=inside, interval90_expected=expected_interval_coverage(s),
        reduced_chi2=chi2, examples=examples)


def _quantiles_by_image(flat: Tensor) -> Tensor:
    """The 5 % and 95 % quantiles ``(2, N, P)`` of each pixel's samples, one image at a time
    (torch.quantile refuses inputs over 2^24 elements)."""
    q = torch.tensor([0.05, 0.95], dtype=flat.dtype, device=flat.device)
    return torch.stack([torch.quantile(flat[:, j], q, dim=0) for j in range(flat.shape[1])], 1)


def _reduced_chi2(data: Tensor | None, model: Tensor | None,
                  noise_sigma: float | Tensor | None) -> Tensor | None:
    if model is None and data is None:
        return None
    if model is None or data is None or noise_sigma is None:
        raise ConfigError("the reduced chi^2 needs data, model and noise_sigma together")
    if tuple(model.shape) != tuple(data.shape):
        raise ShapeError(f"model {tuple(model.shape)} and data {tuple(data.shape)} must have "
                         "the same shape")
    d = data.detach().to(torch.float64)
    r = (d - model.detach().to(d)) / torch.as_tensor(noise_sigma, dtype=d.dtype,
                                                     device=d.device)
    return (r.reshape(r.shape[0], -1) ** 2).mean(1).cpu()
