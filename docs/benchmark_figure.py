"""Draws the figure of ``docs/benchmark.md``: C2ST against the simulation budget, one panel
per task, from the measured cells listed in ``docs/benchmark_cells.csv``.

Usage::

    python docs/benchmark_figure.py [OUT_PNG]
    python docs/benchmark_figure.py --tables    # prints the page's tables per budget

Each row of the CSV is a cell measured with the project's defaults of its day and shown
in a table of ``docs/benchmark.md`` (its last column names the section; a test checks that
every row's numbers are in that page).  The figure is drawn with
:func:`sbi_astro.report.figures.plot_benchmark`, as ``sbi-astro benchmark`` draws it from
its own cells: solid lines for C2ST with sbibm's classifier where a cell has it, dotted
for the strict classifier, sbibm's published means dashed (default output:
``docs/figures/benchmark_c2st.png``).  Cells kept in benchmark folders are drawn the same
way by ``sbi-astro benchmark --collect FOLDER ... -o OUT``.

``--tables`` prints the page's tables of every default cell per budget (task x method,
:func:`sbi_astro.pipeline.benchmark.budget_tables`; a test checks that the page holds them
as printed).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from sbi_astro.atomic import atomic_write
from sbi_astro.pipeline.benchmark import budget_tables, method_label, published_curves
from sbi_astro.report.figures import plot_benchmark

HERE = Path(__file__).resolve().parent
CELLS = HERE / "benchmark_cells.csv"


def records(path: Path = CELLS) -> list[dict]:
    """The CSV's rows as cell records (task, method, budget; training options beyond the
    defaults, ``KEY=VALUE`` separated by ``;``; mean C2STs)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        options = dict(o.split("=", 1) for o in r["options"].split(";") if o)
        rec = {"cell": {"task": r["task"], "method": r["method"], "budget": int(r["budget"])},
               "c2st_mean": float(r["c2st_strict"]), "train_overrides": options}
        if r["c2st_sbibm"]:
            rec["c2st_sbibm_mean"] = float(r["c2st_sbibm"])
        out.append(rec)
    return out


def default_tables() -> str:
    """The tables per budget of the cells measured with the defaults of their day (the CSV
    rows without training options)."""
    return budget_tables([r for r in records() if not r["train_overrides"]])


def main(out: Path) -> None:
    recs = records()
    fig = plot_benchmark(recs, published_curves(recs), label=method_label)
    with atomic_write(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    print(f"{len(recs)} cells -> {out}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--tables"]:
        print(default_tables(), end="")
    elif len(sys.argv) > 2 or any(a.startswith("-") for a in sys.argv[1:]):
        print("usage: python docs/benchmark_figure.py [OUT_PNG | --tables]", file=sys.stderr)
        sys.exit(2)
    else:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "figures" / "benchmark_c2st.png")
