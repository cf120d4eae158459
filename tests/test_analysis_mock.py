"""Study analysis ``mock``: the posterior of one simulated observation at given parameters."""

from __future__ import annotations

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.pipeline.analyses.mock import mock_analysis
from sbi_astro.errors import ConfigError
from sbi_astro.pipeline import Study


class ExactPosterior:
    """An 'estimator' whose samples are the simulator's own exact posterior."""

    def __init__(self, sim):
        self.simulator, self.device = sim, torch.device("cpu")

    def sample(self, num_samples, x, generator=None):
        return self.simulator.reference_posterior(x, num_samples, generator=generator)


def test_mock_section_reports_the_exact_posterior(tmp_path):
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    theta = {"theta_0": 0.5, "theta_1": -0.3}
    sec = mock_analysis(ExactPosterior(sim), tmp_path, seed=3, theta=theta, num_samples=4000)
    rows = {r["parameter"]: r for r in sec.table}
    _, exact_std = sim.posterior_mean_std(torch.zeros(1, 2))
    for name, value in theta.items():
        r = rows[name]
        assert r["truth"] == pytest.approx(value)
        # the exact posterior's sd (from the conjugate formula), to the sampling error
        # of 4,000 draws (~1 %; 5 % allowed), and std/|truth| is that sd over |truth|
        assert r["posterior std"] == pytest.approx(float(exact_std), rel=0.05)
        assert r["std / |truth|"] == pytest.approx(r["posterior std"] / abs(value))
        # the truth is a draw from the posterior: within 4 sd of its mean
        assert abs(r["(mean - truth) / std"]) < 4
    assert sec.metrics["parameters"] == sec.table and sec.figures


def test_mock_options_are_checked(tmp_path):
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    with pytest.raises(ConfigError, match="every parameter"):
        mock_analysis(ExactPosterior(sim), tmp_path, seed=0, theta={"theta_0": 0.1})
    with pytest.raises(ConfigError, match="num_samples"):
        mock_analysis(ExactPosterior(sim), tmp_path, seed=0,
                      theta={"theta_0": 0.1, "theta_1": 0.0}, num_samples=5)
    study = Study.from_dict({"simulator": {"name": "gaussian_linear"},
                             "analyses": [{"kind": "mock", "theta": {"theta_0": 0.0}}]})
    assert study.analyses[0]["kind"] == "mock"
