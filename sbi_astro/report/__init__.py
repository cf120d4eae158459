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
from ..diagnostics.ppc import PPCResult
from ..diagnostics.recovery import RecoveryResult
from ..diagnostics.sbc import SBCResult
from ..diagnostics.tarp import TarpResult
from .figures import (
    plot_corner,
    plot_coverage,
    plot_ppc,
    plot_recovery,
    plot_sbc,
    plot_tarp,
    png,
)
from .html import jsonable, render_html, section_html


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


__all__ = ["ReportContent", "jsonable", "write_report"]
