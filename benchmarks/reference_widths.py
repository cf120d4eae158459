"""How much narrower each benchmark task's reference posteriors are than its prior.

For every task and each of its 10 observations: the prior's standard deviation over the
reference posterior's, per parameter (200,000 prior draws, 10,000 reference samples).  A
large ratio is a posterior an amortised estimator must resolve from few simulations near
it: the harder the task for a given budget.  Printed per task: the median, smallest and
largest ratio over parameters and observations, and the range over observations of the
per-observation geometric mean.  (On a multimodal posterior, two_moons's, the standard
deviation understates how narrow each mode is.)

Run: ``python -m benchmarks.reference_widths [TASK ...]`` (default: the tasks of the
``full`` and ``astro`` suites; a minute or two on one core).
"""

from __future__ import annotations

import argparse

import torch

from sbi_astro.pipeline.benchmark import suite_tasks
from sbi_astro.registry import load_simulator

NUM_PRIOR, NUM_REFERENCE, OBSERVATIONS = 200_000, 10_000, range(1, 11)


def width_ratios(name: str) -> torch.Tensor:
    """``(10, D)`` prior standard deviation / reference standard deviation."""
    sim = load_simulator(name, device="cpu")
    torch.manual_seed(0)
    prior_sd = sim.prior.sample((NUM_PRIOR,)).std(0)
    return torch.stack([prior_sd / sim.reference_samples(i, NUM_REFERENCE).std(0)
                        for i in OBSERVATIONS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", help="task names (default: the full and astro suites)")
    known = suite_tasks("full") + suite_tasks("astro")
    names = parser.parse_args().tasks or known
    unknown = [n for n in names if n not in known]
    if unknown:  # checked before any task is loaded: exit 2, one line
        parser.error(f"no reference posteriors for {unknown}; choose among {known}")
    print(f"{'task':24s} {'median':>7s} {'min':>6s} {'max':>7s}  per-observation geometric mean")
    for name in names:
        r = width_ratios(name)
        geo = r.log().mean(1).exp()
        print(f"{name:24s} {r.median():7.1f} {r.min():6.1f} {r.max():7.1f}  "
              f"{geo.min():.1f}-{geo.max():.1f}")


if __name__ == "__main__":
    main()
