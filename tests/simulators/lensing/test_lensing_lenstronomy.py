"""Lensing physics against lenstronomy (an independent numpy implementation).

lenstronomy is in the ``test`` extra; without it these tests are skipped.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simulators.lensing import _physics as ph

pytest.importorskip("lenstronomy")
from lenstronomy.LensModel.lens_model import LensModel  # noqa: E402
from lenstronomy.LightModel.light_model import LightModel  # noqa: E402

D = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:lenstronomy.*")


def _points(n=500, seed=0):
    g = np.random.default_rng(seed)
    r = g.uniform(0.05, 3.0, n)
    a = g.uniform(0, 2 * np.pi, n)
    return r * np.cos(a), r * np.sin(a)


def _t(v):
    return torch.tensor(v, dtype=D)


CASES = {
    "SIS": (dict(theta_E=1.2, center_x=0.1, center_y=-0.2),
            lambda x, y, k: ph.sis(x, y, _t(k["theta_E"]), _t(k["center_x"]),
                                   _t(k["center_y"]))),
    "SIE": (dict(theta_E=1.3, e1=0.21, e2=-0.12, center_x=0.05, center_y=0.1),
            lambda x, y, k: ph.sie(x, y, *(_t(k[n]) for n in
                                           ("theta_E", "e1", "e2", "center_x", "center_y")))),
    "NIE": (dict(theta_E=1.1, e1=-0.1, e2=0.25, s_scale=0.15, center_x=-0.1, center_y=0.0),
            lambda x, y, k: ph.sie(x, y, *(_t(k[n]) for n in
                                           ("theta_E", "e1", "e2", "center_x", "center_y")),
                                   s_scale=_t(k["s_scale"]))),
    "EPL": (dict(theta_E=1.4, gamma=2.3, e1=0.15, e2=0.2, center_x=0.0, center_y=0.1),
            lambda x, y, k: ph.epl(x, y, *(_t(k[n]) for n in
                                           ("theta_E", "gamma", "e1", "e2", "center_x",
                                            "center_y")))),
    "EPL_shallow": (dict(theta_E=0.9, gamma=1.6, e1=-0.2, e2=-0.05, center_x=0.1,
                         center_y=0.0), None),
    "NFW": (dict(Rs=0.8, alpha_Rs=0.5, center_x=0.05, center_y=-0.05),
            lambda x, y, k: ph.nfw(x, y, *(_t(k[n]) for n in
                                           ("Rs", "alpha_Rs", "center_x", "center_y")))),
    "SHEAR": (dict(gamma1=0.05, gamma2=-0.03, ra_0=0.0, dec_0=0.0),
              lambda x, y, k: ph.shear(x, y, _t(k["gamma1"]), _t(k["gamma2"]))),
}
CASES["EPL_shallow"] = (CASES["EPL_shallow"][0], CASES["EPL"][1])


@pytest.mark.parametrize("name", list(CASES))
def test_deflection_matches_lenstronomy(name):
    kwargs, fn = CASES[name]
    model = LensModel([name.split("_")[0]])
    x, y = _points()
    ref = model.alpha(x, y, [kwargs])
    ax, ay = fn(torch.from_numpy(x), torch.from_numpy(y), kwargs)
    # float64, same closed forms or converged series: 1e-8 relative is the requirement
    # (measured <= 1.4e-11, NFW); atol only guards the zero crossings of one component.
    np.testing.assert_allclose(ax.numpy(), ref[0], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ay.numpy(), ref[1], rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("name", ["EPL", "NFW", "SIS"])
def test_convergence_matches_lenstronomy(name):
    # (lenstronomy's SIE/NIE kappa comes from finite differences of 1e-10 arcsec and is
    # only good to ~1e-6; the SIE convergence is tested analytically instead.)
    kwargs, _ = CASES[name]
    x, y = _points(200, seed=1)
    ref = LensModel([name]).kappa(x, y, [kwargs])
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    if name == "EPL":
        k = ph.epl_convergence(tx, ty, *(_t(kwargs[n]) for n in
                                        ("theta_E", "gamma", "e1", "e2", "center_x",
                                         "center_y")))
    elif name == "NFW":
        k = ph.nfw_convergence(tx, ty, *(_t(kwargs[n]) for n in
                                        ("Rs", "alpha_Rs", "center_x", "center_y")))
    else:
        r = torch.hypot(tx - kwargs["center_x"], ty - kwargs["center_y"])
        k = 0.5 * kwargs["theta_E"] / r
    np.testing.assert_allclose(k.numpy(), ref, rtol=1e-8)


def test_sersic_matches_lenstronomy():
    kw = dict(amp=7.0, R_sersic=0.35, n_sersic=2.7, e1=0.12, e2=-0.2, center_x=0.1,
              center_y=-0.05)
    x, y = _points(500, seed=2)
    ref = LightModel(["SERSIC_ELLIPSE"]).surface_brightness(x, y, [kw])
    sb = ph.sersic(torch.from_numpy(x), torch.from_numpy(y),
                   *(_t(kw[n]) for n in ("amp", "R_sersic", "n_sersic", "e1", "e2",
                                         "center_x", "center_y")))
    np.testing.assert_allclose(sb.numpy(), ref, rtol=1e-10)


def test_lensed_image_matches_lenstronomy_image_model():
    """The whole ``lensing_sie`` pipeline (supersampling 2, PSF, flux per pixel) against
    lenstronomy's ImageModel with the same pixel kernel."""
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel

    from sbi_astro import load_simulator

    sim = load_simulator("lensing_sie", device="cpu", dtype=D, num_pix=48)
    o = sim.options
    theta = torch.tensor([[1.1, 0.12, -0.08, 0.03, -0.02, 12.0, 0.25, 1.8, 0.1, 0.05,
                           0.08, -0.04]], dtype=D)
    ours = sim.expected(theta)[0].numpy()

    n, dp = o.num_pix, o.pixel_scale
    data = ImageData(image_data=np.zeros((n, n)), transform_pix2angle=np.eye(2) * dp,
                     ra_at_xy_0=-(n - 1) / 2 * dp, dec_at_xy_0=-(n - 1) / 2 * dp)
    kernel = sim.psf_kernel.numpy()
    psf = PSF(psf_type="PIXEL", kernel_point_source=kernel)
    model = ImageModel(data, psf, lens_model_class=LensModel(["SIE", "SHEAR"]),
                       source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       kwargs_numerics={"supersampling_factor": o.supersampling,
                                        "supersampling_convolution": False})
    p = theta[0].tolist()
    kwargs_lens = [dict(theta_E=p[0], e1=p[1], e2=p[2], center_x=0.0, center_y=0.0),
                   dict(gamma1=p[3], gamma2=p[4], ra_0=0.0, dec_0=0.0)]
    kwargs_src = [dict(amp=p[5], R_sersic=p[6], n_sersic=p[7], e1=p[8], e2=p[9],
                       center_x=p[10], center_y=p[11])]
    ref = model.image(kwargs_lens=kwargs_lens, kwargs_source=kwargs_src)
    # lenstronomy convolves without a margin (zero light outside the field): compare the
    # interior, k // 2 pixels in from the edge, where both are exact.
    m = kernel.shape[0] // 2
    inner = (slice(m, n - m), slice(m, n - m))
    scale = np.abs(ref).max()
    assert scale > 0.05  # a bright arc is in the field
    np.testing.assert_allclose(ours[inner] / scale, ref[inner] / scale, rtol=0, atol=1e-4)
    # the same rays and kernel: agreement is in fact at round-off
    assert np.abs(ours[inner] - ref[inner]).max() / scale < 1e-10
    assert math.isfinite(float(ours.sum()))
