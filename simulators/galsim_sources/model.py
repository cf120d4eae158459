"""``galsim_sources``: source-galaxy images that look like galaxies, drawn with GalSim.

A training set for score-based source priors (``sbi_astro.solvers``, issue 21): each image
is an exponential disk, a de Vaucouleurs bulge and GalSim's ``RandomKnots`` (star-forming
clumps that follow the disk's light), sheared to an ellipticity ``(e1, e2)`` and convolved
with a Gaussian of half a pixel (the knots are points), drawn on a ``num_pix`` square
stamp of ``pixel_scale`` arcsec.  Fluxes are in counts (arbitrary units) per image.

Parameters (8): ``log10_flux`` (total flux), ``hlr`` (disk half-light radius, arcsec),
``bulge_frac`` and ``bulge_ratio`` (the bulge's flux fraction and half-light radius over the
disk's), ``knot_frac`` (flux fraction in ``n_knots`` knots), ``e1, e2`` (reduced shear
applied to the galaxy; orientation and axis ratio), ``x0, y0`` (offset, arcsec).

Randomness: the knot positions come from ``galsim.BaseDeviate`` seeded by one uniform
number of the row's counter-based stream, so an image depends only on its row key and
parameters (whatever the batch), as every simulator's.  GalSim runs on the CPU, one image at
a time (~1 ms for 64 x 64); the result is moved to the simulator's device.

Needs GalSim (a dependency of the package; 2.8.5 tested; it does not touch torch).  It is
registered as ``galsim_sources``, so campaigns write its images into stores like any
simulation's.

Example:
    >>> import pytest, torch
    >>> _ = pytest.importorskip("galsim")  # an optional dependency
    >>> sim = GalSimSources(device="cpu", num_pix=32)
    >>> theta = sim.prior.sample((2,), generator=torch.Generator().manual_seed(0))
    >>> sim.simulate(theta, generator=torch.Generator().manual_seed(1)).shape
    torch.Size([2, 32, 32])

References:
    Rowe et al. (2015), "GalSim: the modular galaxy image simulation toolkit", Astronomy
    and Computing 10, 121.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError, NotAvailableError
from sbi_astro.priors import Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import Simulator


@dataclasses.dataclass(frozen=True)
class GalSimOptions:
    """Options of ``galsim_sources``.

    Attributes:
        num_pix: side of the image, pixels.
        pixel_scale: arcsec per pixel.
        n_knots: number of star-forming knots (0 for none).
    """

    num_pix: int = 64
    pixel_scale: float = 0.04
    n_knots: int = 20

    def __post_init__(self) -> None:
        if self.num_pix < 4 or not self.pixel_scale > 0 or self.n_knots < 0:
            raise ConfigError("num_pix must be >= 4, pixel_scale > 0 and n_knots >= 0")


def _galsim():
    try:
        import galsim
    except ImportError as err:
        raise NotAvailableError("galsim_sources needs GalSim: pip install galsim") from err
    return galsim


class GalSimSources(Simulator):
    """Galaxy images from GalSim: bulge + disk + RandomKnots, ``(num_pix, num_pix)`` counts."""

    name = "galsim_sources"
    Options = GalSimOptions

    def build_prior(self) -> Prior:
        return Prior([
            Uniform("log10_flux", 2.0, 3.0, description="log10 total flux (counts)"),
            Uniform("hlr", 0.15, 0.5, unit="arcsec", description="disk half-light radius"),
            Uniform("bulge_frac", 0.0, 0.5, description="bulge flux fraction"),
            Uniform("bulge_ratio", 0.2, 0.6, description="bulge / disk half-light radius"),
            Uniform("knot_frac", 0.0, 0.5, description="flux fraction in knots"),
            Uniform("e1", -0.4, 0.4, description="reduced shear g1 of the galaxy"),
            Uniform("e2", -0.4, 0.4, description="reduced shear g2 of the galaxy"),
            Uniform("x0", -0.1, 0.1, unit="arcsec", description="offset"),
            Uniform("y0", -0.1, 0.1, unit="arcsec", description="offset"),
        ])

    @property
    def event_shape(self) -> tuple[int, ...]:
        n = self.options.num_pix
        return (n, n)

    def _draw(self, p: list[float], seed: int):
        galsim = _galsim()
        o = self.options
        log10_flux, hlr, bulge_frac, bulge_ratio, knot_frac, e1, e2, x0, y0 = p
        flux = 10.0**log10_flux
        disk_flux = flux * (1.0 - bulge_frac)
        parts = [galsim.Exponential(half_light_radius=hlr, flux=disk_flux * (1 - knot_frac))]
        if o.n_knots > 0 and knot_frac > 0:
            parts.append(galsim.RandomKnots(o.n_knots, half_light_radius=hlr,
                                            flux=disk_flux * knot_frac,
                                            rng=galsim.BaseDeviate(seed)))
        if bulge_frac > 0:
            parts.append(galsim.DeVaucouleurs(half_light_radius=hlr * bulge_ratio,
                                              flux=flux * bulge_frac))
        gal = galsim.Add(parts).shear(g1=e1, g2=e2).shift(x0, y0)
        gal = galsim.Convolve(gal, galsim.Gaussian(sigma=0.5 * o.pixel_scale))
        img = gal.drawImage(nx=o.num_pix, ny=o.num_pix, scale=o.pixel_scale)
        return img.array

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        seeds = (rng.uniform((), dtype=torch.float64) * (2**31 - 2)).long() + 1
        rows = [torch.as_tensor(self._draw(p, int(s)))
                for p, s in zip(theta.detach().cpu().double().tolist(), seeds.tolist(),
                                strict=True)]
        if not rows:
            return theta.new_zeros((0, *self.event_shape))
        return torch.stack(rows).to(device=theta.device, dtype=self.dtype)
