"""Importance-sampled NPE (`sbi_astro.inference.importance`): a poor NPE, weighed by the exact
likelihood, recovers the conjugate posterior of `gaussian_linear` that it misses alone; the
draws do not depend on the chunk size; estimators or tasks it cannot serve are refused."""

from __future__ import annotations

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.campaign import simulate_rows
from sbi_astro.errors import ConfigError
from sbi_astro.inference import TrainingConfig, train
from sbi_astro.inference.importance import ImportanceSampledNPE, importance_sample

FAST = dict(device="cpu", flow="maf", hidden_features=32, num_transforms=3,
            stop_after_epochs=10)


@pytest.fixture(scope="module")
def poor_npe():
    """A flow trained for 4 epochs on 500 simulations of gaussian_linear (2-D): far from the
    conjugate posterior (mean x/2, sd 0.2236)."""
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    theta, x = simulate_rows(sim, 1, 0, 500)
    return sim, train(theta, x, sim, TrainingConfig(**FAST, max_epochs=4))


def test_weighing_a_poor_npe_by_the_likelihood_recovers_the_exact_posterior(poor_npe):
    sim, est = poor_npe
    _, x_o = simulate_rows(sim, 5, 0, 4)
    mean, sd = sim.posterior_mean_std(x_o)  # (4, 2) each
    g = torch.Generator().manual_seed(0)
    raw = est.sample(4000, x_o, generator=g)
    res = importance_sample(est, x_o, 4000, proposals=40_000,
                            generator=torch.Generator().manual_seed(1))
    assert res.samples.shape == (4000, 4, 2) and res.num_proposals == 40_000
    # the flow alone is off by more than 0.1 (in mean, or 25 % in sd) somewhere
    raw_err = (raw.mean(0) - mean).abs().max().item()
    raw_sd = (raw.std(0) / sd - 1).abs().max().item()
    assert raw_err > 0.1 or raw_sd > 0.25, (raw_err, raw_sd)
    # weighed, every mean is within 0.03 (about 5 Monte Carlo standard errors of the ESS
    # below) and every sd within 8 %
    assert (res.samples.mean(0) - mean).abs().max().item() < 0.03
    assert (res.samples.std(0) / sd - 1).abs().max().item() < 0.08
    # the flow's error is seen, not hidden: an ESS well below the proposals, above 1,000
    assert (res.ess > 1000).all() and (res.efficiency < 0.9).all()
    assert (res.distinct <= 4000).all() and (res.distinct > 1000).all()


def test_the_draws_do_not_depend_on_the_chunk_size(poor_npe):
    sim, est = poor_npe
    _, x_o = simulate_rows(sim, 5, 0, 3)
    a = importance_sample(est, x_o, 300, generator=torch.Generator().manual_seed(2))
    b = importance_sample(est, x_o, 300, generator=torch.Generator().manual_seed(2),
                          chunk_size=7)
    assert torch.equal(a.samples, b.samples)
    torch.testing.assert_close(a.ess, b.ess)
    wrapped = ImportanceSampledNPE(est, proposal_factor=10)
    c = wrapped.sample(300, x_o, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c, a.samples) and wrapped.last.num_proposals == 3000


def test_what_importance_sampling_cannot_serve_is_refused(poor_npe):
    sim, est = poor_npe
    _, x_o = simulate_rows(sim, 5, 0, 1)
    with pytest.raises(ConfigError, match="num_samples must be a positive integer"):
        importance_sample(est, x_o, 0)
    with pytest.raises(ConfigError, match="proposals must be a positive integer"):
        importance_sample(est, x_o, 10, proposals=-5)
    moons = load_simulator("two_moons", device="cpu")
    theta, x = simulate_rows(moons, 1, 0, 200)
    npe = train(theta, x, moons, TrainingConfig(**FAST, max_epochs=1))
    with pytest.raises(ConfigError, match="'two_moons' has no tractable likelihood"):
        importance_sample(npe, x[:1], 10)
    theta, x = simulate_rows(sim, 1, 0, 200)
    nle = train(theta, x, sim, TrainingConfig(**{**FAST, "flow": "maf"}, method="nle",
                                              max_epochs=1))
    with pytest.raises(ConfigError, match="needs an NPE posterior as its proposal"):
        ImportanceSampledNPE(nle)
