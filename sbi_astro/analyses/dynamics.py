"""Study analysis ``dynamics``: low-dimensional chaos or noise in post-collapse star clusters?

Reproduces the analysis of Pasquato et al. (2023, arXiv:2311.16306) on series simulated with
the study's simulator (``cluster_gravothermal``; any simulator whose first two channels are
``log`` central density and ``log`` central velocity dispersion on a uniform time grid works):

1. a few trajectories are simulated at chosen parameters (by default a deterministic and a
   strongly stochastic oscillating cluster and a stable one below the critical ``N``) with
   the ``series`` options (the ``science`` preset, long windows, many output times);
2. **topology**: the post-collapse ``log rho_c`` series is delay-embedded (delay from the
   mutual information, dimension from false nearest neighbours), its Vietoris-Rips
   persistence computed with ripser on greedy landmarks, and the longest H1 lifetime
   compared with that of IAAFT surrogates (same spectrum and amplitude distribution): the
   p-value tests "more loop structure than a linear stochastic process";
3. **SINDy**: a sparse quadratic ODE in ``(log rho_c, log sigma_c)`` is fitted on the first
   half of the post-collapse series (threshold by AICc) and its forecast skill measured on
   the second half (derivative R^2, valid-prediction time);
4. **inference**: the trained estimator's posterior of every parameter (in particular the
   heating noise amplitude) for the same parameters simulated with the estimator's own
   simulator, and a TARP coverage test on ``n_tarp`` fresh simulations from the prior.

The section's conclusion is computed from these numbers with the rules written out in
:func:`dynamics_verdict` and :func:`heating_verdict`; nothing in it is fixed in advance.

References:
    Pasquato et al. (2023), arXiv:2311.16306 ("The search for the lost attractor").
    Lemos et al. (2023), ICML, arXiv:2302.03026 (TARP).
    Theiler et al. (1992), Physica D 58, 77; Schreiber & Schmitz (1996), PRL 77, 635.
    Brunton, Proctor & Kutz (2016), PNAS 113, 3932 (SINDy).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diagnostics.sindy import SindyFit, fit_sindy, forecast_skill
from ..diagnostics.tarp import TarpResult, tarp
from ..diagnostics.topology import (
    SurrogateTestResult,
    TopologyResult,
    delay_embed,
    embed_and_persist,
    surrogate_test,
)
from ..errors import ConfigError, SbiAstroError
from ..registry import load_simulator
from . import register_analysis

__all__ = ["SeriesDiagnostics", "analyse_series", "mean_period", "dynamics",
           "dynamics_verdict", "heating_verdict"]

DEFAULT_CASES: tuple[dict[str, Any], ...] = (
    {"label": "deterministic", "theta": [5.0, 0.0, 1.0]},
    {"label": "stochastic", "theta": [5.0, 1.0, 1.0]},
    {"label": "stable", "theta": [3.5, 0.0, 1.0]},
)
DEFAULT_SERIES: dict[str, Any] = {"preset": "science", "t_start": 15.0, "t_end": 65.0,
                                  "n_times": 1501}
VARIABLES = ["log_rho_c", "log_sigma_c"]


@dataclass
class SeriesDiagnostics:
    """Topology, surrogate test and SINDy of one post-collapse series.

    Attributes:
        label: name of the case.
        theta: parameters ``(D,)``.
        times: post-collapse times ``(T,)`` (initial half-mass relaxation times).
        state: ``(T, V)`` the SINDy variables (``log10`` central density and dispersion).
        topology: delay embedding and persistence of channel 0 (``log10`` central density).
        surrogates: IAAFT surrogate test of the longest H1 lifetime.
        sindy: the model fitted on the first half (``None`` when no model could be fitted).
        skill: forecast skill on the second half (``derivative_r2``, ``trajectory_nrmse``,
            ``valid_time``; ``valid_fraction``: valid time over the held-out span;
            ``period``: :func:`mean_period` of channel 0; ``valid_cycles``: valid time in periods).
        forecast: the model integrated over the second half ``(T - T // 2, V)``.
        verdict: the sentence of :func:`dynamics_verdict`.
        seconds: wall time of the diagnostics.
    """

    label: str
    theta: list[float]
    times: np.ndarray
    state: np.ndarray
    topology: TopologyResult
    surrogates: SurrogateTestResult
    sindy: SindyFit | None
    skill: dict[str, float]
    forecast: np.ndarray
    verdict: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """Table row (numbers rounded for display)."""
        n_terms = int(self.sindy.support.sum()) if self.sindy is not None else 0
        return {
            "case": self.label,
            "theta": ", ".join(f"{v:.3g}" for v in self.theta),
            "log rho_c range": f"{self.state[:, 0].min():.2f} - {self.state[:, 0].max():.2f}",
            "delay, dim": f"{self.topology.delay}, {self.topology.dim}",
            "longest H1": round(self.surrogates.statistic, 3),
            "surrogate H1 (median)": round(float(np.median(self.surrogates.null)), 3),
            "surrogate p": round(self.surrogates.p_value, 3),
            "SINDy terms": n_terms,
            "forecast R^2": round(self.skill["derivative_r2"], 3),
            "valid time (t_rh)": round(self.skill["valid_time"], 2),
            "period (t_rh)": round(self.skill["period"], 2),
        }


def dynamics_verdict(p_value: float, skill: dict[str, float], *, alpha: float = 0.05,
                     min_r2: float = 0.5, min_valid_cycles: float = 1.0,
                     has_loop: bool = True) -> str:
    """The rule that turns one series' numbers into a sentence.

    Two questions, answered separately and then combined:

    * **structure**: is the longest H1 lifetime of the delay embedding larger than that of
      IAAFT surrogates (same spectrum and amplitude distribution), ``p < alpha``?
    * **low-dimensional ODE**: does a sparse SINDy model fitted on the first half predict the
      held-out derivatives (``R^2 >= min_r2``) and stay within half a standard deviation of
      the held-out trajectory for at least ``min_valid_cycles`` periods (:func:`mean_period`)?

    Both: low-dimensional deterministic dynamics.  ODE only: deterministic, but its loops are
    matched by linear surrogates (what a strictly periodic cycle gives: its surrogates are
    periodic too).  Structure only: nonlinear, but no low-dimensional polynomial ODE (the
    N-body result of Pasquato et al. 2023).  Neither: not distinguishable from linear
    stochastic noise.  A series without any H1 bar (a steady drift) has nothing to test.

    Example:
        >>> dynamics_verdict(0.01, {"derivative_r2": 0.9, "valid_cycles": 3.0})[:29]
        'low-dimensional deterministic'
    """
    if not has_loop:
        return "no recurrence (no H1 bar in the embedding: steady evolution, nothing to test)"
    structured = p_value < alpha
    r2 = skill.get("derivative_r2", -math.inf)
    cycles = skill.get("valid_cycles", 0.0)
    ode = r2 >= min_r2 and cycles >= min_valid_cycles
    fit = f"held-out R^2 = {r2:.2f}, forecast valid for {cycles:.1f} periods"
    if structured and ode:
        return (f"low-dimensional deterministic dynamics (IAAFT surrogate p = {p_value:.2g}; a "
                f"sparse ODE forecasts the held-out half: {fit})")
    if ode:
        return (f"low-dimensional deterministic dynamics whose loops linear surrogates also "
                f"produce, as for a periodic cycle (surrogate p = {p_value:.2g}; {fit})")
    if structured:
        return (f"nonlinear structure beyond linear noise (surrogate p = {p_value:.2g}) but no "
                f"low-dimensional polynomial ODE ({fit})")
    return (f"not distinguishable from linear stochastic noise (surrogate p = {p_value:.2g} "
            f">= {alpha:g}; no low-dimensional ODE: {fit})")


CATEGORIES = {
    "lowdim": "low-dimensional deterministic dynamics (loops beyond linear noise and a sparse "
              "ODE that forecasts)",
    "cycle": "low-dimensional deterministic cycles whose loops linear surrogates also produce",
    "nonlinear": "nonlinear structure beyond linear noise but no low-dimensional ODE",
    "noise": "no structure beyond linear stochastic noise and no low-dimensional ODE",
    "steady": "steady evolution without recurrence",
}


def verdict_category(verdict: str) -> str:
    """The key of :data:`CATEGORIES` for a sentence of :func:`dynamics_verdict`."""
    if verdict.startswith("no recurrence"):
        return "steady"
    if verdict.startswith("low-dimensional deterministic dynamics whose"):
        return "cycle"
    if verdict.startswith("low-dimensional"):
        return "lowdim"
    if verdict.startswith("nonlinear"):
        return "nonlinear"
    return "noise"


def mean_period(x: np.ndarray, dt: float, prominence: float = 0.5, distance: int = 1) -> float:
    """Median time between maxima of ``x`` that stand out by ``prominence`` standard deviations.

    Maxima closer than ``distance`` samples are merged (pass the embedding delay, about a
    quarter of a cycle: the core's re-expansion spikes are double-peaked).  For relaxation
    oscillations (the core's slow contraction and fast re-expansion) and chaotic lobes alike
    this is the time scale of one cycle; the whole span when ``x`` has fewer than two such
    maxima.

    Example:
        >>> round(mean_period(np.sin(2 * np.pi * np.arange(1000) / 50.0), 0.1), 3)
        5.0
    """
    from scipy.signal import find_peaks

    x = np.asarray(x, dtype=np.float64)
    peaks, _ = find_peaks(x, prominence=prominence * x.std(), distance=max(1, int(distance)))
    if peaks.size < 2:
        return float(dt * (x.size - 1))
    return float(dt * np.median(np.diff(peaks)))


def heating_verdict(intervals: dict[str, tuple[float, float, float]], prior_width: float,
                    *, constrained_fraction: float = 0.5) -> str:
    """Whether the posterior tells a deterministic from a stochastic heating amplitude.

    Args:
        intervals: case label -> (posterior mean, 5 % and 95 % quantiles) of the noise
            amplitude.
        prior_width: width of the prior of the noise amplitude.
        constrained_fraction: a 90 % interval narrower than this fraction of the prior
            counts as a constraint.

    Example:
        >>> heating_verdict({"a": (0.1, 0.0, 0.2), "b": (0.9, 0.8, 1.0)}, 1.0)[:20]
        'distinguishable: the'
    """
    widths = {k: hi - lo for k, (_, lo, hi) in intervals.items()}
    constrained = [k for k, w in widths.items() if w < constrained_fraction * prior_width]
    labels = list(intervals)
    separated = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            (_, lo_a, hi_a), (_, lo_b, hi_b) = intervals[a], intervals[b]
            if hi_a < lo_b or hi_b < lo_a:
                separated.append(f"{a} vs {b}")
    desc = "; ".join(f"{k}: {m:.2f} [{lo:.2f}, {hi:.2f}]" for k, (m, lo, hi) in intervals.items())
    if separated:
        return (f"distinguishable: the 90 % posterior intervals of the noise amplitude do not "
                f"overlap for {', '.join(separated)} ({desc})")
    if constrained:
        return (f"partly constrained but not distinguishable: the 90 % intervals overlap "
                f"({desc})")
    return (f"not identifiable from these data: every 90 % interval covers more than "
            f"{constrained_fraction:.0%} of the prior ({desc})")


def analyse_series(label: str, theta: list[float], times: np.ndarray, x: np.ndarray, *,
                   seed: int | np.random.Generator, post_start: float, n_surrogates: int = 99,
                   n_perm: int | None = 300, max_points: int = 1500, alpha: float = 0.05,
                   sindy_degree: int = 2, sindy_channels: tuple[int, ...] = (0, 1),
                   variable_names: list[str] | None = None) -> SeriesDiagnostics:
    """Topology, surrogate test, SINDy fit and forecast skill of one simulated series.

    Args:
        label: name of the case.
        theta: its parameters ``(D,)``.
        times: output times ``(T,)``, uniform.
        x: observation ``(C, T)``; channel 0 is delay-embedded (``log10`` central density
            for the cluster model).
        seed: seeds the surrogates.
        post_start: analyse ``times >= post_start`` only (after core collapse).
        n_surrogates, n_perm, max_points: see
            :func:`sbi_astro.diagnostics.topology.surrogate_test`.
        alpha: significance level of the surrogate test.
        sindy_degree: polynomial degree of the SINDy library.
        sindy_channels: channels forming the SINDy state (default ``log rho_c, log
            sigma_c``: the King core radius is a function of both, so a library on all
            three is singular).
        variable_names: names of those channels.
    """
    t0 = time.perf_counter()
    times = np.asarray(times, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    keep = times >= post_start
    if keep.sum() < 64:
        raise ConfigError(f"case {label!r}: only {int(keep.sum())} output times after "
                          f"post_start = {post_start}; need >= 64 (raise n_times or t_end)")
    chans = list(sindy_channels)
    names = list(variable_names) if variable_names is not None else (
        VARIABLES if chans == [0, 1] else [f"x{c}" for c in chans])
    t, state = times[keep], x[chans][:, keep].T
    series = x[0, keep]
    rng = np.random.default_rng(seed)
    topo = embed_and_persist(series, n_perm=n_perm, max_points=max_points)
    surr = surrogate_test(series, seed=rng, n_surrogates=n_surrogates, kind="iaaft",
                          delay=topo.delay, dim=topo.dim, max_points=max_points, n_perm=n_perm)
    half = t.size // 2
    fit: SindyFit | None = None
    forecast = np.full((t.size - half, len(chans)), np.nan)
    skill: dict[str, Any] = {"derivative_r2": -math.inf, "trajectory_nrmse": math.inf,
                             "valid_time": 0.0}
    try:
        fit = fit_sindy(state[:half], t[:half], degree=sindy_degree, variable_names=names)
        skill = forecast_skill(fit, state[half:], t[half:])
        forecast = fit.simulate(state[half], t[half:])
    except SbiAstroError as err:  # e.g. every threshold removed every term
        skill["error"] = str(err)
    period = mean_period(series, float(t[1] - t[0]), distance=topo.delay)
    skill["period"] = period
    skill["valid_fraction"] = skill["valid_time"] / float(t[-1] - t[half])
    skill["valid_cycles"] = skill["valid_time"] / period
    has_loop = surr.statistic > 0.0
    verdict = dynamics_verdict(surr.p_value, skill, alpha=alpha, has_loop=has_loop)
    return SeriesDiagnostics(label, [float(v) for v in theta], t, state, topo, surr, fit, skill,
                             forecast, verdict, time.perf_counter() - t0)


# -- figures ------------------------------------------------------------------------------
def _plot_series(diags: list[SeriesDiagnostics]):
    from ..report import figure, png

    fig, axes = figure(len(diags), 1, (8.0, 2.2 * len(diags)))
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
    return png(fig)


def _plot_embeddings(diags: list[SeriesDiagnostics]):
    from ..report import figure, png

    fig, axes = figure(1, len(diags), (3.2 * len(diags), 3.2))
    for ax, d in zip(axes[0], diags, strict=True):
        z = d.state[:, 0]
        z = (z - z.mean()) / (z.std() + 1e-300)
        cloud = delay_embed(z, 2, d.topology.delay)
        ax.plot(cloud[:, 0], cloud[:, 1], lw=0.4, color="C0")
        ax.set(title=f"{d.label} (τ = {d.topology.delay})", xlabel="x(t)", ylabel="x(t + τ)")
    return png(fig)


def _plot_persistence(diags: list[SeriesDiagnostics]):
    from ..report import figure, png

    fig, axes = figure(2, len(diags), (3.2 * len(diags), 6.2))
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
    return png(fig)


def _plot_posteriors(samples: np.ndarray, labels: list[str], names: tuple[str, ...],
                     truth: np.ndarray, low: np.ndarray, high: np.ndarray):
    from ..report import figure, png

    d = samples.shape[-1]
    fig, axes = figure(1, d, (3.2 * d, 3.0))
    for i in range(d):
        ax = axes[0, i]
        for c, lab in enumerate(labels):
            ax.hist(samples[:, c, i], bins=40, range=(low[i], high[i]), histtype="step",
                    density=True, color=f"C{c}", label=lab)
            ax.axvline(truth[c, i], color=f"C{c}", ls="--", lw=1)
        ax.set(xlabel=names[i], yticks=[])
    axes[0, 0].legend(fontsize=7)
    return png(fig)


# -- the analysis -------------------------------------------------------------------------
@register_analysis("dynamics")
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
        A :class:`sbi_astro.report.ReportSection`.
    """
    from ..report import ReportSection, plot_tarp

    t_all = time.perf_counter()
    sim = est.simulator
    names = tuple(sim.param_names)
    cases = [dict(c) for c in (cases or DEFAULT_CASES)]
    for c in cases:
        if set(c) != {"label", "theta"} or len(c["theta"]) != len(names):
            raise ConfigError(f"dynamics: each case needs 'label' and 'theta' with "
                              f"{len(names)} values ({', '.join(names)}), got {c}")
    if noise_param not in names:
        raise ConfigError(f"dynamics: noise_param {noise_param!r} is not a parameter of "
                          f"{sim.name} ({', '.join(names)})")
    opts = {**DEFAULT_SERIES, **(series or {})}
    labels = [str(c["label"]) for c in cases]
    theta = torch.tensor([c["theta"] for c in cases], dtype=torch.float32)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. long series
    t0 = time.perf_counter()
    long_sim = load_simulator(sim.name, device=sim.device, **opts)
    gen = torch.Generator().manual_seed(seed)
    x_long = long_sim.simulate(theta.to(sim.device), generator=gen).double().cpu().numpy()
    times = long_sim.times.numpy()
    sim_s = time.perf_counter() - t0
    log(f"      dynamics: {len(cases)} series of {times.size} times ({opts}) in {sim_s:.0f} s")
    np.savez_compressed(out_dir / "dynamics_series.npz", times=times, x=x_long,
                        theta=theta.numpy(), labels=np.array(labels))

    # 2-3. topology, surrogates, SINDy
    diags = []
    for i, (lab, th) in enumerate(zip(labels, theta.tolist(), strict=True)):
        d = analyse_series(lab, th, times, x_long[i], seed=seed + 1 + i, post_start=post_start,
                           n_surrogates=n_surrogates, n_perm=n_perm, max_points=max_points,
                           alpha=alpha, sindy_degree=sindy_degree)
        log(f"      {lab}: p = {d.surrogates.p_value:.3f}, R^2 = "
            f"{d.skill['derivative_r2']:.2f} ({d.seconds:.0f} s): {d.verdict}")
        diags.append(d)

    # 4. inference: posteriors at the cases, TARP on fresh simulations
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
    k = names.index(noise_param)
    low, high = prior.low.double().cpu().numpy(), prior.high.double().cpu().numpy()
    intervals = {lab: (float(post[:, c, k].mean()), float(np.quantile(post[:, c, k], 0.05)),
                       float(np.quantile(post[:, c, k], 0.95))) for c, lab in enumerate(labels)}
    heat_v = heating_verdict(intervals, float(high[k] - low[k]))
    calibrated = bool(tarp_res.diagonal_in_band)
    log(f"      inference ({inf_s:.0f} s): {heat_v}; TARP ATC {tarp_res.atc:+.3f}, "
        f"KS p {tarp_res.ks_pvalue:.2g}")

    # conclusion, computed from the numbers above
    groups: dict[str, list[str]] = {}
    for d in diags:
        groups.setdefault(verdict_category(d.verdict), []).append(d.label)
    overall = "; ".join(f"{CATEGORIES[c]} for {', '.join(labs)}" for c, labs in groups.items())
    tarp_text = (f"TARP on {n_tarp} fresh simulations: ATC {tarp_res.atc:+.3f}, KS p "
                 f"{tarp_res.ks_pvalue:.2g}, diagonal {'inside' if calibrated else 'outside'} "
                 f"the {tarp_res.confidence:.0%} band, so the posterior is "
                 f"{'consistent with calibration' if calibrated else 'not calibrated'}")
    lines = [f"Answer. Low-dimensional chaos vs noise: {overall}.",
             f"Deterministic vs stochastic heating amplitude ({noise_param}): {heat_v}.",
             f"{tarp_text}.", "Per series:"]
    lines += [f"{d.label} (θ = {d.theta}): {d.verdict}." for d in diags]
    lines.append(f"Pasquato et al. (2023) reached, on N-body series, 'not purely noise' from "
                 f"TARP and no low-dimensional ODE from SINDy. Wall time: series {sim_s:.0f} s, "
                 f"diagnostics {sum(d.seconds for d in diags):.0f} s, inference {inf_s:.0f} s.")
    figures = [
        (_plot_series(diags), "Post-collapse log central density and the SINDy forecast of "
                              "the held-out half (model fitted on the first half)."),
        (_plot_embeddings(diags), "Two-dimensional lag embeddings (delay from the mutual "
                                  "information)."),
        (_plot_persistence(diags), "Persistence diagrams (ripser on greedy landmarks) and the "
                                   "longest H1 lifetime against its IAAFT-surrogate null."),
        (_plot_posteriors(post, labels, names, theta.numpy(), low, high),
         "Posteriors of the trained estimator for the same parameters (dashed: truth)."),
        (plot_tarp(tarp_res), f"TARP coverage on {n_tarp} fresh prior simulations."),
    ]
    metrics: dict[str, Any] = {
        "answer": overall, "categories": {d.label: verdict_category(d.verdict) for d in diags},
        "heating": heat_v, "tarp_atc": tarp_res.atc,
        "tarp_ks_pvalue": tarp_res.ks_pvalue, "tarp_calibrated": calibrated,
        "series_options": opts, "post_start": post_start, "n_surrogates": n_surrogates,
        "cases": {d.label: {"theta": d.theta, "delay": d.topology.delay, "dim": d.topology.dim,
                            "longest_H1": d.surrogates.statistic,
                            "surrogate_null_median": float(np.median(d.surrogates.null)),
                            "surrogate_p": d.surrogates.p_value,
                            "sindy_equations": d.sindy.equations() if d.sindy else [],
                            **{f"sindy_{k}": v for k, v in d.skill.items()},
                            "posterior_noise": intervals[d.label],
                            "verdict": d.verdict} for d in diags},
        "seconds": {"series": sim_s, "diagnostics": sum(d.seconds for d in diags),
                    "inference": inf_s, "total": time.perf_counter() - t_all},
    }
    (out_dir / "dynamics.json").write_text(json.dumps(metrics, indent=2, default=float))
    table = [d.row() | {f"posterior {noise_param} (90%)":
                        "{:.2f} [{:.2f}, {:.2f}]".format(*intervals[d.label])} for d in diags]
    return ReportSection("Post-collapse dynamics: chaos or noise? (Pasquato et al. 2023)",
                         text="\n\n".join(lines), figures=figures, metrics=metrics, table=table)
