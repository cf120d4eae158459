"""A study on your own files: paths relative to the study YAML, and the run, store and report
naming every file with its checksum."""

from __future__ import annotations

import hashlib
import json
import shutil

import h5py
import yaml

from sbi_astro.cli import main
from sbi_astro.pipeline import Study
from simulators.xray.observations import data_path

STUDY = {
    "name": "own-spectrum",
    "simulator": {"name": "xray_powerlaw", "options": {"pha": "data/3c273.pi.gz"},
                  "device": "cpu"},
    "prior": {"nH": {"kind": "truncnormal", "loc": 0.02, "scale": 0.01, "lower": 0.0}},
    "simulate": {"num_simulations": 600, "seed": 1, "chunk_size": 300},
    "train": {"method": "npe", "flow": "maf", "hidden_features": 16, "max_epochs": 2,
              "seed": 0},
    "calibrate": {"n_test": 20, "num_samples": 100, "seed": 2, "ppc_observations": 4,
                  "ppc_draws": 10},
    "analyses": [{"kind": "observed", "num_samples": 200, "ppc_draws": 20}],
}


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_study_finds_its_files_relative_to_itself_and_records_them(tmp_path, monkeypatch,
                                                                     capsys):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    for f in data_path("chandra_3c273").iterdir():
        if f.suffix == ".gz":
            shutil.copy(f, project / "data" / f.name)
    out = tmp_path / "out"
    (project / "study.yaml").write_text(yaml.safe_dump({**STUDY, "output": str(out)}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # run from another folder: the paths follow the YAML

    study = Study.from_yaml(project / "study.yaml")
    assert study.options["pha"] == str(project / "data" / "3c273.pi.gz")

    assert main(["run", str(project / "study.yaml")]) == 0
    capsys.readouterr()
    want = {role: _sha256(project / "data" / name) for role, name in
            [("pha", "3c273.pi.gz"), ("arf", "3c273.arf.gz"), ("rmf", "3c273.rmf.gz"),
             ("background", "3c273_bg.pi.gz")]}
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    sim = metrics["provenance"]["simulator"]
    assert {k: v["sha256"] for k, v in sim["data_files"].items()} == want
    assert sim["prior_overrides"]["nH"]["kind"] == "truncnormal"
    assert "log10_norm" in sim["prior_notes"]
    html = (out / "report" / "report.html").read_text()
    assert all(h[:16] in html for h in want.values()) and "(user prior)" in html
    assert "derived from the spectrum" in html
    run = json.loads((out / "run" / "run.json").read_text())
    assert {k: v["sha256"] for k, v in run["data_files"].items()} == want
    store = next(out.glob("*.h5"))
    with h5py.File(store) as f:
        meta = json.loads(f.attrs["metadata"])
    assert {k: v["sha256"] for k, v in meta["data_files"].items()} == want
