"""Absorption, power law, noise and likelihoods of the X-ray simulators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize, minimize_scalar

from sbi_astro.errors import ConfigError
from simulators.xray import _physics as phys
from simulators.xray.absorption import absorption_table
from simulators.xray.powerlaw import XrayPowerLaw

D = torch.float64


def test_powerlaw_bin_integrals_are_exact():
    edges = torch.tensor([0.5, 1.0, 2.0, 7.0], dtype=D)
    for gamma in (0.7, 1.0, 1.0 + 1e-8, 2.0, 2.9):
        got = phys.powerlaw_flux(edges, torch.tensor([gamma], dtype=D),
                                 torch.tensor([3.0], dtype=D))[0]
        if abs(gamma - 1.0) < 1e-6:
            ref = 3.0 * np.diff(np.log(edges.numpy()))
        else:
            ref = 3.0 * np.diff(edges.numpy() ** (1 - gamma)) / (1 - gamma)
        np.testing.assert_allclose(got.numpy(), ref, rtol=1e-7)


def test_powerlaw_bins_keep_float32_precision():
    """In float32 every bin of a real response grid (Chandra 3C 273: 1,090 bins of 0.01 keV
    from 0.3 to 11 keV) is within 2e-6 of the float64 integral, for the steepest and the
    hardest spectra of the prior; ``(E_hi^a - E_lo^a) / a`` lost up to ~1e-2 at 10 keV for
    Gamma = 3.5 (the difference of two numbers ~1e5 times larger than the bin); measured
    here: 6e-7 at worst (Gamma = 3.5), 1.4e-2 with the old form."""
    edges = torch.as_tensor(XrayPowerLaw(device="cpu").response.energy_edges, dtype=D)
    gamma = torch.tensor([0.5, 1.0, 2.0, 3.5], dtype=D)
    ref = phys.powerlaw_flux(edges, gamma, torch.ones(4, dtype=D))
    got = phys.powerlaw_flux(edges.float(), gamma.float(), torch.ones(4)).double()
    assert ((got / ref - 1).abs().max() < 2e-6)


def test_powerlaw_redshift_scaling():
    """zpowerlw: (1+z)^-1 int_{E(1+z)} K E'^-G dE' = K (1+z)^-G int E^-G dE."""
    edges = torch.linspace(0.5, 7.0, 30, dtype=D)
    g, z = torch.tensor([1.7], dtype=D), torch.tensor([0.8], dtype=D)
    one = torch.ones(1, dtype=D)
    shifted = phys.powerlaw_flux(edges, g, one, z)
    np.testing.assert_allclose(shifted.numpy(),
                               (1.8 ** -1.7 * phys.powerlaw_flux(edges, g, one)).numpy(),
                               rtol=1e-10)


def test_tbabs_and_phabs_tables():
    # Values quoted in the table's PROVENANCE (XSPEC tbabs, wilm): interpolation must
    # reproduce them to half a unit of their last printed digit.
    e, s = absorption_table("tbabs")
    sig = phys.cross_section_at(torch.tensor([0.5, 1.0, 6.0], dtype=D), torch.tensor(e),
                                torch.tensor(s)).numpy()
    quoted = np.array([6.30, 1.738, 0.0141])
    assert (np.abs(sig - quoted) <= np.array([0.005, 0.0005, 0.00005])).all()
    # phabs (aspl) and tbabs differ but by less than a factor 1.5 at 1 keV (same physics,
    # different abundance tables and grain treatment).
    e2, s2 = absorption_table("phabs")
    r = np.interp(1.0, e2, s2) / np.interp(1.0, e, s)
    assert 0.67 < r < 1.5 and r != 1.0


def test_nh_zero_removes_absorption_exactly():
    sim = XrayPowerLaw(device="cpu", dtype=D, background=False)
    theta = torch.tensor([[0.0, 1.8, -3.7], [0.3, 1.8, -3.7]], dtype=D)
    mu = sim.expected(theta)
    edges, _, fold, _ = sim._consts(theta)
    free = phys.powerlaw_flux(edges, theta[:, 1], 10 ** theta[:, 2]) @ fold
    assert torch.equal(mu[0], free[0])  # bit-for-bit: exp(-0 * sigma) == 1
    assert (mu[1] < free[1]).all()
    assert torch.equal(phys.transmission(torch.zeros(1, dtype=D), torch.rand(5, dtype=D)),
                       torch.ones(1, 5, dtype=D))


def test_model_grid_drops_only_bins_that_reach_no_channel():
    """The model runs on the response's live energy bins only (3C 273 filtered to 0.5-7 keV:
    814 of 1,090); the counts equal those of the whole grid to float64 round-off."""
    sim = XrayPowerLaw(device="cpu", dtype=D)
    r = sim.response
    b = sim.model_bins
    assert (b.start, b.stop) == (34, 848) and r.energy_edges.shape[0] - 1 == 1090
    dead = np.ones(r.fold_matrix.shape[0], bool)
    dead[b] = False
    assert not r.fold_matrix[dead].any() and r.fold_matrix[b][[0, -1]].any(axis=1).all()
    theta = sim.prior.sample((50,), generator=torch.Generator().manual_seed(0)).to(D)
    edges = torch.as_tensor(r.energy_edges, dtype=D)
    e_tab, s_tab = absorption_table("tbabs")
    sigma = phys.cross_section_at(0.5 * (edges[1:] + edges[:-1]), torch.as_tensor(e_tab),
                                  torch.as_tensor(s_tab))
    whole = (phys.powerlaw_flux(edges, theta[:, 1], 10 ** theta[:, 2])
             * phys.transmission(theta[:, 0], sigma)) @ torch.as_tensor(r.fold_matrix)
    np.testing.assert_allclose(sim.source_counts(theta).numpy(), whole.numpy(), rtol=1e-12)


@pytest.mark.parametrize("observation", ["chandra_dgtau", "chandra_3c273"])
def test_rows_do_not_depend_on_the_batch_or_threads(observation):
    """A row's expected counts do not move with the rows around it or the thread count
    (float64 fold: float32 BLAS changed them by up to 2.5e-6 between 128- and 4,096-row
    products on DG Tau, flipping a few Poisson draws per 10,000 spectra); so the counts
    of a 1,000-row batch equal those simulated in chunks of 7 rows."""
    sim = XrayPowerLaw(device="cpu", observation=observation)  # float32 model, as shipped
    theta = sim.prior.sample((1000,), generator=torch.Generator().manual_seed(1))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        whole = sim.source_counts(theta)
        torch.set_num_threads(1)
        for m in (1, 7, 128, 300):
            part = torch.cat([sim.source_counts(theta[i:i + m]) for i in range(0, 1000, m)])
            assert torch.allclose(part, whole, rtol=1e-12, atol=0), m
    finally:
        torch.set_num_threads(threads)
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(2))
    sim.chunk_rows = 7
    try:
        assert torch.equal(sim.simulate(theta, generator=torch.Generator().manual_seed(2)), x)
    finally:
        del sim.chunk_rows  # back to the class default


def test_background_is_scaled_observed_background():
    with_b = XrayPowerLaw(device="cpu", dtype=D)
    no_b = XrayPowerLaw(device="cpu", dtype=D, background=False)
    theta = torch.tensor([[0.05, 2.0, -3.7]], dtype=D)
    diff = (with_b.expected(theta) - no_b.expected(theta))[0].numpy()
    r = with_b.response
    # 216 background counts x (EXP x BACKSCAL ratio): same exposure file, ratio of BACKSCAL.
    np.testing.assert_allclose(diff, r.background, rtol=1e-12)
    assert r.background.sum() < 216 * (2.5264e-6 / 1.87e-5) * 1.01


def test_fix_options_remove_parameters():
    sim = XrayPowerLaw(device="cpu", fix_nH=0.02)
    assert sim.param_names == ("photon_index", "log10_norm")
    free_z = XrayPowerLaw(device="cpu", fix_redshift=None)
    assert free_z.param_names == ("nH", "photon_index", "log10_norm", "redshift")
    with pytest.raises(ConfigError, match="observation"):
        XrayPowerLaw(device="cpu", observation="rosat")
    with pytest.raises(ConfigError, match="every parameter"):
        XrayPowerLaw(device="cpu", fix_nH=0.0, fix_photon_index=2.0, fix_log10_norm=-3.0)


def test_simulated_counts_are_poisson_around_expected():
    sim = XrayPowerLaw(device="cpu", dtype=D)
    theta = torch.tensor([0.03, 2.0, -3.7], dtype=D).expand(4000, 3)
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(0))
    mu = sim.expected(theta[:1])[0]
    assert torch.equal(x, x.round()) and (x >= 0).all()
    # Per group, the mean of 4000 Poisson draws is within 5 standard errors of mu
    # (40 groups: a false alarm has probability ~ 2e-5), and the variance equals the mean
    # within 15 % (its standard error is about sqrt(2/4000) ~ 2 % at these rates).
    se = torch.sqrt(mu / 4000)
    assert ((x.mean(0) - mu).abs() < 5 * se).all()
    assert torch.allclose(x.var(0), mu, rtol=0.15)


def test_poisson_cash_cstat_relations():
    gen = torch.Generator().manual_seed(1)
    mu = torch.rand(3, 20, generator=gen, dtype=D) * 10 + 0.1
    x = torch.poisson(mu, generator=gen)
    ll = phys.poisson_log_likelihood(mu, x)
    ref = torch.distributions.Poisson(mu).log_prob(x).sum(-1)
    torch.testing.assert_close(ll, ref)
    torch.testing.assert_close(phys.cash(mu, x), -2 * ll - 2 * torch.lgamma(x + 1).sum(-1))
    assert phys.cstat(x.clamp_min(1e-300) + (x == 0) * 1e-300, x).abs().max() < 1e-9
    torch.testing.assert_close(phys.cstat(mu, x) - phys.cash(mu, x),
                               (2 * (torch.xlogy(x, x) - x)).sum(-1))


def test_wstat_equals_numerically_profiled_likelihood():
    rng = np.random.default_rng(2)
    t_on, t_off = 1.0, 7.5
    m = rng.uniform(0.0, 6.0, 12)
    on = rng.poisson(m + 1.0).astype(float)
    off = rng.poisson(7.5, 12).astype(float)
    on[0], off[1], on[2], off[2] = 0, 0, 0, 0  # the edge cases of the closed form
    got = float(phys.wstat(torch.tensor(m)[None], torch.tensor(on)[None],
                           torch.tensor(off)[None], t_on, t_off)[0])

    def dev(k, mu):
        return mu - k + (k * math.log(k / mu) if k > 0 else 0.0)

    ref = 0.0
    for i in range(m.size):
        def f(b, i=i):
            return 2 * (dev(on[i], t_on * (m[i] + b)) + dev(off[i], t_off * b))
        res = minimize_scalar(f, bounds=(1e-12, 50.0), method="bounded",
                              options={"xatol": 1e-12})
        ref += min(res.fun, f(1e-12))
    assert got == pytest.approx(ref, abs=1e-6)


def test_real_3c273_fit_is_good():
    """Poisson MLE on the real 3C 273 spectrum: C-stat per group near 1 (a good fit), and
    the photon index of a quasar (Gamma ~ 2)."""
    sim = XrayPowerLaw(device="cpu", dtype=D)
    x = sim.observed()

    def f(p):
        p = np.array([abs(p[0]), np.clip(p[1], 0.5, 3.5), np.clip(p[2], -5.0, -2.5)])
        return -float(sim.log_likelihood(torch.tensor(p), x))

    best = minimize(f, [0.05, 2.0, -3.6], method="Nelder-Mead",
                    options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 3000})
    theta = torch.tensor([abs(best.x[0]), *best.x[1:]])
    c = float(phys.cstat(sim.expected(theta), x))
    n = sim.event_shape[0]
    # C-stat ~ chi^2 with n - 3 dof: mean 37, sd 8.6; [n - 3 +- 3 sd] brackets a good fit.
    assert abs(c - (n - 3)) < 3 * math.sqrt(2 * (n - 3))
    assert 1.8 < best.x[1] < 2.2
