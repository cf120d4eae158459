"""The calibration report: ``report.html`` (self-contained) and ``metrics.json``.

This layer renders; it computes nothing.  The pipeline's calibration run
(:func:`sbi_astro.pipeline.calibration.calibrate`) fills a :class:`ReportContent` with the
diagnostics results and metrics, and :func:`write_report` draws the figures and writes the
two files atomically.  One concept per module: :mod:`.figures` (matplotlib figures from
results) and :mod:`.html` (the page).

Example:
    >>> import tempfile
    >>> from sbi_astro.analysis import Section
    >>> from sbi_astro.report.html import section_html
    >>> section_html(Section("Notes", text="A <b>bold</b> claim."))
    '<h2>Notes</h2><p>A &lt;b&gt;bold&lt;/b&gt; claim.</p>'
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import Tensor

from .. import atomic
from ..analysis import Section
from ..diagnostics.coverage import CoverageResult
from ..diagnostics.images import ImageCalibrationResult
from ..diagnostics.ppc import PPCResult
from ..diagnostics.recovery import RecoveryResult
from ..diagnostics.sbc import SBCResult
from ..diagnostics.tarp import TarpResult
from .figures import (
    plot_corner,
    plot_coverage,
    plot_image_maps,
    plot_ppc,
    plot_recovery,
    plot_sbc,
    plot_tarp,
    plot_z_histogram,
    png,
)
from .html import jsonable, render_html, render_sections_page, section_html


@dataclasses.dataclass
class ReportContent:
    """Everything a calibration report shows (computed by the pipeline).

    Attributes:
        metrics: the JSON-able numbers written to ``metrics.json`` (verdict, key numbers,
            per-parameter table, provenance, ...).
        tarp, sbc, coverage, ppc, recovery: the diagnostics results (``coverage`` may be
            ``None``).
        theta: the held-out parameters ``(N, D)``.
        example_samples: posterior samples ``(S, D)`` of held-out simulation 0.
        names, units: parameter names and units.
        event_shape: shape of one observation.
        sections: extra sections (study analyses).
    """

    metrics: dict[str, Any]
    tarp: TarpResult
    sbc: SBCResult
    coverage: CoverageResult | None
    ppc: PPCResult
    recovery: RecoveryResult
    theta: Tensor
    example_samples: Tensor
    names: tuple[str, ...]
    units: tuple[str, ...]
    event_shape: tuple[int, ...]
    sections: list[Section] = dataclasses.field(default_factory=list)


def write_report(content: ReportContent, out_dir: str | Path) -> tuple[Path, Path]:
    """Draws the figures and writes ``report.html`` and ``metrics.json`` (each atomically).

    Returns:
        The paths of ``report.html`` and ``metrics.json``.
    """
    import time

    out = Path(out_dir)
    t0 = time.perf_counter()
    figures = {"tarp": plot_tarp(content.tarp), "sbc": plot_sbc(content.sbc, content.names),
               "corner": plot_corner(content.example_samples.cpu(), content.theta[0].cpu(),
                                     content.names, content.units),
               "ppc": plot_ppc(content.ppc, content.event_shape),
               "recovery": plot_recovery(content.recovery, content.theta, content.names,
                                         content.units)}
    if content.coverage is not None:
        figures["coverage"] = plot_coverage(content.coverage)
    pngs = {k: png(f) for k, f in figures.items()}
    if isinstance(content.metrics.get("timings"), dict):
        content.metrics["timings"]["figures_s"] = time.perf_counter() - t0
    metrics = jsonable(content.metrics)
    page = render_html(metrics, pngs, [section_html(s) for s in content.sections])
    report_path, metrics_path = out / "report.html", out / "metrics.json"
    atomic.write_text(metrics_path, json.dumps(metrics, indent=2))
    atomic.write_text(report_path, page)
    return report_path, metrics_path


def write_sections_report(sections: list[Section], out_dir: str | Path, *, title: str,
                          subtitle: str, metrics: dict[str, Any]) -> tuple[Path, Path]:
    """Writes ``report.html`` (the sections, then ``metrics["provenance"]``) and
    ``metrics.json`` (``metrics`` with each section's numbers under ``sections``), each
    atomically: the report of a study without parameter-level calibration.

    Returns:
        The paths of ``report.html`` and ``metrics.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = jsonable({**metrics, "sections": {s.title: s.metrics for s in sections}})
    page = render_sections_page(title, subtitle, [section_html(s) for s in sections],
                                metrics.get("provenance", {}))
    report_path, metrics_path = out / "report.html", out / "metrics.json"
    atomic.write_text(metrics_path, json.dumps(metrics, indent=2))
    atomic.write_text(report_path, page)
    return report_path, metrics_path


def image_calibration_section(res: ImageCalibrationResult, *, title: str = "Pixel calibration",
                              text: str = "") -> Section:
    """A report section of a high-dimensional calibration
    (:func:`~sbi_astro.diagnostics.images.image_calibration`): TARP over all pixels, the
    z-score histogram, maps of examples and the numbers (also in ``metrics.json``)."""
    m = res.to_dict()
    lines = [f"{m['num_images']} images of {m['num_pixels']} pixels. TARP over all pixels: "
             f"ATC {m['tarp_atc']:+.3f}, KS p {m['tarp_ks_pvalue']:.3g}. Per-pixel z-scores: "
             f"mean {m['z_mean']:+.3f}, std {m['z_std']:.3f}; |z| < 1 for "
             f"{m['fraction_abs_z_below_1']:.3f} of pixels (0.683 if calibrated), |z| < 2 for "
             f"{m['fraction_abs_z_below_2']:.3f} (0.954). Central 90 % intervals hold "
             f"{m['interval90_coverage']:.3f} of true pixels ({m['interval90_expected']:.3f} "
             "expected for this number of samples)."]
    if "reduced_chi2_mean" in m:
        lines.append(f"Reduced chi^2 of the posterior's model images against the data: mean "
                     f"{m['reduced_chi2_mean']:.3f}, median {m['reduced_chi2_median']:.3f} "
                     "(1 for a fit at the noise level).")
    figures = [(res.tarp, "TARP over all pixels: expected coverage against credibility"),
               (plot_z_histogram(res), "Per-pixel z-scores of the true images"),
               (plot_image_maps(res), "Examples: truth, data, posterior mean and std, and "
                                      "the residual in posterior standard deviations")]
    return Section(title=title, text="\n\n".join([*([text] if text else []), *lines]),
                   figures=figures, metrics=m)


__all__ = ["ReportContent", "image_calibration_section", "jsonable", "write_report",
           "write_sections_report"]
