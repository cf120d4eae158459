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
import functools
import math

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError, DataFormatError, NotAvailableError
from sbi_astro.options import FilePath
from sbi_astro.provenance import file_record
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator

from . import _physics as ph
from .data import background_rms, read_image, read_mask, read_noise_map, read_psf
from .noise import counts_plus_background, gaussian_noise

NOISE_MODELS = ("poisson", "gaussian")


#: the imaging of a synthetic cutout when no file says otherwise
DEFAULTS = {"num_pix": 64, "pixel_scale": 0.08, "psf_fwhm": 0.1, "background_rms": 0.01,
            "exposure_time": 1000.0}


@dataclasses.dataclass(frozen=True)
class LensingOptions:
    """Imaging options shared by the lensing simulators.

    Without files, a synthetic cutout (the defaults in brackets); with your own data
    (:mod:`simulators.lensing.data`), the grid, PSF and noise follow the files.

    Attributes:
        num_pix: image side, pixels [64; with ``image``: the image's side].
        pixel_scale: arcsec per pixel [0.08; with ``image``: from its WCS].
        supersampling: rays per pixel side (the pixel value is their mean).
        psf_fwhm: FWHM of the Gaussian PSF, arcsec (0: no PSF) [0.1; not with ``psf``].
        background_rms: Gaussian background noise, electrons/s per pixel [0.01; with
            ``image`` and no ``noise_map``: estimated from the image's outer ring].
        exposure_time: seconds, for the Poisson noise of the source [1000; with ``image``:
            its ``EXPTIME``].
        noise: ``"poisson"``: exact Poisson counts of the source plus Gaussian background;
            ``"gaussian"``: lenstronomy's approximation, one normal draw per pixel of
            variance ``background_rms^2 + mu / exposure_time`` (the model of
            ``log_likelihood``; accurate where the counts ``mu * exposure_time`` are large
            or the background dominates, i.e. everywhere in the default setting).
        image: your FITS image [e-/s per pixel], the lens at its centre (or see ``center``).
        center: ``(RA, Dec)`` [deg] of the lens: cut ``cutout_pix`` pixels around it.
        cutout_pix: side of that cutout, pixels.
        psf: a FITS PSF kernel (odd side; normalised here) instead of ``psf_fwhm``.
        psf_supersampling: how many times finer than the image the ``psf`` is sampled.
        noise_map: FITS per-pixel background standard deviation instead of
            ``background_rms`` (needs ``image``).
        mask: FITS mask, non-zero where a pixel is used (needs ``image``).
    """

    num_pix: int | None = None
    pixel_scale: float | None = None
    supersampling: int = 2
    psf_fwhm: float | None = None
    background_rms: float | None = None
    exposure_time: float | None = None
    noise: str = "poisson"
    image: FilePath | None = None
    center: tuple[float, ...] | None = None
    cutout_pix: int | None = None
    psf: FilePath | None = None
    psf_supersampling: int = 1
    noise_map: FilePath | None = None
    mask: FilePath | None = None

    def __post_init__(self) -> None:
        if self.noise not in NOISE_MODELS:
            raise ConfigError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        if self.image is None:
            for name in ("noise_map", "mask", "center", "cutout_pix"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"{name} describes your own image: give image=PATH too")
        else:
            self._from_image()
        if self.psf is not None and self.psf_fwhm is not None:
            raise ConfigError("give either psf_fwhm (a Gaussian PSF) or psf (your kernel), not "
                              "both")
        if self.psf is not None:  # checked now, before any simulation
            read_psf(self.psf, self.psf_supersampling)
        for name, value in DEFAULTS.items():
            if getattr(self, name) is None and not (
                    (name == "psf_fwhm" and self.psf is not None)
                    or (name == "background_rms" and self.noise_map is not None)):
                object.__setattr__(self, name, value)
        if self.num_pix < 4:
            raise ConfigError(f"num_pix must be >= 4, got {self.num_pix}")
        if self.supersampling < 1 or self.psf_supersampling < 1:
            raise ConfigError(f"supersampling and psf_supersampling must be >= 1, got "
                              f"{self.supersampling} and {self.psf_supersampling}")
        for name in ("pixel_scale", "background_rms", "exposure_time"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.psf_fwhm is not None and self.psf_fwhm < 0:
            raise ConfigError(f"psf_fwhm must be >= 0 (0 disables the PSF), got {self.psf_fwhm}")

    def _from_image(self) -> None:
        """Fills the grid, exposure and background from the image's file, refusing values
        given that disagree with it."""
        img = read_image(self.image, center=self.center, size=self.cutout_pix)
        n = img.image.shape[0]
        if self.num_pix is not None and self.num_pix != n:
            raise ConfigError(f"num_pix={self.num_pix} but the image {self.image} is {n} x {n} "
                              "pixels; leave num_pix out (it follows the image)")
        object.__setattr__(self, "num_pix", n)
        if self.pixel_scale is None:
            if img.pixel_scale is None:
                raise DataFormatError(f"{self.image}: its header has no celestial WCS, so the "
                                      "pixel scale is unknown; give pixel_scale (arcsec per "
                                      "pixel) or add CDELT1/CDELT2 or a CD matrix")
            object.__setattr__(self, "pixel_scale", img.pixel_scale)
        elif img.pixel_scale is not None and abs(self.pixel_scale / img.pixel_scale - 1) > 1e-3:
            raise ConfigError(f"pixel_scale={self.pixel_scale} but the WCS of {self.image} says "
                              f"{img.pixel_scale:.6g} arcsec; leave pixel_scale out")
        if self.exposure_time is None:
            if img.exposure_time is None:
                raise DataFormatError(f"{self.image}: its header has no EXPTIME; give "
                                      "exposure_time (seconds)")
            object.__setattr__(self, "exposure_time", img.exposure_time)
        if self.noise_map is not None and self.background_rms is not None:
            raise ConfigError("give either background_rms or noise_map, not both")
        mask = read_mask(self.mask, (n, n)) if self.mask is not None else None
        if self.noise_map is not None:
            read_noise_map(self.noise_map, (n, n))
        elif self.background_rms is None:
            object.__setattr__(self, "background_rms", background_rms(img.image, mask))


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
        if o.psf is not None:
            return self._files["psf"]
        if o.psf_fwhm == 0:
            return None
        return ph.gaussian_psf_kernel(o.psf_fwhm, o.pixel_scale)

    # -- your own data --------------------------------------------------------------------
    @functools.cached_property
    def _files(self) -> dict[str, Tensor]:
        """The PSF kernel, the noise map (sigma) and the mask (1 = used) read once from
        their files, float64 (the render and noise paths use them on every chunk)."""
        o, shape = self.options, self.event_shape
        out = {}
        if o.psf is not None:
            out["psf"] = torch.from_numpy(read_psf(o.psf, o.psf_supersampling))
        if o.noise_map is not None:
            out["sigma"] = torch.from_numpy(read_noise_map(o.noise_map, shape))
        if o.mask is not None:
            out["mask"] = torch.from_numpy(read_mask(o.mask, shape)).double()
        return out

    @property
    def has_observation(self) -> bool:
        return self.options.image is not None

    def observed(self) -> Tensor:
        """Your image ``(n, n)`` [e-/s per pixel] (masked pixels set to 0), with ``image``."""
        o = self.options
        if o.image is None:
            raise NotAvailableError(f"{self.name} has no observation: give your FITS image "
                                    "with image=PATH")
        img = read_image(o.image, center=o.center, size=o.cutout_pix).image
        x = torch.tensor(img, dtype=self.dtype, device=self.device)
        return self._apply_mask(x)

    def pixel_mask(self, like: Tensor) -> Tensor | None:
        """``(n, n)`` 1 where a pixel is used, 0 where masked (``like``'s dtype and device);
        ``None`` without a mask."""
        o = self.options
        if o.mask is None:
            return None
        return self.constant("mask", self._files["mask"], like)

    def _apply_mask(self, x: Tensor) -> Tensor:
        m = self.pixel_mask(x)
        return x if m is None else x * m

    def background_variance(self, like: Tensor) -> Tensor | float:
        """Background variance per pixel: ``noise_map^2`` ``(n, n)`` in ``like``'s dtype
        and device, or the scalar ``background_rms^2``."""
        o = self.options
        if o.noise_map is None:
            return o.background_rms ** 2
        sigma = self._files["sigma"]
        return self.constant("noise_var", sigma * sigma, like)

    def _background_sigma(self, like: Tensor) -> Tensor | float:
        o = self.options
        if o.noise_map is None:
            return o.background_rms
        return self.constant("noise_sigma", self._files["sigma"], like)

    def data_files(self) -> dict[str, dict]:
        """The image, PSF, noise map and mask files read, with their SHA-256."""
        o = self.options
        return {k: file_record(getattr(o, k)) for k in ("image", "psf", "noise_map", "mask")
                if getattr(o, k) is not None}

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
        return self._apply_mask(out[0] if len(out) == 1 else torch.cat(out))

    def _add_noise(self, mu: Tensor, rng: RowRandom) -> Tensor:
        """A noisy image per row of ``mu (N, n, n)``, from the rows' streams ``rng``."""
        o = self.options
        if o.noise == "poisson":
            counts = rng.poisson(mu.clamp_min(0.0) * o.exposure_time)
            sigma = self._background_sigma(mu)
            if mu.dtype != torch.float32:  # float64 normals come from the inverse CDF
                noise = rng.normal(tuple(mu.shape[1:]), dtype=mu.dtype)
                return counts / o.exposure_time + sigma * noise
            # the stream key that rng.normal would use next, hence the same numbers
            return self._noise_fn(counts_plus_background)(
                rng.split().keys, counts, o.exposure_time, sigma)
        # the stream key that rng.normal would use next, hence the same numbers
        return self._noise_fn(gaussian_noise)(
            rng.split().keys, mu, self.background_variance(mu), 1.0 / o.exposure_time)

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
        """Per-pixel noise variance ``background_rms^2 + mu / exposure_time`` (the noise
        map's square in place of ``background_rms^2`` when given)."""
        return self.background_variance(mu) + mu.clamp_min(0.0) / self.options.exposure_time

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Gaussian approximation with the noise map :meth:`variance` (Poisson -> normal);
        exact for ``noise="gaussian"``; masked pixels do not count."""
        return self.image_log_likelihood(self._expected(theta), x)

    def image_log_likelihood(self, mu: Tensor, x: Tensor) -> Tensor:
        """:meth:`_log_likelihood` of expected images ``mu (N, n, n)``, in ``mu``'s dtype."""
        var = self.variance(mu)
        r = x.to(mu.dtype) - mu
        terms = r * r / var + torch.log(2.0 * math.pi * var)
        mask = self.pixel_mask(mu)
        if mask is not None:
            terms = terms * mask
        return -0.5 * terms.sum(dim=(-2, -1))
