"""``galsim_sources``: shapes, flux, ellipticity, knots and per-row reproducibility."""

from __future__ import annotations

import pytest
import torch

from sbi_astro.random import fold
from simulators.galsim_sources import GalSimSources

NAMES = ("log10_flux", "hlr", "bulge_frac", "bulge_ratio", "knot_frac", "e1", "e2", "x0", "y0")


def _theta(**kw) -> torch.Tensor:
    base = dict(log10_flux=2.5, hlr=0.15, bulge_frac=0.0, bulge_ratio=0.4, knot_frac=0.0,
                e1=0.0, e2=0.0, x0=0.0, y0=0.0)
    base.update(kw)
    return torch.tensor([[base[n] for n in NAMES]])


def _moments(img: torch.Tensor) -> tuple[float, float, float]:
    n = img.shape[-1]
    c = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    w = img.double() / img.sum()
    mx, my = (w * xx).sum(), (w * yy).sum()
    return (float((w * (xx - mx) ** 2).sum()), float((w * (yy - my) ** 2).sum()),
            float((w * (xx - mx) * (yy - my)).sum()))


@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_shapes_and_finite(batch):
    sim = GalSimSources(device="cpu", num_pix=32)
    theta = sim.prior.sample(batch, generator=torch.Generator().manual_seed(0))
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(1))
    assert x.shape == (*batch, 32, 32) and torch.isfinite(x).all()


def test_flux_is_conserved_for_a_compact_galaxy():
    """hlr 0.15" on a 2.56" stamp: the exponential profile outside the stamp carries < 0.1 %
    of the flux; drawn sums within 1 % of 10^2.5 (knots and bulge included)."""
    sim = GalSimSources(device="cpu", num_pix=64)
    theta = torch.cat([_theta(), _theta(bulge_frac=0.3, knot_frac=0.4)])
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(x.sum((-1, -2)).double(), torch.full((2,), 10**2.5,
                          dtype=torch.float64), rtol=0.01)


def test_ellipticity_and_orientation():
    """A round disk has equal second moments; g1 = 0.3 stretches it along x (Ixx / Iyy =
    ((1 + g) / (1 - g))^2 = 3.4 for the unconvolved profile, less with the pixel smoothing),
    g2 = 0.3 along the diagonal (Ixy > 0)."""
    sim = GalSimSources(device="cpu", num_pix=64)
    x = sim.simulate(torch.cat([_theta(), _theta(e1=0.3), _theta(e2=0.3)]),
                     generator=torch.Generator().manual_seed(0))
    ixx, iyy, ixy = _moments(x[0])
    assert abs(ixx / iyy - 1) < 1e-3 and abs(ixy) < 1e-3 * ixx
    ixx, iyy, _ = _moments(x[1])
    assert 2.5 < ixx / iyy < 3.5
    ixx, iyy, ixy = _moments(x[2])
    assert ixy > 0.4 * ixx and abs(ixx / iyy - 1) < 1e-2


def test_knots_depend_on_the_row_key_only():
    sim = GalSimSources(device="cpu", num_pix=32)
    theta = _theta(knot_frac=0.5).expand(4, -1)
    keys = fold(torch.tensor(3), torch.arange(4))
    x = sim.simulate(theta, keys=keys)
    again = sim.simulate(theta[2:], keys=keys[2:])
    assert torch.equal(x[2:], again)
    assert (x[0] - x[1]).abs().max() > 1e-3 * x[0].max()  # different knots
    smooth = sim.simulate(_theta().expand(2, -1), keys=keys[:2])
    assert torch.equal(smooth[0], smooth[1])  # no knots: no randomness
