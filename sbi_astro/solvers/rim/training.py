"""Training a :class:`~.model.RIM` on simulated pairs (signal, observation).

Either the observations are given (``data``), or an ``observe(signal, rng) -> data``
callable draws fresh noise every epoch (the noise of row ``i`` in epoch ``e`` comes from
its own counter-based stream ``fold(fold(key(seed), e), i)``, so it does not depend on the
batch size).  The last ``validation_fraction`` of the rows, with fixed noise, is the
validation set; the weights of the best validation epoch are kept.  The signals can also be
streamed from a simulation store larger than memory
(:class:`~sbi_astro.store_batches.StoreBatches`; ``signal(theta, x)`` makes each row's truth).
With ``checkpoint=DIR`` the training state (weights, Adam, the shuffling generator, the
losses and the best epoch's weights) is saved there after every epoch
(:mod:`sbi_astro.solvers.checkpoints`); a training killed and started again with the same
machine, settings and signals resumes after the last finished epoch and ends as an
uninterrupted one.

Example:
    >>> import torch
    >>> from sbi_astro.solvers.rim import RIM, RIMConfig, gaussian_log_likelihood
    >>> truth = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    >>> ll = gaussian_log_likelihood(lambda s: s, sigma=0.5)
    >>> observe = lambda s, rng: s + 0.5 * rng.normal(s.shape[1:])
    >>> rim = RIM(RIMConfig(signal_shape=(8,), steps=3, hidden=16), device="cpu")
    >>> summary = fit(rim, truth, ll, observe=observe,
    ...               config=TrainingConfig(epochs=2, batch_size=16), log=None)
    >>> len(summary.train_loss), summary.best_epoch in (0, 1)
    (2, True)
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError, ShapeError
from ...random import RowRandom, fold, key_from_seed
from ...store_batches import StoreBatches
from .. import checkpoints
from .likelihoods import LogLikelihood
from .model import RIM

Observe = Callable[[Tensor, RowRandom], Tensor]
Signal = Callable[[Tensor, Tensor], Tensor]
_WHAT = "RIM training"


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimiser settings.

    Attributes:
        epochs: passes over the training rows.
        batch_size: rows per step.
        lr: Adam's peak learning rate (cosine decay to 1 % of it over the run).
        validation_fraction: share of the rows held out (at least one row).
        clip_norm: gradient-norm clip.
        seed: seed of shuffling and of the noise drawn by ``observe``.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    validation_fraction: float = 0.1
    clip_norm: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"TrainingConfig needs epochs >= 1 and batch_size >= 1, got "
                              f"{self.epochs} and {self.batch_size}")
        if not 0.0 < self.validation_fraction < 1.0 or not self.lr > 0:
            raise ConfigError("TrainingConfig needs 0 < validation_fraction < 1 and lr > 0, got "
                              f"{self.validation_fraction} and {self.lr}")


@dataclasses.dataclass
class TrainingSummary:
    """What training did: losses per epoch (the normalised loss of :meth:`RIM.loss`)."""

    train_loss: list[float]
    validation_loss: list[float]
    best_epoch: int
    seconds: float


def noisy_data(observe: Observe, truth: Tensor, key: Tensor, rows: Tensor) -> Tensor:
    """``observe`` on ``truth`` with the streams ``fold(key, rows)`` (one per row)."""
    return observe(truth, RowRandom(fold(key, rows.to(truth.device))))


def _check(rim: RIM, truth: Tensor, observe: Observe | None, data: Tensor | None) -> None:
    if tuple(truth.shape[1:]) != rim.config.signal_shape:
        raise ShapeError(f"truth must be (N, *{rim.config.signal_shape}), got "
                         f"{tuple(truth.shape)}")
    if (observe is None) == (data is None):
        raise ConfigError("fit needs exactly one of observe= (draws noise every epoch) and "
                          "data= (fixed observations)")
    if data is not None and data.shape[0] != truth.shape[0]:
        raise ShapeError(f"data has {data.shape[0]} rows, truth {truth.shape[0]}; they must "
                         "pair up")
    if truth.shape[0] < 2:
        raise ConfigError("fit needs at least 2 training signals (one is held out)")


Pairs = Iterator[tuple[Tensor, Tensor]]  # (data, truth) batches


class _InMemory:
    """Training and validation pairs of signals held in memory (``truth`` a tensor)."""

    def __init__(self, rim: RIM, truth: Tensor, observe: Observe | None, data: Tensor | None,
                 config: TrainingConfig):
        _check(rim, truth, observe, data)
        self.dev, self.config = rim.device, config
        self.truth = truth.to(self.dev, torch.float32)
        n = self.truth.shape[0]
        n_val = max(1, int(round(config.validation_fraction * n)))
        self.num_train = n - n_val
        if self.num_train < 1:
            raise ConfigError(f"validation_fraction {config.validation_fraction} leaves no "
                              f"training row of {n}; lower it or add signals")
        self.observe, self.data = observe, data
        self.root = key_from_seed(config.seed).to(self.dev)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.val_rows = torch.arange(self.num_train, n, device=self.dev)
        self.val_data = self._data(self.val_rows, fold(self.root, -1))

    def _data(self, rows: Tensor, key: Tensor) -> Tensor:
        if self.data is not None:
            return self.data[rows.cpu()].to(self.dev)
        return noisy_data(self.observe, self.truth[rows], key, rows)

    def standardising_pairs(self) -> tuple[Tensor, Tensor]:
        rows = torch.arange(min(self.num_train, 1024), device=self.dev)
        return self.truth[rows], self._data(rows, fold(self.root, -2))

    def epoch(self, epoch: int) -> Pairs:
        perm = torch.randperm(self.num_train, generator=self.gen).to(self.dev)
        key = fold(self.root, epoch)
        for i in range(0, self.num_train, self.config.batch_size):
            rows = perm[i:i + self.config.batch_size]
            yield self._data(rows, key), self.truth[rows]

    def validation(self) -> Pairs:
        step = 4 * self.config.batch_size
        for i in range(0, self.val_rows.shape[0], step):
            yield self.val_data[i:i + step], self.truth[self.val_rows[i:i + step]]


class _Streamed:
    """Training and validation pairs of signals streamed from a store
    (:class:`~sbi_astro.store_batches.StoreBatches`): ``signal(theta, x)`` of each row is the
    truth, ``observe`` draws its noise.  Batch ``b`` of epoch ``e`` draws its noise from
    ``fold(fold(key(seed), e), b * batch_size + i)``; validation noise is fixed."""

    def __init__(self, rim: RIM, store: StoreBatches, observe: Observe | None,
                 signal: Signal | None, config: TrainingConfig):
        if observe is None:
            raise ConfigError("training from a store needs observe= (the store holds the "
                              "signals; their observations are simulated every epoch)")
        if store.batch_size != config.batch_size:
            raise ConfigError(f"the store's batches hold {store.batch_size} rows but "
                              f"config.batch_size is {config.batch_size}; make them equal")
        self.rim, self.store, self.observe, self.config = rim, store, observe, config
        self.signal = signal if signal is not None else (lambda theta, x: x)
        self.dev = rim.device
        self.num_train = store.num_train
        self.root = key_from_seed(config.seed).to(self.dev)

    def _truth(self, theta: Tensor, x: Tensor) -> Tensor:
        truth = self.signal(theta.to(self.dev), x.to(self.dev)).to(torch.float32)
        if tuple(truth.shape[1:]) != self.rim.config.signal_shape:
            raise ShapeError(f"signal(theta, x) of the store's rows must be (B, "
                             f"*{self.rim.config.signal_shape}), got {tuple(truth.shape)}")
        return truth

    def _pairs(self, batches: Iterator[tuple[Tensor, Tensor]], key: Tensor) -> Pairs:
        offset = 0
        for theta, x in batches:
            truth = self._truth(theta, x)
            rows = torch.arange(offset, offset + truth.shape[0], device=self.dev)
            offset += truth.shape[0]
            yield noisy_data(self.observe, truth, key, rows), truth

    def standardising_pairs(self) -> tuple[Tensor, Tensor]:
        theta, x = self.store.sample(1024)
        truth = self._truth(theta, x)
        rows = torch.arange(truth.shape[0], device=self.dev)
        return truth, noisy_data(self.observe, truth, fold(self.root, -2), rows)

    def epoch(self, epoch: int) -> Pairs:
        return self._pairs(self.store.epoch(epoch), fold(self.root, epoch))

    def validation(self) -> Pairs:
        return self._pairs(self.store.validation(), fold(self.root, -1))


def fit(rim: RIM, truth: Tensor | StoreBatches, log_likelihood: LogLikelihood, *,
        observe: Observe | None = None, data: Tensor | None = None,
        signal: Signal | None = None, config: TrainingConfig = TrainingConfig(),
        log: Callable[[str], None] | None = print,
        checkpoint: str | Path | None = None) -> TrainingSummary:
    """Trains ``rim`` in place; keeps the weights of the best validation epoch.

    Args:
        rim: the machine (standardised here on the training rows if not yet).
        truth: signals ``(N, *signal_shape)``, or a store's batches
            (:class:`~sbi_astro.store_batches.StoreBatches`, with ``batch_size`` equal to
            ``config.batch_size``): training from a store larger than memory, its
            validation rows held out by range (the store's ``validation_fraction`` is
            used, not ``config``'s).
        log_likelihood: ``fn(signal, data) -> (B,)``.
        observe: ``observe(signal (B, ...), rng) -> data (B, ...)``, noise from ``rng``
            (a :class:`~sbi_astro.random.RowRandom` over the batch's rows).
        data: fixed observations ``(N, *data_shape)`` instead of ``observe`` (in memory).
        signal: with a store, ``signal(theta (B, D), x (B, *E)) -> (B, *signal_shape)``,
            the truth of each row (default: ``x``), e.g. a spectrum computed from the
            parameters.
        config: optimiser settings.
        log: receives one progress line per epoch (``None``: silent).
        checkpoint: a directory for the training state, written after every epoch; when it
            holds the state of this training (same machine, settings and signals), training
            resumes after its last epoch.

    Raises:
        ConfigError: bad settings, or ``checkpoint`` holds another training's state or a
            damaged one (left as it is).
    """
    if checkpoint is not None:
        checkpoints.check_path(checkpoint)
    if isinstance(truth, StoreBatches):
        pairs: _InMemory | _Streamed = _Streamed(rim, truth, observe, signal, config)
    else:
        if signal is not None:
            raise ConfigError("signal= applies to training from a store; give the signals "
                              "themselves as truth")
        pairs = _InMemory(rim, truth, observe, data, config)
    if not bool(rim.standardised):
        rim.standardise(*pairs.standardising_pairs(), log_likelihood)
    opt = torch.optim.Adam(rim.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(pairs.num_train / config.batch_size)
    total = config.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    summary = TrainingSummary([], [], -1, 0.0)
    best, best_state = math.inf, None
    settings = {"config": dataclasses.asdict(config), "rim": dataclasses.asdict(rim.config),
                "signals": checkpoints.data_fingerprint(truth), "data": (None if data is None else
                                                          checkpoints.fingerprint(data))}
    start, spent = 0, 0.0
    if checkpoint is not None and checkpoints.exists(checkpoint):
        start, spent, best, best_state = _resume(Path(checkpoint), settings, rim, opt, sched,
                                                 pairs, summary)
        if log is not None:
            log(f"rim: resuming from the checkpoint in {checkpoint} after epoch "
                f"{start}/{config.epochs}")
    t0 = time.perf_counter() - spent
    for epoch in range(start, config.epochs):
        rim.train()
        running, seen = 0.0, 0
        for batch_data, batch_truth in pairs.epoch(epoch):
            loss = rim.loss(batch_data, batch_truth, log_likelihood)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rim.parameters(), config.clip_norm)
            opt.step()
            sched.step()
            running += float(loss.detach()) * batch_truth.shape[0]
            seen += batch_truth.shape[0]
        summary.train_loss.append(running / max(seen, 1))
        summary.validation_loss.append(_validation_loss(rim, pairs.validation(),
                                                        log_likelihood))
        if summary.validation_loss[-1] < best:
            best, summary.best_epoch = summary.validation_loss[-1], epoch
            best_state = {k: v.detach().clone() for k, v in rim.state_dict().items()}
        if log is not None:
            log(f"rim epoch {epoch + 1}/{config.epochs}: train loss "
                f"{summary.train_loss[-1]:.4g}, validation {summary.validation_loss[-1]:.4g} "
                f"({time.perf_counter() - t0:.1f} s)")
        if checkpoint is not None:
            _save_state(Path(checkpoint), settings, epoch + 1, time.perf_counter() - t0,
                        rim, opt, sched, pairs, summary, best, best_state)
    if best_state is not None:
        rim.load_state_dict(best_state)
    rim.eval()
    summary.seconds = time.perf_counter() - t0
    return summary


def _save_state(path: Path, settings: dict[str, Any], epochs: int, seconds: float, rim: RIM,
                opt: torch.optim.Optimizer, sched: Any, pairs: Any, summary: TrainingSummary,
                best: float, best_state: dict[str, Tensor] | None) -> None:
    """The training state after ``epochs`` epochs, written atomically to ``path``."""
    tensors, doc = checkpoints.optimizer_state(opt, sched)
    tensors.update({f"rim.{k}": v for k, v in rim.state_dict().items()})
    tensors.update({f"best.{k}": v for k, v in (best_state or {}).items()})
    if isinstance(pairs, _InMemory):
        tensors["generator"] = pairs.gen.get_state()
    checkpoints.save_checkpoint(path, tensors, settings, {
        **doc, "epochs": epochs, "seconds": seconds, "best": best,
        "best_epoch": summary.best_epoch, "train_loss": summary.train_loss,
        "validation_loss": summary.validation_loss}, what=_WHAT)


def _resume(path: Path, settings: dict[str, Any], rim: RIM, opt: torch.optim.Optimizer,
            sched: Any, pairs: Any, summary: TrainingSummary
            ) -> tuple[int, float, float, dict[str, Tensor] | None]:
    """Loads the state saved in ``path``: ``(epochs done, seconds, best validation loss,
    best weights)``; fills ``summary``'s losses."""
    doc, tensors = checkpoints.load_checkpoint(path, settings, what=_WHAT)
    try:
        rim.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("rim.")})
        checkpoints.restore_optimizer(opt, sched, tensors, doc)
        if isinstance(pairs, _InMemory):
            pairs.gen.set_state(tensors["generator"])
        best_state = {k[5:]: v.to(rim.device) for k, v in tensors.items()
                      if k.startswith("best.")} or None
        epochs, seconds, best = int(doc["epochs"]), float(doc["seconds"]), float(doc["best"])
        summary.train_loss[:] = [float(v) for v in doc["train_loss"]]
        summary.validation_loss[:] = [float(v) for v in doc["validation_loss"]]
        summary.best_epoch = int(doc["best_epoch"])
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise ConfigError(f"{path} is not a usable RIM training state ({err}); delete it to "
                          "train from the start") from err
    if len(summary.train_loss) != epochs:
        raise ConfigError(f"{path} is not a usable RIM training state ({epochs} epochs, "
                          f"{len(summary.train_loss)} losses); delete it to train from the "
                          "start")
    return epochs, seconds, best, best_state


@torch.no_grad()
def _validation_loss(rim: RIM, batches: Pairs, log_likelihood: LogLikelihood) -> float:
    rim.eval()
    total, rows = 0.0, 0
    for data, truth in batches:
        total += float(rim.loss(data, truth, log_likelihood)) * truth.shape[0]
        rows += truth.shape[0]
    return total / max(rows, 1)
