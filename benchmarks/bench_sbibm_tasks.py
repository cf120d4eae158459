"""Benchmark of the sbibm task plugins: simulation throughput, and the two ODE tasks against
scipy.

Rows:
* ``simulate``: simulations per second of each task on a batch of prior draws (one
  ``simulate`` call, one CPU thread).
* ``ode_vs_scipy``: SIR and Lotka-Volterra noise-free trajectories for the same prior draws
  from our batched DOPRI5 (``simulators/sbibm/_ode.py``, log-populations, tolerance 1e-9)
  and from the peer a Python user without sbibm's Julia stack would reach for,
  ``scipy.integrate.solve_ivp`` (``DOP853``, the same method family, ``rtol = 1e-10`` and a
  tiny ``atol``, i.e. comparable accuracy, one call per row); ``speedup`` is scipy's time
  over ours, ``max_log_diff`` the largest ``|log u_ours - log u_scipy|`` over the rows
  (values above 1e-12 for SIR's ``I/N``, 1e-6 for the populations).  At sbibm's own
  tolerances (1e-8, linear populations) scipy's solvers miss the exact solution by 0.01 to
  10 in ``log`` on ~0.5 % of prior draws, those whose populations dip below ~1e-8.

Run: ``OMP_NUM_THREADS=1 python -m benchmarks sbibm_tasks [--quick]`` (writes
``results/sbibm_tasks.json``).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks._common import main_for

TASKS = ("gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "two_moons", "slcp",
         "slcp_distractors", "bernoulli_glm", "bernoulli_glm_raw", "sir", "lotka_volterra")


def _simulate_rows(quick: bool) -> list[dict]:
    from sbi_astro import load_simulator

    rows = []
    for name in TASKS:
        sim = load_simulator(name, device="cpu")
        n = 1000 if quick or name in ("sir", "lotka_volterra") else 10_000
        theta = sim.prior.sample((n,), generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        sim.simulate(theta, generator=torch.Generator().manual_seed(1))
        sec = time.perf_counter() - t0
        rows.append({"case": "simulate", "task": name, "batch": n, "seconds": sec,
                     "sims_per_s": n / sec})
    return rows


def _scipy_sir(theta: np.ndarray) -> np.ndarray:
    from scipy.integrate import solve_ivp

    b, g = theta

    def f(t, u):
        s, i = u
        return [-b * s * i, b * s * i - g * i]

    sol = solve_ivp(f, (0, 160), [1 - 1e-6, 1e-6], method="DOP853", rtol=1e-10, atol=1e-16,
                    t_eval=17.0 * np.arange(10))
    return sol.y[1]


def _scipy_lv(theta: np.ndarray) -> np.ndarray:
    from scipy.integrate import solve_ivp

    a, b, c, d = theta

    def f(t, u):
        return [a * u[0] - b * u[0] * u[1], -c * u[1] + d * u[0] * u[1]]

    sol = solve_ivp(f, (0, 20.0), [30.0, 1.0], method="DOP853", rtol=1e-10, atol=1e-14,
                    t_eval=2.1 * np.arange(10))
    return sol.y.reshape(-1)


def _ode_rows(quick: bool) -> list[dict]:
    from sbi_astro import load_simulator
    from simulators.sbibm.lotka_volterra import populations
    from simulators.sbibm.sir import infected_fraction

    rows = []
    n = 200 if quick else 1000
    for name, ours, peer, floor in (("sir", infected_fraction, _scipy_sir, 1e-12),
                                    ("lotka_volterra", populations, _scipy_lv, 1e-6)):
        theta = load_simulator(name, device="cpu").prior.sample(
            (n,), generator=torch.Generator().manual_seed(2)).double()
        t0 = time.perf_counter()
        u = ours(theta).numpy()
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = np.stack([peer(th) for th in theta.numpy()])
        t_peer = time.perf_counter() - t0
        ok = (ref > floor) & (u > floor)
        diff = np.abs(np.log(u[ok]) - np.log(ref[ok])).max()
        rows.append({"case": "ode_vs_scipy", "task": name, "batch": n, "seconds": t_ours,
                     "peer_seconds": t_peer, "speedup": t_peer / t_ours,
                     "max_log_diff": float(diff)})
    return rows


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    return _simulate_rows(quick) + _ode_rows(quick)


if __name__ == "__main__":
    main_for(__name__, run)
