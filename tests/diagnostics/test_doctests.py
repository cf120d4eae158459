"""The ``Example:`` blocks of the diagnostics and report modules run as doctests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["sbi_astro.diagnostics.tarp", "sbi_astro.diagnostics.sbc",
           "sbi_astro.diagnostics.coverage", "sbi_astro.diagnostics.c2st",
           "sbi_astro.diagnostics.ppc", "sbi_astro.report"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
