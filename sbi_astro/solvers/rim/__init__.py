"""Recurrent inference machines (Putzky & Welling 2017): learned, unrolled optimisers that
reconstruct a signal from data through any differentiable forward model and log-likelihood.

See ``docs/solvers_rim.md``.
"""

from __future__ import annotations

from .config import RIMConfig
from .ensemble import RIMEnsemble
from .files import load_rim, save_rim
from .finetune import fine_tune
from .likelihoods import gaussian_log_likelihood, likelihood_gradient, poisson_log_likelihood
from .links import to_link, to_signal
from .model import RIM
from .training import TrainingConfig, TrainingSummary, fit

__all__ = ["RIM", "RIMConfig", "RIMEnsemble", "TrainingConfig", "TrainingSummary", "fine_tune",
           "fit", "gaussian_log_likelihood", "likelihood_gradient", "load_rim",
           "poisson_log_likelihood", "save_rim", "to_link", "to_signal"]
