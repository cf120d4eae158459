"""Noise realisations for training noise score models (SLIC): correlated and non-Gaussian.

* :func:`power_law_noise` -- stationary Gaussian noise with power spectrum
  ``P(k) ~ (k^2 + k0^2)^(-index / 2)`` on a periodic grid (1-D vectors or 2-D maps), scaled
  to a per-pixel standard deviation ``sigma``; :func:`power_law_covariance` its exact
  covariance (circulant), for analytic references.
* :func:`read_noise_with_cosmic_rays` -- Gaussian read noise plus cosmic-ray hits: each
  pixel is hit with probability ``rate`` and gets a positive deposit
  ``amplitude * Exponential(1)``; 2-D maps also get short streaks (the hit spread over
  ``streak`` pixels along a random axis).

Every function draws from a ``torch.Generator`` and returns ``(n, *shape)`` in the units of
``sigma``; :func:`noise_sampler` wraps one as the ``(batch_size, generator) -> noise``
function that :func:`~sbi_astro.solvers.train_score_model` accepts.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> n = power_law_noise((64,), 20000, index=2.0, sigma=0.5, generator=g)
    >>> round(float(n.std()), 2)
    0.5
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor

from ..errors import ConfigError


def _spectrum(shape: tuple[int, ...], index: float, k0: float) -> Tensor:
    """Amplitude ``sqrt(P(k))`` on the FFT grid of ``shape``, normalised to unit variance."""
    ks = [torch.fft.fftfreq(n, dtype=torch.float64) for n in shape]
    k2 = sum(k.reshape([-1 if i == j else 1 for j in range(len(shape))]) ** 2
             for i, k in enumerate(ks))
    power = (k2 + k0**2) ** (-index / 2.0)
    return torch.sqrt(power / power.mean())


def power_law_spectrum(shape: tuple[int, ...], *, index: float = 2.0, k0: float = 0.05
                       ) -> Tensor:
    """Eigenvalues of the covariance of unit-``sigma`` :func:`power_law_noise` on the FFT grid
    of ``shape`` (float64, mean 1): the noise is ``ifft(fft(white) * sqrt(spectrum))``, so
    its covariance is ``F^-1 diag(spectrum) F`` (a reference for exact scores)."""
    return _spectrum(_check_shape(shape), index, k0) ** 2


def _check_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or min(shape) < 2:
        raise ConfigError(f"noise shape must be (D,) or (H, W) with sizes >= 2, got {shape}")
    return shape


def power_law_noise(shape: tuple[int, ...], n: int, *, index: float = 2.0, k0: float = 0.05,
                    sigma: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws of stationary Gaussian noise with a power-law spectrum: ``(n, *shape)``.

    Args:
        shape: ``(D,)`` or ``(H, W)`` (periodic).
        n: number of realisations.
        index: spectral index (0: white; 2: strongly correlated).
        k0: low-frequency turnover (cycles per pixel), keeps ``P(0)`` finite.
        sigma: per-pixel standard deviation.
        generator: source of randomness.
    """
    shape = _check_shape(shape)
    dev = generator.device if generator is not None else None
    amp = _spectrum(shape, index, k0).to(torch.float32).to(dev)
    white = torch.randn((n, *shape), generator=generator, device=dev)
    dims = tuple(range(1, len(shape) + 1))
    out = torch.fft.ifftn(torch.fft.fftn(white, dim=dims) * amp, dim=dims).real
    return sigma * out


def power_law_covariance(size: int, *, index: float = 2.0, k0: float = 0.05,
                         sigma: float = 1.0) -> Tensor:
    """Exact covariance ``(size, size)`` (float64) of 1-D :func:`power_law_noise`."""
    power = _spectrum((size,), index, k0) ** 2
    acf = torch.fft.ifft(power).real  # autocovariance at lags 0..size-1 (unit variance)
    lag = (torch.arange(size)[:, None] - torch.arange(size)[None, :]) % size
    return sigma**2 * acf[lag]


def read_noise_with_cosmic_rays(shape: tuple[int, ...], n: int, *, sigma: float = 1.0,
                                rate: float = 0.01, amplitude: float = 10.0, streak: int = 3,
                                generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws of read noise ``N(0, sigma^2)`` plus cosmic-ray hits: ``(n, *shape)``.

    Args:
        shape: ``(D,)`` or ``(H, W)``.
        n: number of realisations.
        sigma: read-noise standard deviation.
        rate: probability that a pixel is hit.
        amplitude: mean deposit of a hit (units of ``sigma``'s quantity, not multiples).
        streak: length in pixels of the streak of a hit on a 2-D map (1: single pixels).
        generator: source of randomness.
    """
    shape = _check_shape(shape)
    if not 0.0 <= rate <= 1.0 or amplitude < 0 or streak < 1:
        raise ConfigError(f"need 0 <= rate <= 1, amplitude >= 0 and streak >= 1, got {rate}, "
                          f"{amplitude}, {streak}")
    dev = generator.device if generator is not None else None
    read = sigma * torch.randn((n, *shape), generator=generator, device=dev)
    hit = torch.rand((n, *shape), generator=generator, device=dev) < rate
    deposit = -amplitude * torch.log(torch.rand((n, *shape), generator=generator, device=dev))
    rays = torch.where(hit, deposit, torch.zeros_like(deposit))
    if len(shape) == 2 and streak > 1:
        vertical = torch.rand((n, 1, 1), generator=generator, device=dev) < 0.5
        h = sum(torch.roll(rays, k, dims=1) for k in range(streak)) / streak
        w = sum(torch.roll(rays, k, dims=2) for k in range(streak)) / streak
        rays = torch.where(vertical, h, w)
    return read + rays


def noise_sampler(fn: Callable[..., Tensor], shape: tuple[int, ...], **kwargs: float
                  ) -> Callable[[int, torch.Generator], Tensor]:
    """``(batch_size, generator) -> (batch_size, 1?, *shape)`` drawing ``fn`` noise: 1-D shapes
    give ``(batch_size, D)``, 2-D ones ``(batch_size, 1, H, W)`` (one channel, for a U-Net)."""
    draw = partial(fn, tuple(shape), **kwargs)

    def sample(batch_size: int, generator: torch.Generator) -> Tensor:
        out = draw(batch_size, generator=generator)
        return out if len(shape) == 1 else out[:, None]

    return sample
