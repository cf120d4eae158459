"""The calibration run: held-out simulations, batched posterior sampling, every diagnostic.

:func:`calibrate` draws ``n_test`` held-out pairs ``(theta, x)`` from the simulator, samples
the posterior for every ``x`` in one batched call, runs the diagnostics (TARP, SBC, HPD
expected coverage when the posterior has ``log_prob``, a posterior predictive check,
parameter recovery), reaches the verdict, and hands a
:class:`~sbi_astro.report.ReportContent` to the report, which writes ``report.html`` and
``metrics.json``.  It relies only on a small protocol, not on the inference code:

* ``posterior.sample(num_samples: int, x: Tensor (N, *E)) -> Tensor (S, N, D)``;
* optionally ``posterior.log_prob(theta (S, N, D), x (N, *E)) -> (S, N)``;
* ``simulator`` is a :class:`~sbi_astro.simulator.Simulator`.

Example:
    >>> import tempfile, torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> class Exact:
    ...     def sample(self, num_samples, x):
    ...         return sim.reference_posterior(x, num_samples,
    ...                                        generator=torch.Generator().manual_seed(1))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     res = calibrate(Exact(), sim, d, n_test=100, num_samples=200, seed=0)
    ...     res.report_path.name, res.verdict in ("calibrated", "overconfident",
    ...                                           "underconfident", "biased")
    ('report.html', True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import inspect
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..analysis import Section
from ..device import resolve_device
from ..diagnostics.coverage import expected_coverage, posterior_log_probs
from ..diagnostics.ppc import posterior_predictive
from ..diagnostics.recovery import parameter_recovery
from ..diagnostics.sbc import sbc
from ..diagnostics.tarp import tarp
from ..diagnostics.verdict import Verdict, calibration_verdict
from ..errors import ConfigError, NonFiniteError, ShapeError
from ..executor import ClusterSpec, RowSimulations
from ..provenance import package_versions
from ..report import ReportContent, jsonable, write_report
from ..simulator import Simulator

#: the posterior predictive re-simulations' seed is the calibration seed xor this
_PPC_SALT = 0x99C


@runtime_checkable
class SamplingPosterior(Protocol):
    """What :func:`calibrate` needs from a posterior."""

    def sample(self, num_samples: int, x: Tensor) -> Tensor: ...


@dataclasses.dataclass
class CalibrationResult:
    """Outcome of :func:`calibrate`.

    Attributes:
        metrics: everything written to ``metrics.json``.
        verdict: ``"calibrated"``, ``"overconfident"``, ``"underconfident"`` or ``"biased"``.
        report_path: path of ``report.html``.
        metrics_path: path of ``metrics.json``.
    """

    metrics: dict[str, Any]
    verdict: str
    report_path: Path
    metrics_path: Path


def calibrate(posterior: SamplingPosterior, simulator: Simulator, out_dir: str | Path, *,
              n_test: int = 200, num_samples: int = 1000, seed: int = 0,
              provenance: dict[str, Any] | None = None,
              device: torch.device | str | None = None,
              ppc_observations: int = 50, ppc_draws: int = 100,
              sections: list[Section] | tuple[Section, ...] = (),
              cluster: ClusterSpec | None = None, chunk_size: int = 100,
              log: Callable[[str], Any] | None = None) -> CalibrationResult:
    """Calibrates ``posterior`` on held-out simulations and writes the report.

    Args:
        posterior: has ``sample(num_samples, x (N, *E)) -> (S, N, D)`` and optionally
            ``log_prob(theta (S, N, D), x (N, *E)) -> (S, N)`` (then HPD coverage is run).
        simulator: the simulator the posterior was trained on.
        out_dir: folder for ``report.html`` and ``metrics.json`` (created).
        n_test: held-out simulations.
        num_samples: posterior samples per simulation.
        seed: seeds the held-out draws, TARP references, bootstraps and re-simulations.
        provenance: extra entries for the report (run directory, training options, ...).
        device: where test data and samples live; default: the simulator's device.
        ppc_observations: observations used in the posterior predictive check.
        ppc_draws: re-simulations per observation there.
        sections: extra :class:`~sbi_astro.analysis.Section` s (study analyses), shown
            before Provenance.
        cluster: where the held-out simulations and the posterior predictive
            re-simulations run (:class:`~sbi_astro.executor.ClusterSpec`: a local Dask
            cluster, a running one, a batch system's); default: here.  The numbers are the
            same wherever they run.
        chunk_size: rows per task of those simulations (each row is keyed by the seed and
            its index, so the held-out set does not depend on it).
        log: where the cluster's dashboard address is reported (default: nowhere).

    Returns:
        A :class:`CalibrationResult`.
    """
    if n_test < 10 or num_samples < 10:
        raise ConfigError(f"calibrate needs n_test >= 10 and num_samples >= 10, got {n_test} "
                          f"and {num_samples}; use >= 200 and >= 1000 for a reliable verdict")
    if not callable(getattr(posterior, "sample", None)):
        raise ConfigError("calibrate: posterior must have sample(num_samples, x) -> (S, N, D)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device) if device is not None else simulator.device
    timings: dict[str, float] = {}
    with RowSimulations(simulator, cluster, chunk_size=chunk_size, log=log) as rows:
        with _timed(timings, "simulate_s"):
            theta, x = rows.joint(seed, n_test)
            theta, x = theta.to(dev), x.to(dev)
        with _timed(timings, "sample_s"):
            samples = _posterior_samples(posterior, num_samples, x, seed, simulator.dim)
        samples = samples.to(theta)
        res = _diagnose(posterior, simulator, theta, x, samples, seed, timings, rows,
                        ppc_observations=ppc_observations, ppc_draws=ppc_draws)
    prov = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "simulator": simulator.describe(),
        "n_test": n_test, "num_samples": num_samples, "seed": seed, "device": str(dev),
        "simulated_on": rows.where,
        "posterior": type(posterior).__name__,
        "packages": package_versions(), "platform": platform.platform(),
        # the caller's entries (run directory, training options...) under their own key, so
        # that they can never overwrite the fields above
        "run": dict(provenance or {}),
    }
    metrics = _metrics(res, simulator, n_test, num_samples, seed, sections, timings, prov)
    content = ReportContent(metrics=metrics, tarp=res["tarp"], sbc=res["sbc"],
                            coverage=res["coverage"], ppc=res["ppc"], recovery=res["recovery"],
                            theta=theta, example_samples=samples[:, 0],
                            names=tuple(simulator.param_names),
                            units=tuple(simulator.param_units),
                            event_shape=tuple(simulator.event_shape), sections=list(sections))
    report_path, metrics_path = write_report(content, out)
    return CalibrationResult(metrics=metrics, verdict=res["verdict"].label,
                             report_path=report_path, metrics_path=metrics_path)


@contextlib.contextmanager
def _timed(timings: dict[str, float], key: str):
    t0 = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t0


def _posterior_samples(posterior: SamplingPosterior, num_samples: int, x: Tensor, seed: int,
                       d: int) -> Tensor:
    """``(S, N, D)`` samples for the held-out ``x``, checked for shape and finiteness."""
    with torch.no_grad():
        if "generator" in inspect.signature(posterior.sample).parameters:
            # estimators that take a generator are sampled reproducibly
            samples = posterior.sample(num_samples, x,
                                       generator=torch.Generator().manual_seed(seed ^ 0x5A3))
        else:
            samples = posterior.sample(num_samples, x)
    n = x.shape[0]
    if not isinstance(samples, Tensor) or tuple(samples.shape) != (num_samples, n, d):
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ShapeError(f"posterior.sample({num_samples}, x of shape {tuple(x.shape)}) must "
                         f"return (S, N, D) = ({num_samples}, {n}, {d}), got {got}")
    if not torch.isfinite(samples).all():
        raise NonFiniteError("posterior samples contain NaN or infinite values; the "
                             "estimator is broken for some test observations")
    return samples


def _diagnose(posterior: SamplingPosterior, simulator: Simulator, theta: Tensor, x: Tensor,
              samples: Tensor, seed: int, timings: dict[str, float], rows: RowSimulations, *,
              ppc_observations: int, ppc_draws: int) -> dict[str, Any]:
    """TARP, SBC, recovery, HPD coverage (with ``log_prob``), the verdict and the PPC."""
    prior = simulator.prior
    with _timed(timings, "tarp_s"):
        tarp_res = tarp(samples, theta,
                        bounds=(prior.low, prior.high) if prior.bounded else None, seed=seed)
    with _timed(timings, "sbc_s"):
        sbc_res = sbc(samples, theta)
    recovery = parameter_recovery(samples, theta)
    cov_res = None
    if callable(getattr(posterior, "log_prob", None)):
        with _timed(timings, "coverage_s"):
            lp_s, lp_t = posterior_log_probs(posterior, samples, theta, x)
            cov_res = expected_coverage(lp_s, lp_t, seed=seed)
    verdict: Verdict = calibration_verdict(sbc_res.normalized_ranks, tarp_res, cov_res,
                                           param_names=simulator.param_names)
    with _timed(timings, "ppc_s"):
        m = min(ppc_observations, theta.shape[0])

        def resimulate(th: Tensor) -> Tensor:  # (K, m, D) -> (K, m, *E), rows on the executor
            flat = rows.given(th.reshape(-1, th.shape[-1]), seed ^ _PPC_SALT)
            return flat.reshape(*th.shape[:2], *flat.shape[1:])

        ppc_res = posterior_predictive(simulator, samples[:, :m], x[:m],
                                       num_draws=min(ppc_draws, samples.shape[0]), seed=seed,
                                       simulate=resimulate)
    return {"tarp": tarp_res, "sbc": sbc_res, "recovery": recovery, "coverage": cov_res,
            "verdict": verdict, "ppc": ppc_res}


def _metrics(res: dict[str, Any], simulator: Simulator, n_test: int, num_samples: int,
             seed: int, sections: list[Section] | tuple[Section, ...],
             timings: dict[str, float], prov: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able numbers of ``metrics.json``."""
    tarp_res, sbc_res, cov_res = res["tarp"], res["sbc"], res["coverage"]
    ppc_res, recovery, verdict = res["ppc"], res["recovery"], res["verdict"]
    names, units = simulator.param_names, simulator.param_units
    z_mean = verdict.statistics["rank_mean_z"]
    z_var = verdict.statistics["rank_variance_z"]
    key = {"TARP ATC": tarp_res.atc, "TARP KS p": tarp_res.ks_pvalue,
           "diagonal in TARP band": tarp_res.diagonal_in_band,
           "min SBC χ² p": sbc_res.chi2_pvalues.min().item()}
    if cov_res is not None:
        key["HPD coverage KS p"] = cov_res.ks_pvalue
        key["HPD mean deviation"] = cov_res.mean_deviation
    key["PPC 90% interval coverage"] = ppc_res.interval_coverage
    key["PPC 90% interval, K-draw reference"] = ppc_res.expected_interval_coverage
    metrics = {
        "verdict": verdict.to_dict(),
        "n_test": n_test, "num_samples": num_samples, "seed": seed,
        "key_numbers": key,
        "parameters": [
            {"name": names[k], "unit": units[k],
             "sbc_chi2_pvalue": sbc_res.chi2_pvalues[k].item(),
             "sbc_ks_pvalue": sbc_res.ks_pvalues[k].item(),
             "rank_mean_z": z_mean[k], "rank_variance_z": z_var[k],
             "r2": recovery.r2[k].item(), "rmse": recovery.rmse[k].item(),
             "posterior_std_median": recovery.posterior_std_median[k].item(),
             "relative_std_median": recovery.relative_std_median[k].item()}
            for k in range(simulator.dim)],
        "tarp": tarp_res.to_dict(), "sbc": sbc_res.to_dict(),
        "coverage": cov_res.to_dict() if cov_res is not None else None,
        "ppc": ppc_res.to_dict(),
        "recovery": recovery.to_dict(),
        "sections": {sec.title: sec.metrics for sec in sections},
        "timings": timings,
        "provenance": prov,
    }
    return jsonable(metrics)


def calibrate_estimator(est: Any, out_dir: str | Path, *, n_test: int = 200,
                        num_samples: int = 1000, seed: int = 12345,
                        sections: list[Section] | tuple[Section, ...] = (),
                        ppc_observations: int = 50, ppc_draws: int = 100,
                        cluster: ClusterSpec | None = None,
                        log: Callable[[str], Any] | None = None) -> CalibrationResult:
    """The calibration report of a trained estimator, with its run's provenance (its
    simulations on ``cluster``, as in :func:`calibrate`)."""
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
                     ppc_observations=ppc_observations, ppc_draws=ppc_draws,
                     cluster=cluster, log=log)
