"""SINDy: Lorenz coefficient recovery, sparsity under noise, ensembles, forecast skill."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

pytest.importorskip("pysindy")

from sbi_astro.diagnostics.sindy import (  # noqa: E402
    ensemble_sindy,
    fit_sindy,
    forecast_skill,
    smoothed_derivative,
)
from sbi_astro.errors import ConfigError, NonFiniteError, ShapeError  # noqa: E402

SIGMA, RHO, BETA = 10.0, 28.0, 8.0 / 3.0
# Library order of PolynomialLibrary(degree=2) on (x, y, z):
# 1, x, y, z, x^2, x y, x z, y^2, y z, z^2
TRUE = np.zeros((3, 10))
TRUE[0, 1], TRUE[0, 2] = -SIGMA, SIGMA
TRUE[1, 1], TRUE[1, 2], TRUE[1, 6] = RHO, -1.0, -1.0
TRUE[2, 3], TRUE[2, 5] = -BETA, 1.0


def _lorenz(t: np.ndarray, x0=(-8.0, 8.0, 27.0)) -> np.ndarray:
    def rhs(_t, s):
        x, y, z = s
        return [SIGMA * (y - x), x * (RHO - z) - y, x * y - BETA * z]

    return solve_ivp(rhs, (t[0], t[-1]), list(x0), t_eval=t, rtol=1e-12, atol=1e-12).y.T


T = np.arange(0.0, 10.0, 0.002)
X = _lorenz(T)


def test_feature_order_is_the_one_assumed():
    fit = fit_sindy(X, T, variable_names=["x", "y", "z"])
    assert fit.feature_names == ["1", "x", "y", "z", "x^2", "x y", "x z", "y^2", "y z", "z^2"]


def test_clean_lorenz_coefficients_within_two_percent():
    fit = fit_sindy(X, T, variable_names=["x", "y", "z"])
    np.testing.assert_array_equal(fit.support, TRUE != 0)
    on = TRUE != 0
    rel = np.abs(fit.coefficients[on] - TRUE[on]) / np.abs(TRUE[on])
    # the target: 2 %; the residual error is the Savitzky-Golay smoothing bias of
    # the derivative at dt = 0.002 (about 1 % on the -y term)
    assert rel.max() < 0.02
    assert "dz/dt = -2.67 z +1 x y" in fit.equations()


def test_noisy_lorenz_sparsity_pattern():
    rng = np.random.default_rng(0)
    noisy = X + 0.01 * X.std(0) * rng.standard_normal(X.shape)  # 1 % noise
    fit = fit_sindy(noisy, T, window=31)
    np.testing.assert_array_equal(fit.support, TRUE != 0)
    # the criterion is minimal at the chosen threshold and not at the smallest one
    scores = fit.selection[:, 3]
    assert scores.min() == scores[fit.selection[:, 0] == fit.threshold][0]
    assert fit.selection[0, 1] > (TRUE != 0).sum()  # small thresholds keep spurious terms


def test_ensemble_uncertainty_covers_truth():
    rng = np.random.default_rng(1)
    noisy = X + 0.01 * X.std(0) * rng.standard_normal(X.shape)
    ens = ensemble_sindy(noisy, T, threshold=0.3, seed=2, n_models=30, window=31)
    assert ens.coefficients.shape == (30, 3, 10)
    assert (ens.inclusion[TRUE != 0] == 1.0).all()  # true terms always selected
    assert (ens.inclusion[TRUE == 0] <= 0.75).all()
    lo, hi = ens.interval(0.99)
    on = TRUE != 0
    # median to 2 %; the bootstrap spread is 0.05-1.1 % of each coefficient with 1 % noise
    # (largest on the -y term): positive, and below 2 %
    assert (np.abs(ens.median[on] - TRUE[on]) / np.abs(TRUE[on])).max() < 0.02
    assert ((hi - lo)[on] > 0).all() and ((ens.std[on] / np.abs(TRUE[on])) < 0.02).all()
    again = ensemble_sindy(noisy, T, threshold=0.3, seed=2, n_models=30, window=31)
    np.testing.assert_array_equal(again.coefficients, ens.coefficients)  # seeded


def test_forecast_skill_on_held_out_trajectory():
    fit = fit_sindy(X, T)
    t_test = np.arange(0.0, 3.0, 0.002)
    x_test = _lorenz(t_test, x0=(5.0, -3.0, 20.0))
    skill = forecast_skill(fit, x_test, t_test)
    assert skill["derivative_r2"] > 0.9999
    # max Lyapunov exponent 0.9: errors of ~1e-2 grow by e^(0.9 * 3) ~ 15 in 3 time units,
    # staying below half a standard deviation over the whole held-out span
    assert skill["valid_time"] == pytest.approx(t_test[-1])
    # a linear model cannot follow Lorenz: it fails within about one time unit
    lin = fit_sindy(X, T, degree=1)
    bad = forecast_skill(lin, x_test, t_test)
    assert bad["derivative_r2"] < 0.9 and bad["valid_time"] < 1.5


def test_smoothed_derivative_of_a_polynomial_is_exact():
    t = np.linspace(0, 1, 101)
    d = smoothed_derivative(np.c_[t**3, t], t)
    # a cubic Savitzky-Golay filter reproduces cubics; centred differences are then exact
    # to O(dt^2) * x''' = 1e-4 * 6 in the interior
    np.testing.assert_allclose(d[5:-5, 0], 3 * t[5:-5] ** 2, atol=1e-3)
    np.testing.assert_allclose(d[:, 1], 1.0, atol=1e-9)


def test_input_validation():
    with pytest.raises(ShapeError):
        fit_sindy(np.zeros((5, 2)), 0.1)
    with pytest.raises(ConfigError):
        fit_sindy(X[:100], T[:100][::-1])
    with pytest.raises(NonFiniteError):
        fit_sindy(np.r_[X[:100], [[np.nan] * 3]], 0.1)
    with pytest.raises(ConfigError):
        smoothed_derivative(X[:100], 0.1, window=10)
    with pytest.raises(ConfigError):
        fit_sindy(X[:500], T[:500], criterion="r2")
