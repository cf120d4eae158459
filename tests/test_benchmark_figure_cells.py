"""`docs/benchmark_cells.csv`, the cells the figure of docs/benchmark.md draws: every row is a
row of a table in that page (same task, budget, method and C2STs), one row per cell."""

from __future__ import annotations

import csv
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _table_rows(text: str) -> list[list[str]]:
    return [[c.strip().strip("*") for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if re.match(r"\| [a-z_]+ \| [0-9,]+ \| ", line)]


def test_every_cell_of_the_figure_is_in_a_table_of_the_page():
    page = (DOCS / "benchmark.md").read_text(encoding="utf-8")
    rows = _table_rows(page)
    with (DOCS / "benchmark_cells.csv").open(newline="", encoding="utf-8") as fh:
        cells = list(csv.DictReader(fh))
    assert len(cells) >= 60
    keys = [(c["task"], c["method"], c["options"], c["budget"]) for c in cells]
    assert len(set(keys)) == len(keys)  # one row per cell: the figure draws one line
    for c in cells:
        budget = f"{int(c['budget']):,}"
        strict = f"{float(c['c2st_strict']):.3f}"
        found = [r for r in rows if r[0] == c["task"] and r[1] == budget
                 and r[2].split(" ")[0].rstrip(",") == c["method"].upper() and strict in r
                 and all(o in r[2] for o in c["options"].split(";"))]
        assert found, f"{c['task']} {c['method']} {budget}: C2ST {strict} is in no table"
        if c["c2st_sbibm"]:  # sbibm's classifier's mean is in the page too
            assert f"{float(c['c2st_sbibm']):.3f}" in page
        assert 0.5 <= float(c["c2st_strict"]) <= 1.0


def test_the_tables_per_budget_are_those_the_csv_gives():
    """The page's tables per budget (task x method) are what ``docs/benchmark_figure.py
    --tables`` prints from the CSV: a cell added to one and not the other fails here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_figure",
                                                  DOCS / "benchmark_figure.py")
    figure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figure)
    page = (DOCS / "benchmark.md").read_text(encoding="utf-8")
    start = "<!-- budget tables: python docs/benchmark_figure.py --tables -->\n"
    inside = page.split(start, 1)[1].split("<!-- end of budget tables -->", 1)[0]
    tables = figure.default_tables()
    assert inside == tables
    # e.g. two_moons at 10^4: our NLE best, NPE and NRE beside it, sbibm's published means
    assert "| two_moons | 0.542 | **0.525** | 0.625 | 0.606 / 0.713 / 0.761 |" in tables
