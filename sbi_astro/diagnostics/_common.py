"""Shared helpers of the diagnostics: input checks, seeding, uniformity statistics."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, NonFiniteError, ShapeError


def check_samples_theta(samples: Tensor, theta: Tensor, what: str = "diagnostic") -> None:
    """Checks ``samples (S, N, D)`` against ``theta (N, D)`` (shapes and finiteness)."""
    if not isinstance(samples, Tensor) or samples.dim() != 3:
        shape = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ShapeError(f"{what}: posterior samples must have shape (S, N, D) = (num_samples, "
                         f"num_simulations, num_parameters), got {shape}")
    if not isinstance(theta, Tensor) or theta.dim() != 2 or theta.shape != samples.shape[1:]:
        shape = tuple(theta.shape) if isinstance(theta, Tensor) else type(theta).__name__
        raise ShapeError(f"{what}: true parameters must have shape (N, D) = "
                         f"{tuple(samples.shape[1:])} to match samples {tuple(samples.shape)}, "
                         f"got {shape}")
    if samples.shape[0] < 2 or samples.shape[1] < 2:
        raise ShapeError(f"{what}: needs at least 2 posterior samples and 2 simulations, got "
                         f"samples of shape {tuple(samples.shape)}")
    if not (all_finite(samples) and all_finite(theta)):
        raise NonFiniteError(f"{what}: posterior samples or true parameters contain NaN or "
                             "infinite values; drop those simulations first")


def all_finite(t: Tensor) -> bool:
    """Whether every element is finite, in one native reduction.

    ``min``/``max`` propagate NaN and keep infinities, and need no boolean copy of the
    tensor (``isfinite(t).all()`` on the samples costs more than TARP itself).
    """
    if t.numel() == 0:
        return True
    lo, hi = torch.aminmax(t)
    return bool(torch.isfinite(lo) and torch.isfinite(hi))


def make_generator(seed: int | torch.Generator | None, salt: int = 0) -> torch.Generator:
    """A CPU torch generator for a diagnostic (``None`` means seed 0: reproducible).

    An int seed is hashed with ``salt`` first, so a diagnostic seeded with 0 does not
    replay the stream of ``torch.Generator().manual_seed(0)`` that may have drawn the test
    parameters (TARP references equal to the prior's uniforms would be correlated with
    ``theta`` and bias the test).  A generator is used as it is.
    """
    if isinstance(seed, torch.Generator):
        return seed
    from ..random import fold

    key = fold(torch.tensor(0 if seed is None else int(seed) & ((1 << 63) - 1)), salt)
    gen = torch.Generator()
    gen.manual_seed(int(key.item()) & ((1 << 63) - 1))
    return gen


def ks_uniform(u: Tensor) -> tuple[float, float]:
    """One-sample Kolmogorov-Smirnov test of ``u (N,)`` against Uniform(0, 1).

    Returns:
        ``(statistic, p_value)``; the p-value uses the exact finite-``N`` distribution
        (``scipy.stats.kstwo``).
    """
    from scipy.stats import kstwo

    n = u.shape[0]
    s = torch.sort(u.detach().to(torch.float64).cpu().clamp(0.0, 1.0)).values
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = torch.maximum(i / n - s, s - (i - 1) / n).max().item()
    return d, float(kstwo.sf(d, n))


def normal_quantile(p: float) -> float:
    """Inverse standard normal CDF."""
    return math.sqrt(2.0) * torch.erfinv(torch.tensor(2.0 * p - 1.0, dtype=torch.float64)).item()


def as_series(x: np.ndarray | list[float], name: str = "x", min_len: int = 16) -> np.ndarray:
    """``x`` as a finite float64 1-D series of at least ``min_len`` samples."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ShapeError(f"{name} must be a 1-D time series, got shape {arr.shape}; "
                         "pass one component at a time")
    if arr.size < min_len:
        raise ShapeError(f"{name} needs at least {min_len} samples, got {arr.size}")
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contains NaN or infinite values; remove or interpolate them")
    return arr


def numpy_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy Generator from a seed or a Generator (``None`` is refused: no global state)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ConfigError("pass seed= (an int or numpy Generator): surrogate tests are random "
                          "and sbi-astro never uses global random state")
    return np.random.default_rng(seed)
