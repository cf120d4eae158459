"""Score models: training time and posterior samples per second per image (32x32, 64x64).

* Training: the default small U-Net (channels 16, 32, 64; 3 resolutions) on maps of
  correlated Gaussian noise (power-law spectrum), batch 16, VE SDE; seconds per optimiser
  step (forward + backward + Adam + EMA) and images per second.
* Sampling: deblurring one image (3x3 binomial blur, white noise 0.05) with the U-Net prior
  and the matrix-free convolved likelihood (CG, 20 iterations at most), ``S`` chains for one
  observation, predictor-only Euler-Maruyama: posterior samples per second per image for a
  1,000-step run (the rate scales as 1 / steps; the timing itself uses fewer steps).  At
  32 x 32 also the dense convolved likelihood (eigendecomposition of the 1024 x 1024 A A^T).
* The peer is the bare network: the ratio ``sampling / (steps x network forward)`` is the
  cost of the likelihood score and the counter-based noise on top of the prior.  (The
  ``score-models`` package of the papers' authors is not a dependency: its sampler draws
  from torch's global generator and its loader unpickles, see docs/solvers_score.md.)

CPU runs use one thread (``torch.set_num_threads(1)``); a CUDA device is benchmarked too
when available.  Run: ``python -m benchmarks score [--quick]``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks._common import main_for, timeit
from sbi_astro.solvers import (
    VESDE,
    GaussianLinearLikelihood,
    LinearOperatorLikelihood,
    ScoreModel,
    noise_sampler,
    power_law_noise,
    sample_posterior,
    train_score_model,
)

_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = _KERNEL.to(x)[None, None]
    return torch.nn.functional.conv2d(x, k, padding=1)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _model(dev: torch.device) -> ScoreModel:
    return ScoreModel(VESDE(0.01, 10.0), {"kind": "unet", "in_channels": 1,
                                          "channels": [16, 32, 64]}).to(dev)


def bench_training(n: int, dev: torch.device, steps: int) -> dict[str, Any]:
    model = _model(dev)
    data = noise_sampler(power_law_noise, (n, n), index=2.0)
    train_score_model(model, data, steps=2, batch_size=16, device=dev)  # warm-up
    _sync(dev)
    t0 = time.perf_counter()
    summary = train_score_model(model, data, steps=steps, batch_size=16, device=dev)
    _sync(dev)
    sec = (time.perf_counter() - t0) / steps
    return {"case": f"train U-Net {n}x{n} batch 16", "device": dev.type,
            "s_per_step": sec, "images_per_s": 16 / sec,
            "params": sum(p.numel() for p in model.net.parameters()),
            "final_loss": summary["loss"][-1]}


def bench_sampling(n: int, dev: torch.device, chains: int, steps: int,
                   dense: bool) -> dict[str, Any]:
    model = _model(dev).eval()
    g = torch.Generator().manual_seed(0)
    x = power_law_noise((n, n), 1, index=2.0, generator=g)[:, None]
    y = (_blur(x) + 0.05 * torch.randn(x.shape, generator=g)).to(dev)
    if dense:
        eye = torch.eye(n * n).reshape(n * n, 1, n, n)
        A = _blur(eye).reshape(n * n, n * n).T
        lik = GaussianLinearLikelihood(A, 0.05, obs_shape=(1, n, n))
        name = "dense"
    else:
        lik = LinearOperatorLikelihood(_blur, 0.05, (1, n, n), adjoint=_blur, cg_iters=20,
                                       cg_tol=1e-3)
        name = "CG"

    def run() -> None:
        sample_posterior(model, lik, y[0], num_samples=chains, steps=steps, corrector_steps=0,
                         event_shape=(1, n, n), seed=0, device=dev)
        _sync(dev)

    sec = timeit(run, repeat=2, warmup=1)
    xs = torch.randn(chains, 1, n, n, device=dev)
    ts = torch.full((chains,), 0.5, device=dev)

    def net() -> None:
        with torch.no_grad():
            model.score(ts, xs)
        _sync(dev)

    net_sec = timeit(net, repeat=5, warmup=1)
    per_1000 = sec * 1000 / steps
    return {"case": f"sample {n}x{n} {name} likelihood, {chains} chains", "device": dev.type,
            "steps_timed": steps, "samples_per_s_1000_steps": chains / per_1000,
            "s_per_step": sec / steps, "peer": "network forward", "peer_s": net_sec,
            "ratio_to_network": sec / steps / net_sec}


def run(quick: bool = False) -> list[dict[str, Any]]:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available()
                                       else [])
    threads = torch.get_num_threads()
    rows = []
    try:
        for dev in devices:
            if dev.type == "cpu":
                torch.set_num_threads(1)
            for n in (32, 64):
                rows.append(bench_training(n, dev, steps=5 if quick else 20))
                chains = 8 if dev.type == "cpu" else 256
                for dense in ((False, True) if n == 32 else (False,)):
                    rows.append(bench_sampling(n, dev, chains, 5 if quick else 20, dense))
            torch.set_num_threads(threads)
    finally:
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
