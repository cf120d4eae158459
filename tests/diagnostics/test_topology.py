"""Lag embedding, persistent homology and the surrogate-data test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sbi_astro.diagnostics.topology import (
    betti_curve,
    delay_embed,
    embed_and_persist,
    embedding_dimension,
    false_nearest_neighbours,
    landmarks,
    longest_lifetime,
    mutual_information,
    mutual_information_delay,
    persistence_diagrams,
    persistence_entropy,
)
from sbi_astro.diagnostics.surrogates import surrogate, surrogate_test
from sbi_astro.errors import ConfigError, NonFiniteError, ShapeError

pytest.importorskip("ripser")


def _lorenz_x(n: int = 3000, dt: float = 0.02) -> np.ndarray:
    def rhs(_t, s, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
        x, y, z = s
        return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]

    t = 10.0 + dt * np.arange(n)  # drop a transient of 10 time units
    sol = solve_ivp(rhs, (0.0, t[-1]), [1.0, 1.0, 1.0], t_eval=t, rtol=1e-9, atol=1e-9)
    return sol.y[0]


def _ar1(n: int = 2000, phi: float = 0.9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


def test_delay_embed_layout_and_errors():
    cloud = delay_embed(np.arange(10.0), dim=3, delay=2)
    assert cloud.shape == (6, 3)
    np.testing.assert_array_equal(cloud[1], [1.0, 3.0, 5.0])
    with pytest.raises(ShapeError):
        delay_embed(np.arange(4.0), dim=3, delay=2)
    with pytest.raises(ConfigError):
        delay_embed(np.arange(10.0), dim=0, delay=1)
    with pytest.raises(NonFiniteError):
        mutual_information_delay(np.r_[np.arange(40.0), np.nan])
    with pytest.raises(ShapeError):
        mutual_information_delay(np.zeros((20, 2)))


def test_mutual_information_delay_of_lorenz():
    # The first AMI minimum of the Lorenz x-component is at ~0.17 time units (Fraser &
    # Swinney 1986 style estimates; Abarbanel 1996 quotes 0.16-0.18): lag 7-11 at dt=0.02.
    x = _lorenz_x()
    assert 7 <= mutual_information_delay(x) <= 11
    # independent samples: AMI ~ 0 (histogram bias ~ (bins-1)^2 / (2 T) = 0.05 nats here)
    noise = np.random.default_rng(0).standard_normal(2000)
    assert mutual_information(noise, 1) < 0.1 < mutual_information(noise, 0)


def test_false_nearest_neighbours_dimensions():
    # Lorenz x-component: most 1-D neighbours are false, none in 3-D (Kennel et al. 1992).
    x = _lorenz_x()
    fnn = false_nearest_neighbours(x, delay=9, max_dim=4)
    assert fnn[0] > 0.5 and fnn[2] < 0.01
    assert embedding_dimension(x, delay=9) == 3
    # a circle (incommensurate sine) unfolds in 2 dimensions
    s = np.sin(2 * np.pi * np.arange(3000) / 80.3)
    assert false_nearest_neighbours(s, delay=20, max_dim=2)[1] < 0.01


def test_summaries_on_hand_made_diagrams():
    dgm = np.array([[0.0, 1.0], [0.5, 3.0], [1.0, np.inf]])
    assert longest_lifetime(dgm) == pytest.approx(2.5)  # infinite bars are ignored
    p = np.array([1.0, 2.5]) / 3.5
    assert persistence_entropy(dgm) == pytest.approx(-(p * np.log(p)).sum())
    np.testing.assert_array_equal(betti_curve(dgm, np.array([0.25, 0.75, 2.0, 5.0])),
                                  [1, 2, 2, 1])
    assert longest_lifetime(np.zeros((0, 2))) == 0.0 and persistence_entropy(np.zeros((0, 2))) == 0


def test_landmarks_cover_the_cloud():
    rng = np.random.default_rng(1)
    cloud = rng.uniform(size=(2000, 2))
    idx = landmarks(cloud, 100)
    assert len(set(idx.tolist())) == 100
    # covering radius of 100 greedy landmarks in the unit square: about 1/sqrt(100) / 1.5;
    # 0.12 is a loose upper bound (a grid of 100 points has radius 0.07).
    d = np.linalg.norm(cloud[:, None, :] - cloud[idx][None], axis=-1).min(1)
    assert d.max() < 0.12


def test_circle_has_one_h1_bar_of_the_right_size():
    # Unit circle: the Rips H1 bar dies at sqrt(3) (inscribed equilateral triangle).
    t = np.linspace(0, 2 * np.pi, 300, endpoint=False)
    dgms = persistence_diagrams(np.c_[np.cos(t), np.sin(t)], maxdim=1, n_perm=None)
    life = dgms[1][:, 1] - dgms[1][:, 0]
    assert life.max() == pytest.approx(np.sqrt(3.0), abs=0.05)
    assert (life > 0.1).sum() == 1


def test_noisy_limit_cycle_has_one_dominant_h1_bar():
    rng = np.random.default_rng(2)
    t = np.arange(4000) * 0.05
    x = np.sin(t) + 0.1 * rng.standard_normal(t.size)  # 10 % observational noise
    res = embed_and_persist(x, n_perm=300)
    life = np.sort(res.diagrams[1][:, 1] - res.diagrams[1][:, 0])[::-1]
    # the loop of a standardised sine (radius sqrt 2 in the (x_t, x_{t+tau}) plane) lives
    # ~ sqrt(3) * sqrt(2) ~ 2.4; noise loops are ~ the noise scale (0.1 * sqrt 2 / 0.7).
    assert life[0] > 1.5
    assert life[0] > 10 * life[1]
    assert res.summaries["longest_H1"] == pytest.approx(life[0])


def test_surrogates_keep_values_and_spectrum():
    x = _ar1(1024) ** 3  # non-Gaussian amplitudes
    for kind in ("aaft", "iaaft"):
        s = surrogate(x, kind, seed=3)
        np.testing.assert_allclose(np.sort(s), np.sort(x))  # same values
        assert not np.allclose(s, x)
    s = surrogate(x, "iaaft", seed=3)
    a, b = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(s))
    # IAAFT matches the amplitude spectrum up to the final rank-ordering step; for this
    # strongly non-Gaussian series (a cubed AR(1)) the residual is ~15 %, against ~100 %
    # for a random shuffle of the same values.
    shuffled = np.abs(np.fft.rfft(np.random.default_rng(9).permutation(x)))
    err = np.linalg.norm(a - b) / np.linalg.norm(a)
    assert err < 0.25 and err < 0.3 * np.linalg.norm(a - shuffled) / np.linalg.norm(a)
    p = surrogate(x, "phase", seed=3)
    np.testing.assert_allclose(np.abs(np.fft.rfft(p))[1:], a[1:], rtol=1e-8)
    np.testing.assert_array_equal(surrogate(x, "iaaft", seed=4), surrogate(x, "iaaft", seed=4))
    with pytest.raises(ConfigError):
        surrogate(x, "shuffle", seed=1)
    with pytest.raises(ConfigError):
        surrogate(x, "iaaft", seed=None)


@pytest.mark.slow
def test_lorenz_has_significant_loops():
    # 199 surrogates: the smallest attainable p is 0.005 (< 0.01 needs data above all but
    # at most one surrogate).
    res = surrogate_test(_lorenz_x(), seed=5, n_surrogates=199)
    assert res.p_value < 0.01
    assert res.null.shape == (199,)


@pytest.mark.slow
def test_ar1_has_no_significant_loops():
    # Under the null hypothesis p is uniform: with this seed it is far from 0.05.
    res = surrogate_test(_ar1(), seed=6, n_surrogates=99)
    assert res.p_value > 0.05
