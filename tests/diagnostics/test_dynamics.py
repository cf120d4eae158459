"""Dynamics of one series (Pasquato et al. 2023): chaos, cycles and noise told apart."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sbi_astro.diagnostics.dynamics import (
    analyse_series,
    dynamics_verdict,
    heating_verdict,
    mean_period,
    verdict_category,
)


def _solve(rhs, y0, n: int, dt: float, burn: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) * dt
    sol = solve_ivp(lambda _s, y: rhs(y), (0, t[-1] + burn), y0, t_eval=t + burn, rtol=1e-9,
                    atol=1e-9)
    return t, sol.y


def _lorenz(y):
    return [10 * (y[1] - y[0]), y[0] * (28 - y[2]) - y[1], y[0] * y[1] - 8 / 3 * y[2]]


def _van_der_pol(y):
    return [y[1], (1 - y[0] ** 2) * y[1] - y[0]]


def test_verdict_rules():
    good = {"derivative_r2": 0.95, "valid_cycles": 3.0}
    short = {"derivative_r2": 0.95, "valid_cycles": 0.5}
    assert verdict_category(dynamics_verdict(0.01, good)) == "lowdim"
    assert verdict_category(dynamics_verdict(0.3, good)) == "cycle"
    assert verdict_category(dynamics_verdict(0.01, short)) == "nonlinear"
    assert verdict_category(dynamics_verdict(0.3, short)) == "noise"
    assert verdict_category(dynamics_verdict(0.01, good, has_loop=False)) == "steady"
    # noise amplitude: separated 90 % intervals, overlapping narrow ones, prior-wide ones
    assert heating_verdict({"a": (0.1, 0.0, 0.2), "b": (0.8, 0.6, 1.0)}, 1.0).startswith(
        "distinguishable")
    assert heating_verdict({"a": (0.3, 0.1, 0.4), "b": (0.4, 0.3, 0.6)}, 1.0).startswith(
        "partly constrained")
    assert heating_verdict({"a": (0.5, 0.05, 0.95), "b": (0.5, 0.05, 0.95)}, 1.0).startswith(
        "not identifiable")


def test_chaos_cycle_and_noise_are_told_apart():
    kw = {"seed": 0, "post_start": 0.0, "n_surrogates": 39, "n_perm": 200, "max_points": 600}
    # Lorenz (chaotic, 3-D, quadratic): loops that IAAFT surrogates (same spectrum and
    # values) do not reproduce, and a quadratic SINDy model that forecasts several periods.
    t, y = _solve(_lorenz, [1.0, 1.0, 1.0], 1500, 0.01)
    res = analyse_series("lorenz", [0.0], t, y, sindy_channels=(0, 1, 2), **kw)
    assert res.surrogates.p_value == pytest.approx(1 / 40)  # the smallest possible rank
    assert res.skill["derivative_r2"] > 0.99
    assert res.skill["valid_cycles"] > 2.0
    assert verdict_category(res.verdict) == "lowdim"
    # van der Pol limit cycle (periodic, cubic): SINDy with a cubic library forecasts it, but
    # its IAAFT surrogates are periodic too and have loops as long: the topology test alone
    # cannot call a strictly periodic cycle deterministic.
    t, y = _solve(_van_der_pol, [2.0, 0.0], 1200, 0.05)
    res = analyse_series("vdp", [0.0], t, y, sindy_degree=3, **kw)
    assert res.surrogates.p_value > 0.05  # measured 0.5
    assert res.skill["derivative_r2"] > 0.99 and res.skill["valid_fraction"] == 1.0
    assert verdict_category(res.verdict) == "cycle"
    # AR(1) noise: neither
    rng = np.random.default_rng(1)
    ar = np.zeros(1200)
    for i in range(1, ar.size):
        ar[i] = 0.95 * ar[i - 1] + rng.standard_normal()
    res = analyse_series("ar1", [0.0], t, np.vstack([ar, np.roll(ar, 3)]), **kw)
    assert res.surrogates.p_value > 0.05
    assert res.skill["derivative_r2"] < 0.5
    assert verdict_category(res.verdict) == "noise"


def test_mean_period_merges_double_peaks():
    # relaxation spikes with a second, smaller peak 4 samples after the first (the core's
    # re-expansion is double-peaked): the cycle is the spike spacing, 50 samples
    x = np.zeros(1000)
    for k in range(10, 1000, 50):
        x[k] = 5.0
        if k + 4 < x.size:
            x[k + 4] = 4.0
    assert mean_period(x, 0.1) == pytest.approx(0.4)  # without merging: the sub-peak spacing
    assert mean_period(x, 0.1, distance=12) == pytest.approx(5.0)
