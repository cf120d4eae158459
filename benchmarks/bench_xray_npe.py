"""NPE on simulated X-ray spectra through the real Chandra responses, against MCMC.

For each case, trains NPE (NSF + the conv1d embedding) on simulations of one real Chandra
observation's set-up, writes a calibration report on held-out simulations, and compares the
posterior with the emcee reference (exact Poisson likelihood, chains run to >= 50
autocorrelation times) on 5 mock observations by C2ST (issue goal: <= 0.65 on each).

* ``xray_powerlaw`` through Chandra ACIS 3C 273 (40 groups, 3 parameters): 200,000
  simulations (4 s to simulate), NSF with 128 hidden units, batch 256 (measured: C2ST
  0.551-0.592, against 0.581-0.665 with 40,000 simulations and 64 hidden units);
* ``xray_thermal`` (1 T: nH, kT, abundance, norm) through Chandra ACIS DG Tau (444 channels),
  twice on the same simulations: with its default ``theta_transform`` (``"logit_cdf"``: the
  log-uniform temperature on its log scale) and with ``"none"`` (the flow on theta itself),
  the peer the default replaced (the benchmark cell at 10^4: C2ST 0.683 against 0.711).

    python -m benchmarks xray_npe [--quick]         # ~1.5 h on 2 quiet cores (--quick: minutes)
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
from sbi_astro.pipeline import calibrate_estimator

#: (simulator, options, training simulations, training options)
CASES = [
    ("xray_powerlaw", {"observation": "chandra_3c273"}, 200_000,
     {"hidden_features": 128, "batch_size": 256, "stop_after_epochs": 20}),
    ("xray_thermal", {"observation": "chandra_dgtau"}, 40_000, {"batch_size": 128}),
    ("xray_thermal", {"observation": "chandra_dgtau"}, 40_000,
     {"batch_size": 128, "theta_transform": "none"}),
]


def run_case(name: str, options: dict, n_train: int, training: dict, quick: bool) -> dict:
    sim = load_simulator(name, device="cpu", **options)
    n = 2_000 if quick else n_train
    t0 = time.perf_counter()
    theta, x = simulate_rows(sim, 1, 0, n)
    t_sim = time.perf_counter() - t0
    config = TrainingConfig(device="cpu", seed=0, flow="nsf",
                            max_epochs=10 if quick else 1000, **training)
    est = train(theta, x, sim, config)
    with tempfile.TemporaryDirectory() as d:
        res = calibrate_estimator(est, d, n_test=50 if quick else 300, num_samples=1000, seed=3)
    n_obs, s = (2, 500) if quick else (5, 2000)
    _, x_o = simulate_rows(sim, 999, 0, n_obs)
    ours = est.sample(s, x_o, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    ref = sim.reference_posterior(x_o, s, generator=torch.Generator().manual_seed(1))
    t_mcmc = time.perf_counter() - t0
    diags = sim.last_mcmc_diagnostics
    scores = [c2st(ours[:, i], ref[:, i], seed=i) for i in range(n_obs)]
    return {"case": f"{name} {options['observation']} NPE vs emcee",
            "theta_transform": est.config.theta_transform, "n_train": n,
            "simulate_s": t_sim, "train_s": est.metadata["training"]["seconds"],
            "epochs": est.metadata["training"]["epochs"], "verdict": res.verdict,
            "tarp_atc": res.metrics["tarp"]["atc"],
            "c2st": [round(v, 3) for v in scores], "c2st_mean": sum(scores) / n_obs,
            "c2st_max": max(scores), "mcmc_s_per_obs": t_mcmc / n_obs,
            "mcmc_min_chain_over_tau": min(d["chain_over_tau"] for d in diags),
            "mcmc_max_split_rhat": max(d["split_rhat"] for d in diags)}


def run(quick: bool = False) -> list[dict]:
    return [run_case(name, options, n, training, quick) for name, options, n, training in CASES]


if __name__ == "__main__":
    main_for(__name__, run)
