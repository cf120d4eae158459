"""``sbi-astro``: the command line, a thin layer over the Python API.

Bad input (unknown simulator, bad option, missing file, wrong observation shape, NaN,
an output path that cannot be written) exits with status 2 and a one-paragraph message,
without a traceback, checked before any simulation or training starts; existing files are
left intact (outputs are written atomically, see :mod:`sbi_astro.atomic`).  Exit codes:
0 success, 1 ``verify`` found damage it did not repair (or an internal error, whose
traceback goes to a log file named in the message), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SbiAstroError
from .args import _atomic_save_npy, _load_observation, _parse_pairs, _seed

EXIT_USAGE = 2
EXIT_DAMAGED = 1
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


# -- commands -----------------------------------------------------------------------------
def cmd_simulators(args: argparse.Namespace) -> int:
    from ..registry import list_simulators, load_simulator

    rows = []
    for name in list_simulators():
        try:
            rows.append(load_simulator(name, device="cpu").describe())
        except SbiAstroError as err:
            rows.append({"name": name, "error": str(err)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        if "error" in r:
            print(f"{r['name']}: unavailable ({r['error']})")
            continue
        extras = [k for k in ("likelihood", "reference_posterior") if r[k]]
        print(f"{r['name']}  x: {tuple(r['event_shape'])}" +
              (f"  [{', '.join(extras)}]" if extras else ""))
        for p in r["parameters"]:
            unit = f" [{p['unit']}]" if p["unit"] else ""
            if p["kind"] == "normal":
                bounds = f"normal(loc={p['loc']:g}, scale={p['scale']:g})"
            else:
                bounds = f"{p['kind']}[{p['lower']:g}, {p['upper']:g}]"
            print(f"    {p['name']}{unit}: {bounds}")
        if r["options"]:
            print("    options: " + ", ".join(f"{k}={v}" for k, v in r["options"].items()))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import yaml

    from ..campaign import check_store_path, run_campaign
    from ..registry import load_simulator

    check_store_path(args.output)
    prior = _parse_pairs(args.prior, "--prior", yaml.safe_load) or None
    sim = load_simulator(args.name, device=args.device, prior=prior,
                         **_parse_pairs(args.option, "--option"))
    store = run_campaign(args.output, sim, num_simulations=args.num, seed=args.seed,
                         chunk_size=args.chunk_size, cluster=_cluster(args),
                         progress=not args.no_progress)
    print(f"{store.num_completed} simulations of {args.name} in {store.path}")
    store.close()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import yaml

    from ..campaign import store_simulator
    from ..inference import TrainingConfig, initial_state
    from ..outputs import check_output_dir
    from ..pipeline.training import train_store_run
    from ..store import SimulationStore

    run_dir = check_output_dir(args.output, kind="run", overwrite=args.overwrite)
    values = _parse_pairs(args.set, "--set", yaml.safe_load)
    values.update(method=args.method)
    if args.device is not None:
        values["device"] = args.device
    if args.seed is not None:
        values["seed"] = args.seed
    config = TrainingConfig.from_dict(values)
    if config.init_from is not None:
        initial_state(config.init_from)  # its prior is checked against the store's in train()
    with SimulationStore.open(args.store) as store:
        meta = store.metadata
        sim = store_simulator(store, device=config.device)
    est = train_store_run(args.store, sim, config, run_dir, stream=args.stream,
                          provenance={"store": str(Path(args.store).resolve()),
                                      "seed": meta.seed},
                          log=lambda line: print(line.strip(), file=sys.stderr))
    t = est.metadata["training"]
    how = ", streamed from disk" if t.get("streamed") else ""
    print(f"trained {config.method.upper()} on {est.metadata['num_simulations']} simulations "
          f"({t['epochs']} epochs, {t['seconds']:.1f} s{how}) -> {run_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from ..inference import load_run
    from ..outputs import check_output_file

    out = check_output_file(args.output, overwrite=args.overwrite)
    est = load_run(args.run_dir, device=args.device)
    x = _load_observation(Path(args.observation), est.simulator)
    gen = torch.Generator().manual_seed(args.seed)
    samples = est.sample(args.num, x, generator=gen)
    _atomic_save_npy(out, samples.cpu().numpy())
    print(f"{tuple(samples.shape)} posterior samples -> {out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..inference import load_run
    from ..outputs import check_output_dir
    from ..pipeline.calibration import calibrate_estimator

    check_output_dir(args.output, kind="report", overwrite=args.overwrite)
    cluster = _cluster(args)
    cluster.check()
    est = load_run(args.run_dir, device=args.device)
    result = calibrate_estimator(est, args.output, n_test=args.n_test,
                                 num_samples=args.num_samples, seed=args.seed, cluster=cluster,
                                 log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"verdict: {result.verdict}")
    print(f"report: {result.report_path}")
    print(f"metrics: {result.metrics_path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ..campaign import repair_store
    from ..store import SimulationStore

    with SimulationStore.open(args.store) as store:
        m = store.metadata
        bad = store.verify()
        print(f"{store.path}: {m.simulator}, {store.num_completed} of {m.num_simulations} "
              f"rows committed in {len(store.completed_chunks())} of {store.num_chunks} "
              "chunks; metadata checksum OK")
        for c in bad:
            a, b = store.chunk_bounds(c)
            print(f"damaged: chunk {c} (rows {a}-{b - 1})")
    if not bad:
        print("every committed chunk matches its checksum")
        return 0
    if not args.repair:
        print(f"{len(bad)} damaged chunk(s); re-run with --repair to re-simulate them from "
              "their seeds", file=sys.stderr)
        return EXIT_DAMAGED
    result = repair_store(args.store, device=args.device, cluster=_cluster(args),
                          progress=not args.no_progress)
    for c, restored in result.items():
        print(f"repaired: chunk {c} " + ("(re-simulated rows match the original checksum: "
                                         "restored bit for bit)" if restored else
                                         "(re-simulated, but the rows differ from the "
                                         "original checksum: a different simulator version "
                                         "or device?)"))
    return 0 if all(result.values()) else EXIT_DAMAGED


def cmd_run(args: argparse.Namespace) -> int:
    from ..pipeline import (
        RimStudy,
        ScoreStudy,
        Study,
        is_rim_study,
        is_score_study,
        run_rim_study,
        run_score_study,
        run_study,
    )
    from ..pipeline.study import read_study_yaml

    doc = read_study_yaml(args.study)
    if isinstance(doc, dict) and "solver" in doc and doc["solver"] not in ("score", "rim"):
        raise ConfigError(f"{args.study}: 'solver' must be 'score' (a score-prior study) or "
                          f"'rim' (a RIM study), or left out (an inference study); got "
                          f"{doc['solver']!r}")
    if is_rim_study(doc):
        res = run_rim_study(RimStudy.from_yaml(args.study), output=args.output)
        for group, m in res["groups"].items():
            print(f"{group}: " + ", ".join(f"{k} {v:.3g}" for k, v in m.items()
                                          if k.startswith(("rim_", "truth_"))))
        print(f"report: {res['report']}")
        return 0
    if is_score_study(args.study):
        res = run_score_study(ScoreStudy.from_yaml(args.study), output=args.output,
                              progress=not args.no_progress)
        print(f"posterior-mean RMS error {res['rmse']:.4g}; pixel z std {res['z_std']:.3f}; "
              f"TARP KS p {res['tarp_ks_pvalue']:.3g}")
        print(f"report: {res['report']}")
        return 0
    study = Study.from_yaml(args.study)
    res = run_study(study, output=args.output, progress=not args.no_progress)
    print(f"verdict: {res['verdict']}")
    print(f"report: {res['report']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..pipeline import Study, demo_study_path, run_study

    study = Study.from_yaml(demo_study_path())
    res = run_study(study, output=args.output, progress=not args.no_progress)
    print(f"verdict: {res['verdict']}")
    print(f"report: {Path(res['report']).resolve()}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    import yaml

    from ..outputs import check_output_dir
    from ..pipeline.benchmark import check_overrides, collect_benchmark, expand, run_benchmark

    if args.collect is not None:
        given = [f for f, v in (("--suite", args.suite), ("--tasks", args.tasks),
                                ("--methods", args.methods), ("--budgets", args.budgets),
                                ("--set", args.set), ("--device", args.device),
                                ("--no-sbibm-c2st", args.no_sbibm_c2st),
                                ("--c2st-jobs", args.c2st_jobs is not None),
                                ("--workers", args.workers != 1),
                                ("--scheduler", args.scheduler), ("--cluster", args.cluster),
                                ("--jobs", args.jobs != 1),
                                ("--cluster-config", args.cluster_config)) if v]
        if given:
            raise ConfigError(f"--collect runs nothing, so {' and '.join(given)} would do "
                              "nothing; leave them out")
        check_output_dir(args.output, kind="benchmark", overwrite=True)
        collect_benchmark(args.collect, args.output)
        return 0
    overrides = check_overrides(_parse_pairs(args.set, "--set", yaml.safe_load))
    if args.tasks or args.methods or args.budgets:  # checked before any work
        expand(args.tasks or ["two_moons"], args.methods or ["npe"], args.budgets or [1000])
    jobs = args.c2st_jobs if args.c2st_jobs is not None else min(5, os.cpu_count() or 1)
    if jobs < 1:
        raise ConfigError(f"--c2st-jobs must be at least 1, got {jobs}")
    cluster = _cluster(args)
    cluster.check()
    check_output_dir(args.output, kind="benchmark", overwrite=True)  # resumes what is there
    run_benchmark(args.output, suite=args.suite or "quick", tasks=args.tasks, methods=args.methods,
                  budgets=args.budgets, device=args.device or "cpu", cluster=cluster,
                  train_overrides=overrides, sbibm_c2st=not args.no_sbibm_c2st,
                  c2st_jobs=jobs)
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (the usage is one ``--help`` away)."""

    def error(self, message: str):  # noqa: ANN201 - argparse's signature
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _simulation_flags(s: argparse.ArgumentParser) -> None:
    """Where and how a command simulates: ``--device``, the cluster flags, ``--no-progress``."""
    s.add_argument("--device", default=None)
    _cluster_flags(s)
    s.add_argument("--no-progress", action="store_true")


def _cluster_flags(s: argparse.ArgumentParser) -> None:
    """Where a command's simulations run: ``--workers`` (a local Dask cluster) or a running
    or batch-system cluster (``--scheduler``, ``--cluster``, ``--jobs``, ``--cluster-config``)."""
    s.add_argument("--workers", type=int, default=1,
                   help="worker processes of a local Dask cluster (1: no Dask)")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="simulate on a running Dask cluster: tcp://HOST:PORT or a scheduler "
                        "file")
    s.add_argument("--cluster", choices=["slurm", "pbs", "local"], default=None,
                   help="simulate on batch jobs (dask-jobqueue); 'local' runs the same jobs "
                        "as local processes")
    s.add_argument("--jobs", type=int, default=1, help="batch jobs to submit (--cluster)")
    s.add_argument("--cluster-config", default=None, metavar="FILE.yaml",
                   help="dask-jobqueue settings per batch system (see docs/scale_out.md)")


def _cluster(args: argparse.Namespace) -> Any:
    """The :class:`~sbi_astro.executor.ClusterSpec` of the simulation flags."""
    from ..executor import ClusterSpec

    return ClusterSpec(workers=args.workers, scheduler=args.scheduler, kind=args.cluster,
                       jobs=args.jobs, config=args.cluster_config)


def _study_parsers(sub: Any) -> None:
    """``run``, ``benchmark`` and ``demo``: the commands that run whole pipelines."""
    s = sub.add_parser("run", help="run a whole study from a YAML file")
    s.add_argument("study")
    s.add_argument("-o", "--output", default=None, help="output directory (overrides YAML)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_run, interrupted="study stopped; completed simulation chunks and "
                   "trained stages are kept: re-run the same command to resume")

    s = sub.add_parser("benchmark", help="accuracy benchmark: C2ST against reference "
                       "posteriors, beside sbibm's published numbers (docs/benchmark.md)")
    s.add_argument("--suite", default=None, choices=["quick", "full", "astro"],
                   help="which cells to run (default: quick)")
    s.add_argument("--tasks", nargs="+", default=None)
    s.add_argument("--methods", nargs="+", default=None)
    s.add_argument("--budgets", nargs="+", type=int, default=None)
    s.add_argument("--device", default=None)
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training option for every cell beyond the defaults (see "
                        "TrainingConfig), e.g. --set ensemble=2; rows are named by it")
    s.add_argument("--collect", nargs="+", default=None, metavar="FOLDER",
                   help="run nothing: write the table, figure and page of the finished "
                        "cells of these benchmark folders into -o")
    s.add_argument("--no-sbibm-c2st", action="store_true",
                   help="score with the project's C2ST classifier only, not also with "
                        "sbibm's scikit-learn one (minutes per observation of 10,000 samples)")
    s.add_argument("--c2st-jobs", type=int, default=None, metavar="N",
                   help="processes fitting the 5 folds of sbibm's classifier at once (the "
                        "scores do not change; default: the available cores, at most 5)")
    _cluster_flags(s)
    s.add_argument("-o", "--output", default="benchmark-output")
    s.set_defaults(fn=cmd_benchmark, interrupted="benchmark stopped; finished cells are kept: "
                   "re-run the same command to run only the missing ones")

    s = sub.add_parser("demo", help="the embedded default study (gaussian_linear, NPE)")
    s.add_argument("-o", "--output", default="demo-output")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_demo, interrupted="demo stopped; re-run to resume")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sbi-astro", description="Simulation-based inference for "
                                "astrophysics.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("simulators", help="list simulators, parameters, units and prior bounds")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_simulators)

    s = sub.add_parser("simulate", help="run (or resume) a simulation campaign into a store")
    s.add_argument("name")
    s.add_argument("-n", "--num", type=int, required=True, help="number of simulations")
    s.add_argument("-o", "--output", required=True, help="HDF5 store path")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--chunk-size", type=int, default=1000)
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--prior", action="append", default=[], metavar="PARAM=SPEC",
                   help="your prior for a parameter, SPEC a YAML mapping, e.g. "
                        "'nH={kind: truncnormal, loc: 0.05, scale: 0.01, lower: 0}'")
    _simulation_flags(s)
    s.set_defaults(fn=cmd_simulate, interrupted="stopped; completed chunks are kept in the "
                   "store: re-run the same command to resume")

    s = sub.add_parser("train", help="train NPE, NLE or NRE on a store")
    s.add_argument("store")
    s.add_argument("--method", choices=["npe", "nle", "nre"], default="npe")
    s.add_argument("-o", "--output", required=True, help="run directory")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training option (see TrainingConfig), e.g. --set max_epochs=50")
    s.add_argument("--seed", type=_seed, default=None)
    s.add_argument("--device", default=None)
    s.add_argument("--overwrite", action="store_true", help="replace a run already there")
    s.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="stream batches from the store instead of loading it (default: "
                        "when it would not fit in memory)")
    s.set_defaults(fn=cmd_train, interrupted="training stopped; nothing was written (an "
                   "existing run there is unchanged)")

    s = sub.add_parser("sample", help="draw posterior samples for an observation")
    s.add_argument("run_dir")
    s.add_argument("--observation", required=True, help=".npy, .json, .csv or text file")
    s.add_argument("-n", "--num", type=int, default=1000)
    s.add_argument("-o", "--output", required=True, help="output .npy, shape (n, *B, D)")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_sample, interrupted="sampling stopped; nothing was written")

    s = sub.add_parser("calibrate", help="calibration report (HTML + JSON) of a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n-test", type=int, default=200)
    s.add_argument("--num-samples", type=int, default=1000)
    s.add_argument("--seed", type=_seed, default=12345)
    s.add_argument("-o", "--output", required=True, help="report directory")
    s.add_argument("--device", default=None)
    _cluster_flags(s)
    s.add_argument("--overwrite", action="store_true", help="replace a report already there")
    s.set_defaults(fn=cmd_calibrate, interrupted="calibration stopped; an existing report "
                   "there is unchanged")

    s = sub.add_parser("verify", help="check a store's rows against their checksums "
                       "(--repair: re-simulate damaged chunks from their seeds)")
    s.add_argument("store")
    s.add_argument("--repair", action="store_true")
    _simulation_flags(s)
    s.set_defaults(fn=cmd_verify, interrupted="stopped; the store is consistent (re-run "
                   "verify --repair to finish)")

    _study_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("num", "chunk_size", "workers", "jobs", "n_test", "num_samples"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"sbi-astro: error: --{name.replace('_', '-')} must be >= 1, got {value}",
                  file=sys.stderr)
            return EXIT_USAGE
    try:
        return args.fn(args)
    except (SbiAstroError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
            PermissionError) as err:
        msg = " ".join(str(err).split())
        print(f"sbi-astro: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"sbi-astro: interrupted; {getattr(args, 'interrupted', 'stopped')}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as err:  # a full disk, a vanished mount...: the system's words suffice
        print(f"sbi-astro: error: {err.strerror or err} ({getattr(err, 'filename', '')})",
              file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - a bug: one line here, the traceback in a log
        return _internal_error(err)


def _internal_error(err: Exception) -> int:
    if os.environ.get("SBI_ASTRO_DEBUG"):
        raise err
    fd, log = tempfile.mkstemp(prefix="sbi-astro-crash-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        traceback.print_exception(err, file=f)
    first = (str(err).splitlines() or [""])[0][:300]
    print(f"sbi-astro: internal error ({type(err).__name__}: {first}); this is a bug in "
          f"sbi-astro, please report it with the traceback saved in {log} (set "
          "SBI_ASTRO_DEBUG=1 to print it)", file=sys.stderr)
    return EXIT_INTERNAL
