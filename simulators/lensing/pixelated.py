"""``lensing_pixelated``: lensing through a convergence map and a source map, for learned
inverse solvers (imaging in :mod:`simulators.lensing.base`).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("lensing_pixelated", device="cpu", num_pix=32)
    >>> theta = sim.prior.sample((2,), generator=torch.Generator().manual_seed(0))
    >>> kappa, source = sim.maps(theta)
    >>> tuple(kappa.shape), tuple(source.shape)  # image pixels, source grid
    ((2, 32, 32), (2, 48, 48))
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError, ShapeError
from sbi_astro.priors import LogUniform, Prior, Uniform

from . import _physics as ph
from .base import LensingImaging, LensingOptions

FLUX_UNIT = "electron / s"


@dataclasses.dataclass(frozen=True)
class PixelatedOptions(LensingOptions):
    """Options of ``lensing_pixelated``: imaging options plus the source-plane grid.

    Attributes:
        source_num_pix: side of the source map, pixels.
        source_pixel_scale: arcsec per source pixel.
        kappa_num_pix: side of the convergence map, pixels; it covers the image's field
            (``num_pix * pixel_scale`` arcsec), so its pixels are ``num_pix / kappa_num_pix``
            image pixels wide [default: ``num_pix``, one per image pixel].
    """

    supersampling: int = 1
    source_num_pix: int = 48
    source_pixel_scale: float = 0.04
    kappa_num_pix: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source_num_pix < 4 or not self.source_pixel_scale > 0:
            raise ConfigError("source_num_pix must be >= 4 and source_pixel_scale > 0")
        if self.kappa_num_pix is None:
            object.__setattr__(self, "kappa_num_pix", self.num_pix)
        if isinstance(self.kappa_num_pix, bool) or not isinstance(self.kappa_num_pix, int) \
                or self.kappa_num_pix < 4:
            raise ConfigError(f"kappa_num_pix must be an integer >= 4, got "
                              f"{self.kappa_num_pix!r}; e.g. num_pix // 2")

    @property
    def kappa_pixel_scale(self) -> float:
        """Arcsec per convergence-map pixel."""
        return self.num_pix * self.pixel_scale / self.kappa_num_pix


class LensingPixelated(LensingImaging):
    """Lensing through pixel maps: a convergence map and a source map.

    The maps come from 14 parameters: an SIE (``theta_E, e1, e2``) plus a Gaussian subhalo
    (``m_sub`` = its mass in units of ``pi arcsec^2 Sigma_crit``, i.e. the Einstein radius^2
    of an equal point mass, width 0.1 arcsec, at ``x_sub, y_sub``) rasterised on the image
    pixels (the SIE's ``kappa`` sampled at pixel centres, zero outside the field), and two
    Gaussian source blobs (``flux_i`` in electrons/s, ``sigma_i``, ``x_i, y_i``) rasterised on
    the source grid.  Deflections are the FFT convolution of the convergence map, bilinearly
    interpolated to the rays; source light is bilinearly interpolated from the source map.
    :meth:`lens_maps` is that forward model for any maps, differentiable in both (what a
    learned solver that reconstructs the maps themselves needs).
    """

    name = "lensing_pixelated"
    Options = PixelatedOptions
    SUBHALO_SIGMA = 0.1

    def build_prior(self) -> Prior:
        blobs = []
        for i in (1, 2):
            blobs += [
                LogUniform(f"flux_{i}", 0.5, 5.0, unit=FLUX_UNIT, description="blob flux"),
                Uniform(f"sigma_{i}", 0.04, 0.15, unit="arcsec", description="blob width"),
                Uniform(f"x_{i}", -0.3, 0.3, unit="arcsec", description="blob position"),
                Uniform(f"y_{i}", -0.3, 0.3, unit="arcsec", description="blob position"),
            ]
        return Prior([
            Uniform("theta_E", 0.6, 1.6, unit="arcsec", description="SIE Einstein radius"),
            Uniform("e1", -0.3, 0.3, description="lens ellipticity"),
            Uniform("e2", -0.3, 0.3, description="lens ellipticity"),
            Uniform("m_sub", 0.0, 0.05, unit="arcsec2",
                    description="subhalo mass / (pi Sigma_crit)"),
            Uniform("x_sub", -1.5, 1.5, unit="arcsec", description="subhalo position"),
            Uniform("y_sub", -1.5, 1.5, unit="arcsec", description="subhalo position"),
            *blobs,
        ])

    def maps(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Convergence ``(N, nk, nk)`` on the convergence grid (``kappa_num_pix``, the image
        pixels by default) and source surface brightness ``(N, ns, ns)`` [electrons/s per
        arcsec^2] on the source grid, for flat ``theta (N, D)``."""
        o = self.options
        x, y = ph.pixel_grid(o.kappa_num_pix, o.kappa_pixel_scale)
        x, y = self.constant("kappa_x", x, theta), self.constant("kappa_y", y, theta)
        p = [ph.bcast(v, x) for v in theta.unbind(-1)]
        kappa = ph.sie_convergence(x, y, p[0], p[1], p[2])
        s2 = self.SUBHALO_SIGMA ** 2
        dx, dy = x - p[4], y - p[5]
        kappa = kappa + p[3] / (2.0 * s2) * torch.exp(-(dx * dx + dy * dy) / (2.0 * s2))
        sx, sy = ph.pixel_grid(o.source_num_pix, o.source_pixel_scale)
        sx, sy = self.constant("src_x", sx, theta), self.constant("src_y", sy, theta)
        src = sum(ph.gaussian_light(sx, sy, p[6 + 4 * i], p[7 + 4 * i], p[8 + 4 * i],
                                    p[9 + 4 * i]) for i in range(2))
        return kappa, src

    def _expected_rows(self, theta: Tensor) -> Tensor:
        return self.lens_maps(*self.maps(theta))

    def lens_maps(self, kappa: Tensor, source: Tensor) -> Tensor:
        """The noise-free image ``(N, n, n)`` [electrons/s per pixel] of a convergence map
        ``kappa (N, kappa_num_pix, kappa_num_pix)`` and a source map ``source (N,
        source_num_pix, source_num_pix)`` [electrons/s per arcsec^2], through this
        simulator's grid and PSF; differentiable in both maps.

        Raises:
            ShapeError: the maps' shapes do not match the options.
        """
        o = self.options
        n = kappa.shape[0] if kappa.dim() == 3 else -1
        want_source = (n, o.source_num_pix, o.source_num_pix)
        if kappa.shape[1:] != (o.kappa_num_pix,) * 2 or tuple(source.shape) != want_source:
            raise ShapeError(f"lens_maps needs kappa (N, {o.kappa_num_pix}, {o.kappa_num_pix}) "
                             f"and source (N, {o.source_num_pix}, {o.source_num_pix}); got "
                             f"{tuple(kappa.shape)} and {tuple(source.shape)}")
        kernels = ph.pixelated_deflection_kernel_fft(o.kappa_num_pix, o.kappa_num_pix,
                                                     o.kappa_pixel_scale)
        ctype = torch.complex64 if kappa.dtype == torch.float32 else torch.complex128
        like = kappa.new_empty((), dtype=ctype)
        kernels = (self.constant("kx_fft", kernels[0], like),
                   self.constant("ky_fft", kernels[1], like))
        ax, ay = ph.pixelated_deflection(kappa, kernels)
        x, y = self.ray_grid(kappa)
        xs, ys = x.expand(n, *x.shape), y.expand(n, *y.shape)
        alpha = ph.bilinear(torch.stack([ax, ay], dim=1), xs, ys, o.kappa_pixel_scale,
                            padding="border")
        bx, by = xs - alpha[:, 0], ys - alpha[:, 1]
        sb = ph.bilinear(source[:, None].to(kappa.dtype), bx, by, o.source_pixel_scale)[:, 0]
        return self.render(sb)
