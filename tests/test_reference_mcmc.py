"""sbi_astro.reference_mcmc: emcee reference chains on a known target."""

from __future__ import annotations

import numpy as np
import pytest

from sbi_astro.priors import Prior, Uniform
from sbi_astro.reference_mcmc import EmceeSettings, emcee_posterior, split_rhat

pytest.importorskip("emcee")

PRIOR = Prior([Uniform("a", -10.0, 10.0), Uniform("b", -10.0, 10.0)])


def _normal(th: np.ndarray) -> np.ndarray:
    """N((1, -2), diag(0.5^2, 2^2)) inside the prior's box."""
    inside = np.all(np.abs(th) < 10, axis=-1)
    lp = -0.5 * (((th[:, 0] - 1.0) / 0.5) ** 2 + ((th[:, 1] + 2.0) / 2.0) ** 2)
    return np.where(inside, lp, -np.inf)


def test_a_chain_of_50_tau_gets_the_moments_and_its_halves_agree():
    s, d = emcee_posterior(_normal, PRIOR, 4000, seed=0,
                           settings=EmceeSettings(walkers=16, burn=300, thin=1, min_tau=50))
    assert d["chain_over_tau"] >= 50 and not d["hopeless"] and d["split_rhat"] < 1.05
    # 16 x 50 tau ~ 800 effective samples: means within ~4 standard errors, sds within 10 %
    se = np.array([0.5, 2.0]) / np.sqrt(800)
    assert np.all(np.abs(s.mean(0).numpy() - [1.0, -2.0]) < 4 * se), s.mean(0)
    np.testing.assert_allclose(s.std(0).numpy(), [0.5, 2.0], rtol=0.1)


def test_a_chain_that_cannot_reach_min_tau_stops_early_and_says_so():
    """min_tau 400 (tau is ~30 here) with a budget of 5,000 steps: once tau is measured on
    10 of itself, the chain stops instead of running to max_steps (measured: 1,231 steps)."""
    settings = EmceeSettings(walkers=16, burn=50, thin=1, min_tau=400, max_steps=5_000)
    _, d = emcee_posterior(_normal, PRIOR, 400, seed=0, settings=settings)
    assert d["hopeless"] and d["chain_over_tau"] < 400
    assert d["steps"] < settings.max_steps  # stopped well before the budget


def test_split_rhat_sees_walkers_stuck_in_two_places():
    rng = np.random.default_rng(0)
    one = rng.standard_normal((500, 8, 1))
    two = np.concatenate([one[:, :4], one[:, 4:] + 5.0], axis=1)
    assert split_rhat(one) < 1.01 and split_rhat(two) > 2.0
