"""Linear forward operators of pixel-level problems, found through entry points.

A learned inverse solver (:mod:`sbi_astro.solvers`) reconstructs a map ``x`` from data
``y = A x + noise``.  A plugin contributes ``A`` as a function of keyword options returning
an operator object with:

* ``op(x)``: ``(N, *source_shape) -> (N, *data_shape)``, linear, differentiable;
* ``op.adjoint(y)``: the transpose, ``(N, *data_shape) -> (N, *source_shape)``.

They are found only through the entry-point group ``sbi_astro.operators``, the built-in
lensing operator exactly like a third party's::

    [project.entry-points."sbi_astro.operators"]
    lensing = "simulators.lensing.operator:lensing_operator"

Example:
    >>> "lensing" in list_operators()
    True
    >>> check_operator_options("lensing", {"warp": 2})
    Traceback (most recent call last):
    ...
    sbi_astro.errors.ConfigError: operator 'lensing': unknown or missing options ['warp']...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import PluginError
from .plugins import check_call, function_names, load_function

GROUP = "sbi_astro.operators"


def list_operators() -> list[str]:
    """Names of the registered operators."""
    return function_names(GROUP)


def operator_factory(name: str) -> Callable[..., Any]:
    """The function registered as ``name`` (errors as :func:`~sbi_astro.plugins.load_function`)."""
    return load_function(GROUP, name, what="operator")


def check_operator_options(name: str, options: dict[str, Any]) -> None:
    """Checks that ``options`` fit the signature of operator ``name`` (before any work).

    Raises:
        ConfigError: unknown operator, or options it does not take.
    """
    check_call(operator_factory(name), f"operator '{name}'", options)


def get_operator(name: str, **options: Any) -> Any:
    """The operator ``name`` built with ``options`` (checked against its signature)."""
    check_operator_options(name, options)
    op = operator_factory(name)(**options)
    if not callable(op) or not callable(getattr(op, "adjoint", None)):
        raise PluginError(f"operator {name!r} returned a {type(op).__name__}, which lacks "
                          "op(x) or op.adjoint(y)")
    return op
