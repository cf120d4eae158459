"""The command line: happy path and bad input (message, exit status 2, files intact)."""

from __future__ import annotations

from sbi_astro.inference import weights_path

import json

import numpy as np
import pytest

from sbi_astro.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulators_lists_parameters_units_and_bounds(capsys):
    code, out, _ = run(capsys, "simulators")
    assert code == 0
    assert "two_moons" in out and "theta_1: uniform[-1, 1]" in out
    code, out, _ = run(capsys, "simulators", "--json")
    names = [r["name"] for r in json.loads(out)]
    assert "gaussian_linear" in names


@pytest.mark.parametrize("argv, needle", [
    (["simulate", "nope", "-n", "10", "-o", "X"], "unknown simulator 'nope'"),
    (["simulate", "gaussian_linear", "-n", "10", "-o", "X", "--option", "dim=abc"], "finite int"),
    (["simulate", "gaussian_linear", "-n", "10", "-o", "X", "--option", "bogus=1"],
     "unknown option"),
    (["simulate", "gaussian_linear", "-n", "0", "-o", "X"], "must be >= 1"),
    (["train", "missing.h5", "-o", "R"], "does not exist"),
    (["run", "missing.yaml"], "does not exist"),
])
def test_bad_input_exits_2_with_a_message(capsys, tmp_path, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "X").exists()


def test_simulate_train_sample_end_to_end(capsys, tmp_path):
    store = tmp_path / "s.h5"
    code, out, _ = run(capsys, "simulate", "gaussian_linear", "-n", "600", "-o", str(store),
                       "--option", "dim=2", "--seed", "3", "--chunk-size", "200",
                       "--device", "cpu", "--no-progress")
    assert code == 0 and "600 simulations" in out
    run_dir = tmp_path / "run"
    code, out, err = run(capsys, "train", str(store), "--method", "npe", "-o", str(run_dir),
                         "--set", "max_epochs=3", "--set", "hidden_features=16",
                         "--device", "cpu")
    assert code == 0, err
    assert json.loads((run_dir / "run.json").read_text())["method"] == "npe"
    # training again into the same directory is refused; the run is untouched
    before = weights_path(run_dir).read_bytes()
    code, _, err = run(capsys, "train", str(store), "-o", str(run_dir), "--device", "cpu")
    assert code == 2 and "--overwrite" in err
    assert weights_path(run_dir).read_bytes() == before

    obs = tmp_path / "obs.npy"
    np.save(obs, np.array([0.1, -0.2], dtype=np.float32))
    out_npy = tmp_path / "samples.npy"
    code, out, err = run(capsys, "sample", str(run_dir), "--observation", str(obs), "-n", "50",
                         "-o", str(out_npy), "--device", "cpu")
    assert code == 0, err
    assert np.load(out_npy).shape == (50, 2)

    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([0.1, 0.2, 0.3], dtype=np.float32))
    code, _, err = run(capsys, "sample", str(run_dir), "--observation", str(bad), "-n", "5",
                       "-o", str(tmp_path / "o2.npy"), "--device", "cpu")
    assert code == 2 and "must have shape (..., 2)" in err
    nan = tmp_path / "nan.json"
    nan.write_text("[NaN, 0.0]")
    code, _, err = run(capsys, "sample", str(run_dir), "--observation", str(nan), "-n", "5",
                       "-o", str(tmp_path / "o3.npy"), "--device", "cpu")
    assert code == 2 and "NaN" in err
    assert not (tmp_path / "o3.npy").exists()

    report = tmp_path / "report"
    code, out, err = run(capsys, "calibrate", str(run_dir), "--n-test", "30", "--num-samples",
                         "100", "-o", str(report), "--device", "cpu")
    assert code == 0, err
    assert "verdict:" in out
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["provenance"]["run"]["simulator"] == "gaussian_linear"
    html = (report / "report.html").read_text()
    assert "<img" in html and "http://" not in html.split("<body", 1)[-1].split("</body>")[0]


def test_invalid_study_yaml(capsys, tmp_path):
    y = tmp_path / "s.yaml"
    y.write_text("simulator: {name: gaussian_linear}\nsimulate: {num_simulations: -5}\n")
    code, _, err = run(capsys, "run", str(y))
    assert code == 2 and "simulate.num_simulations" in err
    y.write_text("simulator: {name: gaussian_linear}\ntrain: {metod: npe}\n")
    code, _, err = run(capsys, "run", str(y))
    assert code == 2 and "metod" in err
    y.write_text("simulator: [unclosed\n")
    code, _, err = run(capsys, "run", str(y))
    assert code == 2 and "not valid YAML" in err
