"""``lensing_sie``: an SIE + external shear lens and an elliptical Sersic source (imaging
in :mod:`simulators.lensing.base`).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("lensing_sie", device="cpu", num_pix=32)
    >>> theta = sim.prior.sample((2,), generator=torch.Generator().manual_seed(0))
    >>> sim.simulate(theta, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([2, 32, 32])
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from sbi_astro.priors import LogUniform, Prior, Uniform

from . import _physics as ph
from .base import LensingImaging, LensingOptions
from .references import SIEBenchmarkReferences

SB_UNIT = "electron / (s arcsec2)"


@dataclasses.dataclass(frozen=True)
class SIEOptions(LensingOptions):
    """Options of ``lensing_sie``: imaging options, plus

    Attributes:
        compile: trace the ray-shooting and Sersic evaluation with ``torch.compile`` (one
            fused kernel instead of ~50 tensor operations: ~9x faster on CPU once compiled;
            the first call of each chunk size compiles for ~20-30 s and needs a C++
            compiler).  Results agree with the eager path to float32 round-off (~1e-5).
    """

    compile: bool = False


def _sie_sersic_sb(theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Source surface brightness ``(N, S, S)`` at the rays ``x, y (S, S)`` of ``lensing_sie``."""
    p = [ph.bcast(v, x) for v in theta.unbind(-1)]
    ax, ay = ph.sie(x, y, p[0], p[1], p[2])
    sx, sy = ph.shear(x, y, p[3], p[4])
    return ph.sersic(x - ax - sx, y - ay - sy, *p[5:])


def _sie_sersic_pixels(theta: Tensor, x: Tensor, y: Tensor, supersampling: int) -> Tensor:
    """:func:`_sie_sersic_sb` averaged over each pixel's ``supersampling^2`` rays (one
    kernel under ``torch.compile``: the binning costs no extra pass over the rays)."""
    return ph.bin_pixels(_sie_sersic_sb(theta, x, y), supersampling)


class LensingSIE(SIEBenchmarkReferences, LensingImaging):
    """SIE + external shear lens (centred on the cutout) and an elliptical Sersic source.

    Parameters (lenstronomy conventions): ``theta_E`` (arcsec), ``e1, e2`` of the lens,
    ``gamma1, gamma2`` of the shear (zero deflection at the centre), and the source's
    ``amp`` (surface brightness at ``R_sersic``), ``R_sersic`` (circularised half-light
    radius), ``n_sersic``, ``e1_s, e2_s``, ``x_s, y_s``.
    """

    name = "lensing_sie"
    Options = SIEOptions
    _compiled = None

    @property
    def compiles(self) -> bool:
        return self.options.compile

    def build_prior(self) -> Prior:
        return Prior([
            Uniform("theta_E", 0.6, 1.8, unit="arcsec", description="SIE Einstein radius"),
            Uniform("e1", -0.3, 0.3, description="lens ellipticity"),
            Uniform("e2", -0.3, 0.3, description="lens ellipticity"),
            Uniform("gamma1", -0.1, 0.1, description="external shear"),
            Uniform("gamma2", -0.1, 0.1, description="external shear"),
            LogUniform("amp", 2.0, 50.0, unit=SB_UNIT,
                       description="source surface brightness at R_sersic"),
            Uniform("R_sersic", 0.05, 0.5, unit="arcsec",
                    description="source half-light radius (circularised)"),
            Uniform("n_sersic", 0.5, 4.0, description="source Sersic index"),
            Uniform("e1_s", -0.3, 0.3, description="source ellipticity"),
            Uniform("e2_s", -0.3, 0.3, description="source ellipticity"),
            Uniform("x_s", -0.3, 0.3, unit="arcsec", description="source position"),
            Uniform("y_s", -0.3, 0.3, unit="arcsec", description="source position"),
        ])

    def source_positions(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """Lens equation on the ray grid: ``beta = theta - alpha``, each ``(N, S, S)``."""
        x, y = self.ray_grid(theta)
        p = [ph.bcast(v, x) for v in theta.unbind(-1)]
        ax, ay = ph.sie(x, y, p[0], p[1], p[2])
        sx, sy = ph.shear(x, y, p[3], p[4])
        return x - ax - sx, y - ay - sy

    def _expected_rows(self, theta: Tensor) -> Tensor:
        x, y = self.ray_grid(theta)
        fn = _sie_sersic_pixels
        if self.options.compile:
            if self._compiled is None:
                self._compiled = torch.compile(_sie_sersic_pixels, dynamic=False)
            fn = self._compiled
        return self.render_pixels(fn(theta, x, y, self.options.supersampling))
