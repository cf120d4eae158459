"""Analyses: named, extra report sections computed from a trained estimator.

A study YAML lists them under ``analyses``; each entry names a registered ``kind`` and its
options::

    analyses:
      - {kind: observed, num_samples: 5000}

An analysis is a function ``fn(est, out_dir, *, seed, log=print, **options) -> Section``
(``est``: the trained estimator, with ``est.simulator``, ``est.sample``; ``out_dir``: the
report folder, for any extra files).  It returns data, a :class:`Section`, which the report
renders; it draws nothing into HTML itself.

Analyses are found only through the entry-point group ``sbi_astro.analyses``, the built-in
ones exactly like a plugin's (a simulator plugin contributes the analyses that know its
parameters)::

    [project.entry-points."sbi_astro.analyses"]
    my_analysis = "my_package.analysis:my_analysis"

Example:
    >>> "observed" in list_analyses()
    True
    >>> check_analysis_options("mock", {"num_samples": 100, "theta": {"a": 1.0}})
    >>> check_analysis_options("mock", {"colour": "red"})
    Traceback (most recent call last):
    ...
    sbi_astro.errors.ConfigError: analysis 'mock': unknown or missing options ['colour']...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .plugins import check_call, function_names, load_function

GROUP = "sbi_astro.analyses"


@dataclasses.dataclass
class Section:
    """An extra section of a report: what an analysis returns.

    Attributes:
        title: the section heading; also its key under ``metrics["sections"]``.
        text: plain-text paragraphs (blank-line separated).
        figures: ``(figure, caption)`` pairs; a figure is a ``matplotlib.figure.Figure`` or
            a diagnostics result the report knows how to draw (e.g.
            :class:`~sbi_astro.diagnostics.tarp.TarpResult`).
        metrics: JSON-able numbers, saved in ``metrics.json``.
        table: optional rows (dicts with the same keys) shown as a table.
    """

    title: str
    text: str = ""
    figures: list[tuple[Any, str]] = dataclasses.field(default_factory=list)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    table: list[dict[str, Any]] | None = None


def list_analyses() -> list[str]:
    """Names of the registered analyses."""
    return function_names(GROUP)


def get_analysis(kind: str) -> Callable[..., Section]:
    """The analysis registered as ``kind``.

    Raises:
        ConfigError: no analysis of that name (the message lists the known ones).
        PluginError: the entry point cannot be imported or is not callable.
    """
    return load_function(GROUP, kind, what="study analysis kind")


def check_analysis_options(kind: str, options: dict[str, Any]) -> None:
    """Checks that ``options`` fit the signature of the analysis ``kind`` (before any work).

    Raises:
        ConfigError: unknown kind, or options it does not take.
    """
    check_call(get_analysis(kind), f"analysis '{kind}'", options, None, None, seed=0,
               log=print, skip=("est", "out_dir", "seed", "log"))


def check_int_option(kind: str, name: str, value: Any, low: int) -> int:
    """``value`` if it is an integer >= ``low``; a ConfigError naming the option otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"analysis '{kind}': '{name}' must be an integer >= {low}, "
                          f"got {value!r}")
    return value
