"""Neural posterior, likelihood and ratio estimation (built on ``sbi`` with ``zuko`` flows).

One module per concept: :mod:`.config` (the training configuration), :mod:`.training`
(:func:`train`), :mod:`.estimator` (the trained estimator's interface), :mod:`.npe`,
:mod:`.nle`, :mod:`.nre`, :mod:`.ensemble` (the methods), :mod:`.methods` (method -> class),
:mod:`.run_files` and :mod:`.runs` (saving and loading run directories), :mod:`.data`
(checking training sets), :mod:`.streaming` (training on batches streamed from a store),
:mod:`.transforms`, :mod:`.importance` (NPE proposals weighed by an exact likelihood), and
:mod:`.sbi_adapter`, the one module that touches ``sbi``.

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> from sbi_astro.inference import TrainingConfig, train
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> theta, x = sim.sample_joint(500, generator=torch.Generator().manual_seed(0))
    >>> est = train(theta, x, sim, TrainingConfig(method="nre", max_epochs=2, device="cpu"))
    >>> est.log_prob(theta[None, :4], x[:4]).shape      # unnormalised: ratio + log prior
    torch.Size([1, 4])
"""

from __future__ import annotations

from .config import TrainingConfig
from .ensemble import NPEEnsemble
from .estimator import TrainedEstimator
from .methods import check_method
from .nle import NLEEstimator
from .npe import NPEEstimator
from .nre import NREEstimator
from .run_files import weights_path
from .runs import load_run
from .training import initial_state, train, train_from_store

__all__ = ["NLEEstimator", "NPEEnsemble", "NPEEstimator", "NREEstimator", "TrainedEstimator",
           "TrainingConfig", "check_method", "initial_state", "load_run", "train",
           "train_from_store", "weights_path"]
