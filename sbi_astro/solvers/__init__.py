"""Learned inverse solvers: score-based priors and likelihoods (issue 21) and recurrent
inference machines (issue 22, the :mod:`.rim` subpackage, ``docs/solvers_rim.md``).

* :mod:`.sde` the VE / VP diffusions; :mod:`.networks` time-conditioned MLP and U-Net;
  :mod:`.score_model` the score model, its loss and EMA; :mod:`.training` its training;
  :mod:`.io` saving and loading (state dict + JSON); :mod:`.gaussian` the exact score of a
  Gaussian prior; :mod:`.likelihood` likelihood scores (convolved Gaussian, matrix free,
  Tweedie / DPS); :mod:`.sampler` the predictor-corrector posterior sampler;
  :mod:`.noise` correlated and non-Gaussian noise realisations; :mod:`.slic` the learned
  noise-score likelihood (SLIC).

See ``docs/solvers_score.md``.
"""

from .baseline import regularised_least_squares, tune_regularisation
from .gaussian import GaussianScore
from .io import load_score_model, save_score_model
from .likelihood import (
    GaussianLinearLikelihood,
    LinearOperatorLikelihood,
    TweedieLikelihood,
    conjugate_gradient,
    gaussian_log_likelihood,
    poisson_log_likelihood,
)
from .networks import ScoreMLP, ScoreUNet, build_network
from .noise import (
    noise_sampler,
    power_law_covariance,
    power_law_noise,
    power_law_spectrum,
    read_noise_with_cosmic_rays,
)
from .sampler import sample_posterior
from .score_model import ScoreModel
from .sde import VESDE, VPSDE, sde_from_config
from .slic import NoiseScoreLikelihood, operator_gain
from .training import train_score_model

__all__ = ["GaussianLinearLikelihood", "GaussianScore", "LinearOperatorLikelihood",
           "NoiseScoreLikelihood", "ScoreMLP", "ScoreModel", "ScoreUNet", "TweedieLikelihood",
           "VESDE", "VPSDE", "build_network", "conjugate_gradient", "gaussian_log_likelihood",
           "load_score_model", "noise_sampler", "operator_gain", "poisson_log_likelihood",
           "power_law_covariance", "power_law_noise", "power_law_spectrum",
           "read_noise_with_cosmic_rays", "regularised_least_squares", "sample_posterior",
           "save_score_model", "sde_from_config", "train_score_model", "tune_regularisation"]
