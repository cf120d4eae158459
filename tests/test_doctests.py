"""Runs the ``Example:`` blocks of the modules' docstrings (core, diagnostics, plugins)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["sbi_astro.random", "sbi_astro.priors", "sbi_astro.simulator", "sbi_astro.registry",
           "sbi_astro.store", "sbi_astro.campaign", "sbi_astro.embeddings",
           "sbi_astro.inference", "sbi_astro.inference.ensemble", "sbi_astro.embeddings.volume",
           "sbi_astro.diagnostics.tarp", "sbi_astro.diagnostics.sbc",
           "sbi_astro.diagnostics.coverage", "sbi_astro.diagnostics.c2st",
           "sbi_astro.diagnostics.ppc", "sbi_astro.report",
           "sbi_astro.diagnostics.topology", "sbi_astro.diagnostics.sindy",
           "sbi_astro.embeddings.timeseries", "simulators.cluster.model",
           "simulators.cluster.oscillations", "sbi_astro.analyses.dynamics"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0, f"{name} has no runnable example"
