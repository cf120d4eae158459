"""Functions contributed by plugins through an entry-point group (analyses, operators).

A package registers ``name = "module:function"`` under a group in its ``pyproject.toml``;
:func:`load_function` finds it by name, imports it and checks it is callable, with one-line
errors that list the known names.  (Simulators have their own registry,
:mod:`sbi_astro.registry`, which also checks the class.)

Example:
    >>> "observed" in function_names("sbi_astro.analyses")
    True
    >>> load_function("sbi_astro.analyses", "nope", what="analysis")
    Traceback (most recent call last):
    ...
    sbi_astro.errors.ConfigError: unknown analysis 'nope'; known: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import ConfigError, PluginError


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def function_names(group: str) -> list[str]:
    """The names registered in ``group``, sorted."""
    return sorted(_entry_points(group))


def load_function(group: str, name: str, *, what: str) -> Callable[..., Any]:
    """The function registered as ``name`` in ``group``.

    Raises:
        ConfigError: no such name (the message lists the known ones).
        PluginError: the entry point cannot be imported or is not callable.
    """
    eps = _entry_points(group)
    if name not in eps:
        raise ConfigError(f"unknown {what} '{name}'; known: {function_names(group)}")
    try:
        fn = eps[name].load()
    except Exception as err:  # noqa: BLE001 - any import failure of a third-party plugin
        raise PluginError(f"{what} {name!r} ({eps[name].value}) could not be imported: "
                          f"{type(err).__name__}: {err}") from err
    if not callable(fn):
        raise PluginError(f"{what} {name!r} ({eps[name].value}) is not a function")
    return fn


def check_call(fn: Callable[..., Any], label: str, options: dict[str, Any], *args: Any,
               skip: tuple[str, ...] = (), **fixed: Any) -> None:
    """Checks that ``fn(*args, **fixed, **options)`` would bind (before any work).

    Raises:
        ConfigError: ``label``: the user's ``options`` that do not fit, and the parameters
        ``fn`` takes (less ``skip``).
    """
    try:
        inspect.signature(fn).bind(*args, **fixed, **options)
    except TypeError as err:
        params = [p for p in inspect.signature(fn).parameters if p not in skip]
        raise ConfigError(f"{label}: unknown or missing options {sorted(options)} ({err}); "
                          f"it takes {params}") from None
