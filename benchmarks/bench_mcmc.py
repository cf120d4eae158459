"""NLE posterior sampling: our vectorised ensemble MCMC against sbi 0.27's default MCMC
(``slice_np_vectorized``) on the same trained network, same observations, same number of
samples.  Accuracy is C2ST against sbibm's reference posterior samples (the 10 sbibm
observations of two_moons and, without ``--quick``, of Lotka-Volterra, whose posteriors are
thousands of times narrower than its prior).  Last, the cost per row of the NLE and NRE network
calls on ``xray_thermal``'s 444 channels, made the plain way and the sampler's way.

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


def _case(task: str, n_sims: int, max_epochs: int, n_obs: int, n_samples: int,
          cell: bool) -> list[dict]:
    """Both samplers on one NLE network of ``task``; with ``cell``, ours at a benchmark
    cell's size too (10 x ``n_samples``: sbi's would take minutes)."""
    torch.manual_seed(0)
    sim = load_simulator(task, device="cpu")
    theta = sim.prior.sample((n_sims,), generator=torch.Generator().manual_seed(1))
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(2))
    t0 = time.perf_counter()
    est = train(theta, x, sim, TrainingConfig(method="nle", device="cpu", seed=0,
                                              max_epochs=max_epochs))
    train_s = time.perf_counter() - t0
    obs = torch.stack([sim.observation(i) for i in range(1, n_obs + 1)])

    def sample_row(method: str, n: int) -> dict:
        est.config = dataclasses.replace(est.config, mcmc_method=method)
        est._posterior = None
        t0 = time.perf_counter()
        s = est.sample(n, obs, generator=torch.Generator().manual_seed(3))
        seconds = time.perf_counter() - t0
        scores = [c2st(s[:, i], sim.reference_samples(i + 1, n), seed=i) for i in range(n_obs)]
        return {"case": f"{task} NLE, {n_obs} obs x {n} samples", "sampler": method,
                "seconds": round(seconds, 2), "samples_per_s": round(n_obs * n / seconds, 1),
                "c2st_mean": round(sum(scores) / len(scores), 3),
                "c2st_max": round(max(scores), 3), "train_s": round(train_s, 1)}

    rows = [sample_row("ensemble", n_samples), sample_row("slice_np_vectorized", n_samples)]
    rows[0]["speedup_vs_sbi"] = round(rows[1]["seconds"] / rows[0]["seconds"], 1)
    if cell:
        rows.append(sample_row("ensemble", 10 * n_samples))
    return rows


def _plain_and_ours(est, xs: torch.Tensor) -> dict:
    """The plain network call and the sampler's, ``theta (W, n, D) -> (W, n)`` at ``xs``."""
    if est.method == "nle":
        return {"one call": lambda t: est._log_likelihood(t, xs),
                "split (the sampler's)": lambda t: est._log_likelihood_in_chunks(t, xs)}

    def per_row(t: torch.Tensor) -> torch.Tensor:
        flat = est.net(t.reshape(-1, t.shape[-1]), xs.repeat(t.shape[0], 1))
        return flat.reshape(t.shape[:2])

    return {"embedding per row (sbi)": per_row,
            "embedding once (the sampler's)":
                lambda t: est._log_likelihood_in_chunks(t, est._condition(xs))}


def _wide_data(rows: int) -> list[dict]:
    """Milliseconds per row of the network calls MCMC makes on ``xray_thermal``'s 444
    channels, the sampler's way against the plain one, on the same rows (speed does not
    depend on the weights: each network trains one epoch on 500 simulations):

    * NLE: the whole ``rows`` in one call, against calls of at most ``EVAL_VALUES`` data
      values;
    * NRE: sbi's ``RatioEstimator`` forward (the spectrum's CNN embedding once per row),
      against the embedding computed once per observation."""
    sim = load_simulator("xray_thermal", device="cpu")
    theta = sim.prior.sample((500,), generator=torch.Generator().manual_seed(1))
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(2))
    n = 8
    th = sim.prior.sample((rows // n, n), generator=torch.Generator().manual_seed(3))
    xs = x[:n]
    out = []
    for method in ("nle", "nre"):
        est = train(theta, x, sim, TrainingConfig(method=method, device="cpu", seed=0,
                                                  max_epochs=1))
        calls = _plain_and_ours(est, xs)
        got = {}
        with torch.no_grad():
            for name, call in calls.items():
                call(th[:64])  # warm
                t0 = time.perf_counter()
                got[name] = (call(th), time.perf_counter() - t0)
        (v0, s0), (v1, s1) = got.values()
        out += [{"case": f"xray_thermal {method.upper()} (444 channels), {rows} rows",
                 "call": name, "ms_per_row": round(1e3 * sec / rows, 3),
                 "max_abs_difference": float((v0 - v1).abs().max()),
                 "speedup": round(s0 / s1, 1)}
                for name, (_, sec) in got.items()]
    return out


def run(quick: bool = False) -> list[dict]:
    if quick:
        return _case("two_moons", 3000, 30, 2, 300, cell=False) + _wide_data(2048)
    # two_moons: posteriors about as wide as a tenth of the prior; Lotka-Volterra:
    # thousands of times narrower, where the start from adapted proposals matters
    return (_case("two_moons", 10_000, 200, 10, 1000, cell=True)
            + _case("lotka_volterra", 10_000, 50, 10, 1000, cell=True) + _wide_data(16_384))


if __name__ == "__main__":
    main_for(__name__, run)
