"""The shared imaging of the strong-lensing simulators: :class:`LensingOptions` and
:class:`LensingImaging` (grid, PSF, noise, likelihood).

The simulators are ``lensing_sie`` (:mod:`simulators.lensing.sie`) and ``lensing_pixelated``
(:mod:`simulators.lensing.pixelated`).

Both render a square image of ``num_pix`` pixels of ``pixel_scale`` arcsec, with
``supersampling x supersampling`` rays per pixel, a Gaussian PSF of FWHM ``psf_fwhm``
(applied by FFT on an image rendered with a margin of half the kernel, so that edge pixels
see the light just outside the field), and noise: exact Poisson counts of the source flux
over ``exposure_time`` plus Gaussian background of rms ``background_rms``
(``noise="poisson"``, the default), or lenstronomy's Gaussian approximation of the same
(``noise="gaussian"``: normal noise of variance ``background_rms^2 + mu / exposure_time``,
what ``lenstronomy.Util.image_util.add_poisson`` + ``add_background`` draw; its noise costs
~1/5 of exact counts' on CPU; the noise functions are in :mod:`simulators.lensing.noise`).
Images are in electrons per second per pixel.

* ``lensing_sie``: singular isothermal ellipsoid + external shear (lens centred in the
  cutout), elliptical Sersic source; 12 parameters.
* ``lensing_pixelated``: the same pipeline through pixel maps, for learned inverse solvers:
  a convergence map (an SIE plus a Gaussian subhalo, rasterised on the image pixels; its
  deflection is computed by FFT) and a source map (two Gaussian blobs rasterised on a
  source-plane grid and sampled bilinearly); 14 parameters.
  :meth:`~simulators.lensing.pixelated.LensingPixelated.maps` returns both maps, the targets
  of an image-to-map network.

Example:
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("lensing_pixelated", device="cpu", num_pix=32)
    >>> isinstance(sim, LensingImaging), sim.event_shape, sim.margin  # margin: half the PSF
    (True, (32, 32), 3)
    >>> LensingOptions(noise="uniform")
    Traceback (most recent call last):
        ...
    sbi_astro.errors.ConfigError: noise must be one of ('poisson', 'gaussian'), got 'uniform'
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator

from . import _physics as ph
from .noise import counts_plus_background, gaussian_noise

NOISE_MODELS = ("poisson", "gaussian")


@dataclasses.dataclass(frozen=True)
class LensingOptions:
    """Imaging options shared by the lensing simulators.

    Attributes:
        num_pix: image side, pixels.
        pixel_scale: arcsec per pixel.
        supersampling: rays per pixel side (the pixel value is their mean).
        psf_fwhm: FWHM of the Gaussian PSF, arcsec (0: no PSF).
        background_rms: Gaussian background noise, electrons/s per pixel.
        exposure_time: seconds, for the Poisson noise of the source.
        noise: ``"poisson"``: exact Poisson counts of the source plus Gaussian background;
            ``"gaussian"``: lenstronomy's approximation, one normal draw per pixel of
            variance ``background_rms^2 + mu / exposure_time`` (the model of
            ``log_likelihood``; accurate where the counts ``mu * exposure_time`` are large
            or the background dominates, i.e. everywhere in the default setting).
    """

    num_pix: int = 64
    pixel_scale: float = 0.08
    supersampling: int = 2
    psf_fwhm: float = 0.1
    background_rms: float = 0.01
    exposure_time: float = 1000.0
    noise: str = "poisson"

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODELS:
            raise ConfigError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        if self.num_pix < 4:
            raise ConfigError(f"num_pix must be >= 4, got {self.num_pix}")
        if self.supersampling < 1:
            raise ConfigError(f"supersampling must be >= 1, got {self.supersampling}")
        for name in ("pixel_scale", "background_rms", "exposure_time"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.psf_fwhm < 0:
            raise ConfigError(f"psf_fwhm must be >= 0 (0 disables the PSF), got {self.psf_fwhm}")


class LensingImaging(Simulator):
    """Grid, PSF, noise and likelihood shared by the lensing simulators."""

    Options = LensingOptions
    x_standardization = "structured"

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.options.num_pix, self.options.num_pix)

    def default_embedding(self) -> EmbeddingSpec:
        # The design of sbi_astro/studies/lensing_sie.yaml (docs/simulators/lensing.md,
        # "Inference"): a stride-2 stem (~13x cheaper than the full-resolution default on
        # CPU at 64 x 64) and x, y, r coordinate channels, as the lens is centred.
        return EmbeddingSpec("resnet2d", {"in_shape": list(self.event_shape),
                                          "out_features": 64, "channels": [8, 16, 32, 64],
                                          "stem_stride": 2, "coords": True})

    # -- imaging ------------------------------------------------------------------------
    @property
    def psf_kernel(self) -> Tensor | None:
        """The ``(k, k)`` PSF kernel (float64), ``None`` without PSF."""
        o = self.options
        if o.psf_fwhm == 0:
            return None
        return ph.gaussian_psf_kernel(o.psf_fwhm, o.pixel_scale)

    @property
    def margin(self) -> int:
        """Pixels rendered outside the field on each side (half the PSF kernel)."""
        k = self.psf_kernel
        return 0 if k is None else k.shape[-1] // 2

    def ray_grid(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """Image-plane ray positions ``(x, y)``, each ``(S, S)`` with
        ``S = (num_pix + 2 margin) * supersampling``, in ``like``'s dtype and device."""
        o = self.options
        x, y = ph.pixel_grid(o.num_pix, o.pixel_scale, o.supersampling, self.margin)
        return self.constant("grid_x", x, like), self.constant("grid_y", y, like)

    def render(self, surface_brightness: Tensor) -> Tensor:
        """Ray surface brightness ``(N, S, S)`` -> PSF-convolved flux per pixel ``(N, n, n)``."""
        return self.render_pixels(ph.bin_pixels(surface_brightness, self.options.supersampling))

    def render_pixels(self, pixel_brightness: Tensor) -> Tensor:
        """Mean surface brightness per (margined) pixel ``(N, S / s, S / s)`` -> PSF-convolved
        flux per pixel ``(N, n, n)``."""
        o = self.options
        flux = pixel_brightness * o.pixel_scale ** 2
        kernel = self.psf_kernel
        if kernel is None:
            return flux
        kf, shape = ph.kernel_fft(kernel, o.num_pix)
        ctype = torch.complex64 if flux.dtype == torch.float32 else torch.complex128
        kf = self.constant("psf_fft", kf, flux.new_empty((), dtype=ctype))
        return ph.convolve_valid(flux, kf, shape, kernel.shape[-1])

    #: Rows per chunk on CPU: keeping each chunk's ray tensors (16 x 136^2 floats at the
    #: defaults) in cache is about 3x faster than one pass over a large batch.
    cpu_chunk: int = 16

    def _chunks(self, theta: Tensor) -> list[tuple[int, int]]:
        n = theta.shape[0]
        step = self.cpu_chunk if theta.device.type == "cpu" else max(n, 1)
        return [(i, min(i + step, n)) for i in range(0, n, step)]

    def _expected(self, theta: Tensor) -> Tensor:
        parts = [self._expected_chunk(theta[i:j]) for i, j in self._chunks(theta)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _expected_chunk(self, theta: Tensor) -> Tensor:
        """:meth:`_expected_rows` of one chunk; on CPU a short chunk is padded to
        ``cpu_chunk`` rows (copies of its last row, dropped again).  The per-row lens and
        source parameters are vectors of ``N`` numbers, and CPU kernels send the last
        ``N mod 8`` (AVX2) or ``N mod 16`` (AVX-512) elements of a vector through scalar
        code whose last bit can differ from the SIMD code's: with every chunk of the same
        length, a row's image no longer depends on how many rows it was simulated with
        (and ``compile=True`` compiles for one shape only)."""
        n = theta.shape[0]
        pad = self.cpu_chunk - n if theta.device.type == "cpu" else 0
        if pad <= 0 or n == 0:
            return self._expected_rows(theta)
        padded = torch.cat([theta, theta[-1:].expand(pad, *theta.shape[1:])])
        return self._expected_rows(padded)[:n]

    def _expected_rows(self, theta: Tensor) -> Tensor:
        """Noise-free image ``(N, n, n)`` of flat ``theta (N, D)`` (one chunk)."""
        raise NotImplementedError

    # -- noise and likelihood -------------------------------------------------------------
    #: Rows per exact-Poisson noise call on CPU (the compiled sampler of
    #: ``sbi_astro.poisson_cpu``): the rows' expected images stay in cache between rendering
    #: and noise (measured, 2 threads, 64 x 64: 3,523 images/s at 16 rows, 3,988 at 32,
    #: 4,140 at 64, 2,573 at 128, 3,178 at 256).
    poisson_rows: int = 64

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        # One child stream per row, cut into spans: each row's numbers depend on its key
        # only, so the spans change nothing in the output.  Spans are image chunks (the
        # compiled Gaussian noise has one shape), or ``poisson_rows`` for exact Poisson
        # noise on CPU, whose images are still rendered chunk by chunk inside ``_expected``.
        keys = rng.split().keys
        if self.options.noise == "poisson" and theta.device.type == "cpu":
            n = theta.shape[0]
            spans = [(i, min(i + self.poisson_rows, n)) for i in range(0, n, self.poisson_rows)]
        else:
            spans = self._chunks(theta)
        out = []
        for i, j in spans:
            with torch.no_grad():
                mu = self._expected(theta[i:j])
            out.append(self._add_noise(mu, RowRandom(keys[i:j])))
        return out[0] if len(out) == 1 else torch.cat(out)

    def _add_noise(self, mu: Tensor, rng: RowRandom) -> Tensor:
        """A noisy image per row of ``mu (N, n, n)``, from the rows' streams ``rng``."""
        o = self.options
        if o.noise == "poisson":
            counts = rng.poisson(mu.clamp_min(0.0) * o.exposure_time)
            if mu.dtype != torch.float32:  # float64 normals come from the inverse CDF
                noise = rng.normal(tuple(mu.shape[1:]), dtype=mu.dtype)
                return counts / o.exposure_time + o.background_rms * noise
            # the stream key that rng.normal would use next, hence the same numbers
            return self._noise_fn(counts_plus_background)(
                rng.split().keys, counts, o.exposure_time, o.background_rms)
        # the stream key that rng.normal would use next, hence the same numbers
        return self._noise_fn(gaussian_noise)(
            rng.split().keys, mu, o.background_rms ** 2, 1.0 / o.exposure_time)

    def _noise_fn(self, fn):  # noqa: ANN001, ANN202
        """``fn``, compiled once per simulator when :attr:`compiles`."""
        if not self.compiles:
            return fn
        if self._compiled_noise is None:
            self._compiled_noise = {}
        if fn not in self._compiled_noise:
            self._compiled_noise[fn] = torch.compile(fn, dynamic=False)
        return self._compiled_noise[fn]

    _compiled_noise = None

    @property
    def compiles(self) -> bool:
        """Whether the noise model is ``torch.compile`` d (only ``lensing_sie`` offers it)."""
        return False

    def variance(self, mu: Tensor) -> Tensor:
        """Per-pixel noise variance ``background_rms^2 + mu / exposure_time``."""
        o = self.options
        return o.background_rms ** 2 + mu.clamp_min(0.0) / o.exposure_time

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Gaussian approximation with the noise map :meth:`variance` (Poisson -> normal);
        exact for ``noise="gaussian"``."""
        mu = self._expected(theta)
        var = self.variance(mu)
        r = x.to(mu.dtype) - mu
        return -0.5 * (r * r / var + torch.log(2.0 * math.pi * var)).sum(dim=(-2, -1))
