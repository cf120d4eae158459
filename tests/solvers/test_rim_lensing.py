"""What a RIM consumes and learns for lensing: a source map and a convergence map together.

The forward model is ``lensing_pixelated``'s :meth:`lens_maps` (FFT deflection of the
convergence map, bilinear ray tracing into the source map, PSF), checked against the
simulator's own image of its parameters; the RIM sees the gradient of the Gaussian
likelihood (variance following the model image) with respect to ``[source, log kappa]``
(per-channel links), checked against central differences.  The per-channel scales the RIM
standardises with are checked on maps of known spread.
"""

from __future__ import annotations

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.errors import ConfigError, ShapeError
from sbi_astro.solvers.rim import RIM, RIMConfig, likelihood_gradient, load_rim, save_rim, to_link

D = torch.float64
OPTS = {"num_pix": 16, "pixel_scale": 0.25, "kappa_num_pix": 8, "source_num_pix": 8,
        "source_pixel_scale": 0.12, "noise": "gaussian", "supersampling": 1}


@pytest.fixture(scope="module")
def lens():
    return load_simulator("lensing_pixelated", device="cpu", dtype=D, **OPTS)


def _log_likelihood(sim):
    def ll(maps, image):
        mu = sim.lens_maps(maps[:, 1], maps[:, 0])
        var = sim.variance(mu)
        return -0.5 * ((image - mu) ** 2 / var + var.log()).sum((-2, -1))
    return ll


def test_lens_maps_reproduces_the_simulator_on_a_coarser_convergence_grid(lens):
    theta = lens.prior.sample((3,), generator=torch.Generator().manual_seed(0)).to(D)
    kappa, source = lens.maps(theta)
    assert kappa.shape == (3, 8, 8) and source.shape == (3, 8, 8)
    torch.testing.assert_close(lens.lens_maps(kappa, source), lens.expected(theta),
                               rtol=1e-12, atol=1e-14)
    # the convergence pixels are 2 image pixels wide: the map is the SIE + subhalo sampled
    # at those centres (0.5 arcsec apart), so its mean over the field is a few tenths
    assert lens.options.kappa_pixel_scale == pytest.approx(0.5)
    assert 0.05 < float(kappa.mean()) < 2.0
    with pytest.raises(ShapeError, match="kappa"):
        lens.lens_maps(kappa[:, :4], source)
    with pytest.raises(ConfigError, match="kappa_num_pix"):
        load_simulator("lensing_pixelated", device="cpu", kappa_num_pix=2)


def test_likelihood_gradient_in_source_and_log_kappa_matches_finite_differences(lens):
    theta = lens.prior.sample((2,), generator=torch.Generator().manual_seed(1)).to(D)
    kappa, source = lens.maps(theta)
    maps = torch.stack([source, kappa], 1)
    mu = lens.lens_maps(kappa, source)
    gen = torch.Generator().manual_seed(2)
    image = mu + lens.variance(mu).sqrt() * torch.randn(mu.shape, generator=gen, dtype=D)
    ll = _log_likelihood(lens)
    link = ("identity", "log")
    z = to_link(link, maps) + 0.05 * torch.randn(maps.shape, generator=gen, dtype=D)
    grad, _ = likelihood_gradient(ll, z, image, link)
    checked = 0
    for c, i, j in [(0, 3, 4), (0, 4, 4), (0, 2, 5), (1, 3, 3), (1, 4, 5), (1, 1, 6)]:
        dz = torch.zeros_like(z)
        dz[:, c, i, j] = 1e-6
        fd = (ll(torch.stack([(z + dz)[:, 0], (z + dz)[:, 1].exp()], 1), image)
              - ll(torch.stack([(z - dz)[:, 0], (z - dz)[:, 1].exp()], 1), image)) / 2e-6
        # float64 central differences: error ~1e-9 of the log-likelihood's scale
        torch.testing.assert_close(grad[:, c, i, j], fd, rtol=1e-5, atol=1e-5)
        checked += int((fd.abs() > 1e-2).all())
    assert checked >= 4  # the compared derivatives are far from zero


def test_per_channel_scales_standardise_each_map_and_survive_saving(tmp_path):
    """Channel 0 spread 100, channel 1 (log link) spread 0.5 in log: the RIM's z_scale is
    each channel's own standard deviation, its loss weighs the channels' errors equally,
    and the configuration (a tuple of links) round-trips through JSON."""
    gen = torch.Generator().manual_seed(3)
    a = 100.0 * torch.randn(400, 1, 4, 4, generator=gen)
    b = torch.exp(0.5 * torch.randn(400, 1, 4, 4, generator=gen))
    truth = torch.cat([a, b], 1)
    config = RIMConfig(signal_shape=(2, 4, 4), steps=2, hidden=4, link=["identity", "log"],
                       scale="channel")
    assert config.link == ("identity", "log")
    rim = RIM(config, device="cpu")
    def ll(s, d):
        return -0.5 * ((s - d) ** 2).sum((1, 2, 3))
    rim.standardise(truth, truth, ll)
    assert rim.z_scale.shape == (2, 1, 1)
    # the spread around the per-pixel mean: 16 pixels x 400 maps, ~1.8 % standard error
    assert float(rim.z_scale[0]) == pytest.approx(100.0, rel=0.06)
    assert float(rim.z_scale[1]) == pytest.approx(0.5, rel=0.06)
    # an error of one scale in either channel costs the same
    z_true = to_link(config.link, truth[:8])
    for c in (0, 1):
        shifted = z_true.clone()
        shifted[:, c] += rim.z_scale[c]
        per = ((shifted - z_true) / rim.z_scale).pow(2).mean()
        assert float(per) == pytest.approx(0.5, rel=1e-5)
    save_rim(rim, tmp_path / "r")
    again, _ = load_rim(tmp_path / "r", device="cpu")
    assert again.config == config
    torch.testing.assert_close(again.z_scale, rim.z_scale)
    with pytest.raises(ConfigError, match="one link per channel"):
        RIMConfig(signal_shape=(2, 4, 4), link=("identity",))
    with pytest.raises(ConfigError, match="scale='channel' needs maps"):
        RIMConfig(signal_shape=(8,), scale="channel")
    with pytest.raises(ConfigError, match="link entries"):
        RIMConfig(signal_shape=(2, 4, 4), link=("identity", "sqrt"))


def test_polish_brings_an_underfitting_reconstruction_to_the_noise_level():
    pytest.importorskip("galsim")
    from sbi_astro.inverse_problems import get_inverse_problem
    from sbi_astro.random import RowRandom, fold, key_from_seed

    problem = get_inverse_problem("lensing_maps", num_pix=32, pixel_scale=0.16,
                                  kappa_num_pix=16, source_num_pix=16,
                                  source_pixel_scale=0.08, device="cpu")
    truth = problem.sample_signals(12, seed=4)
    images = problem.observe(truth, RowRandom(fold(key_from_seed(4), torch.arange(12))))
    # an under-fitting answer: the source blurred, the convergence 10 % low
    kernel = torch.full((1, 1, 3, 3), 1.0 / 9.0)
    blurred = torch.nn.functional.conv2d(truth[:, :1], kernel, padding=1)[:, 0]
    wrong = torch.stack([blurred, 0.9 * truth[:, 1]], 1)
    target = 1.0 + (2.0 / 32**2) ** 0.5  # reduced chi^2 of 1 plus one standard deviation
    before = problem.misfit(wrong, images)
    assert float(before.min()) > 1.3  # the error shows in the data (sd of chi^2: 0.044)
    after = problem.misfit(problem.polish(wrong, images), images)
    assert float(after.max()) <= target + 1e-4
    # the truth fits within its noise in most rows, and those are returned unchanged
    fits = problem.misfit(truth, images) <= target
    same = problem.polish(truth, images)
    assert int(fits.sum()) >= 6 and torch.equal(same[fits], truth[fits])
