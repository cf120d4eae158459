"""Running a study: simulate -> train (stage by stage) -> analyses -> calibrate -> report.

Everything the study can check is checked before the output folder is created (the
:class:`~sbi_astro.pipeline.study.Study` is validated when built; the simulator is built
and the output folder checked first).  The simulator is built once and shared by the
campaign, the training stages, the analyses and the calibration.  A re-run resumes: the
store's committed chunks and every saved stage are reused.

Example:
    >>> import tempfile, pathlib
    >>> study = Study.from_dict({"simulator": {"name": "gaussian_linear",
    ...     "options": {"dim": 2}, "device": "cpu"}, "simulate": {"num_simulations": 500},
    ...     "train": {"max_epochs": 2}, "calibrate": {"n_test": 20, "num_samples": 50}})
    >>> res = run_study(study, output=pathlib.Path(tempfile.mkdtemp()) / "out",
    ...                 progress=False, log=lambda line: None)
    >>> sorted(res)
    ['metrics', 'report', 'run', 'store', 'verdict']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from ..analysis import Section, get_analysis
from ..campaign import run_campaign
from ..executor import ClusterSpec
from ..inference import TrainedEstimator, check_method, load_run
from ..inference.ensemble import mixture
from ..outputs import check_output_dir
from ..registry import load_simulator
from ..simulator import Simulator
from ..store_batches import fits_in_memory, row_bytes
from .calibration import calibrate_estimator
from .study import Study, analysis_options
from .training import train_run, train_store_run


def run_study(study: Study, *, output: str | Path | None = None, progress: bool = True,
              log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Runs a study; returns the paths of its store, run, report and metrics, and the verdict."""
    sim = load_simulator(study.simulator, device=study.device, prior=study.prior or None,
                         **study.options)
    for stage in study.stages:  # before any simulation
        check_method(sim, stage.config.method)
    out = check_output_dir(output if output is not None else study.output, kind="study",
                           overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "simulations.h5"
    log(f"[1/3] simulating {study.simulate.num_simulations} x {sim.name} -> {store_path}")
    cluster = study.cluster or ClusterSpec(workers=study.simulate.workers)
    with run_campaign(store_path, sim, num_simulations=study.simulate.num_simulations,
                      seed=study.simulate.seed, chunk_size=study.simulate.chunk_size,
                      cluster=cluster, progress=progress) as store:
        # a store that would not fit in memory is streamed to each stage from disk
        fits = fits_in_memory(store.metadata.num_simulations * row_bytes(store.metadata))
        theta, x = store.load() if fits else (None, None)
    run_dir = out / "run"
    if (run_dir / "run.json").exists():
        log(f"[2/3] reusing the trained estimator in {run_dir}")
        est = load_run(run_dir, device=study.device, simulator=sim)
    else:
        est = _train_stages(study, sim, theta, x, out, store_path, log)
    sections = run_analyses(est, study.analyses, out / "report", seed=study.calibrate.seed,
                            log=log)
    log("[3/3] calibrating")
    c = study.calibrate
    result = calibrate_estimator(est, out / "report", n_test=c.n_test,
                                 num_samples=c.num_samples, seed=c.seed, sections=sections,
                                 ppc_observations=c.ppc_observations, ppc_draws=c.ppc_draws,
                                 cluster=cluster, log=log)
    return {"store": str(store_path), "run": str(run_dir), "report": str(result.report_path),
            "metrics": str(result.metrics_path), "verdict": result.verdict}


def _train_stages(study: Study, sim: Simulator, theta: Tensor | None, x: Tensor | None,
                  out: Path, store_path: Path, log: Callable[[str], Any]) -> TrainedEstimator:
    """Trains (or reuses) every stage; the last one, or the snapshot mixture, is ``run/``
    (``theta``, ``x`` None: each stage streams its rows from the store)."""
    run_dir = out / "run"
    stages = study.stages
    trained, stage_dirs = [], []
    for k, stage in enumerate(stages):
        stage_dir = run_dir if len(stages) == 1 else out / "stages" / str(k)
        device = stage.config.device if stage.config.device is not None else study.device
        config = dataclasses.replace(stage.config, device=device, **(
            {"init_from": str(stage_dirs[-1])} if k else {}))
        label = "" if len(stages) == 1 else f" (stage {k + 1} of {len(stages)}" + (
            f", from stage {k}'s weights)" if k else ")")
        if (stage_dir / "run.json").exists():
            log(f"[2/3] reusing the estimator of stage {k + 1} in {stage_dir}")
            est = load_run(stage_dir, device=config.device, simulator=sim)
        else:
            n = stage.num_simulations
            log(f"[2/3] training {config.method.upper()} on {n} simulations{label}")
            provenance = {"store": str(store_path), "seed": study.simulate.seed,
                          "study": study.name, "stage": k}
            if theta is None:
                est = train_store_run(store_path, sim, config, stage_dir, num_rows=n,
                                      stream=True, provenance=provenance, log=log)
            else:
                est = train_run(theta[:n], x[:n], sim, config, stage_dir, log=log,
                                provenance=provenance)
            t = est.metadata["training"]
            log(f"      {t['epochs']} epochs in {t['seconds']:.1f} s -> {stage_dir}")
        stage_dirs.append(stage_dir)
        trained.append(est)
    if study.snapshot_ensemble:
        last = len(trained) if study.snapshot_ensemble is True else study.snapshot_ensemble
        est = mixture(trained[-last:], dataclasses.replace(trained[-1].config, init_from=None),
                      snapshot_ensemble=[str(d) for d in stage_dirs[-last:]])
        log(f"      the estimator is the mixture of the last {last} stages' flows")
    if len(stages) > 1:
        est.save(run_dir)
    return est


def run_analyses(est: TrainedEstimator, analyses: tuple[dict[str, Any], ...] | list[dict[str, Any]],
                 out_dir: str | Path, *, seed: int, log: Callable[[str], Any] = print
                 ) -> list[Section]:
    """Runs a study's (validated) ``analyses`` on a trained estimator; returns their sections."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for entry in analyses:
        log(f"      analysis '{entry['kind']}'")
        fn = get_analysis(entry["kind"])
        sections.append(fn(est, out_dir, seed=seed, log=log, **analysis_options(entry)))
    return sections
