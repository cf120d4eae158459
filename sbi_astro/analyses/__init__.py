"""Study analyses: extra, named report sections computed after training.

A study YAML lists them under ``analyses``; each entry names a registered ``kind`` and its
options::

    analyses:
      - {kind: observed, num_samples: 5000}

An analysis is a function ``fn(est, out_dir, *, seed, log=print, **options) -> ReportSection``
(``est``: the trained :class:`~sbi_astro.inference.Estimator`; ``out_dir``: the study's report
folder, for any extra files).  Register one with :func:`register_analysis`; the built-in kinds
live in this package, one module per kind:

* ``observed`` (:mod:`.observed`) - the posterior of the simulator's real observation next to
  its reference posterior, with posterior predictive counts over the data.
* ``mock`` (:mod:`.mock`) - the posterior of one observation simulated at given parameters
  (a named, typical mock), with the fractional precision of every parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

_ANALYSES: dict[str, Callable[..., Any]] = {}


def register_analysis(kind: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``fn`` as the study analysis ``kind``."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if kind in _ANALYSES and _ANALYSES[kind] is not fn:
            raise ConfigError(f"study analysis '{kind}' is already registered")
        _ANALYSES[kind] = fn
        return fn

    return deco


def check_int_option(kind: str, name: str, value: Any, low: int) -> int:
    """``value`` if it is an integer >= ``low``; a ConfigError naming the option otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"analysis '{kind}': '{name}' must be an integer >= {low}, "
                          f"got {value!r}")
    return value


def analysis_kinds() -> list[str]:
    """Names of the registered analyses."""
    return sorted(_ANALYSES)


def get_analysis(kind: str) -> Callable[..., Any]:
    """The analysis registered as ``kind``; a clear error listing the known kinds otherwise."""
    if kind not in _ANALYSES:
        raise ConfigError(f"unknown study analysis kind '{kind}'; known kinds: "
                          f"{analysis_kinds()}")
    return _ANALYSES[kind]


from . import dynamics, mock, observed  # noqa: E402,F401  (registers the built-in kinds)

__all__ = ["analysis_kinds", "check_int_option", "get_analysis", "register_analysis"]
