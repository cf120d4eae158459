"""NLE posterior sampling: our vectorised ensemble MCMC against sbi 0.27's default MCMC
(``slice_np_vectorized``) on the same trained network, same observations, same number of
samples.  Accuracy is C2ST against sbibm's reference posterior samples (two_moons, the 10
sbibm observations).

    python -m benchmarks.bench_mcmc [--quick]

The peer is sbi's sampler as our NLE runs call it (``num_chains=20``, ``warmup_steps=50``,
``thin=1``, ``init_strategy="resample"``: sbi's defaults).
"""

from __future__ import annotations

import dataclasses
import time

import torch

from benchmarks._common import main_for
from sbi_astro import load_simulator
from sbi_astro.diagnostics.c2st import c2st
from sbi_astro.inference import TrainingConfig, train


def run(quick: bool = False) -> list[dict]:
    torch.manual_seed(0)
    sim = load_simulator("two_moons", device="cpu")
    n_sims, n_obs, n_samples = (3000, 2, 300) if quick else (10_000, 10, 1000)
    theta = sim.prior.sample((n_sims,), generator=torch.Generator().manual_seed(1))
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(2))
    t0 = time.perf_counter()
    est = train(theta, x, sim, TrainingConfig(method="nle", device="cpu", seed=0,
                                              max_epochs=30 if quick else 200))
    train_s = time.perf_counter() - t0
    obs = torch.stack([sim.observation(i) for i in range(1, n_obs + 1)])

    def sample_row(method: str, n: int) -> dict:
        est.config = dataclasses.replace(est.config, mcmc_method=method)
        est._posterior = None
        t0 = time.perf_counter()
        s = est.sample(n, obs, generator=torch.Generator().manual_seed(3))
        seconds = time.perf_counter() - t0
        scores = [c2st(s[:, i], sim.reference_samples(i + 1, n), seed=i) for i in range(n_obs)]
        return {"case": f"two_moons NLE, {n_obs} obs x {n} samples", "sampler": method,
                "seconds": round(seconds, 2), "samples_per_s": round(n_obs * n / seconds, 1),
                "c2st_mean": round(sum(scores) / len(scores), 3),
                "c2st_max": round(max(scores), 3), "train_s": round(train_s, 1)}

    rows = [sample_row("ensemble", n_samples), sample_row("slice_np_vectorized", n_samples)]
    rows[0]["speedup_vs_sbi"] = round(rows[1]["seconds"] / rows[0]["seconds"], 1)
    if not quick:  # a benchmark cell's size (issue 24): ours only, sbi's would take minutes
        rows.append(sample_row("ensemble", 10 * n_samples))
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
