"""sbibm's stored observations, true parameters and reference samples, through the plugins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbi_astro import ConfigError, NotAvailableError, load_simulator
from simulators.sbibm.reference import load_task_data
from simulators.sbibm.slcp import distractor_mixture

# task: (event size, parameter dimension)
TASKS = {
    "gaussian_linear": (10, 10), "gaussian_linear_uniform": (10, 10),
    "gaussian_mixture": (2, 2), "two_moons": (2, 2), "slcp": (8, 5),
    "slcp_distractors": (100, 5), "bernoulli_glm": (10, 10), "bernoulli_glm_raw": (100, 10),
    "sir": (10, 2), "lotka_volterra": (20, 4),
}


@pytest.mark.parametrize("name", sorted(TASKS))
def test_observations_true_parameters_and_reference_samples(name):
    sim = load_simulator(name, device="cpu")
    e, d = TASKS[name]
    assert sim.num_observations == 10
    for i in (1, 10):
        x, theta = sim.observation(i), sim.true_parameters(i)
        assert x.shape == (e,) and x.dtype == torch.float32 and torch.isfinite(x).all()
        assert theta.shape == (d,) and sim.prior.within_support(theta)
        ref = sim.reference_samples(i)
        assert ref.shape == (10_000, d) and sim.prior.within_support(ref).all()
        # sbibm drew 10,000 distinct samples; the 16-bit codes keep them distinct
        assert torch.unique(ref, dim=0).shape[0] >= 9_990
        # the data came from these parameters: the true value lies inside the reference
        # posterior's range in every coordinate (a 1-in-5,000 event per coordinate otherwise)
        assert ((ref.min(0).values <= theta) & (theta <= ref.max(0).values)).all()
    assert torch.equal(sim.observed(), sim.observation(1))
    assert torch.equal(sim.reference_samples(2, 100), sim.reference_samples(2)[:100])
    assert sim.has_observation
    for bad in (0, 11, 1.0, True):
        with pytest.raises(ConfigError, match="1..10"):
            sim.observation(bad)


def test_observations_differ_between_numbers_and_tasks_sharing_files():
    slcp, dis = load_simulator("slcp", device="cpu"), load_simulator("slcp_distractors",
                                                                     device="cpu")
    assert not torch.equal(slcp.observation(1), slcp.observation(2))
    assert torch.equal(slcp.reference_samples(3), dis.reference_samples(3))
    # the distractor observation holds the SLCP observation at sbibm's permuted positions
    perm = torch.from_numpy(load_task_data("slcp")["permutation"].astype(np.int64))
    assert sorted(perm.tolist()) == list(range(100))
    for i in range(1, 11):
        full = torch.empty(100)
        full[perm] = dis.observation(i)
        assert torch.equal(full[:8], slcp.observation(i))


def test_gaussian_linear_data_only_for_sbibm_dimension():
    sim = load_simulator("gaussian_linear", device="cpu", dim=3)
    with pytest.raises(NotAvailableError, match="dim=10"):
        sim.observation(1)
    with pytest.raises(NotAvailableError, match="observation 1"):
        sim.observed()


def test_bernoulli_glm_summaries_of_the_raw_observations_are_the_observations():
    sim = load_simulator("bernoulli_glm", device="cpu")
    raw = load_simulator("bernoulli_glm_raw", device="cpu")
    for i in range(1, 11):
        y = raw.observation(i)
        assert set(y.unique().tolist()) <= {0.0, 1.0}
        # sbibm computed X^T y as a float32 padded convolution: 9 products of O(1) summed
        # in float32 give ~1e-6 differences from our float64 sums
        assert torch.allclose(sim.summarize(y), sim.observation(i), rtol=0, atol=1e-5)
        assert sim.observation(i)[0] == y.sum()  # the spike count exactly


def test_stimulus_is_sbibms_seed_42_white_noise():
    # sbibm's BernoulliGLM._setup: RandomState(42).randn(100) in float32
    stim = load_task_data("bernoulli_glm")["stimulus"]
    assert np.array_equal(stim, np.random.RandomState(42).randn(100).astype(np.float32))


def test_distractor_mixture_is_sbibms():
    loc, tril = distractor_mixture()
    assert loc.shape == (20, 92) and tril.shape == (20, 92, 92)
    assert torch.equal(tril, torch.tril(tril))
    # fingerprints of the float64 loc and scale_tril pickled in sbibm 1.1.0's
    # slcp/files/gmm.torch (printed by simulators/sbibm/crosscheck_sbibm.py, which also
    # finds the two within 4e-15 entry by entry: numpy's exp and normal differ by an ulp
    # across versions, so bit equality is not expected)
    log_det = torch.diagonal(tril, dim1=-2, dim2=-1).abs().log().sum()
    got = [loc.sum(), (loc**2).sum(), tril.sum(), (tril**2).sum(), log_det,
           loc[7, 33], tril[12, 80, 5], tril[19, 91, 91]]
    want = [1203.9333910573314, 404464.822443407, 9962.57742394914, 889126.7861284262,
            2162.2094254867816, 26.28405665135434, 1.5964762031383861, 2.196350891048934]
    for g, w in zip(got, want, strict=True):
        assert float(g) == pytest.approx(w, rel=1e-12, abs=1e-12)


def test_reference_sample_rounding_is_below_1e3_posterior_sd():
    # the 16-bit codes round each value by at most (hi - lo) / 131070
    d = load_task_data("sir")
    width = d["reference_hi"] - d["reference_lo"]
    sim = load_simulator("sir", device="cpu")
    sd = torch.stack([sim.reference_samples(i).double().std(0) for i in range(1, 11)])
    assert (torch.from_numpy(width) / 131070 / sd < 1e-3).all()


def test_has_observation_follows_the_options():
    assert load_simulator("gaussian_linear", device="cpu").has_observation
    assert not load_simulator("gaussian_linear", device="cpu", dim=3).has_observation
