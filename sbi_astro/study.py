"""Studies: a whole simulate -> train -> calibrate pipeline from one validated YAML file.

Schema (every key optional except ``simulator.name``; unknown keys are errors)::

    name: demo
    simulator: {name: gaussian_linear, options: {dim: 10}, device: null}
    simulate: {num_simulations: 10000, seed: 1, chunk_size: 1000, workers: 1}
    train: {method: npe, flow: nsf, ...}          # any TrainingConfig field
    fine_tune: [{learning_rate: 1.0e-4}]            # further stages, each from the last weights
    snapshot_ensemble: false                        # true / N: mix every / the last N stages
    calibrate: {n_test: 200, num_samples: 1000, seed: 2, ppc_observations: 50, ppc_draws: 100}
    analyses: [{kind: observed, num_samples: 5000}] # extra report sections (sbi_astro.analyses)
    output: study-output                            # relative to the working directory

The YAML is read with ``yaml.safe_load``.  Outputs land in ``output/``:
``simulations.h5`` (resumable), ``run/`` (trained estimator), ``report/`` (calibration).

``fine_tune`` (optional) lists further training stages on the same simulations: each is a
mapping of ``train`` options that override the previous stage's, and starts from the
previous stage's weights (``init_from``), e.g. a lower learning rate once the first stage
has hit ``max_epochs``.  ``train`` and each stage may also set ``num_simulations``: that
stage trains on the first ``num_simulations`` rows of the store (default: all of
``simulate.num_simulations``; later stages inherit it like any option), e.g. a first stage
on 100,000 simulations and a last one on 300,000 once the network overfits the first set.
Rows are counter-seeded, so the first ``N`` rows are the same whatever the store's size.

Stage ``k`` is saved in ``stages/k/`` (``stages/0`` is ``train``) and the last one is also
``run/``; a re-run reuses every stage already saved.  With ``snapshot_ensemble: true`` (NPE)
``run/`` is instead the equal-weight mixture of every stage's flow, and with
``snapshot_ensemble: N`` of the last ``N`` stages' (an ensemble stage gives each of its
members; :class:`~sbi_astro.inference.ensemble.NPEEnsemble`): a snapshot ensemble (Huang
et al. 2017, ICLR), fits of one network at different points of its training, whose
disagreement widens the posterior where they differ.
"""

from __future__ import annotations

import dataclasses
import inspect
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .random import check_seed


def _check_keys(section: str, values: Any, allowed: set[str]) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"study section '{section}' must be a mapping, got {type(values).__name__}")
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in study section '{section}'; "
                          f"allowed: {sorted(allowed)}")
    return dict(values)


@dataclasses.dataclass(frozen=True)
class SimulateSection:
    num_simulations: int = 10_000
    seed: int = 0
    chunk_size: int = 1000
    workers: int = 1


@dataclasses.dataclass(frozen=True)
class CalibrateSection:
    n_test: int = 200
    num_samples: int = 1000
    seed: int = 12345
    ppc_observations: int = 50  # observations in the posterior predictive check
    ppc_draws: int = 100  # re-simulations per observation there (expensive simulators: fewer)


@dataclasses.dataclass(frozen=True)
class Study:
    """A validated study configuration."""

    name: str
    simulator: str
    options: dict[str, Any]
    device: str | None
    simulate: SimulateSection
    train: dict[str, Any]
    calibrate: CalibrateSection
    output: Path
    analyses: tuple[dict[str, Any], ...] = ()
    fine_tune: tuple[dict[str, Any], ...] = ()
    snapshot_ensemble: bool | int = False  # int: the last N stages

    def training_stages(self) -> list[dict[str, Any]]:
        """The ``train`` mapping of every stage: ``train``, then each ``fine_tune`` entry
        applied over the stage before it (``init_from`` is set when the study runs).
        Each may hold the study key ``num_simulations`` (see :func:`stage_simulations`)."""
        stages = [dict(self.train)]
        for overrides in self.fine_tune:
            stages.append({**stages[-1], **overrides})
        return stages

    def stage_simulations(self, stage: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``(N, training options)`` of a stage: it trains on the first ``N`` simulations."""
        return (int(stage.get(STAGE_KEY, self.simulate.num_simulations)),
                training_options(stage))

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "study") -> Study:
        top = _check_keys(source, doc, {"name", "simulator", "simulate", "train", "fine_tune",
                                        "snapshot_ensemble", "calibrate", "analyses", "output"})
        sim = top.get("simulator")
        if isinstance(sim, str):
            sim = {"name": sim}
        sim = _check_keys("simulator", sim, {"name", "options", "device"})
        if not isinstance(sim.get("name"), str) or not sim["name"].strip():
            raise ConfigError(f"{source}: 'simulator.name' is required, a registered name "
                              "(see `sbi-astro simulators`)")
        if not isinstance(sim.get("options") or {}, dict):
            raise ConfigError(f"{source}: 'simulator.options' must be a mapping of option: "
                              f"value, e.g. {{dim: 10}}, got {sim['options']!r}")
        if sim.get("device") is not None and not isinstance(sim["device"], str):
            raise ConfigError(f"{source}: 'simulator.device' must be cpu, cuda or null, got "
                              f"{sim['device']!r}")
        if "output" in top and (not isinstance(top["output"], str) or not top["output"].strip()):
            raise ConfigError(f"{source}: 'output' must be a folder path, got "
                              f"{top['output']!r}")
        try:
            simulate = SimulateSection(**_check_keys(
                "simulate", top.get("simulate"), {f.name for f in
                                                  dataclasses.fields(SimulateSection)}))
            calibrate = CalibrateSection(**_check_keys(
                "calibrate", top.get("calibrate"), {f.name for f in
                                                    dataclasses.fields(CalibrateSection)}))
        except TypeError as err:
            raise ConfigError(f"{source}: {err}") from err
        for label, section in (("simulate", simulate), ("calibrate", calibrate)):
            for f in dataclasses.fields(section):
                value = getattr(section, f.name)
                if f.name == "seed":
                    check_seed(value, f"{source}: '{label}.seed'")
                elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ConfigError(f"{source}: '{label}.{f.name}' must be a positive integer, "
                                      f"got {value!r}")
        train = top.get("train") or {}
        if not isinstance(train, dict):
            raise ConfigError(f"{source}: 'train' must be a mapping")
        from .inference.config import TrainingConfig

        _check_stage_simulations(train, simulate.num_simulations, f"{source}: train")
        # validate now, before any simulation runs
        try:
            first = TrainingConfig.from_dict(training_options(train))
        except ConfigError as err:
            raise ConfigError(f"{source}: train: {err}") from None
        if first.init_from is not None:
            from .inference import initial_state

            initial_state(first.init_from)
        fine_tune = _check_fine_tune(top.get("fine_tune"), train, source,
                                     simulate.num_simulations)
        snapshot = top.get("snapshot_ensemble", False)
        stages = 1 + len(fine_tune)
        if not isinstance(snapshot, bool) and not (
                isinstance(snapshot, int) and 2 <= snapshot <= stages):
            raise ConfigError(f"{source}: 'snapshot_ensemble' must be true or false, or the "
                              f"number of last stages to mix (2 to {stages}), got "
                              f"{snapshot!r}")
        if snapshot and (not fine_tune or train.get("method", "npe") != "npe"):
            raise ConfigError(f"{source}: 'snapshot_ensemble: true' mixes the NPE flows of the "
                              "training stages; it needs method: npe and at least one "
                              "'fine_tune' stage")
        analyses = _check_analyses(top.get("analyses"), source)
        return cls(name=str(top.get("name", "study")), simulator=str(sim["name"]),
                   options=dict(sim.get("options") or {}), device=sim.get("device"),
                   simulate=simulate, train=dict(train), calibrate=calibrate,
                   output=Path(top.get("output", "study-output")), analyses=analyses,
                   fine_tune=fine_tune, snapshot_ensemble=snapshot)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Study:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"study file {path} does not exist")
        if path.is_dir():
            raise ConfigError(f"{path} is a folder; give the study's YAML file")
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not a text file (not UTF-8); give the study's YAML "
                              "file") from None
        return cls.from_dict(doc, source=str(path))


#: The study key of a training stage that is not a training option: how many of the store's
#: simulations (its first rows) the stage trains on.
STAGE_KEY = "num_simulations"


def training_options(stage: dict[str, Any]) -> dict[str, Any]:
    """A stage's mapping without the study key ``num_simulations``: its training options."""
    return {k: v for k, v in stage.items() if k != STAGE_KEY}


def _check_stage_simulations(stage: dict[str, Any], total: int, where: str) -> None:
    if STAGE_KEY not in stage:
        return
    n = stage[STAGE_KEY]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= total:
        raise ConfigError(f"{where}: num_simulations must be an integer from 1 to "
                          f"simulate.num_simulations ({total}), got {n!r}; raise "
                          "simulate.num_simulations to train on more")


def _check_fine_tune(value: Any, train: dict[str, Any], source: str, total: int
                     ) -> tuple[dict[str, Any], ...]:
    from .inference.config import TrainingConfig

    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{source}: 'fine_tune' must be a list of mappings of training "
                          "options, e.g. [{learning_rate: 1.0e-4, max_epochs: 40}]")
    stage = dict(train)
    for i, overrides in enumerate(value):
        if "init_from" in overrides:
            raise ConfigError(f"{source}: fine_tune[{i}] sets init_from; a fine-tuning stage "
                              "always starts from the previous stage's weights, remove it")
        _check_stage_simulations(overrides, total, f"{source}: fine_tune[{i}]")
        stage = {**stage, **overrides}
        try:
            # every stage warm-starts from the previous one: the same architecture
            TrainingConfig.from_dict({**training_options(stage), "init_from": "previous stage"})
        except ConfigError as err:
            raise ConfigError(f"{source}: fine_tune[{i}]: {err}") from err
    return tuple(dict(v) for v in value)


def _check_analyses(value: Any, source: str) -> tuple[dict[str, Any], ...]:
    from .analyses import get_analysis

    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{source}: 'analyses' must be a list of mappings with a 'kind', e.g. "
                          "[{kind: observed}]")
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or "kind" not in entry:
            raise ConfigError(f"{source}: analyses[{i}] must be a mapping with a 'kind' key, "
                              f"got {entry!r}")
        # unknown kinds and options fail here, before any simulation runs
        fn = get_analysis(str(entry["kind"]))
        options = {k: v for k, v in entry.items() if k != "kind"}
        try:
            inspect.signature(fn).bind(None, None, seed=0, log=print, **options)
        except TypeError as err:
            raise ConfigError(f"{source}: analyses[{i}] ({entry['kind']}): bad options "
                              f"{sorted(options)}: {err}") from err
        out.append(dict(entry))
    return tuple(out)


def demo_study_path() -> Path:
    """The embedded default study run by ``make demo`` / ``sbi-astro demo``."""
    return Path(str(resources.files("sbi_astro") / "studies" / "demo.yaml"))


def run_study(study: Study, *, output: str | Path | None = None, progress: bool = True,
              log=print) -> dict[str, Any]:
    """Runs simulate -> train -> calibrate -> report; returns paths and key metrics."""
    from .campaign import run_campaign
    from .inference import TrainingConfig, load_run, train
    from .inference.ensemble import mixture
    from .registry import load_simulator

    from .outputs import check_output_dir

    # everything that can be checked is checked before the output folder is created
    sim = load_simulator(study.simulator, device=study.device, **study.options)
    out = check_output_dir(output if output is not None else study.output, kind="study",
                           overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "simulations.h5"
    log(f"[1/3] simulating {study.simulate.num_simulations} x {sim.name} -> {store_path}")
    store = run_campaign(store_path, sim, num_simulations=study.simulate.num_simulations,
                         seed=study.simulate.seed, chunk_size=study.simulate.chunk_size,
                         workers=study.simulate.workers, progress=progress)
    try:
        theta, x = store.load()
    finally:
        store.close()
    run_dir = out / "run"
    stages = study.training_stages()
    if (run_dir / "run.json").exists():
        log(f"[2/3] reusing the trained estimator in {run_dir}")
        est = load_run(run_dir, device=study.device)
    else:
        trained, stage_dirs = [], []
        for k, stage in enumerate(stages):
            n_sim, stage = study.stage_simulations(stage)
            stage_dir = run_dir if len(stages) == 1 else out / "stages" / str(k)
            config = TrainingConfig.from_dict({"device": study.device, **stage, **(
                {"init_from": str(stage_dirs[-1])} if k else {})})
            label = "" if len(stages) == 1 else f" (stage {k + 1} of {len(stages)}" + (
                f", from stage {k}'s weights)" if k else ")")
            if (stage_dir / "run.json").exists():
                log(f"[2/3] reusing the estimator of stage {k + 1} in {stage_dir}")
                est = load_run(stage_dir, device=config.device)
            else:
                log(f"[2/3] training {config.method.upper()} on {n_sim} "
                    f"simulations{label}")
                est = train(theta[:n_sim], x[:n_sim], sim, config, on_epoch=epoch_logger(log),
                            provenance={"store": str(store_path), "seed": study.simulate.seed,
                                        "study": study.name, "stage": k})
                est.save(stage_dir)
                t = est.metadata["training"]
                log(f"      {t['epochs']} epochs in {t['seconds']:.1f} s -> {stage_dir}")
            stage_dirs.append(stage_dir)
            trained.append(est)
        if study.snapshot_ensemble:
            last = len(trained) if study.snapshot_ensemble is True else study.snapshot_ensemble
            est = mixture(trained[-last:], dataclasses.replace(trained[-1].config,
                                                                init_from=None),
                          snapshot_ensemble=[str(d) for d in stage_dirs[-last:]])
            log(f"      the estimator is the mixture of the last {last} stages' flows")
        if len(stages) > 1:
            est.save(run_dir)
    sections = run_analyses(est, study.analyses, out / "report", seed=study.calibrate.seed,
                            log=log)
    log("[3/3] calibrating")
    result = calibrate_estimator(est, out / "report", n_test=study.calibrate.n_test,
                                 num_samples=study.calibrate.num_samples,
                                 seed=study.calibrate.seed, sections=sections,
                                 ppc_observations=study.calibrate.ppc_observations,
                                 ppc_draws=study.calibrate.ppc_draws)
    return {"store": str(store_path), "run": str(run_dir), "report": str(result.report_path),
            "metrics": str(result.metrics_path), "verdict": result.verdict}


def epoch_logger(log):
    """An ``on_epoch`` callback for :func:`sbi_astro.inference.train` that writes one line per
    epoch with ``log``."""

    def on_epoch(e: dict[str, Any]) -> None:
        member = f"member {e['member'] + 1}, " if "member" in e else ""
        log(f"      {member}epoch {e['epoch']}: training loss {e['training_loss']:.4f}, "
            f"validation loss {e['validation_loss']:.4f}, learning rate "
            f"{e['learning_rate']:.3g}, {e['seconds']:.1f} s")
    return on_epoch


def run_analyses(est: Any, analyses: tuple[dict[str, Any], ...] | list[dict[str, Any]],
                 out_dir: str | Path, *, seed: int, log=print) -> list[Any]:
    """Runs the study ``analyses`` on a trained estimator; returns their report sections."""
    from .analyses import get_analysis

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for entry in analyses:
        options = {k: v for k, v in entry.items() if k != "kind"}
        fn = get_analysis(str(entry["kind"]))
        try:
            inspect.signature(fn).bind(est, out_dir, seed=seed, log=log, **options)
        except TypeError as err:
            raise ConfigError(f"analysis '{entry['kind']}': bad options {sorted(options)}: "
                              f"{err}") from err
        log(f"      analysis '{entry['kind']}'")
        sections.append(fn(est, out_dir, seed=seed, log=log, **options))
    return sections


def calibrate_estimator(est: Any, out_dir: str | Path, *, n_test: int = 200,
                        num_samples: int = 1000, seed: int = 12345,
                        sections: list[Any] | tuple[Any, ...] = (),
                        ppc_observations: int = 50, ppc_draws: int = 100) -> Any:
    """Writes the calibration report of a trained estimator (see :mod:`sbi_astro.report`)."""
    from .report import calibrate

    provenance = {
        "simulator": est.simulator.name,
        "options": est.simulator.options_dict(),
        "method": est.method,
        **{k: v for k, v in est.metadata.items() if k != "training"},
        "training": {k: v for k, v in est.metadata.get("training", {}).items()
                     if k in ("epochs", "seconds", "device", "best_validation_loss")},
        "config": est.config.to_dict(),
    }
    return calibrate(est, est.simulator, Path(out_dir), n_test=n_test, num_samples=num_samples,
                     seed=seed, provenance=provenance, device=est.device, sections=sections,
                     ppc_observations=ppc_observations, ppc_draws=ppc_draws)
