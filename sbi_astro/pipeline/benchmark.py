"""The accuracy benchmark: tasks x methods x simulation budgets, scored by C2ST against
reference posterior samples, next to sbibm's published numbers.

One **cell** is a (task, method, budget): simulate ``budget`` rows (one store per task and
budget, shared by the methods), train the method with the project's defaults, draw
``num_samples`` posterior samples for each of the task's first ``num_observations``
reference observations and score them with C2ST twice (5-fold cross-validation, as many
posterior as reference samples; 0.5 is a perfect score): with sbibm's own classifier
(:func:`~sbi_astro.diagnostics.c2st.c2st_sbibm`, scikit-learn's MLP: the number to compare
with sbibm's published ones) and with the project's stricter one
(:func:`~sbi_astro.diagnostics.c2st.c2st`, which resolves a wrong posterior width that
sbibm's misses) and MMD (:mod:`~sbi_astro.diagnostics.mmd`); and calibrate the estimator
with TARP on held-out simulations (ATC and KS p).
Each cell is written atomically to ``cells/TASK_METHOD_BUDGET.json`` when it finishes, so
a killed benchmark re-runs only the missing cells; each of our estimators is saved to
``models/TASK_METHOD_BUDGET/`` (a run directory, :func:`~sbi_astro.inference.load_run`)
as soon as it is trained, so a cell killed while scoring is not trained again.
``results.md`` holds a table per budget (task x method) and the table of every cell;
``report.html`` adds the figure of C2ST against budget per task with sbibm's published
curves (:func:`write_pages`), ``metrics.json`` every cell's record.
:func:`summary_table` puts our mean C2ST beside sbibm's published mean for the same task,
algorithm and budget (Lueckmann et al. 2021, the ``sbi-benchmark/results`` data shipped in
``benchmark_data/`` with its provenance) and marks the best method per task and budget.

Tasks are any registered simulator with reference posterior samples for numbered
observations: ``reference_observation(i)`` and ``reference_samples(i, n)``, as the sbibm
tasks (sbibm's data) and the X-ray simulators (converged emcee chains on the exact
likelihood, cached with the plugin through :mod:`sbi_astro.benchmark_references`) have.

Example:
    >>> cells = expand(["two_moons"], ["npe", "nle"], [1000])
    >>> [c.name for c in cells]
    ['two_moons_npe_1000', 'two_moons_nle_1000']
    >>> published("two_moons", "npe", 10_000)
    0.60639
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..analysis import Section
from ..atomic import atomic_write
from ..campaign import run_campaign
from ..diagnostics.c2st import c2st, c2st_sbibm
from ..diagnostics.mmd import mmd
from ..diagnostics.tarp import tarp
from ..errors import ConfigError, DataFormatError, NotAvailableError
from ..executor import ClusterSpec
from ..inference import TrainingConfig, check_method, load_run, train
from ..inference.importance import ImportanceSampledNPE
from ..inference.sbi_peers import PEER_METHODS, sbi_peer
from ..provenance import package_versions
from ..registry import list_simulators, load_simulator, simulator_class
from ..report import write_sections_report
from ..report.figures import plot_benchmark
from ..rows import simulate_rows
from ..store import SimulationStore
from .training import epoch_logger

#: the named suites: tasks, methods, budgets, observations per cell, samples per observation
SUITES: dict[str, dict[str, Any]] = {
    # about 6 minutes on 2 cores
    "quick": {"tasks": ["gaussian_linear", "two_moons"], "methods": ["npe"],
              "budgets": [1000], "num_observations": 3, "num_samples": 1000,
              "tarp_tests": 100, "tarp_samples": 200},
    "full": {"tasks": ["gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture",
                       "two_moons", "slcp", "slcp_distractors", "bernoulli_glm", "sir",
                       "lotka_volterra"],
             "methods": ["npe", "nle", "nre", "sbi-npe", "fmpe", "npse"],
             "budgets": [1000, 10_000, 100_000],
             "num_observations": 10, "num_samples": 10_000, "tarp_tests": 200,
             "tarp_samples": 1000},
    # the astrophysical tasks: every registered simulator whose class declares
    # ``benchmark_suite = "astro"`` (with shipped, converged references); tasks=None means
    # "discovered" (see suite_tasks)
    "astro": {"tasks": None, "methods": ["npe", "npe-is", "nle", "nre"],
              "budgets": [1000, 10_000, 100_000], "num_observations": 10,
              "num_samples": 10_000, "tarp_tests": 200, "tarp_samples": 1000},
}
#: ours (NPE, NLE, NRE with the project's defaults; NPE-IS: the NPE importance-sampled with
#: the task's exact likelihood, for tasks that have one) and sbi 0.27's NPE, FMPE and NPSE
#: (its defaults: peer rows)
METHODS = ("npe", "npe-is", "nle", "nre", *PEER_METHODS)
#: proposals per posterior sample of the NPE-IS rows
IS_PROPOSAL_FACTOR = 10


@dataclasses.dataclass(frozen=True)
class Cell:
    """One (task, method, budget) of the benchmark."""

    task: str
    method: str
    budget: int

    @property
    def name(self) -> str:
        return f"{self.task}_{self.method}_{self.budget}"


def expand(tasks: list[str], methods: list[str], budgets: list[int]) -> list[Cell]:
    """Every cell, checked: known tasks with reference samples, known methods, budgets >= 100.

    Raises:
        ConfigError: an unknown task or method, or a budget below 100.
    """
    known = set(list_simulators())
    for t in tasks:
        if t not in known:
            raise ConfigError(f"unknown task {t!r}; registered: {sorted(known)}")
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"unknown method {m!r}; use one of {list(METHODS)}")
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int) or b < 100:
            raise ConfigError(f"budgets must be integers >= 100, got {b!r}")
    return [Cell(t, m, b) for t in tasks for b in budgets for m in methods]


@functools.lru_cache(maxsize=1)
def _published() -> dict[tuple[str, str, int], float]:
    path = resources.files("sbi_astro") / "pipeline" / "benchmark_data" / "sbibm_published.csv"
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for r in rows:
        if r["source"] in ("main_paper", "gaussian_mixture_rerun"):
            key = (r["task"], r["algorithm"].lower(), int(r["num_simulations"]))
            if r["source"] == "gaussian_mixture_rerun" or key not in out:
                out[key] = float(r["c2st_mean"])
    return out


def published(task: str, method: str, budget: int) -> float | None:
    """sbibm's published mean C2ST of ``method`` (npe, nle, nre) on ``task`` at ``budget``
    simulations (``gaussian_mixture``: sbibm's rerun with its 1.1.0 simulator), or
    ``None``."""
    return _published().get((task, method.lower(), int(budget)))


_RECORD_KEYS = {"cell", "c2st", "c2st_mean", "mmd", "mmd_mean", "tarp_atc", "tarp_ks_pvalue",
                "published_c2st", "train_s", "sample_s"}


def _read_record(path: Path) -> dict[str, Any] | None:
    """A cell record as written by :func:`run_cell`, checked; ``None`` when unreadable or
    incomplete."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or not _RECORD_KEYS <= set(record) or \
            not isinstance(record["cell"], dict) or \
            set(record["cell"]) != {f.name for f in dataclasses.fields(Cell)}:
        return None
    return record


def overrides_of(record: dict[str, Any]) -> dict[str, Any]:
    """The training options a cell was asked for beyond the defaults (``{}`` for records
    written before the benchmark took any)."""
    return record.get("train_overrides") or {}


def check_overrides(train_overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The training options asked of every cell beyond the project's defaults (e.g.
    ``{"ensemble": 2}``), checked before any work and normalised as a cell record stores
    them.

    Raises:
        ConfigError: not a mapping, an unknown or invalid option, one the benchmark sets
            itself (``method``, ``seed``, ``device``), or a value JSON cannot hold.
    """
    if train_overrides is None:
        return {}
    if not isinstance(train_overrides, dict):
        raise ConfigError(f"training options must be a mapping of option: value, got "
                          f"{type(train_overrides).__name__}")
    overrides = dict(train_overrides)
    own = sorted({"method", "seed", "device"} & set(overrides))
    if own:
        raise ConfigError(f"the benchmark sets {own} itself (use --methods and --device); "
                          "leave them out of the training options")
    fields = {f.name for f in dataclasses.fields(TrainingConfig)} - {"method", "seed", "device"}
    unknown = sorted(set(overrides) - fields)
    if unknown:  # each method checks the values (run_benchmark, run_cell)
        raise ConfigError(f"unknown training option(s) {unknown}; valid: {sorted(fields)}")
    try:  # as a record stores them (and compares them when read back)
        normal = json.loads(json.dumps(overrides, sort_keys=True))
    except (TypeError, ValueError):
        normal = None
    if normal != overrides:
        raise ConfigError(f"training options must be plain values (numbers, strings, "
                          f"lists), got {overrides!r}")
    return normal


def method_label(record: dict[str, Any]) -> str:
    """A cell's row name: ``NPE``, ``NPE (sbi 0.27)``, ``NPE (ensemble=2)``, ``NPE (sbi 0.27,
    max_epochs=5)``."""
    method = record["cell"]["method"]
    notes = ["sbi 0.27"] if method in PEER_METHODS else []
    notes += [f"{k}={v}" for k, v in overrides_of(record).items()]
    label = method.removeprefix("sbi-").upper()
    return f"{label} ({', '.join(notes)})" if notes else label


def _finished(path: Path, cell: Cell, overrides: dict[str, Any] | None = None
              ) -> dict[str, Any] | None:
    """The record a finished cell wrote, checked; ``None`` when absent, unreadable or of
    another cell (then the cell is run again and the file replaced).

    Raises:
        ConfigError: the record is this cell's, trained with other options than
            ``overrides``: it is neither read back as theirs nor replaced.
    """
    if not path.exists():
        return None
    record = _read_record(path)
    if record is None or record["cell"] != dataclasses.asdict(cell):
        return None
    if overrides_of(record) != (overrides or {}):
        raise ConfigError(
            f"{path} is cell {cell.name} trained with options {overrides_of(record)}, not "
            f"{overrides or {}}; write this run to another folder (-o), which keeps both")
    return record


def run_cell(cell: Cell, out_dir: Path, *, num_observations: int, num_samples: int,
             seed: int = 0, device: str = "cpu", train_overrides: dict | None = None,
             tarp_tests: int = 100, tarp_samples: int = 200, sbibm_c2st: bool = True,
             c2st_jobs: int = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs one cell (or reads it back when ``cells/NAME.json`` exists) and returns its
    record: C2ST and MMD per observation and their means, TARP on ``tarp_tests`` held-out
    simulations (``tarp_samples`` posterior samples each), training and sampling seconds.

    ``c2st`` is the project's classifier; ``c2st_sbibm`` (with ``sbibm_c2st``, the default)
    sbibm's scikit-learn one, a few minutes per observation of 10,000 samples on one core
    (``c2st_jobs`` processes fit its 5 folds at once; the scores do not change).
    A record written without ``c2st_sbibm`` is read back as it is (nothing is re-run)."""
    _check_jobs(c2st_jobs)  # before any training
    overrides = check_overrides(train_overrides)
    path = out_dir / "cells" / f"{cell.name}.json"
    record = _finished(path, cell, overrides)
    if record is not None:
        return record
    method = _trained_method(cell.method)
    config = None if cell.method in PEER_METHODS else \
        TrainingConfig(method=method, device=device, seed=seed, **overrides)  # checks them
    sim = load_simulator(cell.task, device=device)
    check_task(sim, num_observations)
    check_cell_method(sim, cell.method)
    theta, x = _training_set(out_dir, cell, sim, seed)
    if config is None:  # sbi 0.27 with its defaults: a peer row
        epochs = overrides.get("max_epochs", 2**31 - 1)
        est, train_s = sbi_peer(cell.method, sim.prior, theta, x, torch.device(device),
                                max_epochs=epochs, seed=seed)
        config_dict = {"method": cell.method, "sbi": "0.27 defaults", "max_epochs": epochs}
    else:
        # an npe-is cell proposes from the NPE cell's flow (trained once, shared)
        run_dir = out_dir / "models" / Cell(cell.task, method, cell.budget).name
        est, train_s = _trained(run_dir, config, theta, x, sim, log)
        # as asked, and as trained ("auto" flow, batch and coupling made concrete)
        config_dict = {**config.to_dict(), "resolved": est.config.to_dict()}
        if cell.method == "npe-is":
            est = ImportanceSampledNPE(est, IS_PROPOSAL_FACTOR)
            config_dict["importance_sampling"] = {"proposal_factor": IS_PROPOSAL_FACTOR}
    obs = torch.stack([sim.reference_observation(i) for i in range(1, num_observations + 1)])
    log(f"  {cell.name}: sampling and scoring {num_observations} x {num_samples} posterior "
        f"samples, then TARP on {tarp_tests} held-out simulations")
    t0 = time.perf_counter()
    samples = est.sample(num_samples, obs, generator=torch.Generator().manual_seed(seed))
    sample_s = time.perf_counter() - t0
    weights = {} if not isinstance(est, ImportanceSampledNPE) else {
        "is_ess": est.last.ess.tolist(), "is_distinct": est.last.distinct.tolist(),
        "is_proposals": est.last.num_proposals}
    refs = [sim.reference_samples(i + 1, num_samples) for i in range(num_observations)]
    scores = [c2st(samples[:, i].cpu(), refs[i], seed=i) for i in range(num_observations)]
    mmds = [mmd(samples[:, i].cpu(), refs[i], seed=i) for i in range(num_observations)]
    protocol = {}
    if sbibm_c2st:
        t0 = time.perf_counter()
        sb = [c2st_sbibm(refs[i], samples[:, i].cpu(), n_jobs=c2st_jobs)
              for i in range(num_observations)]
        protocol = {"c2st_sbibm": sb, "c2st_sbibm_mean": sum(sb) / len(sb),
                    "c2st_sbibm_s": time.perf_counter() - t0}
    calibration = _tarp_on_held_out(est, sim, tarp_tests, tarp_samples, seed)
    record = {"cell": dataclasses.asdict(cell), "c2st": scores,
              "c2st_mean": sum(scores) / len(scores), **protocol, "mmd": mmds,
              "mmd_mean": sum(mmds) / len(mmds), **weights, **calibration,
              "published_c2st": published(cell.task, cell.method, cell.budget),
              "train_s": train_s, "sample_s": sample_s, "num_observations": num_observations,
              "num_samples": num_samples, "seed": seed, "train_overrides": overrides,
              "config": config_dict}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_text(path, json.dumps(record, indent=1))
    log(f"  {cell.name}: C2ST {_c2st_text(record)} (sbibm published "
        f"{record['published_c2st'] if record['published_c2st'] is not None else 'n/a'}), "
        f"MMD {record['mmd_mean']:.4f}, TARP ATC {record['tarp_atc']:+.3f}, "
        f"training {train_s:.0f} s, sampling {sample_s:.1f} s")
    return record


def check_cell_method(sim: Any, method: str) -> None:
    """Refuses a method the task's simulator cannot take: ``npe-is`` without a tractable
    likelihood; NLE (:func:`~sbi_astro.inference.check_method`) and sbi's peer rows (sbi's
    defaults have no embedding network) on data that are not a vector.

    Raises:
        ConfigError: naming the task, the method and what to do instead.
    """
    if method == "npe-is" and not sim.has_likelihood:
        raise ConfigError(f"task {sim.name!r} has no tractable likelihood, which npe-is "
                          "weighs its proposals with; leave npe-is out for it")
    if method not in PEER_METHODS:
        check_method(sim, _trained_method(method))
    elif len(tuple(sim.event_shape)) > 1:
        raise ConfigError(f"sbi 0.27's {method} row runs with sbi's defaults, which take x as "
                          f"a vector; task {sim.name!r} gives x of shape "
                          f"{tuple(sim.event_shape)}: leave {method} out for it")


def _trained_method(method: str) -> str:
    """The estimator a method of ours trains: NPE for ``npe-is`` (its proposal)."""
    return "npe" if method == "npe-is" else method


def _check_jobs(c2st_jobs: Any) -> None:
    if isinstance(c2st_jobs, bool) or not isinstance(c2st_jobs, int) or c2st_jobs < 1:
        raise ConfigError(f"c2st_jobs must be a positive integer, got {c2st_jobs!r}")


def _trained(run_dir: Path, config: TrainingConfig, theta: torch.Tensor, x: torch.Tensor,
             sim: Any, log: Callable[[str], None]) -> tuple[Any, float]:
    """The cell's estimator and its training seconds: read back from ``run_dir`` when a
    killed run saved it there with the same configuration (scoring is then all that is
    re-run), else trained and saved there (atomically) before any scoring."""
    if (run_dir / "run.json").exists():
        try:
            est = load_run(run_dir, device=config.device, simulator=sim)
            saved = est.metadata.get("benchmark", {})
            if saved.get("config") == config.to_dict():
                log(f"  {run_dir.name}: estimator read back from {run_dir}")
                return est, float(saved["train_s"])
        except (DataFormatError, ConfigError, OSError, KeyError, TypeError, ValueError):
            pass
        log(f"  {run_dir.name}: the saved estimator in {run_dir} is unreadable or of "
            "another configuration; training again")
    log(f"  {run_dir.name}: training on {theta.shape[0]} simulations")
    t0 = time.perf_counter()
    est = train(theta, x, sim, config, on_epoch=epoch_logger(log))
    train_s = time.perf_counter() - t0
    est.metadata["benchmark"] = {"config": config.to_dict(), "train_s": train_s}
    est.save(run_dir)
    return est, train_s


def _c2st_text(record: dict[str, Any]) -> str:
    sb = record.get("c2st_sbibm_mean")
    return (f"{record['c2st_mean']:.3f}" if sb is None else
            f"{sb:.3f} with sbibm's classifier, {record['c2st_mean']:.3f} with ours")


def check_task(sim: Any, num_observations: int) -> None:
    """Refuses a simulator without reference observations and samples for the first
    ``num_observations`` observations (cheap: reads them).

    Raises:
        ConfigError: naming the task and why (e.g. the references file to build).
    """
    if not (callable(getattr(sim, "reference_samples", None))
            and callable(getattr(sim, "reference_observation", None))):
        raise ConfigError(f"task {sim.name!r} has no reference posterior samples; the "
                          "benchmark needs reference_observation(i) and "
                          "reference_samples(i, n)")
    try:
        sim.reference_observation(num_observations)
        sim.reference_samples(num_observations, 1)
    except (NotAvailableError, ConfigError) as err:
        raise ConfigError(f"task {sim.name!r} cannot be benchmarked with "
                          f"{num_observations} observations: {err}") from None


def _tarp_on_held_out(est: Any, sim: Any, n: int, num_samples: int, seed: int
                     ) -> dict[str, Any]:
    """TARP of the trained estimator on ``n`` held-out simulations (rows of the seed
    ``seed + 1``; the training store uses ``seed``), references in the prior's box when it
    is bounded."""
    theta, x = simulate_rows(sim, seed + 1, 0, n)
    t0 = time.perf_counter()
    samples = est.sample(num_samples, x, generator=torch.Generator().manual_seed(seed + 1))
    prior = sim.prior
    res = tarp(samples.to(theta), theta, bounds=(prior.low, prior.high) if prior.bounded else None,
               seed=seed)
    return {"tarp_atc": res.atc, "tarp_ks_pvalue": res.ks_pvalue, "tarp_tests": n,
            "tarp_samples": num_samples, "tarp_s": time.perf_counter() - t0}


def _store_path(out_dir: Path, task: str, budget: int) -> Path:
    return out_dir / "stores" / f"{task}_{budget}.h5"


def _training_set(out_dir: Path, cell: Cell, sim: Any, seed: int) -> tuple[Any, Any]:
    """The cell's simulations: its task and budget's store, read without its lock when it is
    complete (cells of one store may run at once on a cluster), else simulated first."""
    path = _store_path(out_dir, cell.task, cell.budget)
    if path.exists():
        with SimulationStore.open(path) as store:
            meta = store.metadata
            if store.is_complete and (meta.num_simulations, meta.seed) == (cell.budget, seed):
                return store.load()
    with run_campaign(path, sim, num_simulations=cell.budget, seed=seed,
                      progress=False) as store:
        return store.load()


def _cell_task(cell: Cell, out_dir: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A cell on a Dask worker: one torch thread (each worker process runs one cell)."""
    torch.set_num_threads(1)
    return run_cell(cell, out_dir, log=lambda line: None, **kwargs)


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _ranked(r: dict[str, Any]) -> tuple[int, float]:
    """The C2ST that ranks a cell: sbibm's classifier's where the cell has it (ranked before
    cells without it, which are compared by the project's classifier)."""
    sb = r.get("c2st_sbibm_mean")
    return (0, sb) if sb is not None else (1, r["c2st_mean"])


def _row_order(r: dict[str, Any]) -> tuple[str, int, str]:
    return r["cell"]["task"], r["cell"]["budget"], method_label(r)


def summary_table(records: list[dict[str, Any]]) -> str:
    """A Markdown table: task, budget, method, C2ST with sbibm's classifier beside sbibm's
    published value, C2ST with the project's (stricter) classifier, MMD, TARP, times; ``**``
    marks the best of our methods per task and budget (sbi's NPE, FMPE and NPSE rows are
    peers), by sbibm's classifier where the cells have it."""
    best: dict[tuple[str, int], tuple[int, float]] = {}
    for r in records:
        if r["cell"]["method"] in PEER_METHODS:  # sbi's rows: peers, not ours
            continue
        key = (r["cell"]["task"], r["cell"]["budget"])
        best[key] = min(best.get(key, (2, 1.0)), _ranked(r))
    lines = ["| task | simulations | method | C2ST (sbibm's classifier) | C2ST (sbibm, "
             "published) | C2ST (strict classifier) | MMD | TARP ATC (KS p) | training [s] | "
             "sampling [s] |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in sorted(records, key=_row_order):
        c = r["cell"]
        sb = r.get("c2st_sbibm_mean")
        protocol, strict = ("n/a" if sb is None else f"{sb:.3f}"), f"{r['c2st_mean']:.3f}"
        if _ranked(r) == best.get((c["task"], c["budget"])):
            if sb is None:
                strict = f"**{strict}**"
            else:
                protocol = f"**{protocol}**"
        method = method_label(r)
        peer = "n/a" if r["published_c2st"] is None else f"{r['published_c2st']:.3f}"
        lines.append(f"| {c['task']} | {c['budget']:,} | {method} | {protocol} | "
                     f"{peer} | {strict} | {r['mmd_mean']:.4f} | {r['tarp_atc']:+.3f} "
                     f"({r['tarp_ks_pvalue']:.2g}) | {r['train_s']:.0f} | "
                     f"{r['sample_s']:.1f} |")
    return "\n".join(lines) + "\n"


def budget_tables(records: list[dict[str, Any]]) -> str:
    """Markdown tables, one per budget: a row per task, a column per method in the order of
    ``METHODS`` (C2ST with the project's strict classifier, sbibm's classifier's in brackets
    where the cell has it), then sbibm's published NPE / NLE / NRE means; ``**`` marks the
    best of our methods per task, ranked as in :func:`summary_table`."""
    out = []
    for budget in sorted({r["cell"]["budget"] for r in records}):
        rows = [r for r in records if r["cell"]["budget"] == budget]
        labels = list(dict.fromkeys(method_label(r) for r in sorted(
            rows, key=lambda r: (METHODS.index(r["cell"]["method"]), method_label(r)))))
        lines = [f"**{budget:,} simulations**", "",
                 "| task | " + " | ".join(labels) + " | sbibm published NPE / NLE / NRE |",
                 "| --- |" + " --- |" * (len(labels) + 1)]
        for task in sorted({r["cell"]["task"] for r in rows}):
            cells = {method_label(r): r for r in rows if r["cell"]["task"] == task}
            ours = [_ranked(r) for r in cells.values() if r["cell"]["method"] not in PEER_METHODS]
            best = min(ours) if ours else None
            entries = []
            for label in labels:
                r = cells.get(label)
                if r is None:
                    entries.append("")
                    continue
                text = f"{r['c2st_mean']:.3f}"
                if r.get("c2st_sbibm_mean") is not None:
                    text += f" ({r['c2st_sbibm_mean']:.3f})"
                if r["cell"]["method"] not in PEER_METHODS and _ranked(r) == best:
                    text = f"**{text}**"
                entries.append(text)
            peers = [published(task, m, budget) for m in ("npe", "nle", "nre")]
            peer = " / ".join("n/a" if v is None else f"{v:.3f}" for v in peers)
            lines.append(f"| {task} | " + " | ".join(entries) + f" | {peer} |")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def suite_tasks(suite: str) -> list[str]:
    """The tasks of ``suite``: its list, or (``tasks: None``) the registered simulators
    whose class declares ``benchmark_suite = suite``, as a third party's plugin would."""
    listed = SUITES[suite]["tasks"]
    if listed is not None:
        return list(listed)
    return [name for name in list_simulators()
            if getattr(simulator_class(name), "benchmark_suite", None) == suite]


def run_benchmark(out_dir: str | Path, *, suite: str = "quick", tasks: list[str] | None = None,
                  methods: list[str] | None = None, budgets: list[int] | None = None,
                  device: str = "cpu", train_overrides: dict | None = None,
                  num_observations: int | None = None, num_samples: int | None = None,
                  cluster: ClusterSpec | None = None, sbibm_c2st: bool = True,
                  c2st_jobs: int = 1, log: Callable[[str], None] = print
                  ) -> list[dict[str, Any]]:
    """Runs (or resumes) a suite, optionally narrowed, and writes ``results.md``.

    Args:
        train_overrides: training options for every cell beyond the project's defaults
            (:class:`~sbi_astro.inference.TrainingConfig` fields, e.g. ``{"ensemble": 2}``;
            sbi's peer rows take ``max_epochs`` alone); each record keeps them and each row
            is named by them (:func:`method_label`).  A folder's cells are read back only
            for the same options: pass another ``out_dir`` for others.
        num_observations, num_samples: per cell, instead of the suite's.
        sbibm_c2st: also score with sbibm's scikit-learn classifier (see :func:`run_cell`).
        c2st_jobs: processes fitting that classifier's folds at once (cells run here; on a
            cluster each cell keeps to its one worker process).
        cluster: run the missing cells as tasks of a Dask cluster (one cell per worker
            process, one torch thread each; :class:`~sbi_astro.executor.ClusterSpec`); the
            stores are simulated here first, one writer per store.
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}; use one of {sorted(SUITES)}")
    _check_jobs(c2st_jobs)
    s = SUITES[suite]
    cells = expand(tasks or suite_tasks(suite), methods or s["methods"],
                   budgets or s["budgets"])
    overrides = check_overrides(train_overrides)
    peers = sorted({c.method for c in cells} & set(PEER_METHODS))
    if peers and set(overrides) - {"max_epochs"}:
        raise ConfigError(f"sbi's rows {peers} take max_epochs alone of the training "
                          f"options, got {sorted(overrides)}: run them without the others")
    for method in dict.fromkeys(c.method for c in cells if c.method not in PEER_METHODS):
        try:  # e.g. ensemble is NPE's alone
            TrainingConfig.from_dict({"method": _trained_method(method), **overrides})
        except ConfigError as err:
            raise ConfigError(f"the {method} cells cannot take the training options "
                              f"{overrides} ({err}); run them without those options") from None
    n_obs = num_observations or s["num_observations"]
    for task in dict.fromkeys(c.task for c in cells):  # before any work
        sim = load_simulator(task, device="cpu")
        check_task(sim, n_obs)
        for method in dict.fromkeys(c.method for c in cells if c.task == task):
            try:
                check_cell_method(sim, method)
            except ConfigError as err:
                if methods is not None:  # asked for by name: refused
                    raise
                log(f"{task}: the suite's {method} cells are left out: {err}")
                cells = [c for c in cells if (c.task, c.method) != (task, method)]
    out = Path(out_dir)
    for c in cells:  # a cell of other options stops the run here, before any work
        _finished(out / "cells" / f"{c.name}.json", c, overrides)
    log(f"benchmark '{suite}': {len(cells)} cell(s) -> {out}")
    kwargs = {"num_observations": n_obs,
              "num_samples": num_samples or s["num_samples"], "device": device,
              "train_overrides": overrides, "tarp_tests": s["tarp_tests"],
              "tarp_samples": s["tarp_samples"], "sbibm_c2st": sbibm_c2st}
    if cluster is not None and cluster.distributed:
        records = _run_on_cluster(cells, out, kwargs, cluster, log)
    else:
        records = [run_cell(c, out, log=log, c2st_jobs=c2st_jobs, **kwargs) for c in cells]
    table = summary_table(records)
    _write_text(out / "results.md", budget_tables(records) + "\n" + table)
    report, _ = write_pages(records, out, suite)
    log(table)
    log(f"report: {report}")
    return records


def collect_benchmark(folders: list[str | Path], out_dir: str | Path,
                      log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Writes the table, figure and HTML page (``results.md``, ``report.html``,
    ``metrics.json``) of the finished cells of several benchmark folders into ``out_dir``,
    running nothing: cells run at different times, with different options or on different
    machines in one figure of C2ST against budget.

    Raises:
        ConfigError: a folder without cells, an unreadable cell record, the same cell with
            the same options in two folders (say which to keep by listing one), or an
            ``out_dir`` holding cells of its own that are not listed (its pages would no
            longer describe them).
    """
    out = Path(out_dir)
    roots = list(dict.fromkeys(Path(f).resolve() for f in folders))
    if not roots:
        raise ConfigError("--collect needs at least one benchmark folder")
    if (out / "cells").is_dir() and any((out / "cells").glob("*.json")) and \
            out.resolve() not in roots:
        raise ConfigError(f"{out} holds benchmark cells of its own; list it in --collect too, "
                          "or write the collected pages to another folder (-o)")
    records: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    for root in roots:
        paths = sorted((root / "cells").glob("*.json"))
        if not paths:
            raise ConfigError(f"{root} holds no benchmark cells (cells/*.json); give the "
                              "folder a 'sbi-astro benchmark -o' wrote")
        for path in paths:
            record = _read_record(path)
            if record is None:
                raise ConfigError(f"{path} is not a finished cell record (unreadable or "
                                  "incomplete); re-run its benchmark to rewrite it, or "
                                  "leave its folder out")
            key = (Cell(**record["cell"]).name, json.dumps(overrides_of(record),
                                                           sort_keys=True))
            if key in records:
                raise ConfigError(f"cell {key[0]} ({method_label(record)}) is in both "
                                  f"{records[key][0]} and {path}; list only the folder "
                                  "whose cell you want")
            records[key] = (path, record)
    chosen = [r for _, r in records.values()]
    _write_text(out / "results.md", budget_tables(chosen) + "\n" + summary_table(chosen))
    report, _ = write_pages(chosen, out, "collected")
    log(f"{len(chosen)} cell(s) from {len(roots)} folder(s); report: {report}")
    return chosen


def published_curves(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[int,
                                                                                       float]]]:
    """sbibm's published mean C2ST at 10^3, 10^4, 10^5 for each (task, method) measured."""
    out = {}
    for task, method in {(r["cell"]["task"], r["cell"]["method"]) for r in records}:
        pts = [(b, v) for b in (1000, 10_000, 100_000)
               if (v := published(task, method, b)) is not None]
        if pts:
            out[(task, method)] = pts
    return out


def write_pages(records: list[dict[str, Any]], out: Path, suite: str) -> tuple[Path, Path]:
    """``report.html`` (the figure of C2ST against budget with sbibm's published curves, and
    the table) and ``metrics.json`` (every cell's record) in ``out``."""
    fig = plot_benchmark(records, published_curves(records), label=method_label)
    rows = [{"task": r["cell"]["task"], "simulations": r["cell"]["budget"],
             "method": method_label(r),
             "C2ST (sbibm's classifier)": (None if r.get("c2st_sbibm_mean") is None
                                           else round(r["c2st_sbibm_mean"], 3)),
             "C2ST (sbibm, published)": r["published_c2st"],
             "C2ST (strict classifier)": round(r["c2st_mean"], 3), "MMD": round(r["mmd_mean"], 4),
             "TARP ATC": round(r["tarp_atc"], 3), "TARP KS p": r["tarp_ks_pvalue"],
             "training [s]": round(r["train_s"], 1), "sampling [s]": round(r["sample_s"], 1)}
            for r in sorted(records, key=_row_order)]
    section = Section(
        title="C2ST against simulation budget",
        text="Solid: measured here with sbibm's own classifier (mean C2ST over the "
             "reference observations; 0.5 is perfect). Dotted: the same samples scored by "
             "the project's stricter classifier, which also resolves a wrong posterior "
             "width. Dashed: sbibm's published means for the same algorithm (Lueckmann et "
             "al. 2021). Rows marked sbi 0.27 are sbi with its defaults.",
        figures=[(fig, "C2ST against the number of simulations, per task")], table=rows)
    return write_sections_report(
        [section], out, title=f"sbi-astro benchmark ({suite})",
        subtitle=f"{len(records)} cells", metrics={
            "cells": records,
            "provenance": {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "suite": suite, "packages": package_versions()}})


def _run_on_cluster(cells: list[Cell], out: Path, kwargs: dict[str, Any], cluster: ClusterSpec,
                    log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The missing cells as Dask tasks (finished ones are read back here)."""
    from distributed import as_completed

    from ..executor import dashboard_line, open_client

    cluster.check()
    done = {c: _finished(out / "cells" / f"{c.name}.json", c, kwargs["train_overrides"])
            for c in cells}
    pending = [c for c in cells if done[c] is None]
    for task, budget in dict.fromkeys((c.task, c.budget) for c in pending):
        run_campaign(_store_path(out, task, budget), load_simulator(task, device="cpu"),
                     num_simulations=budget, seed=0, progress=False).close()
    if pending:
        with open_client(cluster) as client:
            log(f"{len(pending)} cell(s) on {cluster.describe()}; {dashboard_line(client)}")
            futures = {client.submit(_cell_task, c, out, kwargs, pure=False,
                                     key=f"sbi-astro-cell-{c.name}"): c for c in pending}
            for fut in as_completed(futures):
                c = futures[fut]
                try:
                    record = done[c] = fut.result()  # (waits while a lost one is redone)
                except Exception as err:  # noqa: BLE001 - the cell's own error, reported
                    raise ConfigError(f"benchmark cell {c.name} failed: "
                                      f"{type(err).__name__}: {err}; finished cells are "
                                      "kept, re-run to resume") from None
                log(f"  {c.name}: C2ST {_c2st_text(record)}, training "
                    f"{record['train_s']:.0f} s, sampling {record['sample_s']:.1f} s")
    return [done[c] for c in cells]
