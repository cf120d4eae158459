"""Test collection for the whole repository (the test suite lives in ``tests/``).

* ``make test`` runs the suite with pytest-xdist, one worker per core (``-n auto``), each
  worker on one torch thread; plain ``pytest`` runs it in one process.
* ``--device`` runs the tensor tests on CUDA (``pytest --device cuda``); ``gpu`` tests are
  skipped without CUDA.
* ``--doctest-modules`` (set in ``pyproject.toml``) runs the ``Example:`` blocks of every
  module under ``sbi_astro/`` and ``simulators/``.
* Every fenced ``python`` block of ``docs/*.md``, ``docs/simulators/*.md`` and ``README.md``
  runs as written: the blocks of one page in order, in one namespace, in an empty working
  folder.  A block that is not a runnable example (a signature listing, the file of a
  third-party package) is preceded by the line ``<!-- not run: reason -->``.
"""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent
collect_ignore_glob = ["tests/simulators/xray/data/*", "docs/render_report.py", "benchmarks/*",
                       ".venv/*", "build/*",
                       "simulators/sbibm/crosscheck_sbibm.py"]  # needs sbibm (its own venv)
_BLOCK = re.compile(r"(?:<!-- not run: (?P<why>[^>]*?) -->\s*\n)?```python\n(?P<code>.*?)```",
                    re.S)


def pytest_configure(config):
    # pytest-xdist (`make test` runs `-n auto`: one worker per core): one torch thread per
    # worker, so that the workers do not contend for the same cores.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for tensor tests: cpu or cuda")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def pytest_collect_file(file_path: Path, parent):
    rel = file_path.relative_to(ROOT).as_posix() if file_path.is_relative_to(ROOT) else ""
    if file_path.suffix == ".md" and (rel == "README.md" or rel.startswith("docs/")):
        return MarkdownPage.from_parent(parent, path=file_path)
    return None


class MarkdownPage(pytest.File):
    """The python blocks of one Markdown page, as one test item."""

    def collect(self):
        blocks = [(m["code"], m["why"]) for m in _BLOCK.finditer(self.path.read_text())]
        runnable = [code for code, why in blocks if why is None]
        if runnable:
            yield MarkdownExamples.from_parent(self, name="examples", blocks=runnable)


class MarkdownExamples(pytest.Item):
    def __init__(self, *, blocks: list[str], **kwargs):
        super().__init__(**kwargs)
        self.blocks = blocks

    def runtest(self):
        tmp = self.config._tmp_path_factory.mktemp("docs")  # noqa: SLF001
        here = os.getcwd()
        os.chdir(tmp)
        module = types.ModuleType("__docs__")  # a real module: dataclasses look it up
        sys.modules["__docs__"] = module
        try:
            for code in self.blocks:
                exec(compile(code, str(self.path), "exec"), module.__dict__)  # noqa: S102
        finally:
            os.chdir(here)
            del sys.modules["__docs__"]

    def reportinfo(self):
        return self.path, 0, f"{self.path.name}: {len(self.blocks)} python block(s)"
