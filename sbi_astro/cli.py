"""``sbi-astro``: the command line, a thin layer over the Python API.

Bad input (unknown simulator, bad option, missing file, wrong observation shape, NaN)
exits with status 2 and a one-paragraph message, without a traceback, and leaves
existing files intact (outputs are written to a temporary name and renamed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, SbiAstroError

EXIT_USAGE = 2


def _parse_pairs(pairs: list[str], flag: str, convert: Any = str) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict; ``convert`` maps each value (e.g. YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = convert(value)
    return out


def _load_observation(path: Path, sim: Any) -> Any:
    import numpy as np
    import torch

    if not path.exists():
        raise FileNotFoundError(f"observation file {path} does not exist")
    try:
        if path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix == ".json":
            arr = np.asarray(json.loads(path.read_text()), dtype=np.float64)
        else:
            arr = np.loadtxt(path, dtype=np.float64, delimiter="," if path.suffix == ".csv"
                             else None)
    except (ValueError, OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read observation {path}: {err}. Use .npy, .json, .csv or "
                          "whitespace-separated text") from err
    x = torch.as_tensor(np.asarray(arr, dtype=np.float32))
    if tuple(x.shape) == (int(np.prod(sim.event_shape)),) and len(sim.event_shape) > 1:
        x = x.reshape(sim.event_shape)
    return sim.check_x(x)


def _atomic_save_npy(path: Path, array: Any) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


# -- commands -----------------------------------------------------------------------------
def cmd_simulators(args: argparse.Namespace) -> int:
    from .registry import list_simulators, load_simulator

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
    from .campaign import run_campaign

    store = run_campaign(args.output, args.name, num_simulations=args.num, seed=args.seed,
                         chunk_size=args.chunk_size, options=_parse_pairs(args.option, "--option"),
                         device=args.device, workers=args.workers,
                         progress=not args.no_progress)
    print(f"{store.num_completed} simulations of {args.name} in {store.path}")
    store.close()
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .inference import TrainingConfig, train
    from .registry import load_simulator
    from .store import SimulationStore

    run_dir = Path(args.output)
    if (run_dir / "run.json").exists() and not args.overwrite:
        raise ConfigError(f"{run_dir} already holds a trained run; choose another -o or pass "
                          "--overwrite")
    import yaml

    values = _parse_pairs(args.set, "--set", yaml.safe_load)
    values.update(method=args.method)
    if args.device is not None:
        values["device"] = args.device
    if args.seed is not None:
        values["seed"] = args.seed
    config = TrainingConfig.from_dict(values)
    with SimulationStore.open(args.store) as store:
        theta, x = store.load()
        meta = store.metadata
    sim = load_simulator(meta.simulator, device=config.device, **meta.options)
    from .study import epoch_logger

    est = train(theta, x, sim, config, provenance={"store": str(Path(args.store).resolve()),
                                                   "seed": meta.seed},
                on_epoch=epoch_logger(lambda line: print(line.strip(), file=sys.stderr)))
    tmp = run_dir.with_name(run_dir.name + ".tmp")
    est.save(tmp)
    run_dir.mkdir(parents=True, exist_ok=True)
    for f in ("estimator.pt", "run.json"):
        os.replace(tmp / f, run_dir / f)
    tmp.rmdir()
    t = est.metadata["training"]
    print(f"trained {config.method.upper()} on {theta.shape[0]} simulations "
          f"({t['epochs']} epochs, {t['seconds']:.1f} s) -> {run_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import torch

    from .inference import load_run

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} exists; choose another -o or pass --overwrite")
    est = load_run(args.run_dir, device=args.device)
    x = _load_observation(Path(args.observation), est.simulator)
    gen = torch.Generator().manual_seed(args.seed)
    samples = est.sample(args.num, x, generator=gen)
    _atomic_save_npy(out, samples.cpu().numpy())
    print(f"{tuple(samples.shape)} posterior samples -> {out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .inference import load_run
    from .study import calibrate_estimator

    est = load_run(args.run_dir, device=args.device)
    result = calibrate_estimator(est, args.output, n_test=args.n_test,
                                 num_samples=args.num_samples, seed=args.seed)
    print(f"verdict: {result.verdict}")
    print(f"report: {result.report_path}")
    print(f"metrics: {result.metrics_path}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .study import Study, run_study

    study = Study.from_yaml(args.study)
    res = run_study(study, output=args.output, progress=not args.no_progress)
    print(f"verdict: {res['verdict']}")
    print(f"report: {res['report']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .study import Study, demo_study_path, run_study

    study = Study.from_yaml(demo_study_path())
    res = run_study(study, output=args.output, progress=not args.no_progress)
    print(f"verdict: {res['verdict']}")
    print(f"report: {Path(res['report']).resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sbi-astro", description="Simulation-based inference for "
                                "astrophysics.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulators", help="list simulators, parameters, units and prior bounds")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_simulators)

    s = sub.add_parser("simulate", help="run (or resume) a simulation campaign into a store")
    s.add_argument("name")
    s.add_argument("-n", "--num", type=int, required=True, help="number of simulations")
    s.add_argument("-o", "--output", required=True, help="HDF5 store path")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--chunk-size", type=int, default=1000)
    s.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--device", default=None)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_simulate)

    s = sub.add_parser("train", help="train NPE, NLE or NRE on a store")
    s.add_argument("store")
    s.add_argument("--method", choices=["npe", "nle", "nre"], default="npe")
    s.add_argument("-o", "--output", required=True, help="run directory")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="training option (see TrainingConfig), e.g. --set max_epochs=50")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--device", default=None)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_train)

    s = sub.add_parser("sample", help="draw posterior samples for an observation")
    s.add_argument("run_dir")
    s.add_argument("--observation", required=True, help=".npy, .json, .csv or text file")
    s.add_argument("-n", "--num", type=int, default=1000)
    s.add_argument("-o", "--output", required=True, help="output .npy, shape (n, *B, D)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default=None)
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(fn=cmd_sample)

    s = sub.add_parser("calibrate", help="calibration report (HTML + JSON) of a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n-test", type=int, default=200)
    s.add_argument("--num-samples", type=int, default=1000)
    s.add_argument("--seed", type=int, default=12345)
    s.add_argument("-o", "--output", required=True, help="report directory")
    s.add_argument("--device", default=None)
    s.set_defaults(fn=cmd_calibrate)

    s = sub.add_parser("run", help="run a whole study from a YAML file")
    s.add_argument("study")
    s.add_argument("-o", "--output", default=None, help="output directory (overrides YAML)")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("demo", help="the embedded default study (gaussian_linear, NPE)")
    s.add_argument("-o", "--output", default="demo-output")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("num", "chunk_size", "workers", "n_test", "num_samples"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            print(f"sbi-astro: error: --{name.replace('_', '-')} must be >= 1, got {value}",
                  file=sys.stderr)
            return EXIT_USAGE
    try:
        return args.fn(args)
    except (SbiAstroError, FileNotFoundError, IsADirectoryError, PermissionError) as err:
        msg = " ".join(str(err).split())
        print(f"sbi-astro: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sbi-astro: interrupted; completed chunks are kept, re-run the same command to "
              "resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
