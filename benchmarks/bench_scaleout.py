"""Scale-out benchmark: campaigns on a local Dask cluster against the local runner, the
executor's overhead per chunk, and the peak memory of streamed against in-memory training.

* **simulations/s** of ``run_campaign`` for ``gaussian_linear`` (cheap), ``lensing_sie``
  (64 x 64 images) and ``cluster_gravothermal`` (ODE trajectories, seconds per chunk): the
  local runner (this process, torch on one thread, as each worker) against a local Dask
  cluster of 1 and 2 worker processes, measured in the same run.  The cluster is started
  and its workers warmed (simulator built) before the timed campaign; the start-up is
  reported apart (``cluster_start_s``).
* **overhead per chunk**: ``gaussian_linear`` (dim 2) in chunks of 10 rows, so that the
  simulation is negligible: (Dask, 1 worker - local) / chunks, i.e. what a task costs on
  top of the local commit (submit, schedule, run, send the rows back).
* **peak RSS** (``ru_maxrss``) of a fresh process that trains one NPE epoch on a lensing
  store: in memory (``store.load()`` then ``train``) against streamed from disk
  (``train_from_store(stream=True)``); and the same for a learned solver, a U-Net score
  prior trained for 100 steps on the store's images (the images loaded into a tensor
  against :class:`~sbi_astro.store_batches.StoreBatches`).

The machine's cores are shared (see ``machine`` in the JSON): speed-ups under 2 with 2
workers on a 2-core machine shared with other work are expected.

    python -m benchmarks scaleout [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._common import main_for
from sbi_astro.campaign import run_campaign
from sbi_astro.registry import load_simulator

#: (simulator, rows, chunk size) of the quick and the full run
CASES = {True: [("gaussian_linear", 20_000, 2_000), ("lensing_sie", 256, 32),
                ("cluster_gravothermal", 32, 8)],
         False: [("gaussian_linear", 200_000, 10_000), ("lensing_sie", 2_048, 128),
                 ("cluster_gravothermal", 96, 16)]}

RSS_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from sbi_astro.campaign import store_simulator
from sbi_astro.inference import TrainingConfig, train, train_from_store
from sbi_astro.store import SimulationStore
path, mode = sys.argv[1], sys.argv[2]
config = TrainingConfig(max_epochs=1, device="cpu", seed=0)
with SimulationStore.open(path) as s:
    sim = store_simulator(s, device="cpu")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == "memory":
    with SimulationStore.open(path) as s:
        theta, x = s.load()
    est = train(theta, x, sim, config)
else:
    est = train_from_store(path, sim, config, stream=True)
print(json.dumps({"peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "start_rss_MB": before / 1024, "seconds": time.perf_counter() - t0,
                  "validation_loss": est.metadata["training"]["best_validation_loss"]}))
"""

SCORE_RSS_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from sbi_astro.solvers import ScoreModel, VPSDE, train_score_model
from sbi_astro.store import SimulationStore
from sbi_astro.store_batches import StoreBatches
path, mode = sys.argv[1], sys.argv[2]
model = ScoreModel(VPSDE(), {"kind": "unet", "in_channels": 1, "channels": [8, 16, 16]})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
if mode == "memory":
    with SimulationStore.open(path) as s:
        _, x = s.load()
    data = x[:, None].float()
    del x
else:
    data = StoreBatches(path, batch_size=32, validation_fraction=0.01, seed=0)
summary = train_score_model(model, data, steps=100, batch_size=32, device="cpu")
print(json.dumps({"peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "start_rss_MB": before / 1024, "seconds": time.perf_counter() - t0,
                  "final_loss": sum(summary["loss"][-20:]) / 20}))
"""


def _campaign_seconds(path: Path, sim, n: int, chunk: int, **where) -> float:
    t0 = time.perf_counter()
    run_campaign(path, sim, num_simulations=n, seed=1, chunk_size=chunk, progress=False,
                 **where).close()
    return time.perf_counter() - t0


def _rates(d: Path, name: str, n: int, chunk: int, options: dict | None = None) -> dict:
    from distributed import LocalCluster

    torch.set_num_threads(1)  # as each worker
    sim = load_simulator(name, device="cpu", **(options or {}))
    _campaign_seconds(d / f"{name}-warm.h5", sim, chunk, chunk)  # first-call costs
    row = {"case": name, "rows": n, "chunk": chunk,
           "local_sims_s": n / _campaign_seconds(d / f"{name}-local.h5", sim, n, chunk)}
    for workers in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster:
            start = time.perf_counter() - t0
            where = {"scheduler": cluster.scheduler_address}
            _campaign_seconds(d / f"{name}-warm{workers}.h5", sim, workers * chunk, chunk,
                              **where)  # builds the simulator on every worker
            seconds = _campaign_seconds(d / f"{name}-dask{workers}.h5", sim, n, chunk, **where)
        row[f"dask{workers}_sims_s"] = n / seconds
        row[f"cluster_start_s ({workers})"] = start
    row["speedup_2_workers"] = row["dask2_sims_s"] / row["local_sims_s"]
    return row


def _overhead(d: Path, quick: bool) -> dict:
    from distributed import LocalCluster

    chunks, chunk = (100, 10) if quick else (400, 10)
    n = chunks * chunk
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    _campaign_seconds(d / "o-warm.h5", sim, chunk, chunk)
    local = _campaign_seconds(d / "o-local.h5", sim, n, chunk)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        where = {"scheduler": cluster.scheduler_address}
        _campaign_seconds(d / "o-warm1.h5", sim, chunk, chunk, **where)
        dask = _campaign_seconds(d / "o-dask.h5", sim, n, chunk, **where)
    return {"case": "overhead (gaussian_linear dim 2, 10-row chunks)", "rows": n,
            "chunk": chunk, "local_ms_per_chunk": 1e3 * local / chunks,
            "dask1_ms_per_chunk": 1e3 * dask / chunks,
            "overhead_ms_per_chunk": 1e3 * (dask - local) / chunks}


def _rss(d: Path, quick: bool) -> list[dict]:
    n = 6_000 if quick else 12_000
    path = d / "lens-rss.h5"
    run_campaign(path, "lensing_sie", num_simulations=n, seed=2, chunk_size=250,
                 device="cpu", workers=2, progress=False).close()
    rows = []
    size = f"lensing_sie store ({n} rows, {path.stat().st_size / 2**20:.0f} MB)"
    for what, child in (("NPE 1 epoch", RSS_CHILD), ("score prior 100 steps", SCORE_RSS_CHILD)):
        for mode in ("memory", "streamed"):
            out = subprocess.run([sys.executable, "-c", child, str(path), mode],
                                 capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"case": f"{what}, {size}, {mode}", **res})
    return rows


def run(quick: bool = False) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for name, n, chunk in CASES[quick]:
            rows.append(_rates(d, name, n, chunk))
        rows.append(_overhead(d, quick))
        rows += _rss(d, quick)
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
