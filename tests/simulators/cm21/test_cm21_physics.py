"""Physics of the cm21 simulator against analytic results (seeded, a few seconds)."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro.random import RowRandom, fold
from simulators.cm21 import _physics as ph
from simulators.cm21.summaries import log_k_edges, power_spectrum

F64 = torch.float64
COSMO = ph.Cosmology()
OM = torch.tensor(0.3111, dtype=F64)


def _grf(n: int, box: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian field (real space, z = 0) and the input P(k) on its rfft grid."""
    white = RowRandom(fold(torch.tensor(seed), torch.arange(1))).normal((n, n, n), dtype=F64)
    kx, ky, kz = ph.wavenumbers(n, box)
    kmag = torch.sqrt(kx**2 + ky**2 + kz**2).clamp_min(1e-30)
    pk = ph.linear_power(kmag, OM, COSMO)
    delta_k = ph.gaussian_field(white, box, pk[None])
    return torch.fft.irfftn(delta_k, s=(n, n, n), dim=(-3, -2, -1))[0], pk


def _mode_average(values: torch.Tensor, n: int, box: float, edges: torch.Tensor) -> torch.Tensor:
    """Average of ``values`` on the rfft grid over the modes of each |k| bin (same weights)."""
    field_like = torch.sqrt(values * n**6 / box**3)  # |F|^2 box^3 / n^6 = values
    # power_spectrum needs a real field: evaluate the weighted average directly instead
    kx, ky, kz = ph.wavenumbers(n, box)
    kmag = torch.sqrt(kx**2 + ky**2 + kz**2).expand_as(field_like)
    w = torch.full((n // 2 + 1,), 2.0, dtype=F64)
    w[0] = w[-1] = 1.0
    w = w.expand_as(kmag).clone()
    w[0, 0, 0] = 0
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (kmag > lo) & (kmag <= hi)
        out.append((values * w * m).sum() / (w * m).sum())
    return torch.stack(out)


def test_growth_factor_limits_and_fitting_formula():
    z = torch.tensor([0.0, 1.0, 6.0, 10.0, 20.0], dtype=F64)
    # Einstein-de Sitter: D = a exactly (Gauss-Legendre error ~1e-15 on a smooth integrand)
    assert torch.allclose(ph.growth_factor(z, torch.tensor(1.0, dtype=F64)), 1 / (1 + z),
                          rtol=1e-10)
    # Carroll, Press & Turner (1992) fit g(z), accurate to ~1 per cent for flat LCDM
    a = 1 / (1 + z)
    e2 = OM / a**3 + 1 - OM
    om_z, ol_z = OM / a**3 / e2, (1 - OM) / e2
    g = 2.5 * om_z / (om_z ** (4 / 7) - ol_z + (1 + om_z / 2) * (1 + ol_z / 70))
    cpt = g * a / g[0]
    assert torch.allclose(ph.growth_factor(z, OM), cpt, rtol=0.01)


def test_transfer_function_limits_and_sigma8_normalisation():
    k = torch.tensor([1e-5, 1e-4], dtype=F64)
    # T -> 1 on super-horizon scales (q -> 0: T = 1 - O(q^2 C0 / L0) ~ 1e-4 at k = 1e-5/Mpc)
    assert torch.allclose(ph.eh98_transfer(k, OM, COSMO), torch.ones(2, dtype=F64), atol=2e-3)
    # T falls monotonically, and in the small-scale regime T ~ ln(k)/k^2: the logarithmic
    # slope tends to -2 (between -2 and -1.7 for k = 1e2..1e3 /Mpc)
    kk = torch.logspace(-3, 3, 61, dtype=F64)
    t = ph.eh98_transfer(kk, OM, COSMO)
    assert bool((t[1:] < t[:-1]).all()) and float(t.min()) > 0
    slope = math.log(float(t[-1] / t[-11])) / math.log(10.0)
    assert -2.0 < slope < -1.7
    r8 = torch.tensor(8 / COSMO.h, dtype=F64)
    assert float(ph.sigma_tophat(r8, OM, COSMO)) == pytest.approx(COSMO.sigma_8, rel=1e-10)
    # sigma(R) falls with R
    r = torch.tensor([1.0, 5.0, 20.0], dtype=F64)
    s = ph.sigma_tophat(r, OM, COSMO)
    assert bool((s[1:] < s[:-1]).all())


def test_initial_field_power_spectrum_matches_input_within_cosmic_variance():
    n, box = 64, 512.0
    field, pk = _grf(n, box, seed=1)
    edges = log_k_edges(n, box, 10)
    d2, kmean, modes = power_spectrum(field, box, edges)
    p_meas = d2 * 2 * math.pi**2 / kmean**3
    p_in = _mode_average(pk, n, box, edges)
    # each bin averages `modes` independent complex modes, |delta|^2 ~ Exp: rel. sd 1/sqrt(m)
    pull = (p_meas / p_in - 1) * torch.sqrt(modes)
    assert bool((pull.abs() < 4.0).all()), pull  # 4 sigma per bin (10 bins: false-alarm ~6e-4)
    chi2 = float((pull**2).sum())
    assert chi2 < 29.6  # chi^2_10 at p = 0.999


def test_sigma8_recovered_from_the_box():
    n, box = 64, 512.0
    field, pk = _grf(n, box, seed=2)
    r8 = 8 / COSMO.h
    kx, ky, kz = ph.wavenumbers(n, box)
    kmag = torch.sqrt(kx**2 + ky**2 + kz**2)
    win = ph.tophat_window(kmag * r8)
    smooth = torch.fft.irfftn(torch.fft.rfftn(field) * win, s=(n, n, n))
    measured = float(smooth.var())
    # expectation over the box's discrete modes and its sampling error (independent modes)
    w = torch.full((n // 2 + 1,), 2.0, dtype=F64)
    w[0] = w[-1] = 1.0
    contrib = pk * win**2 / box**3
    contrib[0, 0, 0] = 0
    expected = float((contrib * w).sum())
    sd = float(torch.sqrt((contrib**2 * w).sum() * 2))  # conjugate pairs share one Exp draw
    assert abs(measured - expected) < 4 * sd
    # the modes of a 512 Mpc box carry sigma_8: sqrt of the variance within 5 per cent
    assert math.sqrt(measured) == pytest.approx(COSMO.sigma_8, rel=0.05)


def test_zeldovich_cic_conserves_mass_and_is_linear_at_early_times():
    n, box = 32, 128.0
    white = RowRandom(fold(torch.tensor(3), torch.arange(1))).normal((n, n, n), dtype=F64)
    kx, ky, kz = ph.wavenumbers(n, box)
    pk = ph.linear_power(torch.sqrt(kx**2 + ky**2 + kz**2).clamp_min(1e-30), OM, COSMO)
    delta_k = ph.gaussian_field(white, box, pk[None])
    lin = torch.fft.irfftn(delta_k, s=(n, n, n), dim=(-3, -2, -1))[0]
    psi = ph.zeldovich_displacement(delta_k, box).reshape(1, 3, n**3)
    q = torch.stack(torch.meshgrid(*(torch.arange(n, dtype=F64),) * 3, indexing="ij"))
    growth = 0.02  # z ~ 60: rms displacement << cell, so CIC(ZA) = 1 + D delta_lin (smoothed)
    dens = ph.cic_deposit(q.reshape(1, 3, -1) + 0.5 + growth * psi, n)[0]
    assert float(dens.mean()) == pytest.approx(1.0, abs=1e-12)  # CIC conserves mass
    # On scales well above the cell (k < k_Nyquist / 4) the CIC kernel and its one-sided
    # differences do not matter: (rho - 1) / D equals the linear field up to second-order
    # terms ~ D sigma ~ 1 per cent and CIC's O((k L_cell)^2) smoothing (< 5 per cent there).
    low = (torch.sqrt(kx**2 + ky**2 + kz**2) < math.pi * n / box / 4).to(F64)
    lp = lambda f: torch.fft.irfftn(torch.fft.rfftn(f) * low, s=(n, n, n))  # noqa: E731
    err = float((lp((dens - 1) / growth) - lp(lin)).std() / lp(lin).std())
    assert err < 0.05


def test_brightness_temperature_limits():
    z = torch.tensor(8.0, dtype=F64)
    h2 = COSMO.h**2
    t0 = 27 * (COSMO.omega_b * h2 / 0.023) * math.sqrt(0.15 / (0.3111 * h2) * 9 / 10)
    ones = torch.ones(1, 4, 4, 4, dtype=F64)
    # fully neutral, uniform density: the analytic prefactor (~25 mK at z = 8)
    tb = ph.brightness_temperature(ones, ones, z[None], OM, COSMO)
    assert torch.allclose(tb, torch.full_like(tb, t0), rtol=1e-12)
    assert 20 < t0 < 30
    # fully ionised: zero signal whatever the density
    assert torch.equal(ph.brightness_temperature(0 * ones, 2 * ones, z[None], OM, COSMO),
                       torch.zeros_like(ones))
    # linear in x_HI and in 1 + delta
    tb2 = ph.brightness_temperature(0.5 * ones, 1.5 * ones, z[None], OM, COSMO)
    assert torch.allclose(tb2, torch.full_like(tb, 0.75 * t0), rtol=1e-12)


def _global_inputs(zeta, tvir, z):
    om = OM.expand(1)
    zz = torch.tensor([z], dtype=F64)[None]
    growth = ph.growth_factor(zz, om[:, None])
    mmin = ph.virial_mass(torch.tensor([[tvir]], dtype=F64), zz, om[:, None], COSMO)
    sigma_min = ph.sigma_tophat(ph.mass_to_radius(mmin, om[:, None], COSMO), om[:, None], COSMO)
    fmean = ph.fcoll_st(ph.DELTA_C / (sigma_min * growth))
    return growth, sigma_min, fmean


@pytest.mark.parametrize("zeta,z", [(30.0, 9.0), (30.0, 7.5), (200.0, 7.0)])
def test_uniform_density_gives_the_global_ionised_fraction(zeta, z):
    """With delta = 0 everywhere every cell has x_i = min(1, zeta f_coll,global)."""
    n, box = 16, 64.0
    radii = ph.filter_radii(box / n, 50.0)
    growth, sigma_min, fmean = _global_inputs(zeta, 5e4, z)
    sigma_r = ph.sigma_tophat(torch.tensor(radii, dtype=F64)[None], OM, COSMO)
    rmfp = torch.tensor([15.0], dtype=F64)
    d0k = torch.zeros(1, 1, n, n, n // 2 + 1, dtype=torch.complex128)
    x_i = ph.excursion_set(d0k, box, radii, rmfp, torch.tensor([zeta], dtype=F64), sigma_min,
                           sigma_r, ph.sigma_tophat(rmfp, OM, COSMO), growth, fmean)
    expect = min(1.0, zeta * float(fmean))
    assert torch.allclose(x_i, torch.full_like(x_i, expect), rtol=1e-9, atol=1e-12)


def test_fcoll_forms():
    nu = torch.tensor([0.0, 1.0, 3.0], dtype=F64)
    # Press-Schechter: all mass collapsed at nu = 0 (with the factor 2), erfc(1/sqrt 2) at 1
    assert torch.allclose(ph.fcoll_ps(nu[:2]), torch.tensor([1.0, 0.31731050786], dtype=F64))
    # Sheth-Tormen closed form against direct quadrature of its multiplicity function
    v = torch.linspace(3.0, 40.0, 200001, dtype=F64)
    f = (ph.ST_A * math.sqrt(2 * ph.ST_a / math.pi) * (1 + (ph.ST_a * v**2) ** -ph.ST_p)
         * torch.exp(-ph.ST_a * v**2 / 2))
    assert float(ph.fcoll_st(nu[2:])) == pytest.approx(float(torch.trapezoid(f, v)), rel=1e-6)


def test_power_spectrum_of_white_noise_and_wedge_removal():
    n, box, sigma = 32, 96.0, 3.0
    noise = sigma * RowRandom(fold(torch.tensor(4), torch.arange(2))).normal((n, n, n), dtype=F64)
    edges = log_k_edges(n, box, 6)
    d2, k, modes = power_spectrum(noise, box, edges)
    p = d2 * 2 * math.pi**2 / k**3
    p_white = sigma**2 * (box / n) ** 3  # P = sigma^2 V_cell for white noise
    # top bins hold > 1000 modes per box x 2 boxes: mean within 4/sqrt(2 m) of the truth
    top = modes > 1000
    rel = (p[:, top] / p_white - 1).abs()
    assert bool((rel < 4 / torch.sqrt(modes[top])).all())
    # the wedge: modes with |k_par| <= slope k_perp are gone, the others untouched
    slope = torch.tensor([0.5, 3.0], dtype=F64)
    cleaned = ph.remove_wedge(noise, box, slope)
    dims = (-3, -2, -1)
    fk, fk0 = torch.fft.rfftn(cleaned, dim=dims), torch.fft.rfftn(noise, dim=dims)
    kx, ky, kz = ph.wavenumbers(n, box)
    kperp = torch.sqrt(kx**2 + ky**2)
    for i, m in enumerate(slope):
        inside = (kz.abs() <= m * kperp).expand(n, n, n // 2 + 1)
        assert float(fk[i][inside].abs().max()) < 1e-9
        assert torch.allclose(fk[i][~inside], fk0[i][~inside])
    # a steeper wedge removes more power
    assert float(cleaned[1].var()) < float(cleaned[0].var())
