"""Simulator options: the types an option may have and how CLI/YAML values become them.

A plugin's options are a frozen dataclass; its field annotations say what each option is
(``int``, ``float``, ``bool``, ``str``, tuples of them, ``X | None``, and :class:`FilePath`
for a file of the user's).  :func:`coerce_option` converts the strings of ``--option K=V``
and the values of a study YAML to those types, with one-line errors.

Example:
    >>> coerce_option("1e3", float, "exposure", "xray_powerlaw")
    1000.0
    >>> coerce_option("0.5,7", tuple[float, ...], "energy_range", "xray_powerlaw")
    (0.5, 7.0)
    >>> coerce_option("nan", float, "exposure", "xray_powerlaw")
    Traceback (most recent call last):
        ...
    sbi_astro.errors.ConfigError: option 'exposure' of simulator 'xray_powerlaw' must be a finite float, got 'nan'
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

from .errors import ConfigError


class FilePath(str):
    """The type of a simulator option that names a file (an observation, a response, a PSF):
    coerced to an absolute path (``~`` expanded, relative paths taken from the working
    folder, or in a study YAML from the YAML's own folder)."""


def file_options(options_cls: type) -> list[str]:
    """The names of the options of ``options_cls`` whose type admits a :class:`FilePath`."""
    hints = typing.get_type_hints(options_cls)
    out = []
    for f in dataclasses.fields(options_cls):
        ann = hints[f.name]
        if ann is FilePath or FilePath in typing.get_args(ann):
            out.append(f.name)
    return out


def coerce_option(value: Any, annotation: Any, name: str, sim: str) -> Any:
    """Converts CLI/YAML strings to the declared option type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce_option(value, arg, name, sim)
            except ConfigError:
                continue
        raise ConfigError(f"option {name!r} of simulator {sim!r}: cannot use {value!r} "
                          f"as {annotation}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        inner = args[0] if args else str
        return tuple(coerce_option(v, inner, name, sim) for v in value)
    try:
        if annotation is FilePath:
            if isinstance(value, bool) or not isinstance(value, str | os.PathLike) or \
                    not os.fspath(value).strip():
                raise ValueError(value)
            return FilePath(Path(os.fspath(value)).expanduser().resolve())
        if annotation is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if not isinstance(value, bool | int) or value not in (0, 1):
                raise ValueError(value)
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if annotation is float:
            out = float(value)
            if not math.isfinite(out):
                raise ValueError(value)
            return out
        if annotation is str:
            return str(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"option {name!r} of simulator {sim!r} must be "
            f"{'a file path' if annotation is FilePath else 'a finite ' + annotation.__name__}"
            f", got {value!r}"
        ) from err
    return value
