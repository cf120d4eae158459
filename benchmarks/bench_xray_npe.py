"""NPE on simulated X-ray spectra through the real Chandra response, against MCMC.

Trains NPE (default configuration, conv1d embedding) on ``xray_powerlaw`` simulations of
the Chandra 3C 273 observation, writes a calibration report, and compares the posterior
with emcee on the exact Poisson likelihood for 5 mock observations (C2ST).

    python -m benchmarks.bench_xray_npe [--quick]
"""

from __future__ import annotations

import tempfile
import time

import torch

from benchmarks._common import main_for
from sbi_astro import load_simulator
from sbi_astro.campaign import simulate_rows
from sbi_astro.diagnostics.c2st import c2st
from sbi_astro.inference import TrainingConfig, train
from sbi_astro.study import calibrate_estimator


def run(quick: bool = False) -> list[dict]:
    sim = load_simulator("xray_powerlaw", device="cpu")
    n_train = 2_000 if quick else 10_000
    t0 = time.perf_counter()
    theta, x = simulate_rows(sim, 1, 0, n_train)
    t_sim = time.perf_counter() - t0
    est = train(theta, x, sim, TrainingConfig(device="cpu", seed=0,
                                              max_epochs=10 if quick else 1000))
    with tempfile.TemporaryDirectory() as d:
        res = calibrate_estimator(est, d, n_test=50 if quick else 200, num_samples=1000, seed=3)
    _, x_o = simulate_rows(sim, 999, 0, 5)
    s = 500 if quick else 2000
    ours = est.sample(s, x_o, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    ref = sim.reference_posterior(x_o, s, generator=torch.Generator().manual_seed(1))
    t_mcmc = time.perf_counter() - t0
    scores = [c2st(ours[:, i], ref[:, i], seed=i) for i in range(5)]
    return [{"case": "xray_powerlaw chandra_3c273 NPE vs emcee", "n": n_train,
             "simulate_s": t_sim, "train_s": est.metadata["training"]["seconds"],
             "verdict": res.verdict, "c2st_mean": sum(scores) / 5, "c2st_max": max(scores),
             "mcmc_s_per_obs": t_mcmc / 5}]


if __name__ == "__main__":
    main_for(__name__, run)
