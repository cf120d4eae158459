"""The report page: one self-contained HTML file (figures inline as base64 PNG, style inline).

It opens offline, from any folder, in any browser.  Everything here formats numbers that
were computed elsewhere.
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from torch import Tensor

from ..analysis import Section
from .figures import render_figure


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def jsonable(obj: Any) -> Any:
    """``obj`` with tensors as lists and non-finite floats as strings (valid JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, str | int | float | bool) or obj is None:
        return obj
    return str(obj)


def section_html(section: Section) -> str:
    """One extra section (an analysis's :class:`~sbi_astro.analysis.Section`) as HTML."""
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    parts += [f"<p>{html.escape(p.strip())}</p>" for p in section.text.split("\n\n")
              if p.strip()]
    if section.table:
        cols = list(section.table[0])
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>"
                                         for c in cols) + "</tr>" for r in section.table)
        parts.append(f"<table><tr>{head}</tr>{body}</table>")
    if section.figures:
        figs = "".join(_fig(render_figure(f), c) for f, c in section.figures)
        parts.append(f'<div class="figs">{figs}</div>')
    return "".join(parts)


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


def _prior_text(sim: dict[str, Any]) -> str:
    """``name [unit]: kind(parameters)`` per marginal, user priors and data-set ranges
    marked."""
    from ..priors import KIND_PARAMETERS

    user = sim.get("prior_overrides") or {}
    notes = sim.get("prior_notes") or {}
    parts = []
    for m in sim.get("parameters", []):
        args = ", ".join(f"{k}={m[k]:g}" for k in KIND_PARAMETERS.get(m.get("kind"), ())
                         if isinstance(m.get(k), int | float))
        unit = f" [{m['unit']}]" if m.get("unit") else ""
        mark = " (user prior)" if m.get("name") in user else ""
        if m.get("name") in notes and m.get("name") not in user:
            mark += f" ({notes[m.get('name')]})"
        parts.append(f"{m.get('name')}{unit}: {m.get('kind')}({args}){mark}")
    return "; ".join(parts)


def _files_text(files: dict[str, Any]) -> str:
    """``role: path (sha256 abcd1234...)`` per data file, or "none"."""
    if not files:
        return "none (the simulator reads no observation files)"
    return "; ".join(f"{role}: {f.get('path')} (sha256 {str(f.get('sha256'))[:16]}...)"
                     for role, f in files.items())


def _card(value: str, key: str) -> str:
    return f'<div class="card"><div class="v">{html.escape(value)}</div>' \
           f'<div class="k">{html.escape(key)}</div></div>'


def _fig(png: str, caption: str) -> str:
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_html(metrics: dict[str, Any], figures: dict[str, str],
                extra_sections: tuple[str, ...] | list[str] = ()) -> str:
    """The report page from ``metrics``, base64 PNG ``figures`` and extra section HTML."""
    # one page template, top to bottom: reads better whole
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
        "prior": _prior_text(sim),
        "data files": _files_text(sim.get("data_files") or {}),
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


def render_sections_page(title: str, subtitle: str, sections: list[str] | tuple[str, ...],
                         provenance: dict[str, Any]) -> str:
    """A report page of sections only (a learned solver's study: no parameter-level
    calibration), with the provenance as JSON at the end."""
    prov = html.escape(json.dumps(provenance, indent=2))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body><main>
<h1>{html.escape(title)}</h1>
<div class="sub">{html.escape(subtitle)}</div>
{"".join(sections)}
<h2>Provenance</h2><pre>{prov}</pre>
</main></body></html>
"""
