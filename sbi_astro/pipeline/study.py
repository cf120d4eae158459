"""Studies: a whole simulate -> train -> calibrate pipeline from one validated YAML file.

Schema (every key optional except ``simulator.name``; unknown keys are errors)::

    name: demo
    simulator: {name: gaussian_linear, options: {dim: 10}, device: null}
    prior: {theta_0: {kind: normal, loc: 0.1, scale: 0.2}}   # your own prior for any parameter
    simulate: {num_simulations: 10000, seed: 1, chunk_size: 1000, workers: 1}
    cluster: {workers: 4}                           # or {scheduler: tcp://host:8786}, or
                                                    # {kind: slurm, jobs: 10, config: hpc.yaml}
                                                    # (files relative to the YAML)
    train: {method: npe, flow: nsf, ...}          # any TrainingConfig field
    fine_tune: [{learning_rate: 1.0e-4}]            # further stages, each from the last weights
    snapshot_ensemble: false                        # true / N: mix every / the last N stages
    calibrate: {n_test: 200, num_samples: 1000, seed: 2, ppc_observations: 50, ppc_draws: 100}
    analyses: [{kind: observed, num_samples: 5000}] # extra report sections (sbi_astro.analysis)
    output: study-output                            # relative to the working directory

The YAML is read with ``yaml.safe_load`` and validated once, when the :class:`Study` is built
(every section, every stage's training options, every analysis's options, ``init_from``),
before anything runs.  :func:`~sbi_astro.pipeline.runner.run_study` runs it; outputs land
in ``output/``: ``simulations.h5`` (resumable), ``run/`` (trained estimator), ``report/``
(calibration).

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
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..analysis import check_analysis_options
from ..errors import ConfigError, SbiAstroError
from ..executor import ClusterSpec
from ..inference import TrainingConfig, initial_state
from ..options import file_options
from ..random import check_seed
from ..registry import simulator_class

#: The study key of a training stage that is not a training option: how many of the store's
#: simulations (its first rows) the stage trains on.
STAGE_KEY = "num_simulations"
_TOP_KEYS = {"name", "simulator", "prior", "simulate", "train", "fine_tune",
             "snapshot_ensemble", "calibrate", "analyses", "output", "cluster"}


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
class Stage:
    """One validated training stage: it trains on the first ``num_simulations`` rows with
    ``config`` (whose ``init_from``, for a stage after the first, is set when it runs)."""

    num_simulations: int
    config: TrainingConfig


@dataclasses.dataclass(frozen=True)
class Study:
    """A validated study configuration (validated when built, e.g. by
    :meth:`from_yaml` or ``dataclasses.replace``)."""

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
    prior: dict[str, Any] = dataclasses.field(default_factory=dict)  # user prior overrides
    cluster: ClusterSpec | None = None  # where the campaign runs (None: simulate.workers)
    source: str = dataclasses.field(default="study", repr=False, compare=False)  # for messages
    stages: tuple[Stage, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = self.source
        if not isinstance(self.prior, dict) or not all(
                isinstance(v, dict) for v in self.prior.values()):
            raise ConfigError(f"{where}: 'prior' must map parameter names to specifications, "
                              "e.g. {nH: {kind: truncnormal, loc: 0.05, scale: 0.01, lower: 0}}, "
                              f"got {self.prior!r}")
        for label, section in (("simulate", self.simulate), ("calibrate", self.calibrate)):
            _check_section(section, label, where)
        object.__setattr__(self, "stages", _check_stages(self, where))
        _check_snapshot(self, where)
        for i, entry in enumerate(self.analyses):
            if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
                raise ConfigError(f"{where}: analyses[{i}] must be a mapping with a 'kind' "
                                  f"key, got {entry!r}")
            try:
                check_analysis_options(entry["kind"], analysis_options(entry))
            except ConfigError as err:
                raise ConfigError(f"{where}: analyses[{i}]: {err}") from None

    def training_stages(self) -> list[dict[str, Any]]:
        """The ``train`` mapping of every stage as written: ``train``, then each
        ``fine_tune`` entry applied over the stage before it (see :attr:`stages` for the
        validated form)."""
        stages = [dict(self.train)]
        for overrides in self.fine_tune:
            stages.append({**stages[-1], **overrides})
        return stages

    def stage_simulations(self, stage: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``(N, training options)`` of a stage mapping: it trains on the first ``N``."""
        return (int(stage.get(STAGE_KEY, self.simulate.num_simulations)),
                training_options(stage))

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "study") -> Study:
        """A study from a parsed YAML document; errors name ``source`` and the key."""
        top = _check_keys(source, doc, _TOP_KEYS)
        sim = top.get("simulator")
        sim = _check_keys("simulator", {"name": sim} if isinstance(sim, str) else sim,
                          {"name", "options", "device"})
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
        train = top.get("train") or {}
        if not isinstance(train, dict):
            raise ConfigError(f"{source}: 'train' must be a mapping of training options")
        fine_tune = top.get("fine_tune") or []
        if not isinstance(fine_tune, list) or not all(isinstance(v, dict) for v in fine_tune):
            raise ConfigError(f"{source}: 'fine_tune' must be a list of mappings of training "
                              "options, e.g. [{learning_rate: 1.0e-4, max_epochs: 40}]")
        analyses = top.get("analyses") or []
        if not isinstance(analyses, list):
            raise ConfigError(f"{source}: 'analyses' must be a list of mappings with a 'kind', "
                              "e.g. [{kind: observed}]")
        return cls(name=str(top.get("name", "study")), simulator=str(sim["name"]),
                   options=dict(sim.get("options") or {}), device=sim.get("device"),
                   simulate=_section(SimulateSection, "simulate", top.get("simulate"), source),
                   train=dict(train),
                   calibrate=_section(CalibrateSection, "calibrate", top.get("calibrate"),
                                      source),
                   output=Path(top.get("output", "study-output")), analyses=tuple(analyses),
                   fine_tune=tuple(dict(v) for v in fine_tune),
                   snapshot_ensemble=top.get("snapshot_ensemble", False),
                   prior=top.get("prior") or {}, source=source,
                   cluster=_cluster_section(top.get("cluster"), top.get("simulate"), source))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Study:
        """Reads (``yaml.safe_load``) and validates a study file."""
        path = Path(path)
        doc = read_study_yaml(path)
        study = cls.from_dict(_cluster_files_relative_to(doc, path.resolve().parent),
                              source=str(path))
        options = _files_relative_to(study.simulator, study.options, path.resolve().parent)
        return dataclasses.replace(study, options=options) if options != study.options else study


def read_study_yaml(path: str | Path) -> Any:
    """The document in a study file, read with ``yaml.safe_load``.

    Raises:
        FileNotFoundError: no such file; ConfigError: a folder, not YAML, not UTF-8.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"study file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give the study's YAML file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file (not UTF-8); give the study's YAML "
                          "file") from None


def _files_relative_to(simulator: str, options: dict[str, Any], folder: Path
                       ) -> dict[str, Any]:
    """``options`` with every relative path of a file option (an observation, a PSF, ...)
    taken from ``folder``, the study file's own, so a study travels with its data."""
    try:
        names = file_options(simulator_class(simulator).Options)
    except SbiAstroError:  # an unknown simulator is reported when the study runs
        return options
    out = dict(options)
    for name in names:
        value = out.get(name)
        if isinstance(value, str) and value.strip() and not Path(value).expanduser().is_absolute():
            out[name] = str(folder / value)
    return out


def _cluster_files_relative_to(doc: Any, folder: Path) -> Any:
    """``doc`` with the ``cluster:`` section's files taken from ``folder`` (the study's):
    a relative ``config`` always, a relative ``scheduler`` when that file exists there (it
    may also be an address)."""
    cluster = doc.get("cluster") if isinstance(doc, dict) else None
    if not isinstance(cluster, dict):
        return doc
    out = dict(cluster)
    for key in ("config", "scheduler"):
        value = out.get(key)
        if (not isinstance(value, str) or not value.strip()
                or Path(value).expanduser().is_absolute()):
            continue
        if key == "config" or (folder / value).is_file():
            out[key] = str(folder / value)
    return {**doc, "cluster": out}


def training_options(stage: dict[str, Any]) -> dict[str, Any]:
    """A stage's mapping without the study key ``num_simulations``: its training options."""
    return {k: v for k, v in stage.items() if k != STAGE_KEY}


def analysis_options(entry: dict[str, Any]) -> dict[str, Any]:
    """An ``analyses`` entry without its ``kind``: the analysis's options."""
    return {k: v for k, v in entry.items() if k != "kind"}


def demo_study_path() -> Path:
    """The embedded default study run by ``make demo`` / ``sbi-astro demo``."""
    return Path(str(resources.files("sbi_astro") / "studies" / "demo.yaml"))


# -- validation ------------------------------------------------------------------------------
def _solver_top_level(doc: Any, source: str, solver: str, keys: set[str]) -> dict[str, Any]:
    """The top level of a learned solver's study (``solver: <solver>``), its keys checked."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a study must be a mapping, got {type(doc).__name__}")
    top = _check_keys("(top level)", doc, keys)
    if top.get("solver") != solver:
        raise ConfigError(f"{source}: 'solver' must be '{solver}', got {top.get('solver')!r}")
    return top


def _dataclass_section(source: str, name: str, values: Any, kind: type) -> Any:
    """The dataclass ``kind`` built from a study section (unknown keys and wrong
    arguments are :class:`ConfigError` naming the section)."""
    values = _check_keys(name, values, {f.name for f in dataclasses.fields(kind)})
    try:
        return kind(**values)
    except TypeError as err:
        raise ConfigError(f"{source}: section '{name}': {err}") from None


def _check_keys(section: str, values: Any, allowed: set[str]) -> dict[str, Any]:
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"study section '{section}' must be a mapping, got "
                          f"{type(values).__name__}")
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in study section '{section}'; "
                          f"allowed: {sorted(allowed)}")
    return dict(values)


def _section(cls: type, label: str, values: Any, source: str) -> Any:
    try:
        return cls(**_check_keys(label, values, {f.name for f in dataclasses.fields(cls)}))
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def _cluster_section(values: Any, simulate: Any, source: str) -> ClusterSpec | None:
    """The ``cluster:`` section (keys of :class:`~sbi_astro.executor.ClusterSpec`)."""
    if values is None:
        return None
    values = _check_keys("cluster", values, {f.name for f in dataclasses.fields(ClusterSpec)})
    if isinstance(simulate, dict) and simulate.get("workers", 1) != 1:
        raise ConfigError(f"{source}: give the workers in 'cluster' or in 'simulate', not both")
    try:
        return ClusterSpec(**values)
    except ConfigError as err:
        raise ConfigError(f"{source}: cluster: {err}") from None


def _check_section(section: Any, label: str, where: str) -> None:
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if f.name == "seed":
            check_seed(value, f"{where}: '{label}.seed'")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: '{label}.{f.name}' must be a positive integer, "
                              f"got {value!r}")


def _check_stages(study: Study, where: str) -> tuple[Stage, ...]:
    """Every training stage validated: its options, its simulations, its warm start."""
    total = study.simulate.num_simulations
    stages = []
    for k, mapping in enumerate(study.training_stages()):
        label = "train" if k == 0 else f"fine_tune[{k - 1}]"
        if k and "init_from" in study.fine_tune[k - 1]:
            raise ConfigError(f"{where}: {label} sets init_from; a fine-tuning stage always "
                              "starts from the previous stage's weights, remove it")
        n = mapping.get(STAGE_KEY, total)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= total:
            raise ConfigError(f"{where}: {label}: num_simulations must be an integer from 1 "
                              f"to simulate.num_simulations ({total}), got {n!r}; raise "
                              "simulate.num_simulations to train on more")
        options = training_options(mapping)
        if k:  # every later stage warm-starts from the previous one: the same architecture
            options = {**options, "init_from": "previous stage"}
        try:
            config = TrainingConfig.from_dict(options)
        except ConfigError as err:
            raise ConfigError(f"{where}: {label}: {err}") from None
        if k == 0 and config.init_from is not None:
            initial_state(config.init_from)
        stages.append(Stage(n, config))
    return tuple(stages)


def _check_snapshot(study: Study, where: str) -> None:
    snapshot, n = study.snapshot_ensemble, len(study.stages)
    if not isinstance(snapshot, bool) and not (isinstance(snapshot, int) and 2 <= snapshot <= n):
        raise ConfigError(f"{where}: 'snapshot_ensemble' must be true or false, or the number "
                          f"of last stages to mix (2 to {n}), got {snapshot!r}")
    if snapshot and (n < 2 or study.stages[0].config.method != "npe"):
        raise ConfigError(f"{where}: 'snapshot_ensemble: true' mixes the NPE flows of the "
                          "training stages; it needs method: npe and at least one "
                          "'fine_tune' stage")
