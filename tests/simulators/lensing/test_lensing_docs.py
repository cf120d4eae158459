"""The lensing docstring examples and the docs page's code blocks run."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).resolve().parents[3] / "docs" / "simulators" / "lensing.md"


@pytest.mark.parametrize("name", ["simulators.lensing.base", "simulators.lensing.noise",
                                  "simulators.lensing.sie", "simulators.lensing.pixelated",
                                  "sbi_astro.embeddings.image"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_docs_page_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 2
    ns: dict = {}
    torch.manual_seed(0)
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), ns)  # noqa: S102 - our own docs
    assert ns["ll"].shape == (16,) and ns["kappa"].shape == (4, 32, 32)
    assert ns["image"].shape == (4, 64, 64) and ns["kappa"].grad.abs().sum() > 0
