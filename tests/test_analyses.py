"""Study analyses: the registry, the YAML checks, and the ``observed`` analysis on real data."""

from __future__ import annotations

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.analysis import get_analysis, list_analyses
from sbi_astro.pipeline.analyses.observed import observed_analysis
from sbi_astro.errors import ConfigError
from sbi_astro.pipeline import Study

BASE = {"simulator": {"name": "gaussian_linear"}}


class ExactPosterior:
    """An 'estimator' whose samples are the simulator's own reference posterior."""

    def __init__(self, sim, seed: int):
        self.simulator, self.device, self.seed = sim, torch.device("cpu"), seed

    def sample(self, num_samples, x):
        return self.simulator.reference_posterior(
            x, num_samples, generator=torch.Generator().manual_seed(self.seed))


def test_registry_lists_the_built_in_kinds_and_explains_unknown_ones():
    assert "observed" in list_analyses()
    with pytest.raises(ConfigError, match=r"unknown study analysis kind 'nope'.*observed"):
        get_analysis("nope")


@pytest.mark.parametrize("analyses, needle", [
    ("observed", "must be a list"),
    ([{"num_samples": 10}], "with a 'kind' key"),
    ([{"kind": "nope"}], "unknown study analysis kind"),
    ([{"kind": "observed", "samples": 10}], r"unknown or missing options \['samples'\]"),
])
def test_bad_analyses_are_refused_before_anything_runs(analyses, needle):
    with pytest.raises(ConfigError, match=needle):
        Study.from_dict({**BASE, "analyses": analyses})


def test_valid_analyses_are_kept():
    study = Study.from_dict({**BASE, "analyses": [{"kind": "observed", "num_samples": 500}]})
    assert study.analyses == ({"kind": "observed", "num_samples": 500},)


def test_observed_needs_a_simulator_with_data(tmp_path):
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    with pytest.raises(ConfigError, match="ships no real observation|has none"):
        observed_analysis(ExactPosterior(sim, 0), tmp_path, seed=0)


def test_observed_on_chandra_3c273_with_an_exact_posterior(tmp_path):
    """The MCMC reference vs an independent MCMC run of the same posterior.

    Two exact samplers are indistinguishable (C2ST 0.5 +- ~0.03 at 2 x 2,000 samples: gate
    0.58); the absorbed power law fits the 3C 273 spectrum, so the deviance p-value is not
    extreme (gate 0.02-0.98) and at least 80 % of the 40 groups lie inside the 90 % band.
    """
    sim = load_simulator("xray_powerlaw", device="cpu")
    sec = observed_analysis(ExactPosterior(sim, 99), tmp_path, seed=3, num_samples=2000,
                            ppc_draws=300, log=lambda *a: None)
    m = sec.metrics
    assert m["c2st_vs_reference"] < 0.58
    for row in m["parameters"]:
        assert abs(row["mean shift / reference std"]) < 0.2
        assert row["NPE std"] == pytest.approx(row["reference std"], rel=0.15)
    assert 0.02 < m["ppc"]["deviance_pvalue"] < 0.98
    assert m["ppc"]["fraction_of_bins_in_90pct_band"] >= 0.8
    assert len(sec.figures) == 2 and "C2ST" in sec.text
