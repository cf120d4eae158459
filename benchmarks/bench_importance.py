"""Importance-sampled NPE against emcee on the same exact likelihood (`xray_powerlaw`,
Chandra 3C 273): effective posterior samples per second and C2ST against the benchmark's
reference posteriors, per observation.

    python -m benchmarks.bench_importance [--quick]

* **NPE-IS** (:func:`sbi_astro.inference.importance.importance_sample`): 10,000 draws
  resampled from 100,000 NPE proposals weighed by the likelihood; its effective sample size
  is the ESS of those weights.  The NPE's training is reported apart (it is paid once for
  every observation).
* **The peer, emcee** as the references were made
  (:func:`sbi_astro.benchmark_references.converged_posterior`: 32 walkers, chains run to
  50 autocorrelation times, split-R-hat < 1.01 and ESS >= 10,000), on the same
  likelihood; its effective sample size is emcee's (walkers x chain / tau).
* ``ess_per_s_vs_emcee``: NPE-IS's effective samples per second over emcee's, measured in
  the same run on one thread.
"""

from __future__ import annotations

import time

import torch

from benchmarks._common import main_for
from sbi_astro import load_simulator
from sbi_astro.benchmark_references import converged_posterior
from sbi_astro.diagnostics.c2st import c2st
from sbi_astro.inference import TrainingConfig, train
from sbi_astro.inference.importance import importance_sample


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    n_sims, n_obs = (5_000, 2) if quick else (20_000, 5)
    sim = load_simulator("xray_powerlaw", device="cpu")
    theta, x = sim.sample_joint(n_sims, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    est = train(theta, x, sim, TrainingConfig(method="npe", device="cpu", seed=0,
                                              max_epochs=40 if quick else 1000))
    train_s = time.perf_counter() - t0
    rows = []
    for i in range(1, n_obs + 1):
        x_o = sim.reference_observation(i)
        ref = sim.reference_samples(i, 10_000)
        t0 = time.perf_counter()
        raw = est.sample(10_000, x_o[None], generator=torch.Generator().manual_seed(i))[:, 0]
        raw_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = importance_sample(est, x_o[None], 10_000, proposals=100_000,
                                generator=torch.Generator().manual_seed(i))
        is_s = time.perf_counter() - t0
        samples, diag = converged_posterior(sim, x_o, seed=i)
        case = f"xray_powerlaw obs {i}, NPE on {n_sims:,} simulations ({train_s:.0f} s)"
        is_rate = float(res.ess[0]) / is_s
        em_rate = diag["ess"] / diag["seconds"]
        rows += [
            {"case": case, "sampler": "NPE", "seconds": round(raw_s, 2),
             "c2st": round(float(c2st(raw, ref, seed=i)), 3)},
            {"case": case, "sampler": "NPE-IS", "seconds": round(is_s, 2),
             "ess": round(float(res.ess[0])), "ess_per_s": round(is_rate, 1),
             "c2st": round(float(c2st(res.samples[:, 0], ref, seed=i)), 3),
             "ess_per_s_vs_emcee": round(is_rate / em_rate, 1)},
            {"case": case, "sampler": "emcee (reference protocol)",
             "seconds": round(diag["seconds"], 2), "ess": round(diag["ess"]),
             "ess_per_s": round(em_rate, 1), "split_rhat": round(diag["split_rhat"], 4),
             "c2st": round(float(c2st(samples.float(), ref, seed=i)), 3)},
        ]
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
