"""NPE with the CNN embedding on ``lensing_sie``: calibration and parameter recovery.

Runs the shipped study ``sbi_astro/studies/lensing_sie.yaml`` (simulate -> train ->
calibrate; outputs in ``benchmarks/results/lensing_npe/``) and then measures, on held-out
simulations that the calibration did not use, how well the parameters are recovered:
per parameter the coefficient of determination ``R^2`` of the posterior mean against the
truth, and the median posterior standard deviation relative to ``|truth|``; plus the
relative posterior width of the Einstein radius on one typical mock (every parameter at
the centre of its prior).

    python -m benchmarks lensing_npe [--quick]

``--quick`` is a smoke run (2,000 simulations, 3 epochs): its figures mean nothing.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from benchmarks._common import RESULTS, main_for

#: Every parameter at the centre of its prior (``amp``: the geometric mean of its
#: log-uniform range): a typical, neither easy nor hard, mock lens.
TYPICAL = {"theta_E": 1.2, "e1": 0.0, "e2": 0.0, "gamma1": 0.0, "gamma2": 0.0, "amp": 10.0,
           "R_sersic": 0.275, "n_sersic": 2.25, "e1_s": 0.0, "e2_s": 0.0, "x_s": 0.0,
           "y_s": 0.0}


def recovery(est, n: int = 200, num_samples: int = 1000, seed: int = 999) -> dict:
    """R^2 and median relative posterior std per parameter on ``n`` fresh simulations,
    and the relative std of ``theta_E`` on the typical mock."""
    from sbi_astro.campaign import simulate_rows

    sim = est.simulator
    theta, x = simulate_rows(sim, seed, 0, n)
    gen = torch.Generator().manual_seed(seed)
    s = est.sample(num_samples, x, generator=gen)
    mean, std = s.mean(0), s.std(0)
    r2 = 1 - ((mean - theta) ** 2).sum(0) / ((theta - theta.mean(0)) ** 2).sum(0)
    rel = (std / theta.abs()).median(0).values
    typical = torch.tensor([[TYPICAL[k] for k in sim.param_names]])
    x_t = sim.simulate(typical, generator=torch.Generator().manual_seed(seed))
    s_t = est.sample(num_samples, x_t, generator=gen)[:, 0, 0]
    return {"r2": dict(zip(sim.param_names, r2.tolist(), strict=True)),
            "relative_std_median": dict(zip(sim.param_names, rel.tolist(), strict=True)),
            "typical_theta_E_mean": float(s_t.mean()),
            "typical_theta_E_relative_std": float(s_t.std() / TYPICAL["theta_E"])}


def run(quick: bool = False) -> list[dict]:
    from sbi_astro.inference import load_run
    from sbi_astro.study import Study, run_study

    torch.set_num_threads(1)
    path = Path(__file__).resolve().parents[1] / "sbi_astro" / "studies" / "lensing_sie.yaml"
    study = Study.from_yaml(path)
    out = RESULTS / "lensing_npe"
    if quick:
        study = dataclasses.replace(
            study, simulate=dataclasses.replace(study.simulate, num_simulations=2000),
            train={**study.train, "max_epochs": 3},
            calibrate=dataclasses.replace(study.calibrate, n_test=50, num_samples=200))
        out = RESULTS / "lensing_npe_quick"
    t0 = time.perf_counter()
    res = run_study(study, output=out, progress=False)
    wall = time.perf_counter() - t0
    import json

    metrics = json.loads(Path(res["metrics"]).read_text())
    est = load_run(res["run"], device="cpu")
    rec = recovery(est, n=50 if quick else 200, num_samples=200 if quick else 1000)
    key = metrics["key_numbers"]
    t = est.metadata.get("training", {})
    rows = [{"case": "lensing_sie NPE (study)", "n_sim": study.simulate.num_simulations,
             "epochs": t.get("epochs"), "train_s": t.get("seconds"), "study_wall_s": wall,
             "verdict": res["verdict"], "tarp_atc": key["TARP ATC"],
             "tarp_ks_p": key["TARP KS p"],
             "theta_E_rel_std_median": rec["relative_std_median"]["theta_E"],
             "theta_E_rel_std_typical": rec["typical_theta_E_relative_std"],
             "report": res["report"]}]
    for name in est.simulator.param_names:
        rows.append({"case": f"  {name}", "r2": rec["r2"][name],
                     "rel_std_median": rec["relative_std_median"][name]})
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
