"""Benchmark of the star-cluster gas model and the lag-embedding topology diagnostics.

Rows:
* ``gas_model``: seconds per post-collapse trajectory with the ``science`` settings
  (60 shells, steps <= 30 central relaxation times), one row alone and a batch of rows run
  together (rows step in lockstep, so a batch costs its slowest row's step count times the
  per-step cost of the batch); ``cycles`` counts gravothermal cycles (central-density
  swings > 0.3 dex) in the window and ``s_per_10_cycles`` scales to 10 cycles.
* ``prior_batch``: seconds per row of a batch drawn from the prior with the NPE settings of
  ``sbi_astro/studies/cluster_dynamics.yaml`` (``fast`` preset, 15-40 t_rh(0)); rows take
  very different numbers of steps, and Newton iterations run only on rows still iterating,
  so a batch costs the sum of its rows' work rather than its slowest row's.
* ``ripser``: persistence of a 5,000-point delay embedding of the Lorenz attractor with
  1,000 greedy landmarks (our numpy farthest-point sampling, and ripser's own ``n_perm``),
  against full Rips complexes of smaller clouds.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks cluster [--quick]`` (writes ``results/cluster.json``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks._common import main_for
from simulators.cluster.oscillations import count_peaks




def _gas_rows(quick: bool) -> list[dict]:
    from simulators.cluster.solver import SolverSettings, evolve

    settings = SolverSettings(n_shells=60, target_change=0.08, dt_trc=30.0, dt_max=0.2,
                              max_steps=40000)
    t_end = 24.0 if quick else 45.0
    times = torch.linspace(0.0, t_end, int(10 * t_end) + 1, dtype=torch.float64)
    rows = []
    for batch in ((1, 2) if quick else (1, 4)):
        n = torch.full((batch,), 1e5, dtype=torch.float64)
        noise = torch.zeros(batch, settings.max_steps, dtype=torch.float64)
        t0 = time.perf_counter()
        obs, steps, _ = evolve(n, torch.ones(batch, dtype=torch.float64),
                               torch.zeros(batch, dtype=torch.float64), noise, times, settings)
        sec = time.perf_counter() - t0
        post = times.numpy() > 20.0
        cycles = count_peaks(obs[0, 0].numpy()[post])
        rows.append({"case": "gas_model", "N": 1e5, "batch": batch, "t_end_trh": t_end,
                     "steps": int(steps.max()), "seconds": sec,
                     "s_per_trajectory": sec / batch, "cycles": cycles,
                     "s_per_10_cycles": 10 * sec / batch / max(cycles, 1)})
    return rows


def _prior_rows(quick: bool) -> list[dict]:
    from sbi_astro import load_simulator

    sim = load_simulator("cluster_gravothermal", device="cpu", preset="fast", t_start=15.0,
                         t_end=40.0, n_times=128)
    rows = []
    for batch in ((16,) if quick else (16, 128)):
        gen = torch.Generator().manual_seed(batch)
        theta = sim.prior.sample((batch,), generator=gen)
        t0 = time.perf_counter()
        sim.simulate(theta, generator=gen)
        sec = time.perf_counter() - t0
        rows.append({"case": "prior_batch", "batch": batch, "seconds": sec,
                     "s_per_trajectory": sec / batch})
    return rows


def _lorenz(n: int, dt: float = 0.01) -> np.ndarray:
    from scipy.integrate import solve_ivp

    def rhs(_t, s):
        x, y, z = s
        return [10 * (y - x), x * (28 - z) - y, x * y - 8 / 3 * z]

    t = 10 + dt * np.arange(n)
    return solve_ivp(rhs, (0, t[-1]), [1, 1, 1], t_eval=t, rtol=1e-9, atol=1e-9).y[0]


def _ripser_rows(quick: bool) -> list[dict]:
    from ripser import ripser

    from sbi_astro.diagnostics.topology import delay_embed, landmarks, persistence_diagrams

    x = _lorenz(5000 + 2 * 17)
    x = (x - x.mean()) / x.std()
    cloud = delay_embed(x, 3, 17)[:5000]
    rows = []

    def timed(case: str, n_points: int, fn) -> None:
        t0 = time.perf_counter()
        dgms = fn()
        sec = time.perf_counter() - t0
        life = dgms[1][:, 1] - dgms[1][:, 0]
        rows.append({"case": case, "n_points": n_points, "seconds": sec,
                     "longest_H1": float(life.max()) if life.size else 0.0})

    n_perm = 500 if quick else 1000
    timed(f"ripser_fps_landmarks_{n_perm}", 5000,
          lambda: persistence_diagrams(cloud, maxdim=1, n_perm=n_perm))
    timed(f"ripser_nperm_{n_perm}", 5000,
          lambda: ripser(cloud, maxdim=1, n_perm=n_perm)["dgms"])
    for n in ((500, 1000) if quick else (1000, 2000)):
        sub = cloud[landmarks(cloud, n)]
        timed("ripser_full", n, lambda sub=sub: ripser(sub, maxdim=1)["dgms"])
    return rows


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    return _ripser_rows(quick) + _prior_rows(quick) + _gas_rows(quick)


if __name__ == "__main__":
    main_for(__name__, run)
