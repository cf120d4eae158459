"""Recurrent inference machines: training time and reconstructions per second.

Cases, each in the same run as its peer:

* ``toy-1d``: the 32-pixel Gaussian deconvolution of the tests (8 steps, GRU 128): one
  training epoch of 4,000 signals, and reconstructions per second next to the exact
  posterior mean (the Wiener filter, one matrix product: the floor any solver can reach).
* ``xray``: the 864-bin intrinsic spectrum from 444 channels of the Chandra 3C 273
  response (10 steps, GRU 256, log link, Poisson gradient): one training epoch of 1,000
  spectra, and reconstructions per second next to Richardson-Lucy with 20 iterations
  through the same response.
* ``lensing``: the source + convergence problem of ``benchmarks.rim_lensing_study`` (two
  32x32 maps from a 64x64 image; ConvGRU U-Net, hidden 16, 8 steps): one training epoch of
  400 map pairs, and reconstructions per second next to the regularised MAP of the same
  likelihood run for the study's 1,500 Adam steps (timed over 20 steps and scaled).

CPU, one thread (``torch.set_num_threads(1)``), as the machine is shared; on a GPU the rows
are repeated with ``device="cuda"`` when one is available.

    python -m benchmarks.bench_rim [--quick]
"""

from __future__ import annotations

import time

import torch

from benchmarks._common import main_for, timeit
from sbi_astro.random import RowRandom, fold, key_from_seed
from sbi_astro.solvers.rim import RIM, RIMConfig, TrainingConfig, fit, gaussian_log_likelihood


def _toy(quick: bool) -> list[dict]:
    n, sigma, num = 32, 0.3, 1000 if quick else 4000
    i = torch.arange(n, dtype=torch.float64)
    cov = torch.exp(-0.5 * (i[:, None] - i[None, :]) ** 2 / 9.0) + 1e-6 * torch.eye(n)
    blur = torch.exp(-0.5 * (i[:, None] - i[None, :]) ** 2 / 4.0)
    blur = (blur / blur.sum(1, keepdim=True)).float()
    signals = (torch.linalg.cholesky(cov) @ torch.randn(n, num, dtype=torch.float64,
                                                       generator=torch.Generator().manual_seed(0))).T.float()
    def forward(s):
        return s @ blur.T
    ll = gaussian_log_likelihood(forward, sigma)
    rim = RIM(RIMConfig(signal_shape=(n,), steps=8, hidden=128), device="cpu")
    summary = fit(rim, signals, ll, observe=lambda s, rng: forward(s) + sigma * rng.normal((n,)),
                  config=TrainingConfig(epochs=1, batch_size=64, lr=3e-3), log=None)
    noise = torch.randn(1000, n, generator=torch.Generator().manual_seed(1))
    y = forward(signals[:1000]) + sigma * noise
    wiener = (cov @ blur.double().T @ torch.linalg.inv(blur.double() @ cov @ blur.double().T
                                                       + sigma**2 * torch.eye(n))).float()
    t_rim = timeit(lambda: rim.reconstruct(y, ll), repeat=2)
    t_w = timeit(lambda: y @ wiener.T, repeat=5)
    return [{"case": "toy-1d", "code": "rim", "train_s_per_epoch": summary.seconds,
             "train_signals_per_s": 0.9 * num / summary.seconds,
             "reconstructions_per_s": 1000 / t_rim},
            {"case": "toy-1d", "code": "wiener", "reconstructions_per_s": 1000 / t_w,
             "rim_time_over_peer": t_rim / t_w}]


def _xray(quick: bool) -> list[dict]:
    from benchmarks._rim_xray import make_problem, richardson_lucy, sample_spectra

    problem, sims = make_problem()
    per = 100 if quick else 334
    truth, _ = sample_spectra(problem, sims, per, seed=0)
    rim = RIM(RIMConfig(signal_shape=(truth.shape[1],), steps=10, link="log", hidden=256,
                        gradient="rms"), device="cpu")
    summary = fit(rim, truth, problem.log_likelihood, observe=problem.observe,
                  config=TrainingConfig(epochs=1, batch_size=64), log=None)
    counts = problem.observe(truth, RowRandom(fold(key_from_seed(1),
                                                   torch.arange(truth.shape[0]))))
    t_rim = timeit(lambda: rim.reconstruct(counts, problem.log_likelihood, batch_size=256),
                   repeat=2)
    t_rl = timeit(lambda: richardson_lucy(problem, counts, [20]), repeat=2)
    m = truth.shape[0]
    return [{"case": "xray", "code": "rim", "train_s_per_epoch": summary.seconds,
             "train_signals_per_s": 0.9 * m / summary.seconds,
             "reconstructions_per_s": m / t_rim},
            {"case": "xray", "code": "richardson-lucy-20", "reconstructions_per_s": m / t_rl,
             "rim_time_over_peer": t_rim / t_rl}]


def _lensing(device: str, quick: bool) -> list[dict]:
    from sbi_astro.inverse_problems import get_inverse_problem

    problem = get_inverse_problem("lensing_maps", device=device)
    n = 64 if quick else 400
    maps = problem.sample_signals(n, seed=0).to(device)
    rim = RIM(RIMConfig(signal_shape=problem.signal_shape, steps=8, hidden=16,
                        link=problem.link, scale="channel"), device=device)
    summary = fit(rim, maps, problem.log_likelihood, observe=problem.observe,
                  config=TrainingConfig(epochs=1, batch_size=16, lr=2e-3), log=None)
    with torch.no_grad():
        images = problem.observe(maps, RowRandom(fold(key_from_seed(1),
                                                      torch.arange(n, device=device))))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    def rim_run():
        rim.reconstruct(images, problem.log_likelihood, batch_size=100)
        sync()
    steps = 20
    def map_run():
        problem.regularised_map(images[:100], rim.z_init, (10.0, 10.0), steps=steps)
        sync()
    t_rim = timeit(rim_run, repeat=2) / n
    t_step = timeit(map_run, repeat=2) / (min(n, 100) * steps)
    t_map = t_step * problem.map_steps
    return [{"case": "lensing", "code": f"rim {device}", "train_s_per_epoch": summary.seconds,
             "train_maps_per_s": 0.9 * n / summary.seconds,
             "reconstructions_per_s": 1.0 / t_rim},
            {"case": "lensing", "code": f"regularised-map-{problem.map_steps} {device}",
             "reconstructions_per_s": 1.0 / t_map, "rim_time_over_peer": t_rim / t_map}]


def run(quick: bool = False) -> list[dict]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        rows = _toy(quick) + _xray(quick) + _lensing("cpu", quick)
        if torch.cuda.is_available():
            rows += _lensing("cuda", quick)
        for r in rows:
            r["threads"] = 1
        rows.append({"case": "total", "seconds": time.perf_counter() - t0})
        return rows
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main_for(__name__, run)
