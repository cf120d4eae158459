"""Dynamics of one time series: chaos, cycles or noise? (numbers, no drawing)

:func:`analyse_series` runs, on one series, the analysis of Pasquato et al. (2023,
arXiv:2311.16306): a delay embedding (delay from the mutual information, dimension from
false nearest neighbours) and its Vietoris-Rips persistence (ripser on greedy landmarks);
the longest H1 lifetime against IAAFT surrogates (same spectrum and amplitude distribution:
"more loop structure than a linear stochastic process?"); a sparse SINDy ODE fitted on the
first half and its forecast skill on the second half.  :func:`dynamics_verdict` and
:func:`heating_verdict` turn the numbers into sentences by rules written out in their
docstrings; nothing in them is fixed in advance.  Plugins build study analyses on them
(e.g. of post-collapse star-cluster oscillations).

References:
    Pasquato et al. (2023), arXiv:2311.16306 ("The search for the lost attractor").
    Theiler et al. (1992), Physica D 58, 77; Schreiber & Schmitz (1996), PRL 77, 635.
    Brunton, Proctor & Kutz (2016), PNAS 113, 3932 (SINDy).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, SbiAstroError
from .sindy import SindyFit, fit_sindy, forecast_skill
from .surrogates import SurrogateTestResult, surrogate_test
from .topology import TopologyResult, embed_and_persist

__all__ = ["CATEGORIES", "SeriesDiagnostics", "analyse_series", "dynamics_verdict",
           "heating_verdict", "mean_period", "verdict_category"]

@dataclass
class SeriesDiagnostics:
    """Topology, surrogate test and SINDy of one series.

    Attributes:
        label: name of the case.
        theta: parameters ``(D,)``.
        times: the analysed times ``(T,)`` (in the series' time unit).
        state: ``(T, V)`` the SINDy variables.
        topology: delay embedding and persistence of channel 0.
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
            "channel 0 range": f"{self.state[:, 0].min():.2f} - {self.state[:, 0].max():.2f}",
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
    quarter of a cycle: spikes may be double-peaked).  For relaxation oscillations (a slow
    contraction and a fast re-expansion) and chaotic lobes alike
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
        x: observation ``(C, T)``; channel 0 is delay-embedded.
        seed: seeds the surrogates.
        post_start: analyse ``times >= post_start`` only (e.g. after a transient).
        n_surrogates, n_perm, max_points: see
            :func:`sbi_astro.diagnostics.surrogates.surrogate_test`.
        alpha: significance level of the surrogate test.
        sindy_degree: polynomial degree of the SINDy library.
        sindy_channels: channels forming the SINDy state (channels that are functions of
            others make the library singular: leave them out).
        variable_names: names of those channels (default ``x0, x1, ...``).
    """
    t0 = time.perf_counter()
    times = np.asarray(times, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    keep = times >= post_start
    if keep.sum() < 64:
        raise ConfigError(f"case {label!r}: only {int(keep.sum())} output times after "
                          f"post_start = {post_start}; need >= 64 (raise n_times or t_end)")
    chans = list(sindy_channels)
    names = (list(variable_names) if variable_names is not None else
             [f"x{c}" for c in chans])
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
