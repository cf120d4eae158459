"""Every study YAML shipped in sbi_astro/studies is valid and names a loadable simulator."""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

from sbi_astro import load_simulator
from sbi_astro.inference import TrainingConfig, weights_path
from sbi_astro.inverse_problems import get_inverse_problem
from sbi_astro.pipeline import RimStudy, ScoreStudy, Study, is_rim_study, is_score_study
from sbi_astro.pipeline.study import read_study_yaml
from sbi_astro.solvers.rim import RIMConfig

STUDIES = sorted(Path(str(resources.files("sbi_astro") / "studies")).glob("*.yaml"))


def test_the_demo_and_the_real_data_study_are_shipped():
    names = {p.stem for p in STUDIES}
    assert {"demo", "xray_3c273"} <= names


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_shipped_study_is_valid(path):
    if is_rim_study(read_study_yaml(path)):  # a RIM study: its problem and machine build
        study = RimStudy.from_yaml(path)
        problem = get_inverse_problem(study.problem, **study.problem_options)
        RIMConfig(signal_shape=tuple(problem.signal_shape), link=problem.link,
                  **{k: v for k, v in study.rim.items() if k != "members"})
        assert study.test.num_signals >= 100 and study.test.bootstrap >= 2
        return
    if is_score_study(path):  # a learned solver's study: its own schema
        study = ScoreStudy.from_yaml(path)
        assert study.test.num_images >= 2 and study.operator == "lensing"
        return
    study = Study.from_yaml(path)
    sim = load_simulator(study.simulator, device="cpu", **study.options)
    assert sim.dim >= 1
    TrainingConfig.from_dict(study.stage_simulations(study.train)[1])
    for entry in study.analyses:
        if entry["kind"] == "observed":
            assert sim.has_observation


def _tiny_study(tmp_path, fine_tune, train_extra=None, **extra):
    return Study.from_dict({**extra,
        "name": "fine-tune-test",
        "simulator": {"name": "gaussian_linear", "options": {"dim": 2}, "device": "cpu"},
        "simulate": {"num_simulations": 600, "seed": 3, "chunk_size": 300},
        "train": {"method": "npe", "flow": "maf", "hidden_features": 16, "max_epochs": 3,
                  "seed": 0, **(train_extra or {})},
        "fine_tune": fine_tune,
        "calibrate": {"n_test": 30, "num_samples": 100, "seed": 1, "ppc_observations": 5,
                      "ppc_draws": 10},
        "output": str(tmp_path / "out"),
    })


def test_fine_tune_stage_starts_from_the_previous_stage_weights(tmp_path, capsys):
    import torch

    from sbi_astro.pipeline import run_study

    # a learning rate of 1e-12 moves Adam's weights by ~1e-12 per step: if stage 2 started
    # from stage 1's weights, it ends where stage 1 ended; from a fresh initialisation it
    # would differ by O(0.1)
    study = _tiny_study(tmp_path, [{"learning_rate": 1e-12, "max_epochs": 2,
                                    "stop_after_epochs": 1}])
    assert [s.get("learning_rate") for s in study.training_stages()] == [None, 1e-12]
    lines = []
    run_study(study, progress=False, log=print)
    lines = capsys.readouterr().out.splitlines()
    out = tmp_path / "out"
    w0, w1, final = (torch.load(weights_path(d), weights_only=True)
                     for d in (out / "stages/0", out / "stages/1", out / "run"))
    assert w0.keys() == w1.keys() == final.keys()
    moved = max(float((w1[k].float() - w0[k].float()).abs().max()) for k in w0)
    assert moved < 1e-6
    assert all(torch.equal(w1[k], final[k]) for k in w1)
    doc = json.loads((out / "run" / "run.json").read_text())
    assert doc["config"]["init_from"] == str(out / "stages" / "0")
    assert doc["config"]["learning_rate"] == 1e-12 and doc["metadata"]["stage"] == 1
    assert any("stage 2 of 2, from stage 1's weights" in line for line in lines)
    # one progress line per epoch, with the numbers run.json keeps (printed: not swallowed
    # with sbi's own output)
    epochs = [line for line in lines if "epoch " in line and "validation loss" in line]
    stage1 = json.loads((out / "stages/0/run.json").read_text())["metadata"]["training"]
    assert len(epochs) == len(stage1["validation_loss"]) + doc["metadata"]["training"]["epochs"]
    assert f"validation loss {stage1['validation_loss'][0]:.4f}" in epochs[0]

    # a re-run without run/ (e.g. after a crash before it was written) trains nothing again
    shutil.rmtree(out / "run")
    lines.clear()
    run_study(study, progress=False, log=lines.append)
    assert sum("reusing the estimator of stage" in line for line in lines) == 2
    again = torch.load(weights_path(out / "run"), weights_only=True)
    assert all(torch.equal(again[k], final[k]) for k in final)


def test_a_stage_trains_on_the_first_num_simulations_of_the_store(tmp_path):
    from sbi_astro.pipeline import run_study

    # stage 1 on the first 300 of the 600 stored simulations, stage 2 inherits 300, stage 3
    # takes all 600
    study = _tiny_study(tmp_path, [{"max_epochs": 1}, {"num_simulations": 600}],
                        train_extra={"num_simulations": 300})
    assert [study.stage_simulations(s)[0] for s in study.training_stages()] == [300, 300, 600]
    assert all("num_simulations" not in study.stage_simulations(s)[1]
               for s in study.training_stages())
    lines = []
    run_study(study, progress=False, log=lines.append)
    out = tmp_path / "out"
    # each stage's run.json says how many simulations it saw (the validation split included)
    seen = [json.loads((out / "stages" / str(k) / "run.json").read_text())["metadata"]
            ["num_simulations"] for k in range(3)]
    assert seen == [300, 300, 600]
    assert sum("training NPE on 300 simulations" in line for line in lines) == 2
    assert any("training NPE on 600 simulations" in line for line in lines)


def test_snapshot_ensemble_mixes_the_stages_flows(tmp_path):
    import torch

    from sbi_astro.inference import NPEEnsemble, load_run
    from sbi_astro.pipeline import run_study

    study = _tiny_study(tmp_path, [{"learning_rate": 1e-4, "max_epochs": 2}],
                        snapshot_ensemble=True)
    run_study(study, progress=False, log=lambda *_: None)
    out = tmp_path / "out"
    est = load_run(out / "run", device="cpu")
    assert isinstance(est, NPEEnsemble) and len(est.members) == 2
    mixed = torch.load(weights_path(out / "run"), weights_only=True)
    for k in (0, 1):
        stage = torch.load(weights_path(out / "stages" / str(k)), weights_only=True)
        assert all(torch.equal(mixed[f"{k}.{name}"], w) for name, w in stage.items())
    meta = json.loads((out / "run" / "run.json").read_text())["metadata"]
    assert meta["snapshot_ensemble"] == [str(out / "stages/0"), str(out / "stages/1")]
    assert meta["training"]["epochs"] == sum(m["epochs"] for m in meta["training"]["members"])


def test_snapshot_ensemble_of_the_last_n_stages(tmp_path):
    import torch

    from sbi_astro.inference import load_run
    from sbi_astro.pipeline import run_study

    study = _tiny_study(tmp_path, [{"learning_rate": 1e-4, "max_epochs": 1},
                                   {"learning_rate": 5e-5, "max_epochs": 1}],
                        snapshot_ensemble=2)
    run_study(study, progress=False, log=lambda *_: None)
    out = tmp_path / "out"
    assert len(load_run(out / "run", device="cpu").members) == 2
    mixed = torch.load(weights_path(out / "run"), weights_only=True)
    for member, k in ((0, 1), (1, 2)):  # stages 2 and 3 (stages/1, stages/2)
        stage = torch.load(weights_path(out / "stages" / str(k)), weights_only=True)
        assert all(torch.equal(mixed[f"{member}.{name}"], w) for name, w in stage.items())
    meta = json.loads((out / "run" / "run.json").read_text())["metadata"]
    assert meta["snapshot_ensemble"] == [str(out / "stages/1"), str(out / "stages/2")]


def test_snapshot_ensemble_takes_every_member_of_an_ensemble_stage(tmp_path):
    import torch

    from sbi_astro.inference import load_run
    from sbi_astro.pipeline import run_study

    study = _tiny_study(tmp_path, [{"learning_rate": 1e-4, "max_epochs": 2, "ensemble": 2}],
                        snapshot_ensemble=True)
    run_study(study, progress=False, log=lambda *_: None)
    out = tmp_path / "out"
    assert len(load_run(out / "run", device="cpu").members) == 3
    mixed = torch.load(weights_path(out / "run"), weights_only=True)
    stage1 = torch.load(weights_path(out / "stages" / "1"), weights_only=True)
    # stage 2's members 0 and 1 are the mixture's flows 1 and 2; both started from stage 1
    for k in (0, 1):
        mine = {n[2:]: w for n, w in stage1.items() if n.startswith(f"{k}.")}
        assert mine and all(torch.equal(mixed[f"{k + 1}.{n}"], w) for n, w in mine.items())


@pytest.mark.parametrize("extra, needle", [
    ({"snapshot_ensemble": "yes"}, "must be true or false"),
    ({"snapshot_ensemble": 3}, "the number of last stages to mix (2 to 2), got 3"),
    ({"snapshot_ensemble": 1}, "got 1"),
    ({"snapshot_ensemble": True, "fine_tune": None}, "at least one 'fine_tune' stage"),
])
def test_invalid_snapshot_ensemble_is_refused(tmp_path, extra, needle):
    from sbi_astro.errors import ConfigError

    fine_tune = extra.pop("fine_tune", [{"learning_rate": 1e-4}])
    with pytest.raises(ConfigError, match=re.escape(needle)):
        _tiny_study(tmp_path, fine_tune, **extra)


@pytest.mark.parametrize("fine_tune, needle", [
    ({"learning_rate": 1e-4}, "must be a list of mappings"),
    ([{"init_from": "elsewhere"}], "sets init_from"),
    ([{"hidden_features": 0}], "fine_tune[0]"),
    ([{"learning_rat": 1e-4}], "learning_rat"),
    ([{"num_simulations": 601}], "fine_tune[0]: num_simulations must be an integer from 1 "
                                 "to simulate.num_simulations (600), got 601"),
    ([{"num_simulations": 1.5}], "got 1.5"),
])
def test_invalid_fine_tune_is_refused_before_anything_runs(tmp_path, fine_tune, needle):
    from sbi_astro.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(needle)):
        _tiny_study(tmp_path, fine_tune)
    assert not (tmp_path / "out").exists()
