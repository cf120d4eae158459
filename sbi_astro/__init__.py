"""sbi-astro: simulation-based inference for astrophysics.

The public API: simulators and their registry, priors, the simulation store and
campaigns, neural estimators, diagnostics and calibration reports.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    ConfigError,
    DataFormatError,
    NonFiniteError,
    NotAvailableError,
    OutOfSupportError,
    PluginError,
    SbiAstroError,
    ShapeError,
    StoreError,
    UnknownSimulatorError,
)
from .priors import LogUniform, Normal, Prior, Uniform
from .registry import list_simulators, load_simulator, simulator_class
from .simulator import EmbeddingSpec, Simulator

try:
    __version__ = version("sbi-astro")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "ConfigError",
    "DataFormatError",
    "EmbeddingSpec",
    "LogUniform",
    "NonFiniteError",
    "NotAvailableError",
    "Normal",
    "OutOfSupportError",
    "PluginError",
    "Prior",
    "SbiAstroError",
    "ShapeError",
    "Simulator",
    "StoreError",
    "Uniform",
    "UnknownSimulatorError",
    "__version__",
    "list_simulators",
    "load_simulator",
    "simulator_class",
]
