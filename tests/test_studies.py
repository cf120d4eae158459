"""Every study YAML shipped in sbi_astro/studies is valid and names a loadable simulator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from sbi_astro import load_simulator
from sbi_astro.inference import TrainingConfig
from sbi_astro.study import Study

STUDIES = sorted(Path(str(resources.files("sbi_astro") / "studies")).glob("*.yaml"))


def test_the_demo_and_the_real_data_study_are_shipped():
    names = {p.stem for p in STUDIES}
    assert {"demo", "xray_3c273"} <= names


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_shipped_study_is_valid(path):
    study = Study.from_yaml(path)
    sim = load_simulator(study.simulator, device="cpu", **study.options)
    assert sim.dim >= 1
    TrainingConfig.from_dict(study.train)
    for entry in study.analyses:
        if entry["kind"] == "observed":
            assert sim.has_observation
