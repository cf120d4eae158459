"""RIM reconstruction of a lensed source and the lens's convergence map from one image.

Trains a recurrent inference machine (:mod:`sbi_astro.solvers.rim`, ConvGRU U-Net, links
``("identity", "log")``, one scale per channel) to recover a 32 x 32 source and a 32 x 32
convergence map together from a 64 x 64 noisy image with a known PSF (the plugin's
``lensing_maps`` inverse problem, :mod:`simulators.lensing.inverse`; Adam et al. 2023, ApJ
951, 6), then on held-out images:

* reduced chi^2 of the reconstruction's image (1 for a fit at the noise level);
* RMS errors of the source (relative to its peak) and of ``log kappa`` against the truth;
* the same for a regularised MAP of the same likelihood (smoothness of the source and of
  ``log kappa``, weights tuned on separate images), once with 10x the RIM's compute per
  reconstruction (its iterations set from measured times) and once run to convergence;
* times per reconstruction (one thread, batches of 100);
* per-observation fine-tuning of the RIM on a few images: what it gains.

Run: ``python -m benchmarks.rim_lensing_study`` (training and evaluation; ``--load DIR``
for the evaluation of a saved RIM only, ``--resume DIR --epochs N --lr LR --out DIR2`` to
train a saved RIM further, ``--quick`` for a smoke run).  Numbers go to ``--results``
(``benchmarks/results/rim_lensing_study.json``), the RIM to ``--out``
(``benchmarks/results/rim_lensing/``), a figure beside the numbers
(``rim_lensing_study_examples.png``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from benchmarks._common import RESULTS
from sbi_astro.inverse_problems import get_inverse_problem
from sbi_astro.random import RowRandom, fold, key_from_seed
from sbi_astro.solvers.rim import (
    RIM,
    RIMConfig,
    TrainingConfig,
    fine_tune,
    fit,
    load_rim,
    save_rim,
)

FINE_TUNE = {"iterations": 40, "lr": 1e-4}


def observe(problem, maps: torch.Tensor, seed: int) -> torch.Tensor:
    rows = torch.arange(maps.shape[0])
    with torch.no_grad():
        return problem.observe(maps, RowRandom(fold(key_from_seed(seed), rows)))


def summary(problem, est: torch.Tensor, truth: torch.Tensor, images: torch.Tensor) -> dict:
    err = problem.errors(est, truth)
    chi2 = problem.misfit(est, images)
    return {"reduced_chi2_mean": float(chi2.mean()), "reduced_chi2_median": float(chi2.median()),
            "source_rmse_over_peak": float(err["source"].mean()),
            "log_kappa_rmse": float(err["log_kappa"].mean())}


def train(problem, args) -> tuple[RIM, dict]:
    n = 256 if args.quick else args.num_train
    t0 = time.perf_counter()
    maps = problem.sample_signals(n, seed=0)
    simulate_s = time.perf_counter() - t0
    before = {"train_seconds": 0.0, "train_loss": [], "validation_loss": [], "epochs": 0}
    if args.resume is not None:  # continue training a saved RIM (new noise draws)
        rim, old = load_rim(args.resume, device="cpu")
        before = {k: old.get(k, before[k]) for k in before}
        before["epochs"] = before["epochs"] or len(before["train_loss"])
    else:
        rim = RIM(RIMConfig(signal_shape=problem.signal_shape, steps=args.steps,
                            hidden=args.hidden, link=problem.link, scale="channel", seed=0),
                  device="cpu")
    config = TrainingConfig(epochs=1 if args.quick else args.epochs, batch_size=16,
                            lr=args.lr, seed=before["epochs"])
    s = fit(rim, maps, problem.log_likelihood, observe=problem.observe, config=config,
            log=print)
    meta = {"num_train": n, "epochs": before["epochs"] + config.epochs,
            "train_seconds": before["train_seconds"] + s.seconds,
            "simulate_seconds": simulate_s,
            "train_loss": before["train_loss"] + s.train_loss,
            "validation_loss": before["validation_loss"] + s.validation_loss,
            "best_epoch": before["epochs"] + s.best_epoch}
    save_rim(rim, args.out, metadata=meta, overwrite=True)
    return rim, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load", type=Path, help="evaluate this saved RIM instead of training")
    ap.add_argument("--out", type=Path, default=RESULTS / "rim_lensing")
    ap.add_argument("--num-train", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--num-test", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--resume", type=Path, help="continue training this saved RIM")
    ap.add_argument("--results", type=Path, default=RESULTS / "rim_lensing_study.json")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    problem = get_inverse_problem("lensing_maps")
    if args.load:
        rim, meta = load_rim(args.load, device="cpu")
    else:
        rim, meta = train(problem, args)
    ll = problem.log_likelihood
    n_test = 8 if args.quick else args.num_test
    truth = problem.sample_signals(n_test, seed=1)
    images = observe(problem, truth, seed=1)  # the RIM study's held-out images

    t0 = time.perf_counter()
    est = rim.reconstruct(images, ll, batch_size=100)
    t_rim = (time.perf_counter() - t0) / n_test
    result = {"training": meta, "num_test": n_test, "rim": summary(problem, est, truth, images)}
    result["rim"]["seconds_per_reconstruction"] = t_rim

    # the regularised MAP, as the study's peer: weights tuned on 20 other images (seed 3),
    # from the priors' mean maps; then with 10x the RIM's compute, and run to convergence
    start = problem.mean_start()
    val_truth = problem.sample_signals(4 if args.quick else 20, seed=3)
    val_images = observe(problem, val_truth, seed=3)
    if args.quick:
        problem.map_steps = 100
    steps_conv = problem.map_steps
    best = problem.tune_map_weights(val_truth, val_images)
    t0 = time.perf_counter()
    problem.regularised_map(images[:20], start, best, steps=20)
    t_iter = (time.perf_counter() - t0) / (20 * 20)
    steps_10x = max(1, int(10 * t_rim / t_iter))
    t0 = time.perf_counter()
    m10 = problem.regularised_map(images, start, best, steps=steps_10x)
    t_m10 = (time.perf_counter() - t0) / n_test
    t0 = time.perf_counter()
    mconv = problem.regularised_map(images, start, best, steps=steps_conv)
    t_conv = (time.perf_counter() - t0) / n_test
    # does the MAP still move after map_steps?  The same for twice as many steps
    m2 = problem.regularised_map(images, start, best, steps=2 * steps_conv)
    result["map_twice_the_steps"] = summary(problem, m2, truth, images)
    result["map_weights"] = list(best)
    result["map_10x"] = {**summary(problem, m10, truth, images), "steps": steps_10x,
                         "seconds_per_reconstruction": t_m10}
    result["map_converged"] = {**summary(problem, mconv, truth, images), "steps": steps_conv,
                               "seconds_per_reconstruction": t_conv,
                               "time_over_rim": t_conv / t_rim}
    truth_fit = problem.misfit(truth, images)
    result["truth_reduced_chi2_mean"] = float(truth_fit.mean())

    # per-observation fine-tuning on the first few held-out images
    k = 2 if args.quick else 10
    tuned_est, seconds = [], 0.0
    for i in range(k):
        t0 = time.perf_counter()
        tuned, _ = fine_tune(rim, images[i:i + 1], ll, **FINE_TUNE)
        seconds += time.perf_counter() - t0
        tuned_est.append(tuned.reconstruct(images[i:i + 1], ll))
    tuned_est = torch.cat(tuned_est)
    result["fine_tuning"] = {"images": k, **FINE_TUNE, "seconds_per_image": seconds / k,
                             "before": summary(problem, est[:k], truth[:k], images[:k]),
                             "after": summary(problem, tuned_est, truth[:k], images[:k])}
    print(json.dumps(result, indent=1))
    if not args.quick:
        path = args.results
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
        figure(truth[:3], est[:3], mconv[:3], images[:3],
               path.with_name(path.stem + "_examples.png"))


def figure(truth, rim, mapc, images, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [("image", images, None), ("source: truth", truth, 0), ("RIM", rim, 0),
            ("MAP", mapc, 0), ("log10 kappa: truth", truth, 1), ("RIM", rim, 1),
            ("MAP", mapc, 1)]
    fig, axes = plt.subplots(truth.shape[0], len(cols), figsize=(2 * len(cols),
                                                                  2 * truth.shape[0]))
    for r in range(truth.shape[0]):
        for c, (title, x, ch) in enumerate(cols):
            if ch is None:
                arr, kw = x[r], {}
            elif ch == 0:
                arr, kw = x[r, 0], {"vmin": 0, "vmax": float(truth[r, 0].max())}
            else:
                arr = x[r, 1].clamp_min(1e-3).log10()
                kw = {"vmin": float(truth[r, 1].log10().min()),
                      "vmax": float(truth[r, 1].log10().max())}
            axes[r, c].imshow(arr.numpy(), origin="lower", **kw)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    tmp.replace(path)


if __name__ == "__main__":
    main()
