"""Runs the ``Example:`` blocks of the dynamics diagnostics, the time-series embedding and
the star-cluster simulator."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["sbi_astro.diagnostics.topology", "sbi_astro.diagnostics.sindy",
           "sbi_astro.embeddings.timeseries", "simulators.cluster.model"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"
