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

from sbi_astro.errors import ConfigError
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
    """

    supersampling: int = 1
    source_num_pix: int = 48
    source_pixel_scale: float = 0.04

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.source_num_pix < 4 or not self.source_pixel_scale > 0:
            raise ConfigError("source_num_pix must be >= 4 and source_pixel_scale > 0")


class LensingPixelated(LensingImaging):
    """Lensing through pixel maps: a convergence map and a source map.

    The maps come from 14 parameters: an SIE (``theta_E, e1, e2``) plus a Gaussian subhalo
    (``m_sub`` = its mass in units of ``pi arcsec^2 Sigma_crit``, i.e. the Einstein radius^2
    of an equal point mass, width 0.1 arcsec, at ``x_sub, y_sub``) rasterised on the image
    pixels (the SIE's ``kappa`` sampled at pixel centres, zero outside the field), and two
    Gaussian source blobs (``flux_i`` in electrons/s, ``sigma_i``, ``x_i, y_i``) rasterised on
    the source grid.  Deflections are the FFT convolution of the convergence map, bilinearly
    interpolated to the rays; source light is bilinearly interpolated from the source map.
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
        """Convergence ``(N, n, n)`` on the image pixels and source surface brightness
        ``(N, ns, ns)`` on the source grid, for flat ``theta (N, D)``."""
        o = self.options
        x, y = ph.pixel_grid(o.num_pix, o.pixel_scale)
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
        o = self.options
        kappa, src = self.maps(theta)
        kernels = ph.pixelated_deflection_kernel_fft(o.num_pix, o.num_pix, o.pixel_scale)
        ctype = torch.complex64 if theta.dtype == torch.float32 else torch.complex128
        like = theta.new_empty((), dtype=ctype)
        kernels = (self.constant("kx_fft", kernels[0], like),
                   self.constant("ky_fft", kernels[1], like))
        ax, ay = ph.pixelated_deflection(kappa, kernels)
        x, y = self.ray_grid(theta)
        n = theta.shape[0]
        xs, ys = x.expand(n, *x.shape), y.expand(n, *y.shape)
        alpha = ph.bilinear(torch.stack([ax, ay], dim=1), xs, ys, o.pixel_scale,
                            padding="border")
        bx, by = xs - alpha[:, 0], ys - alpha[:, 1]
        sb = ph.bilinear(src[:, None], bx, by, o.source_pixel_scale)[:, 0]
        return self.render(sb)
