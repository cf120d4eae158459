"""Calibration report: one self-contained ``report.html`` plus ``metrics.json``.

:func:`calibrate` draws ``n_test`` held-out pairs ``(theta, x)`` from the simulator, samples
the posterior for every ``x`` in one batched call, runs the diagnostics (TARP, SBC, HPD
expected coverage when the posterior has ``log_prob``, a posterior predictive check) and
writes the report.  It relies only on a small protocol, not on the inference code:

* ``posterior.sample(num_samples: int, x: Tensor (N, *E)) -> Tensor (S, N, D)``;
* optionally ``posterior.log_prob(theta (S, N, D), x (N, *E)) -> (S, N)``;
* ``simulator`` is a :class:`~sbi_astro.simulator.Simulator`.

The HTML embeds its figures as base64 PNG (matplotlib, Agg backend) and its style inline:
it opens offline, from any folder, in any browser.

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

import base64
import dataclasses
import datetime as _dt
import html
import inspect
import io
import json
import math
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from . import atomic
from .device import resolve_device
from .diagnostics.coverage import CoverageResult, expected_coverage, posterior_log_probs
from .diagnostics.ppc import PPCResult, posterior_predictive
from .diagnostics.recovery import RecoveryResult, parameter_recovery
from .diagnostics.sbc import SBCResult, sbc
from .diagnostics.tarp import TarpResult, tarp
from .diagnostics.verdict import Verdict, calibration_verdict
from .errors import ConfigError, NonFiniteError, ShapeError
from .simulator import Simulator


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


@dataclasses.dataclass
class ReportSection:
    """An extra section of the report, contributed by a study analysis or a caller.

    Attributes:
        title: the section heading; also its key under ``metrics["sections"]``.
        text: plain-text paragraphs (blank-line separated), escaped into the page.
        figures: ``(base64 PNG, caption)`` pairs (see :func:`figure` and :func:`png`).
        metrics: JSON-able numbers saved in ``metrics.json``.
        table: optional rows (dicts with the same keys) rendered as a table.
    """

    title: str
    text: str = ""
    figures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    table: list[dict[str, Any]] | None = None

    def to_html(self) -> str:
        parts = [f"<h2>{html.escape(self.title)}</h2>"]
        parts += [f"<p>{html.escape(p.strip())}</p>" for p in self.text.split("\n\n")
                  if p.strip()]
        if self.table:
            cols = list(self.table[0])
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>"
                                             for c in cols) + "</tr>" for r in self.table)
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        if self.figures:
            parts.append('<div class="figs">' + "".join(_fig(p, c) for p, c in self.figures)
                         + "</div>")
        return "".join(parts)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


# -- provenance ---------------------------------------------------------------------------
_PACKAGES = ("sbi-astro", "torch", "sbi", "zuko", "numpy", "scipy", "matplotlib")


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages behind a result."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


# -- figures ------------------------------------------------------------------------------
def figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (5.0, 4.0)):
    """A matplotlib ``Figure`` (Agg, no pyplot state) and its 2-D array of axes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def png(fig) -> str:
    """``fig`` as a base64-encoded PNG, ready for :class:`ReportSection` figures."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_tarp(res: TarpResult) -> str:
    fig, ax = figure(size=(4.6, 4.2))
    ax = ax[0, 0]
    a = res.alpha.numpy()
    ax.fill_between(a, res.ecp_low.numpy(), res.ecp_high.numpy(), color="C0", alpha=0.25,
                    label=f"{res.confidence:.0%} bootstrap band")
    ax.plot(a, res.ecp.numpy(), color="C0", lw=2, label="TARP ECP")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.set(xlabel="credibility level α", ylabel="expected coverage", xlim=(0, 1), ylim=(0, 1),
           title=f"TARP (ATC {res.atc:+.3f}, KS p {res.ks_pvalue:.2g})")
    ax.legend(loc="upper left", fontsize=8)
    return png(fig)


def plot_coverage(res: CoverageResult) -> str:
    fig, ax = figure(size=(4.6, 4.2))
    ax = ax[0, 0]
    a = res.alpha.numpy()
    ax.fill_between(a, res.coverage_low.numpy(), res.coverage_high.numpy(), color="C2",
                    alpha=0.25, label="95% bootstrap band")
    ax.plot(a, res.coverage.numpy(), color="C2", lw=2, label="HPD coverage")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
    ax.text(0.55, 0.08, "below: overconfident\nabove: underconfident", fontsize=8,
            transform=ax.transAxes)
    ax.set(xlabel="credibility level α", ylabel="empirical coverage", xlim=(0, 1),
           ylim=(0, 1), title=f"Expected coverage (KS p {res.ks_pvalue:.2g})")
    ax.legend(loc="upper left", fontsize=8)
    return png(fig)


def plot_sbc(res: SBCResult, names: tuple[str, ...]) -> str:
    from scipy.stats import binom

    d = res.histograms.shape[0]
    ncols = min(d, 4)
    nrows = math.ceil(d / ncols)
    fig, axes = figure(nrows, ncols, size=(2.6 * ncols, 2.1 * nrows + 0.3))
    n = res.ranks.shape[0]
    x = torch.arange(res.num_bins).numpy()
    p = (res.expected / n).numpy()
    lo, hi = binom.ppf(0.005, n, p), binom.ppf(0.995, n, p)
    for k in range(nrows * ncols):
        ax = axes[k // ncols, k % ncols]
        if k >= d:
            ax.set_axis_off()
            continue
        ax.fill_between(x, lo, hi, step="mid", color="0.9", lw=0)
        ax.bar(x, res.histograms[k].numpy(), width=0.9, color="C1", alpha=0.75)
        ax.step(x, res.expected.numpy(), where="mid", color="k", lw=0.8)
        ax.set_ylim(0, max(hi.max(), res.histograms[k].max().item()) * 1.1)
        ax.set_title(f"{names[k]}  (χ² p {res.chi2_pvalues[k]:.2g})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"SBC rank histograms ({n} simulations, {res.num_posterior_samples} "
                 "samples, rank bins)", fontsize=10)
    return png(fig)


def plot_corner(samples: Tensor, truth: Tensor | None, names: tuple[str, ...],
                units: tuple[str, ...], max_dims: int = 6, *, reference: Tensor | None = None,
                title: str | None = None) -> str:
    """Corner plot of ``samples (S, D)`` with the ``truth`` marked in red, or, with
    ``reference``, both sample sets overlaid (blue: samples, red: reference)."""
    d = min(samples.shape[1], max_dims)
    s = samples[:, :d].double().cpu().numpy()
    r = reference[:, :d].double().cpu().numpy() if reference is not None else None
    t = truth[:d].double().cpu().numpy() if truth is not None else None
    fig, axes = figure(d, d, size=(1.6 * d + 0.6, 1.6 * d + 0.4))
    labels = [f"{n} [{u}]" if u else n for n, u in zip(names, units, strict=True)][:d]
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j and r is None:
                ax.hist(s[:, i], bins=30, color="C0", alpha=0.7)
            elif i == j:
                lo, hi = min(s[:, i].min(), r[:, i].min()), max(s[:, i].max(), r[:, i].max())
                bins = [lo + (hi - lo) * k / 40 for k in range(41)]
                ax.hist(s[:, i], bins=bins, density=True, histtype="step", color="C0", lw=1.4)
                ax.hist(r[:, i], bins=bins, density=True, histtype="step", color="C3", lw=1.2)
            elif r is None:
                ax.hist2d(s[:, j], s[:, i], bins=30, cmap="Blues")
            else:
                ax.plot(s[:2000, j], s[:2000, i], ".", ms=1, color="C0", alpha=0.3)
                ax.plot(r[:2000, j], r[:2000, i], ".", ms=1, color="C3", alpha=0.3)
            if t is not None:
                if i == j:
                    ax.axvline(t[i], color="C3", lw=1.5)
                else:
                    ax.plot(t[j], t[i], "*", color="C3", ms=10, mec="white", mew=0.5)
            if i == j:
                ax.set_yticks([])
            if i == d - 1:
                ax.set_xlabel(labels[j], fontsize=8)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(labels[i], fontsize=8)
            elif j > 0:
                ax.set_yticklabels([])
            ax.tick_params(labelsize=7)
    more = f" (first {d} of {samples.shape[1]} parameters)" if samples.shape[1] > d else ""
    fig.suptitle((title or "Posterior of test simulation 0; red: true parameters") + more,
                 fontsize=10)
    return png(fig)


def plot_ppc(res: PPCResult, event_shape: tuple[int, ...]) -> str:
    fig, axes = figure(1, 2, size=(9.5, 3.8))
    ax = axes[0, 0]
    q = res.x_rep_quantiles[:, 0]
    xo = res.x_obs[0]
    if len(event_shape) == 1:
        i = torch.arange(event_shape[0]).numpy()
        ax.fill_between(i, q[0].numpy(), q[4].numpy(), color="C0", alpha=0.2,
                        label="90% predictive")
        ax.fill_between(i, q[1].numpy(), q[3].numpy(), color="C0", alpha=0.35,
                        label="50% predictive")
        ax.plot(i, q[2].numpy(), color="C0", lw=1, label="predictive median")
        ax.plot(i, xo.numpy(), ".", color="k", ms=4, label="observation")
        ax.set(xlabel="element (bin)", ylabel="x", title="Posterior predictive, simulation 0")
        ax.legend(fontsize=7)
    else:
        z = res.residual_z[0].reshape(-1).numpy()
        ax.hist(z, bins=40, color="C0")
        ax.set(xlabel="residual z = (x_obs - mean) / std", ylabel="elements",
               title="Per-element residuals, simulation 0")
    ax = axes[0, 1]
    for k, name in enumerate(res.statistic_names):
        ax.hist(res.pvalues[:, k].numpy(), bins=10, range=(0, 1), histtype="step", lw=1.5,
                label=name)
    ax.set(xlabel="posterior predictive p-value", ylabel="observations",
           title=f"Summary statistics over {res.t_obs.shape[0]} observations")
    ax.legend(fontsize=7)
    return png(fig)


# -- HTML ---------------------------------------------------------------------------------
_PROV_SHOWN = {"created", "simulator", "n_test", "num_samples", "seed", "device", "posterior",
               "packages", "run"}
_COLOURS = {"calibrated": "#1a7f37", "overconfident": "#b42318", "underconfident": "#b54708",
            "biased": "#6941c6"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;
background:#f6f7f9;color:#1d2433}
main{max-width:1050px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid
#dde1e7;padding-bottom:4px} .sub{color:#5b6475;margin-bottom:16px}
.verdict{color:#fff;border-radius:10px;padding:16px 20px;margin:12px 0}
.verdict b{font-size:26px;text-transform:uppercase;letter-spacing:.04em}
.verdict ul{margin:8px 0 0 18px;padding:0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:10px 14px;
min-width:150px} .card .v{font-size:20px;font-weight:600} .card .k{font-size:12px;
color:#5b6475} .figs{display:flex;flex-wrap:wrap;gap:12px} figure{background:#fff;
border:1px solid #dde1e7;border-radius:8px;margin:0;padding:8px} img{max-width:100%}
figcaption{font-size:12px;color:#5b6475;max-width:480px} table{border-collapse:collapse;
background:#fff;font-size:13px} td,th{border:1px solid #dde1e7;padding:4px 8px;
text-align:left} pre{background:#fff;border:1px solid #dde1e7;padding:10px;overflow:auto;
font-size:12px}
"""


def plot_recovery(res: RecoveryResult, theta: Tensor, names: tuple[str, ...],
                  units: tuple[str, ...]) -> str:
    """Posterior mean +- one standard deviation against the true value, per parameter."""
    d = len(names)
    ncols = min(d, 4)
    nrows = math.ceil(d / ncols)
    fig, axes = figure(nrows, ncols, size=(2.7 * ncols, 2.5 * nrows + 0.2))
    mean, std, th = res.mean.cpu(), res.std.cpu(), theta.cpu()
    for k in range(nrows * ncols):
        ax = axes[k // ncols][k % ncols]
        if k >= d:
            ax.set_axis_off()
            continue
        ax.errorbar(th[:, k], mean[:, k], yerr=std[:, k], fmt="o", ms=2, lw=0.6,
                    color="#1f6feb", alpha=0.6)
        lo, hi = float(th[:, k].min()), float(th[:, k].max())
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8)
        unit = f" [{units[k]}]" if units[k] else ""
        ax.set_title(f"{names[k]}{unit}: R² {res.r2[k].item():.3f}", fontsize=8)
        ax.tick_params(labelsize=7)
    return png(fig)


def _card(value: str, key: str) -> str:
    return f'<div class="card"><div class="v">{html.escape(value)}</div>' \
           f'<div class="k">{html.escape(key)}</div></div>'


def _fig(png: str, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(metrics: dict[str, Any], figures: dict[str, str],
                extra_sections: tuple[str, ...] | list[str] = ()) -> str:
    """The report page from ``metrics``, base64 PNG ``figures`` and extra section HTML."""
    v = metrics["verdict"]
    colour = _COLOURS.get(v["label"], "#344054")
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in v["reasons"])
    key = metrics["key_numbers"]
    cards = "".join(_card(f"{val:.3g}" if isinstance(val, float) else str(val), k)
                    for k, val in key.items())
    prov = metrics["provenance"]
    sim = prov["simulator"]
    params = metrics["parameters"]
    rows = "".join(
        f"<tr><td>{html.escape(p['name'])}</td><td>{html.escape(p['unit'] or '-')}</td>"
        f"<td>{p['sbc_chi2_pvalue']:.3g}</td><td>{p['sbc_ks_pvalue']:.3g}</td>"
        f"<td>{p['rank_mean_z']:+.2f}</td><td>{p['rank_variance_z']:+.2f}</td>"
        f"<td>{p['r2']:.3f}</td><td>{p['posterior_std_median']:.3g}</td>"
        f"<td>{_cell(p['relative_std_median'])}</td></tr>"
        for p in params)
    sections = [
        '<h2>Joint calibration</h2><div class="figs">',
        _fig(figures["tarp"], "TARP: expected coverage of random-reference balls vs "
             "credibility. On the diagonal when calibrated; S-shaped below/above the diagonal "
             "for over/underconfident posteriors."),
    ]
    if "coverage" in figures:
        sections.append(_fig(figures["coverage"], "Expected coverage of highest-posterior-"
                             "density regions from the estimator's log-density."))
    sections.append("</div><h2>Marginal calibration (SBC)</h2>")
    sections.append(_fig(figures["sbc"], "Rank of the true value among posterior samples; "
                         "flat when calibrated, U-shaped if overconfident, humped if "
                         "underconfident, sloped if biased. Black: expected count; grey: its "
                         "99% range if the ranks are uniform."))
    sections.append(
        "<table><tr><th>parameter</th><th>unit</th><th>χ² p</th><th>KS p</th>"
        f"<th>rank-mean z</th><th>rank-variance z</th><th>R²</th><th>median posterior std</th>"
        f"<th>median std / |truth|</th></tr>{rows}</table>")
    sections.append("<h2>Parameter recovery</h2>")
    sections.append(_fig(figures["recovery"], "Posterior mean ± one standard deviation "
                         "against the true value for every held-out simulation; R² of the "
                         "means in each title. Recovery is not calibration: read it with the "
                         "sections above."))
    sections.append("<h2>Example posterior</h2>")
    sections.append(_fig(figures["corner"], "Posterior samples for one held-out simulation "
                         "with its true parameters."))
    sections.append("<h2>Posterior predictive check</h2>")
    sections.append(_fig(figures["ppc"], "Data re-simulated from posterior samples compared "
                         "with the observation; p-values near 0 or 1 flag misfit."))
    sections.extend(extra_sections)
    sections.append("<h2>Provenance</h2>")
    pk = prov.get("packages", {})
    summary = {
        "simulator": sim["name"],
        "options": json.dumps(sim.get("options", {})),
        "parameters": ", ".join(p["name"] for p in params),
        "test simulations": prov.get("n_test"), "posterior samples": prov.get("num_samples"),
        "seed": prov.get("seed"), "device": prov.get("device"),
        "posterior": prov.get("posterior"),
        "versions": ", ".join(f"{k} {v}" for k, v in pk.items()),
        **{k: v for k, v in prov.items() if k not in _PROV_SHOWN},
        **{f"run: {k}": json.dumps(v) if isinstance(v, dict | list) else v
           for k, v in prov.get("run", {}).items()},
    }
    rows_p = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                     for k, v in summary.items())
    sections.append(f"<table>{rows_p}</table>")
    sections.append("<details><summary>full provenance (JSON)</summary>"
                    f"<pre>{html.escape(json.dumps(prov, indent=2))}</pre></details>")
    when = html.escape(prov.get("created", ""))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Calibration report: {html.escape(sim['name'])}</title><style>{_CSS}</style></head>
<body><main>
<h1>Calibration report: {html.escape(sim['name'])}</h1>
<div class="sub">{metrics['n_test']} held-out simulations, {metrics['num_samples']} posterior
samples each, seed {metrics['seed']}; created {when}</div>
<div class="verdict" style="background:{colour}"><b>{html.escape(v['label'])}</b>
<ul>{reasons}</ul></div>
<div class="cards">{cards}</div>
{''.join(sections)}
</main></body></html>
"""


# -- the pipeline -------------------------------------------------------------------------
def calibrate(posterior: SamplingPosterior, simulator: Simulator, out_dir: str | Path, *,
              n_test: int = 200, num_samples: int = 1000, seed: int = 0,
              provenance: dict[str, Any] | None = None,
              device: torch.device | str | None = None,
              ppc_observations: int = 50, ppc_draws: int = 100,
              sections: list[ReportSection] | tuple[ReportSection, ...] = ()
              ) -> CalibrationResult:
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
        sections: extra :class:`ReportSection` s (study analyses), shown before Provenance.

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
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    theta = simulator.prior.sample((n_test,), generator=gen).to(dev)
    x = simulator.simulate(theta, generator=gen)
    timings["simulate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with torch.no_grad():
        if "generator" in inspect.signature(posterior.sample).parameters:
            # estimators that take a generator are sampled reproducibly
            samples = posterior.sample(num_samples, x,
                                       generator=torch.Generator().manual_seed(seed ^ 0x5A3))
        else:
            samples = posterior.sample(num_samples, x)
    timings["sample_s"] = time.perf_counter() - t0
    d = simulator.dim
    if not isinstance(samples, Tensor) or tuple(samples.shape) != (num_samples, n_test, d):
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ShapeError(f"posterior.sample({num_samples}, x of shape {tuple(x.shape)}) must "
                         f"return (S, N, D) = ({num_samples}, {n_test}, {d}), got {got}")
    if not torch.isfinite(samples).all():
        raise NonFiniteError("posterior samples contain NaN or infinite values; the "
                             "estimator is broken for some test observations")
    samples = samples.to(theta)

    t0 = time.perf_counter()
    prior = simulator.prior
    finite = bool(torch.isfinite(prior.low).all() and torch.isfinite(prior.high).all())
    bounds = (prior.low, prior.high) if finite else None
    tarp_res = tarp(samples, theta, bounds=bounds, seed=seed)
    timings["tarp_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sbc_res = sbc(samples, theta)
    timings["sbc_s"] = time.perf_counter() - t0
    recovery = parameter_recovery(samples, theta)
    cov_res = None
    if callable(getattr(posterior, "log_prob", None)):
        t0 = time.perf_counter()
        lp_s, lp_t = posterior_log_probs(posterior, samples, theta, x)
        cov_res = expected_coverage(lp_s, lp_t, seed=seed)
        timings["coverage_s"] = time.perf_counter() - t0
    names, units = simulator.param_names, simulator.param_units
    verdict: Verdict = calibration_verdict(sbc_res.normalized_ranks, tarp_res, cov_res,
                                           param_names=names)
    t0 = time.perf_counter()
    m = min(ppc_observations, n_test)
    ppc_res = posterior_predictive(simulator, samples[:, :m], x[:m],
                                   num_draws=min(ppc_draws, num_samples), seed=seed)
    timings["ppc_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    figures = {"tarp": plot_tarp(tarp_res), "sbc": plot_sbc(sbc_res, names),
               "corner": plot_corner(samples[:, 0].cpu(), theta[0].cpu(), names, units),
               "ppc": plot_ppc(ppc_res, tuple(simulator.event_shape)),
               "recovery": plot_recovery(recovery, theta, names, units)}
    if cov_res is not None:
        figures["coverage"] = plot_coverage(cov_res)
    timings["figures_s"] = time.perf_counter() - t0

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
    prov = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "simulator": simulator.describe(),
        "n_test": n_test, "num_samples": num_samples, "seed": seed, "device": str(dev),
        "posterior": type(posterior).__name__,
        "packages": package_versions(), "platform": platform.platform(),
        # the caller's entries (run directory, training options...) under their own key, so
        # that they can never overwrite the fields above
        "run": dict(provenance or {}),
    }
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
            for k in range(d)],
        "tarp": tarp_res.to_dict(), "sbc": sbc_res.to_dict(),
        "coverage": cov_res.to_dict() if cov_res is not None else None,
        "ppc": ppc_res.to_dict(),
        "recovery": recovery.to_dict(),
        "sections": {sec.title: sec.metrics for sec in sections},
        "timings": timings,
        "provenance": prov,
    }
    metrics = _jsonable(metrics)
    metrics_path = out / "metrics.json"
    report_path = out / "report.html"
    html_text = render_html(metrics, figures, [sec.to_html() for sec in sections])
    atomic.write_text(metrics_path, json.dumps(metrics, indent=2))
    atomic.write_text(report_path, html_text)
    return CalibrationResult(metrics=metrics, verdict=verdict.label, report_path=report_path,
                             metrics_path=metrics_path)
