"""The two C2ST classifiers against the Bayes-optimal accuracy, at sbibm's size.

A C2ST is an estimate of the best accuracy a classifier can reach between two samples; its
ceiling is the Bayes-optimal accuracy, which is known in closed form for two Gaussians.  On
10-D Gaussians with 10,000 samples each (sbibm's size and the dimension of its
gaussian_linear, gaussian_linear_uniform and bernoulli_glm tasks):

* a wrong width: ``N(0, I)`` against ``N(0, s^2 I)``, ``s = 1.1`` and ``0.9``; the Bayes
  rule thresholds ``|z|^2``, a chi-square with 10 degrees of freedom;
* a shifted mean: ``N(0, I)`` against ``N(delta 1, I)``, ``delta = 0.05 / sqrt(0.05)``
  (gaussian_linear's posterior standard deviation is ``sqrt(0.05)``: a mean error of 0.05
  per parameter): accuracy ``Phi(delta sqrt(10) / 2)``;
* the null: the same distribution twice.

Each row: the Bayes accuracy, :func:`sbi_astro.diagnostics.c2st.c2st` (the project's
classifier) and :func:`~sbi_astro.diagnostics.c2st.c2st_sbibm` (sbibm's scikit-learn
protocol, the one behind sbibm's published numbers), with their wall times.  A classifier
below the Bayes accuracy under-resolves the difference; one above it beyond the noise
(sd 0.0035 over 20,000 points) would be a bug.

Run: ``python -m benchmarks.bench_c2st [--quick]`` (quick: 2,000 samples per side).  One
thread; about 5 minutes per sbibm row at full size.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from scipy import stats

from benchmarks._common import main_for
from sbi_astro.diagnostics.c2st import c2st, c2st_sbibm

DIM = 10


def _bayes_width(d: int, s: float) -> float:
    """Bayes accuracy of N(0, I) against N(0, s^2 I) in d dimensions (equal priors)."""
    v = s * s
    t = d * math.log(v) / (1 - 1 / v)  # |z|^2 where the two densities are equal
    if v > 1:
        return 0.5 * (stats.chi2.cdf(t, d) + stats.chi2.sf(t / v, d))
    return 0.5 * (stats.chi2.sf(t, d) + stats.chi2.cdf(t / v, d))


def _bayes_shift(d: int, delta: float) -> float:
    return float(stats.norm.cdf(delta * math.sqrt(d) / 2))


def run(quick: bool = False) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    n = 2000 if quick else 10_000
    delta = 0.05 / math.sqrt(0.05)
    cases = [("same distribution", 1.0, 0.0, 0.5),
             ("width x1.1", 1.1, 0.0, _bayes_width(DIM, 1.1)),
             ("width x0.9", 0.9, 0.0, _bayes_width(DIM, 0.9)),
             ("mean + 0.22 sd", 1.0, delta, _bayes_shift(DIM, delta))]
    g = torch.Generator().manual_seed(0)
    rows = []
    for name, scale, shift, bayes in cases:
        ref = torch.randn(n, DIM, generator=g)
        other = shift + scale * torch.randn(n, DIM, generator=g)
        t0 = time.perf_counter()
        ours = c2st(other, ref, seed=1)
        t1 = time.perf_counter()
        theirs = c2st_sbibm(ref, other)
        t2 = time.perf_counter()
        rows.append({"case": f"{name}, {DIM}-D, {n:,} per side", "bayes": round(bayes, 3),
                     "c2st_ours": round(ours, 3), "c2st_sbibm": round(theirs, 3),
                     "ours_s": round(t1 - t0, 1), "sbibm_s": round(t2 - t1, 1)})
    return rows


if __name__ == "__main__":
    main_for("bench_c2st", run)
