"""Study analysis ``dynamics`` of ``cluster_gravothermal``: chaos or noise after core collapse?

Reproduces the analysis of Pasquato et al. (2023, arXiv:2311.16306) on series simulated with
this plugin (channels ``log10`` central density, ``log10`` central velocity dispersion, ...
on a uniform time grid):

1. a few trajectories are simulated at chosen parameters (by default a deterministic and a
   strongly stochastic oscillating cluster and a stable one below the critical ``N``) with
   the ``series`` options (the ``science`` preset, long windows, many output times);
2. **topology**, **surrogates** and **SINDy** of the post-collapse ``log rho_c`` series
   (:func:`sbi_astro.diagnostics.dynamics.analyse_series`);
3. **inference**: the trained estimator's posterior of every parameter (in particular the
   heating noise amplitude) for the same parameters, and a TARP coverage test on ``n_tarp``
   fresh simulations from the prior.

Registered in the ``sbi_astro.analyses`` entry-point group by this plugin's package; it
returns a :class:`~sbi_astro.analysis.Section` (numbers, tables and matplotlib figures)
that the report renders.

References:
    Pasquato et al. (2023), arXiv:2311.16306 ("The search for the lost attractor").
    Lemos et al. (2023), ICML, arXiv:2302.03026 (TARP).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sbi_astro.analysis import Section
from sbi_astro.atomic import atomic_write, write_text
from sbi_astro.diagnostics.dynamics import (
    CATEGORIES,
    SeriesDiagnostics,
    analyse_series,
    heating_verdict,
    verdict_category,
)
from sbi_astro.diagnostics.tarp import TarpResult, tarp
from sbi_astro.diagnostics.topology import delay_embed
from sbi_astro.errors import ConfigError
from sbi_astro.registry import load_simulator

DEFAULT_CASES: tuple[dict[str, Any], ...] = (
    {"label": "deterministic", "theta": [5.0, 0.0, 1.0]},
    {"label": "stochastic", "theta": [5.0, 1.0, 1.0]},
    {"label": "stable", "theta": [3.5, 0.0, 1.0]},
)
DEFAULT_SERIES: dict[str, Any] = {"preset": "science", "t_start": 15.0, "t_end": 65.0,
                                  "n_times": 1501}
VARIABLES = ["log_rho_c", "log_sigma_c"]


def _figure(nrows: int, ncols: int, size: tuple[float, float]):
    """A matplotlib figure (no pyplot state) and its 2-D array of axes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


# -- figures (matplotlib objects; the report turns them into images) ------------------------
def _plot_series(diags: list[SeriesDiagnostics]):
    fig, axes = _figure(len(diags), 1, (8.0, 2.2 * len(diags)))
    for ax, d in zip(axes[:, 0], diags, strict=True):
        half = d.times.size // 2
        ax.plot(d.times, d.state[:, 0], "k", lw=0.8, label="simulated log ρ_c")
        if np.isfinite(d.forecast).any():
            ax.plot(d.times[half:], d.forecast[:, 0], "C1", lw=1.2,
                    label=f"SINDy forecast (R² {d.skill['derivative_r2']:.2f})")
        ax.axvline(d.times[half], color="0.5", ls=":", lw=1)
        ax.set(ylabel="log10 ρ_c", title=f"{d.label}: θ = {d.theta}")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("t / t_rh(0)   (SINDy fitted left of the dotted line)")
    return fig


def _plot_embeddings(diags: list[SeriesDiagnostics]):
    fig, axes = _figure(1, len(diags), (3.2 * len(diags), 3.2))
    for ax, d in zip(axes[0], diags, strict=True):
        z = d.state[:, 0]
        z = (z - z.mean()) / (z.std() + 1e-300)
        cloud = delay_embed(z, 2, d.topology.delay)
        ax.plot(cloud[:, 0], cloud[:, 1], lw=0.4, color="C0")
        ax.set(title=f"{d.label} (τ = {d.topology.delay})", xlabel="x(t)", ylabel="x(t + τ)")
    return fig


def _plot_persistence(diags: list[SeriesDiagnostics]):
    fig, axes = _figure(2, len(diags), (3.2 * len(diags), 6.2))
    for j, d in enumerate(diags):
        ax = axes[0, j]
        top = 0.0
        for k, dgm in enumerate(d.topology.diagrams):
            fin = dgm[np.isfinite(dgm[:, 1])]
            if fin.size:
                ax.scatter(fin[:, 0], fin[:, 1], s=8, label=f"H{k}", color=f"C{k}")
                top = max(top, float(fin.max()))
        top = top * 1.05 or 1.0
        ax.plot([0, top], [0, top], "k--", lw=0.8)
        ax.set(title=f"{d.label}: persistence", xlabel="birth", ylabel="death")
        ax.legend(fontsize=7, loc="lower right")
        ax = axes[1, j]
        ax.hist(d.surrogates.null, bins=20, color="0.6", label="IAAFT surrogates")
        ax.axvline(d.surrogates.statistic, color="C3", lw=2,
                   label=f"data (p = {d.surrogates.p_value:.2g})")
        ax.set(xlabel="longest H1 lifetime", ylabel="count")
        ax.legend(fontsize=7)
    return fig


def _plot_posteriors(samples: np.ndarray, labels: list[str], names: tuple[str, ...],
                     truth: np.ndarray, low: np.ndarray, high: np.ndarray):
    d = samples.shape[-1]
    fig, axes = _figure(1, d, (3.2 * d, 3.0))
    for i in range(d):
        ax = axes[0, i]
        for c, lab in enumerate(labels):
            ax.hist(samples[:, c, i], bins=40, range=(low[i], high[i]), histtype="step",
                    density=True, color=f"C{c}", label=lab)
            ax.axvline(truth[c, i], color=f"C{c}", ls="--", lw=1)
        ax.set(xlabel=names[i], yticks=[])
    axes[0, 0].legend(fontsize=7)
    return fig


# -- the analysis ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Inference:
    """Step 4 of :func:`dynamics`: posteriors at the cases and the TARP test."""

    post: np.ndarray  # posterior samples (num_samples, cases, D)
    tarp: TarpResult
    intervals: dict[str, tuple[float, float, float]]  # noise parameter: mean, 5 %, 95 %
    heating: str  # heating_verdict of the intervals
    low: np.ndarray  # prior bounds (D,)
    high: np.ndarray
    seconds: float


def dynamics(est: Any, out_dir: Path, *, seed: int, log=print,
             cases: list[dict[str, Any]] | None = None, series: dict[str, Any] | None = None,
             post_start: float = 25.0, n_surrogates: int = 99, n_perm: int | None = 300,
             max_points: int = 1500, alpha: float = 0.05, sindy_degree: int = 2,
             n_tarp: int = 100, num_samples: int = 1000, noise_param: str = "noise_amp"):
    """The ``dynamics`` analysis (see the module docstring).

    Args:
        est: trained estimator (``est.simulator``, ``est.sample``).
        out_dir: where ``dynamics.json`` (numbers) and ``dynamics_series.npz`` are written.
        seed: seeds the simulations, surrogates, TARP references.
        log: progress printer.
        cases: ``[{label, theta}]``; default: deterministic ``[5, 0, 1]``, stochastic
            ``[5, 1, 1]`` and stable ``[3.5, 0, 1]`` (``log10_N, noise_amp, heat_scale``).
        series: simulator options for the long series (default
            ``{preset: science, t_start: 15, t_end: 65, n_times: 1501}``).
        post_start: start of the analysed post-collapse window (t_rh(0)).
        n_surrogates, n_perm, max_points, alpha, sindy_degree: see :func:`analyse_series`.
        n_tarp: fresh prior simulations for the TARP test.
        num_samples: posterior samples per observation.
        noise_param: name of the heating-noise parameter.

    Returns:
        A :class:`~sbi_astro.analysis.Section`.
    """
    t_all = time.perf_counter()
    sim = est.simulator
    names = tuple(sim.param_names)
    cases = _checked_cases(cases, names, noise_param, sim.name)
    opts = {**DEFAULT_SERIES, **(series or {})}
    labels = [str(c["label"]) for c in cases]
    theta = torch.tensor([c["theta"] for c in cases], dtype=torch.float32)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # one generator, in this order: the long series, then the inference's simulations
    gen = torch.Generator().manual_seed(seed)
    times, x_long, sim_s = _simulate_series(sim, theta, labels, opts, gen, out_dir, log)
    diags = _series_diagnostics(labels, theta, times, x_long, seed=seed, log=log,
                                post_start=post_start, n_surrogates=n_surrogates,
                                n_perm=n_perm, max_points=max_points, alpha=alpha,
                                sindy_degree=sindy_degree)
    inf = _inference(est, theta, labels, gen, seed=seed, n_tarp=n_tarp,
                     num_samples=num_samples, noise_param=noise_param, log=log)
    overall, lines = _conclusion(diags, inf, n_tarp, noise_param, sim_s)
    figures = [
        (_plot_series(diags), "Post-collapse log central density and the SINDy forecast of "
                              "the held-out half (model fitted on the first half)."),
        (_plot_embeddings(diags), "Two-dimensional lag embeddings (delay from the mutual "
                                  "information)."),
        (_plot_persistence(diags), "Persistence diagrams (ripser on greedy landmarks) and the "
                                   "longest H1 lifetime against its IAAFT-surrogate null."),
        (_plot_posteriors(inf.post, labels, names, theta.numpy(), inf.low, inf.high),
         "Posteriors of the trained estimator for the same parameters (dashed: truth)."),
        (inf.tarp, f"TARP coverage on {n_tarp} fresh prior simulations."),
    ]
    metrics = _metrics(diags, inf, overall, opts, post_start, n_surrogates, sim_s, t_all)
    write_text(out_dir / "dynamics.json", json.dumps(metrics, indent=2, default=float))
    table = [d.row() | {f"posterior {noise_param} (90%)":
                        "{:.2f} [{:.2f}, {:.2f}]".format(*inf.intervals[d.label])}
             for d in diags]
    return Section("Post-collapse dynamics: chaos or noise? (Pasquato et al. 2023)",
                   text="\n\n".join(lines), figures=figures, metrics=metrics, table=table)


def _checked_cases(cases: list[dict[str, Any]] | None, names: tuple[str, ...],
                   noise_param: str, sim_name: str) -> list[dict[str, Any]]:
    """Copies of the cases (default :data:`DEFAULT_CASES`), each checked against ``names``."""
    cases = [dict(c) for c in (cases or DEFAULT_CASES)]
    for c in cases:
        if set(c) != {"label", "theta"} or len(c["theta"]) != len(names):
            raise ConfigError(f"dynamics: each case needs 'label' and 'theta' with "
                              f"{len(names)} values ({', '.join(names)}), got {c}")
    if noise_param not in names:
        raise ConfigError(f"dynamics: noise_param {noise_param!r} is not a parameter of "
                          f"{sim_name} ({', '.join(names)})")
    return cases


def _simulate_series(sim: Any, theta: torch.Tensor, labels: list[str], opts: dict[str, Any],
                     gen: torch.Generator, out_dir: Path, log
                     ) -> tuple[np.ndarray, np.ndarray, float]:
    """Step 1: the long series at the cases, with the ``series`` options, saved to
    ``dynamics_series.npz``; returns ``times (T,)``, ``x (cases, channels, T)`` and the
    wall time [s]."""
    t0 = time.perf_counter()
    long_sim = load_simulator(sim.name, device=sim.device, **opts)
    x_long = long_sim.simulate(theta.to(sim.device), generator=gen).double().cpu().numpy()
    times = long_sim.times.numpy()
    sim_s = time.perf_counter() - t0
    log(f"      dynamics: {len(labels)} series of {times.size} times ({opts}) in {sim_s:.0f} s")
    with atomic_write(out_dir / "dynamics_series.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, times=times, x=x_long, theta=theta.numpy(),
                            labels=np.array(labels))
    return times, x_long, sim_s


def _series_diagnostics(labels: list[str], theta: torch.Tensor, times: np.ndarray,
                        x_long: np.ndarray, *, seed: int, log, **options: Any
                        ) -> list[SeriesDiagnostics]:
    """Steps 2-3: topology, surrogates and SINDy of each series (``options``: those of
    :func:`analyse_series`); series ``i`` is seeded with ``seed + 1 + i``."""
    diags = []
    for i, (lab, th) in enumerate(zip(labels, theta.tolist(), strict=True)):
        d = analyse_series(lab, th, times, x_long[i], seed=seed + 1 + i,
                           variable_names=VARIABLES, **options)
        log(f"      {lab}: p = {d.surrogates.p_value:.3f}, R^2 = "
            f"{d.skill['derivative_r2']:.2f} ({d.seconds:.0f} s): {d.verdict}")
        diags.append(d)
    return diags


def _inference(est: Any, theta: torch.Tensor, labels: list[str], gen: torch.Generator, *,
               seed: int, n_tarp: int, num_samples: int, noise_param: str, log) -> _Inference:
    """Step 4: the estimator's posteriors at the cases (simulated again with ``gen``) and a
    TARP test on ``n_tarp`` fresh simulations from the prior."""
    sim = est.simulator
    t0 = time.perf_counter()
    x_obs = sim.simulate(theta.to(sim.device), generator=gen)
    with torch.no_grad():
        sample_gen = torch.Generator(device=est.device).manual_seed(seed)
        post = est.sample(num_samples, x_obs, generator=sample_gen).double().cpu().numpy()
    prior = sim.prior
    theta_t = prior.sample((n_tarp,), generator=gen).to(sim.device)
    x_t = sim.simulate(theta_t, generator=gen)
    with torch.no_grad():
        samples_t = est.sample(num_samples, x_t, generator=sample_gen)
    tarp_res: TarpResult = tarp(samples_t.to(theta_t), theta_t, bounds=(prior.low, prior.high),
                                seed=seed)
    inf_s = time.perf_counter() - t0
    k = tuple(sim.param_names).index(noise_param)
    low, high = prior.low.double().cpu().numpy(), prior.high.double().cpu().numpy()
    intervals = {lab: (float(post[:, c, k].mean()), float(np.quantile(post[:, c, k], 0.05)),
                       float(np.quantile(post[:, c, k], 0.95))) for c, lab in enumerate(labels)}
    heat_v = heating_verdict(intervals, float(high[k] - low[k]))
    log(f"      inference ({inf_s:.0f} s): {heat_v}; TARP ATC {tarp_res.atc:+.3f}, "
        f"KS p {tarp_res.ks_pvalue:.2g}")
    return _Inference(post, tarp_res, intervals, heat_v, low, high, inf_s)


def _conclusion(diags: list[SeriesDiagnostics], inf: _Inference, n_tarp: int,
                noise_param: str, sim_s: float) -> tuple[str, list[str]]:
    """The answer (chaos or noise, per verdict category) and the paragraphs of the text,
    computed from the numbers of the steps."""
    groups: dict[str, list[str]] = {}
    for d in diags:
        groups.setdefault(verdict_category(d.verdict), []).append(d.label)
    overall = "; ".join(f"{CATEGORIES[c]} for {', '.join(labs)}" for c, labs in groups.items())
    calibrated = bool(inf.tarp.diagonal_in_band)
    tarp_text = (f"TARP on {n_tarp} fresh simulations: ATC {inf.tarp.atc:+.3f}, KS p "
                 f"{inf.tarp.ks_pvalue:.2g}, diagonal {'inside' if calibrated else 'outside'} "
                 f"the {inf.tarp.confidence:.0%} band, so the posterior is "
                 f"{'consistent with calibration' if calibrated else 'not calibrated'}")
    lines = [f"Answer. Low-dimensional chaos vs noise: {overall}.",
             f"Deterministic vs stochastic heating amplitude ({noise_param}): {inf.heating}.",
             f"{tarp_text}.", "Per series:"]
    lines += [f"{d.label} (θ = {d.theta}): {d.verdict}." for d in diags]
    lines.append(f"Pasquato et al. (2023) reached, on N-body series, 'not purely noise' from "
                 f"TARP and no low-dimensional ODE from SINDy. Wall time: series {sim_s:.0f} s, "
                 f"diagnostics {sum(d.seconds for d in diags):.0f} s, inference "
                 f"{inf.seconds:.0f} s.")
    return overall, lines


def _metrics(diags: list[SeriesDiagnostics], inf: _Inference, overall: str,
             opts: dict[str, Any], post_start: float, n_surrogates: int, sim_s: float,
             t_all: float) -> dict[str, Any]:
    """The numbers of the analysis (``dynamics.json`` and the section's metrics)."""
    return {
        "answer": overall, "categories": {d.label: verdict_category(d.verdict) for d in diags},
        "heating": inf.heating, "tarp_atc": inf.tarp.atc,
        "tarp_ks_pvalue": inf.tarp.ks_pvalue, "tarp_calibrated": bool(inf.tarp.diagonal_in_band),
        "series_options": opts, "post_start": post_start, "n_surrogates": n_surrogates,
        "cases": {d.label: {"theta": d.theta, "delay": d.topology.delay, "dim": d.topology.dim,
                            "longest_H1": d.surrogates.statistic,
                            "surrogate_null_median": float(np.median(d.surrogates.null)),
                            "surrogate_p": d.surrogates.p_value,
                            "sindy_equations": d.sindy.equations() if d.sindy else [],
                            **{f"sindy_{k}": v for k, v in d.skill.items()},
                            "posterior_noise": inf.intervals[d.label],
                            "verdict": d.verdict} for d in diags},
        "seconds": {"series": sim_s, "diagnostics": sum(d.seconds for d in diags),
                    "inference": inf.seconds, "total": time.perf_counter() - t_all},
    }
