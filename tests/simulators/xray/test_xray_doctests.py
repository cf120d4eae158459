"""Runs the ``Example:`` blocks of the X-ray modules' docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["simulators.xray.ogip", "simulators.xray.observations", "simulators.xray._physics",
           "simulators.xray.absorption", "simulators.xray.base", "simulators.xray.powerlaw",
           "simulators.xray.thermal", "sbi_astro.benchmark_references",
           "sbi_astro.reference_mcmc",
           "sbi_astro.embeddings.spectrum"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"
