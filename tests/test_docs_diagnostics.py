"""The Python examples of docs/diagnostics.md and docs/report.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _blocks(name: str) -> list[str]:
    text = (DOCS / name).read_text()
    # skip signature listings (they are not statements)
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "-> Calibration" not in b]


@pytest.mark.parametrize("page", ["diagnostics.md", "report.md"])
def test_examples_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the report example writes reports/exact/ here
    blocks = _blocks(page)
    assert blocks
    for code in blocks:
        exec(compile(code, f"docs/{page}", "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out
    if page == "diagnostics.md":
        assert out.startswith("overconfident")
    else:
        assert out.startswith("calibrated") and (tmp_path / "reports/exact/report.html").exists()
