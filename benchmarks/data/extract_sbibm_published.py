"""Extracts sbibm's published C2ST values into ``sbibm_published_c2st.csv`` and a summary.

Run once (the outputs are committed); provenance in ``PROVENANCE.md`` next to this file::

    git clone https://github.com/sbi-benchmark/results /tmp/sbibm-results
    git -C /tmp/sbibm-results checkout 741183cdece7077453efbedac0fad7e74afa10e5
    python benchmarks/data/extract_sbibm_published.py /tmp/sbibm-results

Inputs (columns ``task, num_simulations, num_observation, algorithm, C2ST, ...``):

* ``benchmarking_sbi/results/main_paper.csv``: every run of the paper (10 tasks x 8
  algorithms x 3 budgets x 10 observations); ``source = main_paper``.
* ``gaussian_mixture_rerun/results/gaussian_mixture_rerun.csv``: the rerun of
  ``gaussian_mixture`` after sbibm 1.1.0 fixed its simulator for batches (the paper's
  numbers for that task used the buggy simulator); ``source = gaussian_mixture_rerun``.

Outputs:

* ``sbibm_published_c2st.csv``: one row per run, ``task, algorithm, num_simulations,
  num_observation, c2st, source`` (C2ST copied verbatim as text);
* ``sbibm_published.csv``: one row per (task, algorithm, budget, source) with the mean,
  median, standard deviation, minimum and maximum C2ST over the 10 observations (the
  paper's Figure 2 shows the mean).
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[2] / "sbi_astro" / "pipeline" / "benchmark_data"
SOURCES = {
    "main_paper": "benchmarking_sbi/results/main_paper.csv",
    "gaussian_mixture_rerun": "gaussian_mixture_rerun/results/gaussian_mixture_rerun.csv",
}
BUDGETS = {"10³": 1_000, "10⁴": 10_000, "10⁵": 100_000}


def read_runs(repo: Path) -> list[dict[str, str]]:
    runs = []
    for source, rel in SOURCES.items():
        with open(repo / rel, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                runs.append({"task": row["task"], "algorithm": row["algorithm"],
                             "num_simulations": str(BUDGETS[row["num_simulations"]]),
                             "num_observation": row["num_observation"], "c2st": row["C2ST"],
                             "source": source})
    runs.sort(key=lambda r: (r["source"] != "main_paper", r["task"], r["algorithm"],
                             int(r["num_simulations"]), int(r["num_observation"])))
    return runs


def summarize(runs: list[dict[str, str]]) -> list[dict[str, str]]:
    cells: dict[tuple[str, str, str, str], list[float]] = {}
    for r in runs:
        key = (r["task"], r["algorithm"], r["num_simulations"], r["source"])
        cells.setdefault(key, []).append(float(r["c2st"]))
    out = []
    for (task, alg, budget, source), v in cells.items():
        out.append({"task": task, "algorithm": alg, "num_simulations": budget, "source": source,
                    "n": str(len(v)), "c2st_mean": f"{statistics.fmean(v):.5f}",
                    "c2st_median": f"{statistics.median(v):.5f}",
                    "c2st_std": f"{statistics.stdev(v):.5f}", "c2st_min": f"{min(v):.5f}",
                    "c2st_max": f"{max(v):.5f}"})
    return out


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    runs = read_runs(Path(sys.argv[1]))
    write(HERE / "sbibm_published_c2st.csv", runs)
    write(HERE / "sbibm_published.csv", summarize(runs))
    print(f"{len(runs)} runs")
