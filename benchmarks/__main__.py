"""Runs benchmark suites: ``python -m benchmarks [NAME ...] [--quick]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

from ._common import report

import benchmarks


def main() -> None:
    suites = sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules(benchmarks.__path__)
                    if m.name.startswith("bench_"))
    parser = argparse.ArgumentParser(description="sbi-astro benchmark suites")
    parser.add_argument("names", nargs="*", help=f"suites to run (default: all of {suites})")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for name in args.names or suites:
        if name not in suites:
            parser.error(f"unknown suite {name!r}; available: {suites}")
        module = importlib.import_module(f"benchmarks.bench_{name}")
        report(name, module.run(quick=args.quick))


if __name__ == "__main__":
    main()
