"""Which estimator class implements which method: the one map from method to class.

Example:
    >>> estimator_class("npe", 1).__name__, estimator_class("npe", 3).__name__
    ('NPEEstimator', 'NPEEnsemble')
"""

from __future__ import annotations

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
