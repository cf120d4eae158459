"""The examples of the sbibm plugins' docstrings and of docs/validation_tasks.md run as written."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[3] / "docs"
MODULES = ["simulators.sbibm.reference", "simulators.sbibm._priors", "simulators.sbibm._ode",
           "simulators.sbibm._sampling", "simulators.sbibm.gaussian", "simulators.sbibm.slcp",
           "simulators.sbibm.bernoulli_glm", "simulators.sbibm.sir",
           "simulators.sbibm.lotka_volterra"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"


def test_validation_tasks_page_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "validation_tasks.md").read_text(), re.S)
    assert len(blocks) == 3
    for code in blocks:
        exec(compile(code, "docs/validation_tasks.md", "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out.split("\n")
    assert out[0] == "10 (10000, 5)" and out[1] == "0.60639"
    assert abs(float(out[2]) - 0.5) <= 0.05
