"""Training a :class:`~.model.RIM` on simulated pairs (signal, observation).

Either the observations are given (``data``), or an ``observe(signal, rng) -> data``
callable draws fresh noise every epoch (the noise of row ``i`` in epoch ``e`` comes from
its own counter-based stream ``fold(fold(key(seed), e), i)``, so it does not depend on the
batch size).  The last ``validation_fraction`` of the rows, with fixed noise, is the
validation set; the weights of the best validation epoch are kept.

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
from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import ConfigError, ShapeError
from ...random import RowRandom, fold, key_from_seed
from .likelihoods import LogLikelihood
from .model import RIM

Observe = Callable[[Tensor, RowRandom], Tensor]


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


def fit(rim: RIM, truth: Tensor, log_likelihood: LogLikelihood, *,
        observe: Observe | None = None, data: Tensor | None = None,
        config: TrainingConfig = TrainingConfig(),
        log: Callable[[str], None] | None = print) -> TrainingSummary:
    """Trains ``rim`` in place; keeps the weights of the best validation epoch.

    Args:
        rim: the machine (standardised here on the training rows if not yet).
        truth: signals ``(N, *signal_shape)``.
        log_likelihood: ``fn(signal, data) -> (B,)``.
        observe: ``observe(signal (B, ...), rng) -> data (B, ...)``, noise from ``rng``
            (a :class:`~sbi_astro.random.RowRandom` over the batch's rows).
        data: fixed observations ``(N, *data_shape)`` instead of ``observe``.
        config: optimiser settings.
        log: receives one progress line per epoch (``None``: silent).
    """
    _check(rim, truth, observe, data)
    dev = rim.device
    truth = truth.to(dev, torch.float32)
    n = truth.shape[0]
    n_val = max(1, int(round(config.validation_fraction * n)))
    n_train = n - n_val
    if n_train < 1:
        raise ConfigError(f"validation_fraction {config.validation_fraction} leaves no "
                          f"training row of {n}; lower it or add signals")
    root = key_from_seed(config.seed).to(dev)
    val_rows = torch.arange(n_train, n, device=dev)

    def batch_data(rows: Tensor, key: Tensor) -> Tensor:
        if data is not None:
            return data[rows.cpu()].to(dev)
        return noisy_data(observe, truth[rows], key, rows)

    val_data = batch_data(val_rows, fold(root, -1))
    if not bool(rim.standardised):
        rows = torch.arange(min(n_train, 1024), device=dev)
        rim.standardise(truth[rows], batch_data(rows, fold(root, -2)), log_likelihood)
    opt = torch.optim.Adam(rim.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    total = config.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(i, total) / total)))
    gen = torch.Generator().manual_seed(config.seed)
    summary = TrainingSummary([], [], -1, 0.0)
    best, best_state = math.inf, None
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        rim.train()
        perm = torch.randperm(n_train, generator=gen).to(dev)
        key = fold(root, epoch)
        running = 0.0
        for i in range(0, n_train, config.batch_size):
            rows = perm[i:i + config.batch_size]
            loss = rim.loss(batch_data(rows, key), truth[rows], log_likelihood)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(rim.parameters(), config.clip_norm)
            opt.step()
            sched.step()
            running += float(loss.detach()) * rows.shape[0]
        summary.train_loss.append(running / n_train)
        summary.validation_loss.append(_validation_loss(rim, val_data, truth[val_rows],
                                                        log_likelihood, config.batch_size))
        if summary.validation_loss[-1] < best:
            best, summary.best_epoch = summary.validation_loss[-1], epoch
            best_state = {k: v.detach().clone() for k, v in rim.state_dict().items()}
        if log is not None:
            log(f"rim epoch {epoch + 1}/{config.epochs}: train loss "
                f"{summary.train_loss[-1]:.4g}, validation {summary.validation_loss[-1]:.4g} "
                f"({time.perf_counter() - t0:.1f} s)")
    if best_state is not None:
        rim.load_state_dict(best_state)
    rim.eval()
    summary.seconds = time.perf_counter() - t0
    return summary


@torch.no_grad()
def _validation_loss(rim: RIM, data: Tensor, truth: Tensor, log_likelihood: LogLikelihood,
                     batch_size: int) -> float:
    rim.eval()
    total = 0.0
    for i in range(0, truth.shape[0], 4 * batch_size):
        sl = slice(i, i + 4 * batch_size)
        total += float(rim.loss(data[sl], truth[sl], log_likelihood)) * truth[sl].shape[0]
    return total / truth.shape[0]
