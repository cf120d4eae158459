"""Your own priors: the truncated Normal, overrides checked against the physical support, and
priors recorded and enforced through stores, runs, warm starts, studies and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from sbi_astro import load_simulator
from sbi_astro.campaign import run_campaign, store_simulator
from sbi_astro.cli import main
from sbi_astro.errors import ConfigError, NotAvailableError, StoreError
from sbi_astro.inference import TrainingConfig, load_run, train
from sbi_astro.pipeline import Study
from sbi_astro.priors import TruncatedNormal
from sbi_astro.store import SimulationStore

NH = {"theta_1": {"kind": "truncnormal", "loc": 0.3, "scale": 0.2, "lower": 0.0}}


@pytest.mark.parametrize("loc, scale, lower, upper", [(0.05, 0.01, 0.0, math.inf),
                                                      (0.0, 1.0, 8.0, 9.0),
                                                      (1.0, 2.0, -math.inf, 0.5)])
def test_truncated_normal_matches_scipy(loc, scale, lower, upper):
    m = TruncatedNormal("a", loc, scale, lower, upper)
    ref = stats.truncnorm((lower - loc) / scale, (upper - loc) / scale, loc=loc, scale=scale)
    u = torch.tensor([1e-6, 0.1, 0.5, 0.9, 1 - 1e-6], dtype=torch.float64)
    # quantiles to 1e-9 relative: float64 ndtri/erfc, both tails computed where they do not cancel
    np.testing.assert_allclose(m.icdf(u).numpy(), ref.ppf(u.numpy()), rtol=1e-9)
    v = torch.tensor(ref.ppf([0.2, 0.5, 0.8]), dtype=torch.float64)
    np.testing.assert_allclose(m.log_prob(v).numpy(), ref.logpdf(v.numpy()), rtol=1e-9)
    assert m.log_prob(torch.tensor([lower - 1.0 if math.isfinite(lower) else upper + 1.0],
                                   dtype=torch.float64)).item() == -math.inf


def test_overrides_are_checked_against_the_physical_support():
    sim = load_simulator("two_moons", device="cpu",
                         prior={"theta_1": {"kind": "uniform", "lower": -0.5, "upper": 0.5}})
    assert (sim.prior.low.tolist(), sim.prior.high.tolist()) == ([-0.5, -1.0], [0.5, 1.0])
    for prior, needle in [({"theta_9": {"kind": "uniform", "lower": 0, "upper": 1}}, "theta_9"),
                          ({"theta_1": {"kind": "beta"}}, "'beta'"),
                          ({"theta_1": {"kind": "uniform", "lower": 0}}, "['upper']"),
                          ({"theta_1": {"kind": "uniform", "lower": 0, "upper": 1, "x": 2}},
                           "['x']"),
                          ({"theta_1": {"kind": "uniform", "lower": "a", "upper": 1}}, "'a'"),
                          ({"theta_1": {"kind": "uniform", "lower": -2, "upper": 0.5}},
                           "physical support [-1, 1]"),
                          ({"theta_1": {"kind": "normal", "loc": 0, "scale": 0.1}},
                           "truncnormal with lower: -1"),
                          ([1, 2], "mapping")]:
        with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            load_simulator("two_moons", device="cpu", prior=prior)


def test_samples_follow_the_user_prior_and_closed_form_references_are_refused():
    sim = load_simulator("gaussian_linear", device="cpu", dim=2, prior=NH)
    theta = sim.prior.sample((20000,), generator=torch.Generator().manual_seed(0)).double()
    ref = stats.truncnorm(-1.5, math.inf, loc=0.3, scale=0.2)
    # mean and std of 20,000 draws within 5 standard errors of the truncated normal's
    assert abs(theta[:, 1].mean().item() - ref.mean()) < 5 * ref.std() / 20000 ** 0.5
    assert (theta[:, 1] >= 0).all() and abs(theta[:, 0].std().item() - 0.1 ** 0.5) < 0.01
    assert not sim.has_reference_posterior
    with pytest.raises(NotAvailableError, match="own prior"):
        sim.reference_posterior(torch.zeros(2), 10)
    with pytest.raises(NotAvailableError, match="your prior"):
        load_simulator("slcp", device="cpu", prior={
            "theta_1": {"kind": "uniform", "lower": -1, "upper": 1}}).reference_samples(1)


def test_stores_and_runs_record_and_enforce_the_prior(tmp_path):
    sim = load_simulator("gaussian_linear", device="cpu", dim=2, prior=NH)
    path = tmp_path / "s.h5"
    run_campaign(path, sim, num_simulations=600, seed=1, chunk_size=300, progress=False).close()
    with SimulationStore.open(path) as store:
        assert store.metadata.prior_overrides == NH
        rebuilt = store_simulator(store, device="cpu")
        assert rebuilt.prior.to_dict() == sim.prior.to_dict()
        theta, x = store.load()
    assert (theta[:, 1] >= 0).all()
    # the same campaign under the simulator's own prior is another campaign
    with pytest.raises(StoreError, match="prior: stored"):
        run_campaign(path, "gaussian_linear", options={"dim": 2}, num_simulations=600, seed=1,
                     chunk_size=300, progress=False)
    est = train(theta, x, rebuilt, TrainingConfig(max_epochs=1, hidden_features=8,
                                                  device="cpu"))
    est.save(tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "run.json").read_text())
    assert doc["simulator"]["prior"] == NH
    assert load_run(tmp_path / "run", device="cpu").simulator.prior.to_dict() == \
        sim.prior.to_dict()
    # a run trained under another prior cannot start this training
    own = load_simulator("gaussian_linear", device="cpu", dim=2)
    with pytest.raises(ConfigError, match="another prior"):
        train(theta, x, own, TrainingConfig(max_epochs=1, hidden_features=8, device="cpu",
                                            init_from=str(tmp_path / "run")))


def test_cli_and_study_take_a_prior(tmp_path, capsys):
    out = tmp_path / "s.h5"
    spec = "theta_1={kind: truncnormal, loc: 0.3, scale: 0.2, lower: 0}"
    assert main(["simulate", "gaussian_linear", "--option", "dim=2", "--prior", spec, "-n",
                 "200", "-o", str(out), "--device", "cpu", "--no-progress"]) == 0
    with SimulationStore.open(out) as store:
        assert store.metadata.prior_overrides == NH
    capsys.readouterr()
    code = main(["simulate", "gaussian_linear", "--option", "dim=2", "--prior",
                 "theta_1={kind: normal, loc: 0, scale: [", "-n", "20", "-o",
                 str(tmp_path / "t.h5")])
    err = capsys.readouterr().err
    assert code == 2 and "--prior theta_1" in err and not (tmp_path / "t.h5").exists()
    study = Study.from_dict({"simulator": {"name": "gaussian_linear", "options": {"dim": 2}},
                             "prior": NH})
    assert study.prior == NH
    with pytest.raises(ConfigError, match="'prior' must map"):
        Study.from_dict({"simulator": "gaussian_linear", "prior": ["theta_1"]})
