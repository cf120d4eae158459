"""Your own priors: replace any parameter's marginal by Uniform, LogUniform, Normal or a
truncated Normal, checked against the physical support the simulator declares.

A prior override is a mapping from parameter name to a specification ``{kind: ...,
<parameters>}``, the same in Python, in a study YAML (``prior:``) and on the command line
(``--prior 'nH={kind: truncnormal, loc: 0.05, scale: 0.01, lower: 0}'``):

=============  ==================================================================
``kind``       parameters
=============  ==================================================================
uniform        ``lower``, ``upper``
loguniform     ``lower``, ``upper`` (``0 < lower``)
normal         ``loc``, ``scale``
truncnormal    ``loc``, ``scale``, and ``lower`` and/or ``upper`` (default -inf, +inf)
=============  ==================================================================

Values are in the parameter's unit (``sbi-astro simulators`` lists them).  Every parameter
the override does not name keeps the simulator's own marginal.  The new marginal's support
must lie inside the simulator's physical support for that parameter
(:meth:`~sbi_astro.simulator.Simulator.physical_support`): a Normal prior on a column
density, which cannot be negative, is refused with the advice to truncate it at 0.

Example:
    >>> from sbi_astro.priors import Prior, Uniform
    >>> base = Prior([Uniform("nH", 0.0, 1.0, unit="1e22 cm-2"), Uniform("kT", 0.2, 10.0)])
    >>> spec = normalize_overrides({"nH": {"kind": "truncnormal", "loc": 0.05,
    ...                                    "scale": 0.01, "lower": 0}}, base)
    >>> prior = apply_overrides(base, spec, {"nH": (0.0, float("inf")),
    ...                                      "kT": (0.08, 64.0)}, simulator="demo")
    >>> prior.marginals[0].kind, prior.marginals[0].unit, prior.marginals[1].kind
    ('truncnormal', '1e22 cm-2', 'uniform')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .priors import KIND_PARAMETERS, Marginal, Prior, marginal_from_dict

_OPTIONAL = {"truncnormal": {"lower", "upper"}}


def normalize_overrides(overrides: Mapping[str, Any] | None, base: Prior
                        ) -> dict[str, dict[str, Any]]:
    """Checks an override mapping against the parameters of ``base``; returns it as plain
    JSON (``{name: {"kind": ..., parameter: float}}``, sorted by parameter order).

    Raises:
        ConfigError: not a mapping, an unknown parameter, an unknown kind, a missing or
            unknown or non-numeric parameter of the kind.
    """
    if overrides is None:
        return {}
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"a prior override is a mapping parameter -> {{kind: ..., ...}}, "
                          f"got {overrides!r}")
    names = list(base.names)
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ConfigError(f"prior override names unknown parameter(s) {unknown}; the "
                          f"parameters are {names}")
    out = {}
    for name in names:
        if name in overrides:
            out[name] = _normalize_spec(name, overrides[name])
    return out


def _normalize_spec(name: str, spec: Any) -> dict[str, Any]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
        raise ConfigError(f"prior of {name!r} must be a mapping with a 'kind' (one of "
                          f"{sorted(KIND_PARAMETERS)}), e.g. {{kind: uniform, lower: 0, "
                          f"upper: 1}}, got {spec!r}")
    kind = spec["kind"].lower()
    if kind not in KIND_PARAMETERS:
        raise ConfigError(f"prior of {name!r}: unknown kind {spec['kind']!r}; use one of "
                          f"{sorted(KIND_PARAMETERS)}")
    allowed = set(KIND_PARAMETERS[kind])
    given = set(spec) - {"kind"}
    if given - allowed:
        raise ConfigError(f"prior of {name!r} ({kind}) takes {sorted(allowed)}, got unknown "
                          f"{sorted(given - allowed)}")
    missing = allowed - _OPTIONAL.get(kind, set()) - given
    if missing:
        raise ConfigError(f"prior of {name!r} ({kind}) needs {sorted(missing)}")
    out: dict[str, Any] = {"kind": kind}
    for key in KIND_PARAMETERS[kind]:
        if key not in spec:
            continue
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)  # YAML reads 1e-3 and inf as strings
            except (TypeError, ValueError):
                raise ConfigError(f"prior of {name!r}: {key} must be a number, got "
                                  f"{spec[key]!r}") from None
        if math.isnan(value):
            raise ConfigError(f"prior of {name!r}: {key} is NaN")
        out[key] = float(value)
    return out


def marginal_for(base: Marginal, spec: Mapping[str, Any]) -> Marginal:
    """The marginal of ``spec`` (normalized) with the name, unit and description of ``base``."""
    return marginal_from_dict({**spec, "name": base.name, "unit": base.unit,
                               "description": base.description})


def apply_overrides(base: Prior, overrides: Mapping[str, Mapping[str, Any]],
                    support: Mapping[str, tuple[float, float]], *, simulator: str) -> Prior:
    """``base`` with the marginals of ``overrides`` (normalized) replaced.

    Raises:
        ConfigError: an invalid marginal, or one whose support leaves the physical support.
    """
    marginals = list(base.marginals)
    for i, m in enumerate(marginals):
        if m.name not in overrides:
            continue
        new = marginal_for(m, overrides[m.name])
        lo, hi = support.get(m.name, (-math.inf, math.inf))
        if new.low < lo or new.high > hi:
            unit = f" {m.unit}" if m.unit else ""
            hint = (f"; use kind: truncnormal with lower: {lo:g}" if new.kind == "normal"
                    and math.isfinite(lo) else "; keep the bounds inside it")
            raise ConfigError(
                f"prior of {m.name!r} ({new.kind}, support [{new.low:g}, {new.high:g}]{unit}) "
                f"extends outside the physical support [{lo:g}, {hi:g}]{unit} that "
                f"{simulator!r} declares for it{hint}")
        marginals[i] = new
    return Prior(marginals, device=base.device, dtype=base.dtype)
