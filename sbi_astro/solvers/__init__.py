"""Learned inverse solvers: score-based priors and likelihoods (issue 21).

* :mod:`.sde` the VE / VP diffusions; :mod:`.networks` time-conditioned MLP and U-Net;
  :mod:`.score_model` the score model, its loss and EMA; :mod:`.training` its training;
  :mod:`.io` saving and loading (state dict + JSON); :mod:`.gaussian` the exact score of a
  Gaussian prior.

See ``docs/solvers_score.md``.
"""

from .gaussian import GaussianScore
from .io import load_score_model, save_score_model
from .networks import ScoreMLP, ScoreUNet, build_network
from .score_model import ScoreModel
from .sde import VESDE, VPSDE, sde_from_config
from .training import train_score_model

__all__ = [
    "VESDE", "VPSDE", "GaussianScore", "ScoreMLP", "ScoreModel", "ScoreUNet", "build_network",
    "load_score_model", "save_score_model", "sde_from_config", "train_score_model",
]
