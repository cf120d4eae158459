"""The report's figures: matplotlib objects drawn from diagnostics results.

Every ``plot_*`` function returns a ``matplotlib.figure.Figure`` (Agg, no pyplot state);
:func:`render_figure` turns a figure, or a diagnostics result it knows how to draw
(:class:`~sbi_astro.diagnostics.tarp.TarpResult`,
:class:`~sbi_astro.diagnostics.coverage.CoverageResult`), into a base64 PNG for the page.

Example:
    >>> import torch
    >>> from sbi_astro.diagnostics.tarp import tarp
    >>> g = torch.Generator().manual_seed(0)
    >>> res = tarp(torch.randn(200, 50, 2, generator=g), torch.randn(50, 2, generator=g), seed=0)
    >>> render_figure(res)[:8]
    'iVBORw0K'
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..diagnostics.coverage import CoverageResult
from ..diagnostics.images import NORMAL_WITHIN, ImageCalibrationResult
from ..diagnostics.ppc import PPCResult
from ..diagnostics.recovery import RecoveryResult
from ..diagnostics.sbc import SBCResult
from ..diagnostics.tarp import TarpResult


def figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (5.0, 4.0)):
    """A matplotlib ``Figure`` (Agg, no pyplot state) and its 2-D array of axes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def png(fig) -> str:
    """``fig`` as a base64-encoded PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_tarp(res: TarpResult) -> Any:
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
    return fig


def plot_coverage(res: CoverageResult) -> Any:
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
    return fig


def plot_sbc(res: SBCResult, names: tuple[str, ...]) -> Any:
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
    return fig


def plot_corner(samples: Tensor, truth: Tensor | None, names: tuple[str, ...],
                units: tuple[str, ...], max_dims: int = 6, *, reference: Tensor | None = None,
                title: str | None = None) -> Any:
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
    return fig


def plot_ppc(res: PPCResult, event_shape: tuple[int, ...]) -> Any:
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
    return fig


def plot_recovery(res: RecoveryResult, theta: Tensor, names: tuple[str, ...],
                  units: tuple[str, ...]) -> Any:
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
    return fig




def plot_image_maps(res: ImageCalibrationResult) -> Any:
    """One row per example image: truth, data, posterior mean, posterior std and the
    residual in posterior standard deviations, ``(truth - mean) / std``."""
    ex = res.examples
    cols = [("truth", ex["truth"], "viridis"), ("data", ex.get("data"), "viridis"),
            ("posterior mean", ex["mean"], "viridis"), ("posterior std", ex["std"], "magma"),
            ("(truth - mean) / std", (ex["truth"] - ex["mean"]) / ex["std"].clamp_min(1e-12),
             "RdBu_r")]
    cols = [c for c in cols if c[1] is not None and c[1].dim() == 3]  # maps only
    k = ex["truth"].shape[0]
    fig, axes = figure(k, len(cols), size=(2.1 * len(cols), 2.0 * k))
    for i in range(k):
        for j, (title, maps, cmap) in enumerate(cols):
            ax = axes[i, j]
            img = maps[i].numpy()
            if cmap == "RdBu_r":
                im = ax.imshow(img, origin="lower", cmap=cmap, vmin=-3, vmax=3)
            else:
                vmin, vmax = (float(ex["truth"][i].min()), float(ex["truth"][i].max())) \
                    if title in ("truth", "posterior mean") else (None, None)
                im = ax.imshow(img, origin="lower", cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
            fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_z_histogram(res: ImageCalibrationResult) -> Any:
    """The per-pixel z-scores against the standard normal."""
    import numpy as np

    fig, ax = figure(size=(4.6, 3.6))
    ax = ax[0, 0]
    z = res.z.reshape(-1).numpy()
    ax.hist(np.clip(z, -5, 5), bins=np.linspace(-5, 5, 51), density=True, color="C0",
            alpha=0.7, label="pixels")
    grid = np.linspace(-5, 5, 201)
    ax.plot(grid, np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi), "k--", lw=1,
            label="N(0, 1)")
    ax.set(xlabel="(truth - posterior mean) / posterior std", ylabel="density",
           title=f"z: mean {res.z_mean:+.2f}, std {res.z_std:.2f}; |z|<1 "
                 f"{res.within[1]:.2f} ({NORMAL_WITHIN[1]:.2f})")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    return fig


def plot_benchmark(records: list[dict[str, Any]],
                   published: dict[tuple[str, str], list[tuple[int, float]]],
                   label: Callable[[dict[str, Any]], str] | None = None) -> Any:
    """C2ST against the simulation budget, one panel per task (the layout of sbibm's main
    figure): per method measured here, a solid line for C2ST with sbibm's classifier (cells
    that have it) and a dotted one for the project's stricter one, and sbibm's published
    means dashed in the same colour.  ``label(record)`` names a cell's line (default: its
    method); cells of one method with different labels (e.g. training options) get lines of
    their own in that method's colour, told apart by their markers."""
    label = label or (lambda r: r["cell"]["method"].upper())
    tasks = sorted({r["cell"]["task"] for r in records})
    lines = sorted({(r["cell"]["method"], label(r)) for r in records})
    colours = {m: f"C{i}" for i, m in enumerate(["npe", "nle", "nre", "fmpe", "npse", "npe-is"])}
    markers = {}  # one per line, the same in every panel: the figure has one legend
    for m, name in lines:
        markers[(m, name)] = "os^vD"[sum(k[0] == m for k in markers) % 5]
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = figure(rows, cols, size=(3.6 * cols, 3.0 * rows))
    for k, task in enumerate(tasks):
        ax = axes[k // cols, k % cols]
        for m, name in lines:
            cells = [r for r in records if r["cell"]["task"] == task
                     and r["cell"]["method"] == m and label(r) == name]
            if not cells:
                continue
            colour = colours.get(m, "k")
            marker = markers[(m, name)]
            pts = sorted((r["cell"]["budget"], r["c2st_sbibm_mean"]) for r in cells
                         if r.get("c2st_sbibm_mean") is not None)
            if pts:
                ax.plot(*zip(*pts, strict=True), f"{marker}-", color=colour,
                        label=f"{name} (sbibm's classifier)")
            strict = sorted((r["cell"]["budget"], r["c2st_mean"]) for r in cells)
            ax.plot(*zip(*strict, strict=True), f"{marker}:", color=colour, ms=3,
                    label=f"{name} (strict classifier)")
        for m in dict.fromkeys(m for m, _ in lines):
            ref = published.get((task, m))
            if ref:
                ax.plot(*zip(*sorted(ref), strict=True), "--",
                        color=colours.get(m, "k"), alpha=0.6,
                        label=f"{m.upper()} (sbibm, published)")
        ax.set(xscale="log", ylim=(0.45, 1.02), title=task, xlabel="simulations",
               ylabel="C2ST")
        ax.axhline(0.5, color="k", lw=0.6)
    for k in range(len(tasks), rows * cols):
        axes[k // cols, k % cols].axis("off")
    legend: dict[str, Any] = {}  # one legend for the figure: the panels stay readable
    for ax in axes.flat:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(name, handle)
    fig.legend(list(legend.values()), list(legend), loc="upper center", fontsize=8,
               ncol=min(3, max(1, len(legend))), bbox_to_anchor=(0.5, 0.0), frameon=False)
    return fig


def render_figure(obj: Any) -> str:
    """A figure, or a diagnostics result with a standard drawing, as a base64 PNG.

    Raises:
        TypeError: ``obj`` is neither (an analysis returned something the report cannot
            draw).
    """
    from matplotlib.figure import Figure

    if isinstance(obj, TarpResult):
        obj = plot_tarp(obj)
    elif isinstance(obj, CoverageResult):
        obj = plot_coverage(obj)
    if not isinstance(obj, Figure):
        raise TypeError(f"cannot draw a {type(obj).__name__} in a report: give a matplotlib "
                        "Figure or a TarpResult / CoverageResult")
    return png(obj)
