"""Training an estimator: :func:`train` on simulations, and warm starts from saved runs.

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> theta, x = sim.sample_joint(500, generator=torch.Generator().manual_seed(0))
    >>> est = train(theta, x, sim, TrainingConfig(max_epochs=3, device="cpu"))
    >>> est.sample(100, x[:4]).shape
    torch.Size([100, 4, 2])
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..device import resolve_device
from ..embeddings import build_embedding
from ..errors import ConfigError, DataFormatError
from ..priors import Prior
from ..simulator import Simulator
from ..store import SimulationStore
from ..store_batches import StoreBatches, fits_in_memory, row_bytes
from . import sbi_adapter
from .config import TrainingConfig
from .data import check_theta_x
from .ensemble import member_config, mixture
from .estimator import TrainedEstimator, resolve_embedding_spec
from .methods import check_method, estimator_class
from .run_files import read_run
from .streaming import train_streamed
from .transforms import LogitBox


def train(theta: Tensor, x: Tensor, simulator: Simulator, config: TrainingConfig | None = None,
          *, provenance: dict[str, Any] | None = None, on_epoch: Any = None
          ) -> TrainedEstimator:
    """Trains an estimator on simulations ``theta (N, D)``, ``x (N, *event_shape)``.

    Args:
        theta, x: the training set, tensors or numpy arrays (rows with non-finite values
            or parameters outside the prior's support are dropped with a warning that
            counts them).
        simulator: the simulator that produced them (prior, shapes, default embedding).
        config: training configuration (defaults: NPE with a coupling NSF).
        provenance: extra metadata stored in ``run.json`` (e.g. the store path).
        on_epoch: called after every epoch with a dict: ``epoch``, ``training_loss``,
            ``validation_loss`` (mean negative log-density), ``seconds``,
            ``learning_rate`` (and ``member`` for an ensemble), e.g. to log progress.

    Returns:
        The trained estimator (call ``.save(run_dir)`` to persist it).
    """
    config = config or TrainingConfig()
    check_method(simulator, config.method)
    config = config.resolved(
        simulator.dim, theta.shape[0], bounded_prior=simulator.prior.bounded,
        theta_transform=simulator.default_theta_transform)
    if config.ensemble > 1:
        return mixture([train(theta, x, simulator, member_config(config, k),
                              provenance=provenance, on_epoch=None if on_epoch is None else
                              (lambda e, k=k: on_epoch({**e, "member": k})))
                        for k in range(config.ensemble)], config)
    device = resolve_device(config.device)
    theta, x = check_theta_x(theta, x, simulator)
    theta = theta.to(device, torch.float32)
    x = x.to(device, torch.float32)
    spec = resolve_embedding_spec(config, simulator)
    transform = _theta_transform(config, simulator, device)
    if transform is not None:
        theta = transform(theta)
    t0 = time.perf_counter()
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed)
        inference = _trainer(config, simulator, spec, device)
        net, summary = sbi_adapter.train(inference, theta, x, config, on_epoch)
    metadata = {
        "num_simulations": int(theta.shape[0]),
        "training": {**summary, "seconds": time.perf_counter() - t0, "device": str(device)},
        "sbi_version": sbi_adapter.sbi_version(),
        **(provenance or {}),
    }
    sim = simulator.on_device(device)
    return estimator_class(config.method)(net.to(device), sim, config, spec, metadata)


def _theta_transform(config: TrainingConfig, simulator: Simulator, device: torch.device
                     ) -> Any:
    """The map of theta into the flow's space (``theta_transform``), or None."""
    if config.theta_transform == "none":
        return None
    return LogitBox.for_prior(simulator.prior.to(device), config.theta_transform).forward


def _trainer(config: TrainingConfig, simulator: Simulator, spec: Any, device: torch.device
             ) -> Any:
    """sbi's trainer with this config's network builder (call under the training seed)."""
    prior = simulator.prior.to(device)
    if config.theta_transform != "none":
        # the flow lives in phi = logit(box) space; sbi only needs a prior there to know the
        # dimension (single-round NPE never samples it)
        prior = torch.distributions.Independent(torch.distributions.Normal(
            torch.zeros(simulator.dim, device=device),
            torch.full((simulator.dim,), 10.0, device=device)), 1)
    embedding = build_embedding(spec)
    if config.method == "nre":
        builder = sbi_adapter.classifier_builder(config, embedding, simulator.x_standardization)
    else:
        builder = sbi_adapter.density_builder(config.method, config, embedding,
                                              simulator.x_standardization)
    if config.init_from is not None:
        builder = sbi_adapter.starting_from(builder, initial_state(config.init_from,
                                                                   simulator.prior))
    return sbi_adapter.trainer(config.method, prior, builder, device, config)


def train_from_store(path: str | Path, simulator: Simulator,
                     config: TrainingConfig | None = None, *, num_rows: int | None = None,
                     stream: bool | None = None, provenance: dict[str, Any] | None = None,
                     on_epoch: Any = None) -> TrainedEstimator:
    """Trains on the first ``num_rows`` rows of a store, in memory or streamed from disk.

    Args:
        path: the store (complete up to ``num_rows``).
        simulator: the simulator that made it.
        config: training configuration.
        num_rows: train on the first ``num_rows`` rows (default: all).
        stream: ``True`` streams batches from disk
            (:class:`~sbi_astro.store_batches.StoreBatches`: bounded memory, the last
            ``validation_fraction`` of the rows held out), ``False`` loads the rows and
            calls :func:`train`; ``None`` streams when the rows would take more than
            :data:`~sbi_astro.store_batches.STREAM_FRACTION` of the memory available.
        provenance, on_epoch: as for :func:`train`.
    """
    config = config or TrainingConfig()
    with SimulationStore.open(path) as store:
        n = store.metadata.num_simulations if num_rows is None else int(num_rows)
        config = config.resolved(simulator.dim, n, bounded_prior=simulator.prior.bounded,
                                 theta_transform=simulator.default_theta_transform)
        if stream is None:
            stream = not fits_in_memory(n * row_bytes(store.metadata))
        if not stream:
            theta, x = store.load(num_rows=n)
    if not stream:
        return train(theta, x, simulator, config, provenance=provenance, on_epoch=on_epoch)
    if config.ensemble > 1:
        return mixture([train_from_store(path, simulator, member_config(config, k),
                                         num_rows=n, stream=True, provenance=provenance)
                        for k in range(config.ensemble)], config)
    device = resolve_device(config.device)
    data = StoreBatches(path, batch_size=config.batch_size, num_rows=n, seed=config.seed,
                        validation_fraction=config.validation_fraction,
                        prior=simulator.prior, device=device)
    spec = resolve_embedding_spec(config, simulator)
    t0 = time.perf_counter()
    cuda = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(config.seed)
        inference = _trainer(config, simulator, spec, device)
        net, summary = train_streamed(inference, config.method, data, config, on_epoch,
                                      _theta_transform(config, simulator, device))
    metadata = {"num_simulations": data.num_rows - data.dropped,
                "training": {**summary, "seconds": time.perf_counter() - t0,
                             "device": str(device)},
                "sbi_version": sbi_adapter.sbi_version(), **(provenance or {})}
    return estimator_class(config.method)(net.to(device), simulator.on_device(device), config,
                                          spec, metadata)


def initial_state(run_dir: str, prior: Prior | None = None) -> dict[str, Tensor]:
    """The checked weights of a saved run, for ``TrainingConfig.init_from`` (no unpickling).

    Args:
        run_dir: the run directory.
        prior: the prior of the training that starts from it: a run trained under another
            prior is refused (its posterior is not this one's).

    Raises:
        ConfigError: ``run_dir`` is not a loadable run directory, or has another prior.
    """
    try:
        doc, state = read_run(run_dir)
    except (FileNotFoundError, DataFormatError) as err:
        raise ConfigError(f"init_from: {err}") from None
    if prior is not None and "prior" in doc and doc["prior"] != prior.to_dict():
        raise ConfigError(f"init_from: {run_dir} was trained under another prior than this "
                          "training's; start from a run with the same prior")
    return state
