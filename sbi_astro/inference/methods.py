"""Which estimator class implements which method: the one map from method to class.

Example:
    >>> estimator_class("npe", 1).__name__, estimator_class("npe", 3).__name__
    ('NPEEstimator', 'NPEEnsemble')
    >>> from sbi_astro import load_simulator
    >>> check_method(load_simulator("gaussian_linear", device="cpu"), "nle")  # a vector x: fine
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .ensemble import NPEEnsemble
from .estimator import TrainedEstimator
from .nle import NLEEstimator
from .npe import NPEEstimator
from .nre import NREEstimator

ESTIMATORS: dict[str, type[TrainedEstimator]] = {
    "npe": NPEEstimator, "nle": NLEEstimator, "nre": NREEstimator}


def estimator_class(method: str, ensemble: int = 1) -> type[TrainedEstimator]:
    """The class of a trained ``method`` estimator (:class:`NPEEnsemble` for ``ensemble > 1``)."""
    if method not in ESTIMATORS:
        raise ConfigError(f"method must be one of {sorted(ESTIMATORS)}, got {method!r}")
    return NPEEnsemble if ensemble > 1 else ESTIMATORS[method]


def check_method(simulator: Any, method: str) -> None:
    """Refuses, before any simulation, a method that cannot model ``simulator``'s data: NLE
    learns the density of ``x`` itself, so its ``x`` must be a vector (NPE and NRE read an
    image or a cube through the simulator's embedding network).

    Raises:
        ConfigError: an unknown method, or NLE on data of more than one dimension.
    """
    estimator_class(method)
    shape = tuple(simulator.event_shape)
    if method == "nle" and len(shape) > 1:
        raise ConfigError(f"NLE learns the density of x, which must be a vector; simulator "
                          f"{simulator.name!r} gives x of shape {shape}: use method npe or "
                          "nre (they read x through the simulator's embedding network)")
