"""The ``dynamics`` study analysis of ``cluster_gravothermal`` (a plugin's analysis)."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro.analysis import Section, get_analysis


@pytest.mark.slow
def test_dynamics_analysis_end_to_end_on_the_cluster_model(tmp_path):
    # A deliberately small run (~1 min on one core): a 2-epoch NPE on 128 fast-preset
    # simulations, short fast-preset series.  It checks the plumbing and that every number in
    # the section is finite and consistent, not the science (see the shipped study for that).
    from sbi_astro import load_simulator
    from sbi_astro.inference import TrainingConfig, train

    torch.manual_seed(0)
    sim = load_simulator("cluster_gravothermal", device="cpu", t_start=15.0, t_end=30.0,
                         n_times=32)
    g = torch.Generator().manual_seed(0)
    theta = sim.prior.sample((128,), generator=g)
    x = sim.simulate(theta, generator=g)
    est = train(theta, x, sim, TrainingConfig(method="npe", max_epochs=2, seed=0))
    fn = get_analysis("dynamics")
    section = fn(est, tmp_path, seed=3, log=lambda *_: None,
                 cases=[{"label": "deterministic", "theta": [4.8, 0.0, 1.0]},
                        {"label": "stochastic", "theta": [4.8, 1.0, 1.0]}],
                 series={"preset": "fast", "t_start": 15.0, "t_end": 40.0, "n_times": 400},
                 post_start=23.0, n_surrogates=19, n_perm=150, max_points=400, n_tarp=20,
                 num_samples=200)
    assert isinstance(section, Section)
    m = section.metrics
    assert set(m["cases"]) == {"deterministic", "stochastic"}
    for case in m["cases"].values():
        assert 1 / 20 <= case["surrogate_p"] <= 1.0
        mean, lo, hi = case["posterior_noise"]
        assert 0.0 <= lo <= mean <= hi <= 1.0
    assert math.isfinite(m["tarp_atc"]) and 0.0 <= m["tarp_ks_pvalue"] <= 1.0
    assert m["answer"] in section.text and m["heating"] in section.text
    assert len(section.figures) == 5 and len(section.table) == 2
    assert (tmp_path / "dynamics.json").exists() and (tmp_path / "dynamics_series.npz").exists()


def test_shipped_study_is_sized_for_two_cores():
    # the study's options bind to the analysis and keep the expensive parts small: the report's
    # posterior predictive check re-simulates ppc_observations x ppc_draws rows
    from importlib import resources
    from pathlib import Path

    from sbi_astro.pipeline import Study

    path = Path(str(resources.files("sbi_astro") / "studies" / "cluster_dynamics.yaml"))
    study = Study.from_yaml(path)
    assert study.calibrate.ppc_observations * study.calibrate.ppc_draws == 400
    (entry,) = study.analyses
    assert entry["kind"] == "dynamics" and len(entry["cases"]) == 3
    assert study.options["preset"] == "fast" and study.simulate.num_simulations == 3000
