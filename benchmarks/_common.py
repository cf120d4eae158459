"""Shared helpers of the benchmark suites: timing, a printed table and a JSON file.

Every suite ``benchmarks/bench_<name>.py`` defines ``run(quick: bool = False) -> list[dict]``
(one row per measurement, with at least ``"case"``) and ends with::

    if __name__ == "__main__":
        main_for(__name__, run)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def timeit(fn: Callable[[], Any], *, repeat: int = 3, warmup: int = 1) -> float:
    """Best wall-clock seconds of ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of ``rows`` (union of keys, in first-seen order)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def report(name: str, rows: list[dict[str, Any]], out_dir: Path = RESULTS) -> Path:
    """Prints the table and writes ``results/<name>.json``; returns the JSON path."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    from sbi_astro.provenance import machine, package_versions

    meta = {"suite": name, "packages": package_versions(), **machine(),
            "threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"\n== {name} ==")
    print(format_table(rows))
    print(f"(written to {path})")
    return path


def main_for(module_name: str, run: Callable[..., list[dict[str, Any]]]) -> None:
    """Command-line entry of one suite: ``python -m benchmarks.bench_x [--quick]``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke runs")
    args = parser.parse_args()
    if module_name == "__main__":  # run as `python -m benchmarks.bench_x`: use the spec's name
        import sys

        spec = getattr(sys.modules["__main__"], "__spec__", None)
        module_name = spec.name if spec is not None else sys.argv[0].rsplit("/", 1)[-1][:-3]
    name = module_name.rsplit(".", 1)[-1].removeprefix("bench_")
    report(name, run(quick=args.quick))
