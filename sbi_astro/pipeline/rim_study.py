"""RIM studies: a learned inverse solver for a plugin's inverse problem, from a YAML file to
a report against classical solvers through the same forward model.

Schema (``solver: rim`` marks it; unknown keys are errors)::

    name: xray-rim
    solver: rim
    problem: {name: xray_deconvolution, options: {...}}  # a registered inverse problem
    rim: {steps: 10, hidden: 256, gradient: rms, scale: global, step_weights: uniform,
          seed: 0, members: 1}              # signal shape and link come from the problem
    training: {num_signals: 15000, seed: 0, epochs: 10, batch_size: 64, lr: 0.001}
    test: {num_signals: 1200, seed: 1, num_tune: 300, tune_seed: 3, bootstrap: 16,
           num_calibrate: 0, calibrate_seed: 4, polish: false,
           fine_tune: {num: 8, iterations: 40, lr: 0.0001, penalty: 0, stop_misfit: 1.0}}
    device: null
    output: xray-rim-output

The problem is any registered in the ``sbi_astro.inverse_problems`` entry-point group
(:mod:`sbi_astro.inverse_problems`): it gives the signals, the likelihood, the noise, the
misfit, the errors, the groups and the classical peers.  Stages: ``rim/`` (the trained
machine; a re-run reuses it when its recorded problem, rim and training sections are the
study's, and refuses to touch it otherwise), then on ``test.num_signals`` held-out signals
(seed ``test.seed``; row ``i``'s noise from stream ``i``):

* the RIM's reconstruction, its misfit (and the truth's, the reference), its errors and the
  time per reconstruction;
* a parametric bootstrap (``bootstrap`` re-observations of the refolded reconstruction, each
  reconstructed again by the first machine): the spread of the link-space estimate is the
  noise's sigma; with ``rim.members`` > 1, that many machines are trained (seeds ``seed``,
  ``seed + 1``, ...; :class:`~sbi_astro.solvers.rim.RIMEnsemble`), their mean is the
  answer and their spread, added in quadrature, the model's share of sigma.  The fraction
  of signal values whose truth lies within 1 sigma is reported (0.68 if sigma were a
  calibrated error);
* sigma calibrated (``calibrated``): the widest of those sigmas times one factor per group,
  the split-conformal quantile for which 68.27 % of the values of other signals lie within
  it (``num_calibrate`` signals of ``calibrate_seed``, or with 0 the tuning signals; each
  with its own bootstrap and spread); the held-out coverage checks it, and the factor
  (``sigma_calibration_scale``) says how far the raw sigma was off;
* with ``test.polish``, the problem's ``polish(estimate, data)`` step applied to the
  RIM's answer (e.g. ``xray_deconvolution``'s discrepancy-principle step to the data's
  noise level), reported as the solver ``rim-polished``;
* every peer of the problem, tuned per group on ``num_tune`` signals of another seed, and
  its errors and misfit;
* per-observation fine-tuning (:func:`~sbi_astro.solvers.rim.fine_tune`) of the ``num``
  held-out signals the RIM fits worst, stopped once their misfit reaches ``stop_misfit``;
* the problem's real observation, when it has one.

The report (``report/report.html`` and ``metrics.json``) gives all of this per group.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..analysis import Section
from ..device import resolve_device
from ..errors import ConfigError
from ..inverse_problems import check_inverse_problem_options, get_inverse_problem
from ..outputs import check_output_dir
from ..provenance import package_versions
from ..random import check_seed, key_from_seed
from ..report import write_sections_report
from ..report.figures import figure
from ..solvers.rim import (
    RIM,
    RIMConfig,
    RIMEnsemble,
    TrainingConfig,
    fine_tune,
    fit,
    load_rim,
    save_rim,
)
from ..solvers.rim.ensemble import positive_where_log
from ..solvers.rim.links import to_link
from ..solvers.rim.training import noisy_data
from .study import _check_keys, _dataclass_section, _solver_top_level, read_study_yaml

TOP_KEYS = {"name", "solver", "problem", "rim", "training", "test", "device", "output"}
RIM_KEYS = {"steps", "hidden", "gradient", "scale", "step_weights", "seed", "members"}
ONE_SIGMA_COVERAGE = 0.6827  # P(|z| <= 1) for a standard normal z


@dataclasses.dataclass(frozen=True)
class TrainingSection:
    num_signals: int = 5000
    seed: int = 0
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3


@dataclasses.dataclass(frozen=True)
class FineTuneSection:
    num: int = 8
    iterations: int = 40
    lr: float = 1e-4
    penalty: float = 0.0
    stop_misfit: float = 1.0


@dataclasses.dataclass(frozen=True)
class TestSection:
    num_signals: int = 200
    seed: int = 1
    num_tune: int = 50
    tune_seed: int = 3
    num_calibrate: int = 0
    calibrate_seed: int = 4
    bootstrap: int = 16
    polish: bool = False
    fine_tune: FineTuneSection = FineTuneSection()


@dataclasses.dataclass(frozen=True)
class RimStudy:
    """A validated RIM study (see the module docstring)."""

    name: str
    problem: str
    problem_options: dict[str, Any]
    rim: dict[str, Any]
    training: TrainingSection
    test: TestSection
    device: str | None = None
    output: str = "rim-study-output"

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "study") -> RimStudy:
        """Validates ``doc`` (every section, the problem's options) before any work.

        Raises:
            ConfigError: naming the section and key.
        """
        top = _solver_top_level(doc, source, "rim", TOP_KEYS)
        prob = _check_keys("problem", top.get("problem"), {"name", "options"})
        if "name" not in prob:
            raise ConfigError(f"{source}: 'problem' needs a name (e.g. xray_deconvolution)")
        options = dict(prob.get("options") or {})
        check_inverse_problem_options(prob["name"], options)
        rim = _check_keys("rim", top.get("rim"), RIM_KEYS)
        training = _dataclass_section(source, "training", top.get("training"), TrainingSection)
        test_doc = _check_keys("test", top.get("test"),
                               {f.name for f in dataclasses.fields(TestSection)})
        ft = _dataclass_section(source, "test.fine_tune", test_doc.pop("fine_tune", None),
                                FineTuneSection)
        test = _dataclass_section(source, "test", test_doc, TestSection)
        study = cls(name=str(top.get("name", "rim-study")), problem=prob["name"],
                    problem_options=options, rim=rim, training=training,
                    test=dataclasses.replace(test, fine_tune=ft), device=top.get("device"),
                    output=str(top.get("output", "rim-study-output")))
        study._check(source)
        return study

    def _check(self, source: str) -> None:
        t, ft, tr = self.test, self.test.fine_tune, self.training
        counts = [("training.num_signals", tr.num_signals), ("training.epochs", tr.epochs),
                  ("training.batch_size", tr.batch_size), ("test.num_signals", t.num_signals),
                  ("test.num_tune", t.num_tune), ("test.fine_tune.iterations", ft.iterations)]
        for key, value in counts:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{source}: '{key}' must be a positive integer, got {value!r}")
        for key, value in (("test.bootstrap", t.bootstrap), ("test.fine_tune.num", ft.num),
                           ("test.num_calibrate", t.num_calibrate)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{source}: '{key}' must be an integer >= 0, got {value!r}")
        if not isinstance(t.polish, bool):
            raise ConfigError(f"{source}: 'test.polish' must be true or false, got "
                              f"{t.polish!r}")
        if t.bootstrap == 1:
            raise ConfigError(f"{source}: 'test.bootstrap' must be 0 (none) or >= 2 (a spread "
                              "needs two reconstructions)")
        for key, value in (("training.lr", tr.lr), ("test.fine_tune.lr", ft.lr),
                           ("test.fine_tune.stop_misfit", ft.stop_misfit)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{source}: '{key}' must be a positive number, got {value!r}")
        if not isinstance(ft.penalty, int | float) or isinstance(ft.penalty, bool) \
                or not ft.penalty >= 0:
            raise ConfigError(f"{source}: 'test.fine_tune.penalty' must be a number >= 0, got "
                              f"{ft.penalty!r}")
        if tr.num_signals < 2 * tr.batch_size:
            raise ConfigError(f"{source}: 'training.num_signals' must be at least twice "
                              "'training.batch_size' (a tenth of the signals validate)")
        for key, value in (("training.seed", tr.seed), ("test.seed", t.seed),
                           ("test.tune_seed", t.tune_seed),
                           ("test.calibrate_seed", t.calibrate_seed)):
            check_seed(value, f"{source}: '{key}'")
        if len({tr.seed, t.seed, t.tune_seed}) < 3:
            raise ConfigError(f"{source}: training.seed, test.seed and test.tune_seed must "
                              "differ (the held-out signals must not be training signals)")
        if t.num_calibrate and t.calibrate_seed in (tr.seed, t.seed, t.tune_seed):
            raise ConfigError(f"{source}: test.calibrate_seed must differ from training.seed, "
                              "test.seed and test.tune_seed (sigma is calibrated on signals "
                              "of its own)")
        members = self.rim.get("members", 1)
        if not isinstance(members, int) or isinstance(members, bool) or members < 1:
            raise ConfigError(f"{source}: 'rim.members' must be a positive integer, got "
                              f"{members!r}")
        try:  # the machine's settings, checked on a stand-in shape (the problem's is later)
            RIMConfig(signal_shape=(2, 4, 4), **_config_keys(self.rim))
        except (ConfigError, TypeError) as err:
            raise ConfigError(f"{source}: section 'rim': {err}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> RimStudy:
        return cls.from_dict(read_study_yaml(path), source=str(path))


def _config_keys(rim: dict[str, Any]) -> dict[str, Any]:
    """The ``rim`` section without ``members`` (the RIMConfig fields)."""
    return {k: v for k, v in rim.items() if k != "members"}


def is_rim_study(doc: Any) -> bool:
    """Whether a study document is a RIM study (``solver: rim``)."""
    return isinstance(doc, dict) and doc.get("solver") == "rim"


def _observe(problem: Any, signals: torch.Tensor, seed: int, dev: torch.device) -> torch.Tensor:
    """Row ``i``'s data from stream ``i`` of ``seed`` (as training draws its noise)."""
    with torch.no_grad():
        return noisy_data(problem.observe, signals.to(dev), key_from_seed(seed).to(dev),
                          torch.arange(signals.shape[0]))


def _member_dir(out: Path, k: int) -> Path:
    return out / ("rim" if k == 0 else f"rim-{k + 1}")


def _machines(study: RimStudy, problem: Any, out: Path, dev: torch.device,
              log: Callable[[str], Any]) -> tuple[RIMEnsemble, list[dict[str, Any]]]:
    """The trained RIMs (``rim/``, ``rim-2/``, ...): each reused when it was trained for
    this study's problem, rim and training sections, trained and saved otherwise.  Every
    folder is checked before any training."""
    members = study.rim.get("members", 1)
    tr = study.training
    recipes = [{"problem": study.problem, "problem_options": study.problem_options,
                "rim": _config_keys(study.rim), "training": dataclasses.asdict(tr),
                "member": k} for k in range(members)]
    found: dict[int, tuple[RIM, dict[str, Any]]] = {}
    for k, recipe in enumerate(recipes):
        folder = _member_dir(out, k)
        if (folder / "rim.json").exists():
            rim, meta = load_rim(folder, device=dev)
            if meta.get("recipe") != recipe:
                raise ConfigError(f"{folder} holds a RIM trained with other settings "
                                  f"({meta.get('recipe')}); it is kept: give another output "
                                  "folder, or move that one away to train anew")
            found[k] = (rim, meta)
    if found:
        log(f"[1/4] reusing {len(found)} trained RIM(s) in {out}")
    truth = None
    for k, recipe in enumerate(recipes):
        if k in found:
            continue
        log(f"[1/4] training RIM {k + 1} of {members} on {tr.num_signals} signals of "
            f"'{study.problem}'")
        t0 = time.perf_counter()
        if truth is None:
            truth = problem.sample_signals(tr.num_signals, tr.seed)
        simulate_s = time.perf_counter() - t0
        config = RIMConfig(signal_shape=tuple(problem.signal_shape), link=problem.link,
                           **{**_config_keys(study.rim),
                              "seed": study.rim.get("seed", 0) + k})
        rim = RIM(config, device=dev)
        checkpoint = out / f"{_member_dir(out, k).name}-checkpoint"  # a killed run resumes
        summary = fit(rim, truth.to(dev), problem.log_likelihood, observe=problem.observe,
                      config=TrainingConfig(epochs=tr.epochs, batch_size=tr.batch_size,
                                            lr=tr.lr, seed=tr.seed + k),
                      log=lambda m: log("      " + m), checkpoint=checkpoint)
        meta = {"recipe": recipe, "simulate_seconds": simulate_s,
                "train_seconds": summary.seconds, "train_loss": summary.train_loss,
                "validation_loss": summary.validation_loss, "best_epoch": summary.best_epoch}
        save_rim(rim, _member_dir(out, k), metadata=meta)
        shutil.rmtree(checkpoint, ignore_errors=True)  # the RIM is saved: not needed
        found[k] = (rim, meta)
    return (RIMEnsemble([found[k][0] for k in range(members)]),
            [found[k][1] for k in range(members)])


def _bootstrap_sigma(rim: RIM, problem: Any, est: torch.Tensor, n: int, seed: int,
                     dev: torch.device) -> torch.Tensor:
    """Std of the link-space estimate over RIM runs on data re-observed from ``est``."""
    link, reps = rim.config.link, []
    for b in range(n):
        data = _observe(problem, est, seed + 1 + b, dev)
        rec = rim.reconstruct(data, problem.log_likelihood, batch_size=256).cpu()
        reps.append(to_link(link, positive_where_log(link, rec)))
    return torch.stack(reps).std(0)


def _sigmas(ensemble: RIMEnsemble, problem: Any, est: torch.Tensor, spread: torch.Tensor,
            bootstrap: int, seed: int, dev: torch.device) -> dict[str, torch.Tensor]:
    """Link-space sigmas of ``est``: the bootstrap's (``bootstrap`` > 0), the members'
    spread (several members) and both in quadrature (``total``)."""
    sigmas = {}
    if bootstrap:
        sigmas["bootstrap"] = _bootstrap_sigma(ensemble.members[0], problem, est, bootstrap,
                                               seed, dev)
    if len(ensemble) > 1:
        sigmas["ensemble"] = spread
        if bootstrap:
            sigmas["total"] = (sigmas["bootstrap"] ** 2 + spread ** 2).sqrt()
    return sigmas


def _link_error(link: Any, est: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``|link(est) - link(truth)|`` per value (zeros floored where the link is a log)."""
    return (to_link(link, positive_where_log(link, est))
            - to_link(link, positive_where_log(link, truth))).abs()


def _calibration_scales(link: Any, est: torch.Tensor, truth: torch.Tensor,
                        sigma: torch.Tensor, labels: torch.Tensor, num_groups: int
                        ) -> torch.Tensor:
    """Per group, the factor ``s`` for which ``|error| <= s * sigma`` holds for 68.27 % of
    the group's values (split-conformal quantile, with its ``(n + 1) / n`` finite-sample
    correction; Angelopoulos & Bates 2021, arXiv:2107.07511), and last the factor of all
    values: ``(num_groups + 1,)``.  A group without signals takes the factor of all."""
    ratio = (_link_error(link, est, truth) / sigma.clamp_min(1e-12)).reshape(est.shape[0], -1)

    def quantile(r: torch.Tensor) -> float:
        r = r.reshape(-1).sort().values
        k = min(r.numel(), math.ceil((r.numel() + 1) * ONE_SIGMA_COVERAGE))
        return float(r[k - 1])

    every = quantile(ratio)
    return torch.tensor([*(quantile(ratio[labels == g]) if bool((labels == g).any()) else every
                           for g in range(num_groups)), every], dtype=sigma.dtype)


def _within(link: Any, est: torch.Tensor, truth: torch.Tensor, sigma: torch.Tensor
            ) -> torch.Tensor:
    """Per row, the fraction of values whose truth lies within 1 sigma (link space)."""
    inside = (_link_error(link, est, truth) <= sigma).float()
    return inside.reshape(inside.shape[0], -1).mean(1)


def run_rim_study(study: RimStudy, *, output: str | Path | None = None,
                  log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Runs a RIM study; returns the paths of its report and metrics and headline numbers."""
    problem = get_inverse_problem(study.problem, **study.problem_options)  # checks values
    if study.test.polish and not callable(getattr(problem, "polish", None)):
        raise ConfigError(f"study {study.name!r}: problem {study.problem!r} has no polish "
                          "step; set test.polish: false")
    RIMConfig(signal_shape=tuple(problem.signal_shape), link=problem.link,
              **_config_keys(study.rim))
    dev = resolve_device(study.device)
    out = check_output_dir(output if output is not None else study.output, kind="study",
                           overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    ensemble, metas = _machines(study, problem, out, dev, log)
    rim = ensemble.members[0]
    t = study.test
    log(f"[2/4] {t.num_signals} held-out signals (seed {t.seed})")
    truth = problem.sample_signals(t.num_signals, t.seed)
    data = _observe(problem, truth, t.seed, dev)
    t0 = time.perf_counter()
    est, spread = ensemble.reconstruct_with_spread(data, problem.log_likelihood,
                                                   batch_size=256)
    est, spread = est.cpu(), spread.cpu()
    rim_s = (time.perf_counter() - t0) / t.num_signals
    results = {"rim": {"estimate": est, "seconds": rim_s}}
    if t.polish:  # the problem's own step to the data's noise level, after the machine
        t0 = time.perf_counter()
        polished = problem.polish(est, data).cpu()
        results["rim-polished"] = {"estimate": polished, "seconds": rim_s + (
            time.perf_counter() - t0) / t.num_signals}
    single = est  # the first machine's reconstruction (the ensemble's, for one member)
    if len(ensemble) > 1:
        t0 = time.perf_counter()
        single = rim.reconstruct(data, problem.log_likelihood, batch_size=256).cpu()
        results["rim-member-1"] = {"estimate": single,
                                   "seconds": (time.perf_counter() - t0) / t.num_signals}
    sigmas = _sigmas(ensemble, problem, est, spread, t.bootstrap, t.seed, dev)
    log(f"[3/4] sigma's calibration and the peers, per group (peers tuned on {t.num_tune} "
        f"signals of seed {t.tune_seed})")
    tune_truth = problem.sample_signals(t.num_tune, t.tune_seed)
    tune_data = _observe(problem, tune_truth, t.tune_seed, dev)
    labels, names = problem.groups(truth)
    tune_labels, _ = problem.groups(tune_truth)
    scales = None
    if sigmas:  # split conformal: sigma's factor per group, from signals of their own
        kind = next(k for k in ("total", "bootstrap", "ensemble") if k in sigmas)
        if t.num_calibrate:
            cal_seed = t.calibrate_seed
            cal_truth = problem.sample_signals(t.num_calibrate, cal_seed)
            cal_data = _observe(problem, cal_truth, cal_seed, dev)
        else:
            cal_seed, cal_truth, cal_data = t.tune_seed, tune_truth, tune_data
        cal_est, cal_spread = ensemble.reconstruct_with_spread(
            cal_data, problem.log_likelihood, batch_size=256)
        cal_sigma = _sigmas(ensemble, problem, cal_est.cpu(), cal_spread.cpu(), t.bootstrap,
                            cal_seed, dev)[kind]
        scales = _calibration_scales(rim.config.link, cal_est.cpu(), cal_truth, cal_sigma,
                                     problem.groups(cal_truth)[0], len(names))
        shape = (-1,) + (1,) * (est.dim() - 1)  # a signal in no group (label -1): all's
        factor = scales[torch.where(labels >= 0, labels, len(names))]
        sigmas["calibrated"] = factor.reshape(shape) * sigmas[kind]
    for peer, solve in problem.baselines().items():
        t0 = time.perf_counter()
        estimate = torch.zeros_like(est)
        for g in sorted(set(labels.tolist())):
            rows, tune = labels == g, tune_labels == g
            if int(tune.sum()) == 0:
                tune = torch.ones_like(tune_labels, dtype=torch.bool)
            estimate[rows] = solve(data[rows.to(data.device)], tune_truth[tune],
                                   tune_data[tune.to(tune_data.device)]).cpu()
        results[peer] = {"estimate": estimate,
                         "seconds": (time.perf_counter() - t0) / t.num_signals}
    log("[4/4] fine-tuning, the observation, the report")
    rows_table, group_metrics = _group_table(problem, results, truth, data, labels, names,
                                             rim.config.link, sigmas, scales)
    tuned = _fine_tuning(study, rim, problem, single, data, truth)
    observed = _observed(ensemble, problem)
    accuracy = _accuracy_section(study, problem, rows_table, results, metas)
    accuracy.figures.append((_examples_figure(problem, truth, results, rim.config.link),
                             "Three held-out signals: the truth, the RIM and the peers."))
    sections = [accuracy,
                *([tuned["section"]] if tuned else []),
                *([observed["section"]] if observed else [])]
    metrics = {"name": study.name, "groups": group_metrics, "training": metas,
               "seconds_per_reconstruction": {k: v["seconds"] for k, v in results.items()},
               "fine_tuning": tuned["metrics"] if tuned else None,
               "observed": observed["metrics"] if observed else None,
               "provenance": {
                   "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                   "study": dataclasses.asdict(study), "device": str(dev),
                   "packages": package_versions(), "platform": platform.platform()}}
    report, metrics_path = write_sections_report(
        sections, out / "report", title=f"RIM study: {study.name}",
        subtitle=f"'{study.problem}': {t.num_signals} held-out signals, "
                 f"{len(ensemble)} RIM(s) of {rim.config.steps} steps", metrics=metrics)
    return {"report": str(report), "metrics": str(metrics_path), "groups": group_metrics}


def _group_table(problem: Any, results: dict, truth: torch.Tensor, data: torch.Tensor,
                 labels: torch.Tensor, names: list[str], link: Any,
                 sigmas: dict[str, torch.Tensor], scales: torch.Tensor | None
                 ) -> tuple[list[dict], dict]:
    """One table row per group (and all): misfits, errors of every solver, coverage and
    the calibrated sigma's factor."""
    misfit_truth = problem.misfit(truth, data)
    per = {k: (problem.misfit(v["estimate"], data), problem.errors(v["estimate"], truth))
           for k, v in results.items()}
    within = {k: _within(link, results["rim"]["estimate"], truth, v.cpu())
              for k, v in sigmas.items()}
    table, metrics = [], {}
    groups = [(name, labels == g) for g, name in enumerate(names)]
    for name, rows in [("all", torch.ones_like(labels, dtype=torch.bool)), *groups]:
        if int(rows.sum()) == 0:
            continue
        m: dict[str, Any] = {"signals": int(rows.sum()),
                             "truth_misfit": float(misfit_truth[rows].mean())}
        for solver, (mis, err) in per.items():
            m[f"{solver}_misfit"] = float(mis[rows].mean())
            for key, value in err.items():
                m[f"{solver}_{key}"] = float(value[rows].mean())
        for kind, w in within.items():
            m[f"rim_truth_within_1_sigma_{kind}"] = float(w[rows].mean())
        if scales is not None:  # "all": the factor of all calibration values
            m["sigma_calibration_scale"] = float(
                scales[-1] if name == "all" else scales[names.index(name)])
        metrics[name] = m
        table.append({"group": name, **{k: (f"{v:.3g}" if isinstance(v, float) else v)
                                        for k, v in m.items()}})
    return table, metrics


def _accuracy_section(study: RimStudy, problem: Any, table: list[dict], results: dict,
                      metas: list[dict]) -> Section:
    speed = ", ".join(f"{k} {v['seconds'] * 1e3:.3g} ms" for k, v in results.items())
    train = sum(m.get("train_seconds", float("nan")) for m in metas)
    text = (f"Held-out signals of '{study.problem}' ({problem.units}). Misfit: the problem's "
            f"reduced goodness of fit of each reconstruction to its data (the truth's is the "
            f"reference). Errors: as the problem defines them (lower is better); the peers "
            f"are tuned per group on separate signals. 'rim' is the mean of {len(metas)} "
            f"machine(s). Within 1 sigma: the fraction of values whose truth lies within "
            f"the bootstrap's, the ensemble's or both's (total) sigma, 0.68 if calibrated; "
            f"'calibrated': that sigma times a factor per group fitted on other signals "
            f"(split conformal; sigma_calibration_scale). "
            f"Time per reconstruction (a peer's includes its tuning): {speed}. Training: "
            f"{train:.0f} s in all.")
    return Section(title="Reconstruction accuracy", text=text, table=table,
                   metrics={"table": table})


def _examples_figure(problem: Any, truth: torch.Tensor, results: dict, link: Any, *,
                     first: str = "truth") -> Any:
    """The first three signals: a line per solver (1-D, log axis for a log link), or a map
    per channel and solver (2-D); ``truth`` (labelled ``first``) sets the colour range."""
    k = min(3, truth.shape[0])
    solvers = [(first, truth), *((name, r["estimate"]) for name, r in results.items())]
    if truth.dim() == 2:
        label, x_values = "signal bin", None
        if callable(getattr(problem, "signal_axis", None)):
            label, x_values = problem.signal_axis()
        fig, axes = figure(1, k, size=(max(4.0 * k, 7.0), 3.6))
        for j in range(k):
            ax = axes[0, j]
            for name, x in solvers:
                y = x[j].numpy()
                ax.plot(x_values if x_values is not None else range(len(y)), y, label=name,
                        lw=1.0)
            if link == "log":
                ax.set_yscale("log")
            ax.set_xlabel(label)
        axes[0, 0].legend(fontsize=7)
        return fig
    channels = truth.shape[1]
    fig, axes = figure(k, channels * len(solvers), size=(1.6 * channels * len(solvers),
                                                         1.7 * k))
    for j in range(k):
        for c in range(channels):
            log_c = (link[c] if isinstance(link, tuple) else link) == "log"
            ref = truth[j, c].clamp_min(1e-6).log10() if log_c else truth[j, c]
            for i, (name, x) in enumerate(solvers):
                img = x[j, c].clamp_min(1e-6).log10() if log_c else x[j, c]
                ax = axes[j, c * len(solvers) + i]
                ax.imshow(img.numpy(), origin="lower", vmin=float(ref.min()),
                          vmax=float(ref.max()))
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_title(f"{name} ch{c}{' (log10)' if log_c else ''}", fontsize=7)
    return fig


def _fine_tuning(study: RimStudy, rim: RIM, problem: Any, est: torch.Tensor,
                 data: torch.Tensor, truth: torch.Tensor) -> dict | None:
    """Fine-tuning of the first machine (whose reconstructions are ``est``) on the signals
    it fits worst."""
    ft = study.test.fine_tune
    if ft.num == 0:
        return None
    misfit = problem.misfit(est, data)
    worst = misfit.argsort(descending=True)[:ft.num].tolist()
    before, after, iterations, seconds = [], [], [], 0.0
    for i in worst:
        t0 = time.perf_counter()
        tuned, history = fine_tune(
            rim, data[i:i + 1], problem.log_likelihood, iterations=ft.iterations, lr=ft.lr,
            penalty=ft.penalty,
            stop=lambda s, i=i: float(problem.misfit(s, data[i:i + 1])[0]) <= ft.stop_misfit)
        seconds += time.perf_counter() - t0
        iterations.append(len(history) - 1)
        before.append(est[i:i + 1])
        after.append(tuned.reconstruct(data[i:i + 1], problem.log_likelihood).cpu())
    idx = torch.tensor(worst)
    b, a = torch.cat(before), torch.cat(after)
    m = {"signals": worst, "iterations": iterations, "seconds_per_signal": seconds / len(worst),
         "misfit_before": float(problem.misfit(b, data[idx]).mean()),
         "misfit_after": float(problem.misfit(a, data[idx]).mean())}
    for when, x in (("before", b), ("after", a)):
        for key, value in problem.errors(x, truth[idx]).items():
            m[f"{key}_{when}"] = float(value.mean())
    text = (f"The {len(worst)} held-out signals the first RIM fits worst, fine-tuned one at "
            f"a time "
            f"(Adam, lr {ft.lr:g}, weight penalty {ft.penalty:g}, at most {ft.iterations} "
            f"iterations, stopped once the "
            f"misfit reaches {ft.stop_misfit:g}): misfit {m['misfit_before']:.3g} -> "
            f"{m['misfit_after']:.3g}; "
            + "; ".join(f"{k} {m[k + '_before']:.3g} -> {m[k + '_after']:.3g}"
                        for k in problem.errors(b[:1], truth[idx][:1]))
            + f"; {m['seconds_per_signal']:.3g} s per signal.")
    return {"metrics": m, "section": Section(title="Per-observation fine-tuning", text=text,
                                             metrics=m)}


def _observed(rim: RIMEnsemble, problem: Any) -> dict | None:
    if not callable(getattr(problem, "observed", None)):
        return None
    data = problem.observed()
    est = rim.reconstruct(data, problem.log_likelihood).cpu()
    m: dict[str, Any] = {"misfit": float(problem.misfit(est, data)[0]),
                         "estimate": est[0].tolist()}
    text = (f"The problem's real observation, reconstructed by the RIM: misfit "
            f"{m['misfit']:.3g}.")
    solvers = {"RIM": est}
    if callable(getattr(problem, "observed_reference", None)):
        label, ref = problem.observed_reference()
        ref = ref.cpu()
        solvers[label] = ref
        m["reference"] = {"label": label, "misfit": float(problem.misfit(ref, data)[0]),
                          "estimate": ref[0].tolist(),
                          **{f"rim_{k}": float(v[0])
                             for k, v in problem.errors(est, ref).items()}}
        text += (f" Beside it, the {label}: misfit {m['reference']['misfit']:.3g}; the RIM's "
                 "difference from it: " + ", ".join(
                     f"{k[4:]} {v:.3g}" for k, v in m["reference"].items()
                     if k.startswith("rim_")) + ".")
    text += " Both signals are in metrics.json."
    summary = {k: v for k, v in m.items() if k != "estimate"}
    if "reference" in summary:
        summary["reference"] = {k: v for k, v in m["reference"].items() if k != "estimate"}
    fig = _examples_figure(problem, est, {k: {"estimate": v} for k, v in solvers.items()
                                          if k != "RIM"}, rim.config.link, first="RIM")
    return {"metrics": m, "section": Section(title="The real observation", text=text,
                                             metrics=summary,
                                             figures=[(fig, "The real observation.")])}
