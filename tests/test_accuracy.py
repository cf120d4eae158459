"""Accuracy gates: NPE at 10,000 simulations against the exact posteriors (C2ST).

These are the issue's acceptance numbers, measured on 5 held-out observations with
10,000 posterior and 10,000 reference samples each.  The two_moons gate (NSF, about 5
minutes of training on 2 cores) is measured by ``python -m benchmarks inference``
instead, to keep the suite fast.  sbi 0.27 with its defaults reaches
0.57 (gaussian_linear) and 0.67 / 0.55 (two_moons, MAF / NSF) on this machine.
"""

from __future__ import annotations

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.campaign import simulate_rows
from sbi_astro.diagnostics.c2st import c2st
from sbi_astro.inference import TrainingConfig, train


def c2st_scores(name: str) -> list[float]:
    sim = load_simulator(name, device="cpu")
    theta, x = simulate_rows(sim, 1, 0, 10_000)
    est = train(theta, x, sim, TrainingConfig(device="cpu", seed=0))
    _, x_o = simulate_rows(sim, 999, 0, 5)
    ours = est.sample(10_000, x_o, generator=torch.Generator().manual_seed(0))
    ref = sim.reference_posterior(x_o, 10_000, generator=torch.Generator().manual_seed(1))
    return [c2st(ours[:, i], ref[:, i], seed=i) for i in range(5)]


@pytest.mark.slow
def test_npe_gaussian_linear_c2st():
    scores = c2st_scores("gaussian_linear")
    # issue gate: mean over the 5 observations <= 0.60 (measured 0.575, each 0.557-0.587);
    # each observation below 0.63, leaving room for BLAS rounding on other CPUs/threads
    assert sum(scores) / 5 <= 0.60, scores
    assert max(scores) <= 0.63, scores
