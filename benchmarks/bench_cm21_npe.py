"""NPE on 21 cm lightcones: power-spectrum summaries vs a 3-D CNN, beside 21cmPIE-Net.

Runs (or reuses) the two shipped studies, ``sbi_astro/studies/cm21_power_spectrum.yaml`` and
``sbi_astro/studies/cm21_cnn.yaml`` (same simulator, campaign seed and training set; only the
summary differs), then scores both posteriors on one set of held-out simulations: R^2 of the
posterior mean against the truth per parameter, the median posterior standard deviation, and
the TARP expected-coverage test and verdict of each study's calibration report.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_cm21_npe [--quick]

A study whose output folder (``runs/cm21_*`` under the working directory) already holds a
trained run and a report is reused, not re-run: run the studies with ``sbi-astro run`` first
to time them separately.  ``--quick`` runs scaled-down copies (300 simulations, 3 epochs) in a
temporary folder: a smoke test of the path, not a measurement.

Reference: Neutsch et al. (2022, arXiv:2201.07587), 21cmPIE-Net, a 3-D CNN on 21cmFAST
lightcones, report R^2 = 0.98 (zeta), 0.78 (T_vir) and 0.99 (L_X) on their test set (figures
as quoted in the cm21 issue).  Their third parameter is the X-ray luminosity L_X of a model
with spin-temperature fluctuations; ours is the mean free path R_mfp of a model without them,
and their lightcones (140^2 x 2350 cells of 1.4 Mpc, many more simulations) are far larger
than the ones that fit this study's CPU budget.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from benchmarks._common import main_for
from sbi_astro.campaign import simulate_rows
from sbi_astro.diagnostics.recovery import parameter_recovery
from sbi_astro.inference import load_run
from sbi_astro.pipeline import Study, run_study

ROOT = Path(__file__).resolve().parent.parent
STUDIES = {"power spectrum + x_HI (MLP)": ROOT / "sbi_astro/studies/cm21_power_spectrum.yaml",
           "lightcone (3-D CNN)": ROOT / "sbi_astro/studies/cm21_cnn.yaml"}
#: 21cmPIE-Net (Neutsch et al. 2022), R^2 on held-out lightcones; L_X stands where R_mfp is.
PUBLISHED_R2 = {"zeta": 0.98, "log10_Tvir": 0.78, "third (their L_X, our R_mfp)": 0.99}
HELD_OUT_SEED = 20_221  # campaign seed of the held-out set (the studies train on seed 1)


def score(run_dir: Path, n_test: int, num_samples: int) -> dict:
    """R^2 and posterior widths of a trained run on the shared held-out simulations."""
    est = load_run(run_dir, device="cpu")
    sim = est.simulator
    theta, x = simulate_rows(sim, HELD_OUT_SEED, 0, n_test)
    with torch.no_grad():
        s = est.sample(num_samples, x, generator=torch.Generator().manual_seed(0))
    rec = parameter_recovery(s, theta)
    prior_std = (sim.prior.high - sim.prior.low) / 12**0.5
    out = {}
    for k, name in enumerate(sim.param_names):
        out[f"r2_{name}"] = rec.r2[k].item()
        # median posterior std in units of the prior's std (1: nothing learnt)
        out[f"std/prior_{name}"] = (rec.posterior_std_median[k] / prior_std[k]).item()
    return out


def _quick_study(path: Path, out: Path) -> Study:
    s = Study.from_yaml(path)
    return dataclasses.replace(
        s, simulate=dataclasses.replace(s.simulate, num_simulations=300, chunk_size=150),
        train={**s.train, "max_epochs": 3},
        calibrate=dataclasses.replace(s.calibrate, n_test=20, num_samples=100,
                                      ppc_observations=2, ppc_draws=10),
        output=out)


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory() if quick else None
    n_test, num_samples = (20, 100) if quick else (200, 1000)
    rows = []
    for label, path in STUDIES.items():
        study = Study.from_yaml(path)
        if tmp is not None:
            study = _quick_study(path, Path(tmp.name) / path.stem)
        out = study.output
        metrics_path = out / "report" / "metrics.json"
        wall = None
        if not ((out / "run" / "run.json").exists() and metrics_path.exists()):
            print(f"running study {path.name} -> {out}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            run_study(study, progress=False, log=lambda m: print(m, file=sys.stderr))
            wall = time.perf_counter() - t0
        metrics = json.loads(metrics_path.read_text())
        run_meta = json.loads((out / "run" / "run.json").read_text())
        training = run_meta.get("metadata", run_meta).get("training", {})
        row = {"case": label, "n_train": study.simulate.num_simulations,
               "epochs": training.get("epochs"), "train_s": training.get("seconds"),
               "study_wall_s": wall}
        row.update(score(out / "run", n_test, num_samples))
        key = metrics["key_numbers"]
        row.update({"tarp_atc": key["TARP ATC"], "tarp_ks_p": key["TARP KS p"],
                    "verdict": metrics["verdict"]["label"]})
        # the report's own recovery figures (its n_test held-out simulations), where the
        # report was written by a version that has them
        for p in metrics["parameters"]:
            if "r2" in p:
                row[f"report_r2_{p['name']}"] = p["r2"]
        rows.append(row)
        print(row, file=sys.stderr, flush=True)
    names = ("zeta", "log10_Tvir", "R_mfp")
    rows.append({"case": "21cmPIE-Net (Neutsch+2022, published; 3rd = L_X)",
                 **{f"r2_{n}": v for n, v in zip(names, PUBLISHED_R2.values(), strict=True)}})
    if tmp is not None:
        tmp.cleanup()
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
