"""The ``lensing_sie`` and ``lensing_pixelated`` simulators: gradients, noise, likelihood."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.random import fold
from simulators.lensing import _physics as ph

D = torch.float64


def _sie_theta(dtype=D):
    return torch.tensor([[1.1, 0.12, -0.08, 0.03, -0.02, 12.0, 0.25, 1.8, 0.1, 0.05,
                          0.08, -0.04]], dtype=dtype)


@pytest.mark.parametrize("name", ["lensing_sie", "lensing_pixelated"])
def test_gradcheck_expected(name):
    # Small images keep the numerical Jacobian cheap; the code path is the default one.
    opts = dict(num_pix=6, pixel_scale=0.4, supersampling=1)
    if name == "lensing_pixelated":
        opts.update(source_num_pix=6, source_pixel_scale=0.25)
    sim = load_simulator(name, device="cpu", dtype=D, **opts)
    theta = sim.prior.sample((1,), generator=torch.Generator().manual_seed(0)).to(D)
    theta.requires_grad_(True)
    # float64 central differences with eps = 1e-6: truncation ~1e-12, round-off ~1e-10.
    assert torch.autograd.gradcheck(sim.expected, (theta,), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("name", ["lensing_sie", "lensing_pixelated"])
def test_gradients_finite_across_prior_including_round_profiles(name):
    sim = load_simulator(name, device="cpu", num_pix=16)
    theta = sim.prior.sample((6,), generator=torch.Generator().manual_seed(1))
    theta[0, 1:3] = 0.0  # exactly round lens: the atan2 of (e1, e2) is masked there
    if name == "lensing_sie":
        theta[1, 8:10] = 0.0  # round source
    theta.requires_grad_(True)
    sim.expected(theta).square().sum().backward()
    assert torch.isfinite(theta.grad).all()
    assert (theta.grad.abs().sum(0) > 0).all()  # every parameter moves the image


def test_chunking_does_not_change_rows():
    sim = load_simulator("lensing_sie", device="cpu", num_pix=24)
    theta = sim.prior.sample((7,), generator=torch.Generator().manual_seed(2))
    keys = fold(torch.tensor(5), torch.arange(7))
    a = sim.simulate(theta, keys=keys)
    sim.cpu_chunk = 3
    b = sim.simulate(theta, keys=keys)
    assert torch.equal(a, b)
    torch.testing.assert_close(sim.expected(theta[2:3])[0], sim.expected(theta)[2])


@pytest.mark.parametrize("noise", ["poisson", "gaussian"])
def test_noise_has_the_stated_mean_and_variance(noise):
    sim = load_simulator("lensing_sie", device="cpu", dtype=D, num_pix=16,
                         pixel_scale=0.16, exposure_time=200.0, noise=noise)
    n = 200
    theta = _sie_theta().expand(n, -1)
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(3))
    mu = sim.expected(theta[:1])[0]
    var = sim.variance(mu)
    z = (x.mean(0) - mu) / torch.sqrt(var / n)
    # mean of z^2 over 256 pixels is 1 with sd sqrt(2/256) = 0.09: 4 sd margin.
    assert abs(float(z.square().mean()) - 1.0) < 0.35
    ratio = x.var(0) / var
    # sample variances with 199 dof: sd of each ratio 0.1, of their mean 0.006 (+ Poisson
    # excess kurtosis): 0.04 is > 5 sd.
    assert abs(float(ratio.mean()) - 1.0) < 0.04
    assert float(mu.max()) * sim.options.exposure_time > 50  # Poisson part matters here


def test_log_likelihood_peaks_at_the_truth():
    sim = load_simulator("lensing_sie", device="cpu", dtype=D, num_pix=32)
    truth = _sie_theta()
    x = sim.simulate(truth, generator=torch.Generator().manual_seed(4))
    grid = truth.repeat(41, 1)
    grid[:, 0] = torch.linspace(1.0, 1.2, 41, dtype=D)
    ll = sim.log_likelihood(grid, x)
    best = float(grid[ll.argmax(), 0])
    # a bright arc pins theta_E to a fraction of a pixel (0.08"): 0.01 is generous.
    assert abs(best - 1.1) < 0.01
    # chi^2 at the truth ~ N_pix (1024 pixels, sd 45).
    mu = sim.expected(truth)
    chi2 = float(((x - mu).square() / sim.variance(mu)).sum())
    assert abs(chi2 - 1024) < 250
    # and the formula is the Gaussian one with the noise map
    var = sim.variance(mu)
    manual = -0.5 * ((x - mu).square() / var + torch.log(2 * math.pi * var)).sum()
    torch.testing.assert_close(sim.log_likelihood(truth, x)[0], manual)


def test_lens_equation_maps_arc_back_to_source():
    sim = load_simulator("lensing_sie", device="cpu", dtype=D, num_pix=64, psf_fwhm=0.0,
                         supersampling=1)
    theta = _sie_theta()
    theta[0, 6:8] = torch.tensor([0.15, 0.5], dtype=D)  # n = 0.5: I/I0 = exp(-b (R/Re)^2)
    img = sim.expected(theta)[0]
    bx, by = sim.source_positions(theta)
    bright = img > 0.5 * img.max()
    assert bright.sum() > 20  # an extended arc, not a single spot
    d = torch.hypot(bx[0][bright] - theta[0, 10], by[0][bright] - theta[0, 11])
    # Half maximum of this profile is at R = 1.015 Re (elliptical radius), i.e. at most
    # 1.015 Re / sqrt(q) = 0.17" from the centre (q = 0.8); the Einstein ring is at 1.1",
    # so a wrong lens equation could not land there.  1.3 Re / sqrt(q) allows for the
    # brightest pixel sitting slightly below the peak.
    q = float(ph.ellipse_angles(theta[0, 8], theta[0, 9])[0])
    assert d.max() < 1.3 * 0.15 / math.sqrt(q)


def test_pixelated_maps_and_agreement_with_analytic_pipeline():
    sim = load_simulator("lensing_pixelated", device="cpu", dtype=D)
    o = sim.options
    theta = torch.tensor([[1.2, 0.1, -0.05, 0.0, 0.5, 0.5, 2.0, 0.1, 0.05, -0.05,
                           1.0, 0.08, -0.2, 0.15]], dtype=D)
    kappa, src = sim.maps(theta)
    assert kappa.shape == (1, o.num_pix, o.num_pix)
    assert src.shape == (1, o.source_num_pix, o.source_num_pix)
    # source map holds the blobs' flux (they lie well inside it): midpoint rule of a
    # Gaussian sampled at sigma/dp >= 2, exact to < 1e-6.
    flux = float(src.sum()) * o.source_pixel_scale**2
    assert abs(flux - 3.0) < 1e-4
    # The same lens and source through the analytic pipeline (SIE deflection, Gaussian
    # light): the pixelated one differs by the box truncation of kappa (the mass outside
    # the 5.12" field, a few per cent of the deflection at the ring) and by bilinear
    # interpolation of the source: the images agree to ~10% in L2.
    x, y = sim.ray_grid(theta)
    p = [ph.bcast(v, x) for v in theta.unbind(-1)]
    ax, ay = ph.sie(x, y, p[0], p[1], p[2])
    bx, by = x - ax, y - ay
    sb = sum(ph.gaussian_light(bx, by, p[6 + 4 * i], p[7 + 4 * i], p[8 + 4 * i],
                               p[9 + 4 * i]) for i in range(2))
    analytic = sim.render(sb)
    pix = sim.expected(theta)
    rel = float((pix - analytic).norm() / analytic.norm())
    assert rel < 0.25
    # a subhalo changes the image where it sits
    with_sub = theta.clone()
    with_sub[0, 3] = 0.05
    assert float((sim.expected(with_sub) - pix).abs().max()) > 1e-3


def test_options_are_validated():
    from sbi_astro.errors import ConfigError

    with pytest.raises(ConfigError, match="psf_fwhm"):
        load_simulator("lensing_sie", device="cpu", psf_fwhm=-1)
    with pytest.raises(ConfigError, match="num_pix"):
        load_simulator("lensing_sie", device="cpu", num_pix=2)
    with pytest.raises(ConfigError, match="noise must be one of"):
        load_simulator("lensing_sie", device="cpu", noise="normal")


@pytest.mark.parametrize("noise", ["poisson", "gaussian"])
def test_rows_are_reproducible_whatever_the_batch(noise):
    # simulate(theta[:k]) == simulate(theta)[:k], also across the 16-row CPU chunks
    sim = load_simulator("lensing_sie", device="cpu", num_pix=16, pixel_scale=0.32,
                         noise=noise)
    theta = sim.prior.sample((21,), generator=torch.Generator().manual_seed(0))
    full = sim.simulate(theta, generator=torch.Generator().manual_seed(5))
    for k in (1, 5, 17):
        part = sim.simulate(theta[:k], generator=torch.Generator().manual_seed(5))
        assert torch.equal(part, full[:k])


def test_default_embedding_is_resnet2d_and_runs():
    from sbi_astro.embeddings import build_embedding

    sim = load_simulator("lensing_sie", device="cpu", num_pix=32)
    spec = sim.default_embedding()
    assert spec.kind == "resnet2d"
    net = build_embedding(spec)
    x = sim.simulate(sim.prior.sample((2, 3)), generator=torch.Generator().manual_seed(0))
    assert net(x).shape == (2, 3, spec.kwargs["out_features"])


def test_eager_path_equals_lens_equation_plus_sersic():
    # _expected_rows fuses the lens equation and the source; check it against the parts.
    sim = load_simulator("lensing_sie", device="cpu", dtype=D, num_pix=16)
    theta = _sie_theta()
    bx, by = sim.source_positions(theta)
    p = [ph.bcast(v, bx) for v in theta[:, 5:].unbind(-1)]
    torch.testing.assert_close(sim.expected(theta), sim.render(ph.sersic(bx, by, *p)))


@pytest.mark.slow  # torch.compile takes ~20-40 s on a 2-core machine
def test_compiled_path_matches_eager():
    import shutil

    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    eager = load_simulator("lensing_sie", device="cpu", num_pix=16)
    comp = load_simulator("lensing_sie", device="cpu", num_pix=16, compile=True)
    theta = eager.prior.sample((4,), generator=torch.Generator().manual_seed(9))
    a, b = eager.expected(theta), comp.expected(theta)
    # the same float32 formulas, fused: agreement to float32 round-off of ~50 operations.
    assert float((a - b).abs().max() / a.abs().max()) < 1e-4
    # Gaussian noise: the compiled hashing + Box-Muller + noise model draws the same numbers
    # (integer hashing is exact; log/sqrt/cos/sin differ by float32 round-off)
    eager_g = load_simulator("lensing_sie", device="cpu", num_pix=16, noise="gaussian")
    comp_g = load_simulator("lensing_sie", device="cpu", num_pix=16, noise="gaussian",
                            compile=True)
    keys = torch.arange(4, dtype=torch.int64) * 7919
    xa, xb = eager_g.simulate(theta, keys=keys), comp_g.simulate(theta, keys=keys)
    noise_sd = eager_g.variance(a).sqrt().max()
    assert float((xa - xb).abs().max() / noise_sd) < 1e-3
    # exact Poisson: the same counts (rates equal to round-off; a count changes only if a
    # uniform falls within that round-off of a CDF value), the compiled background normals
    xa = eager.simulate(theta, keys=keys)
    xb = comp.simulate(theta, keys=keys)
    assert float((xa - xb).abs().max() / noise_sd) < 1e-3
