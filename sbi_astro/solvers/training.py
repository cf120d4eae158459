"""Training a score model by denoising score matching on a tensor of examples.

:func:`train_score_model` runs Adam on :meth:`ScoreModel.loss` over random mini-batches of
``data`` ``(N, *event_shape)``, over fresh draws of a sampler function (noise models that
can be simulated on the fly), or over a simulation store's rows streamed from disk
(:class:`~sbi_astro.store_batches.StoreBatches`: training sets larger than memory, e.g. a
campaign of GalSim galaxies), updating the EMA weights after each step.  Everything
random (batches, times, noise) comes from one seeded ``torch.Generator``, so a seed gives
the same model on a given device.  With ``checkpoint=DIR`` the whole training state
(weights, EMA weights, Adam's moments, the generator, the step and the losses) is written
there every ``checkpoint_every`` steps (:mod:`sbi_astro.solvers.checkpoints`); a training
killed after a checkpoint and started again with the same settings and data resumes from
it and ends with the weights of an uninterrupted run.

Example:
    >>> import torch
    >>> from sbi_astro.solvers import ScoreModel, VESDE
    >>> model = ScoreModel(VESDE(0.01, 5.0), {"kind": "mlp", "dim": 2, "hidden": 16})
    >>> summary = train_score_model(model, torch.randn(256, 2), steps=20, batch_size=32)
    >>> len(summary["loss"]) == 20 and not model.training
    True
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..device import resolve_device
from ..errors import ConfigError, NonFiniteError
from ..store_batches import StoreBatches
from . import checkpoints
from .score_model import ScoreModel

_WHAT = "score-model training"

Sampler = Callable[[int, torch.Generator], Tensor]
Example = Callable[[Tensor, Tensor], Tensor]


def _check(steps: int, batch_size: int, lr: float) -> None:
    if not (isinstance(steps, int) and steps > 0):
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(batch_size, int) and batch_size > 0):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not lr > 0:
        raise ConfigError(f"lr must be positive, got {lr!r}")


def train_score_model(model: ScoreModel, data: Tensor | Sampler | StoreBatches, *,
                      steps: int = 2000, batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                      device: str | torch.device | None = None, grad_clip: float = 1.0,
                      log: Callable[[str], None] | None = None, log_every: int = 500,
                      example: Example | None = None, checkpoint: str | Path | None = None,
                      checkpoint_every: int = 500) -> dict[str, Any]:
    """Trains ``model`` in place and returns a summary (losses per step, seconds).

    Args:
        model: the score model (moved to ``device``; left in eval mode, EMA weights active).
        data: examples ``(N, *event_shape)`` in data units, a function
            ``(batch_size, generator) -> (batch_size, *event_shape)`` drawing fresh ones, or
            a store's batches (:class:`~sbi_astro.store_batches.StoreBatches` with
            ``batch_size`` rows each, visited epoch after epoch in its seeded order; maps
            of shape ``(H, W)`` get their channel axis).
        steps: optimiser steps.
        batch_size: examples per step.
        lr: Adam learning rate (cosine-decayed to 10 % over the steps).
        seed: seeds batches, times and noise.
        device: ``None`` picks CUDA when available (:func:`sbi_astro.device.resolve_device`).
        grad_clip: maximum gradient norm.
        log: called with a progress line every ``log_every`` steps.
        example: with a store, ``example(theta, x) -> (B, *event_shape)`` makes the
            examples from its rows (default: ``x``).
        checkpoint: a directory for the training state, written every
            ``checkpoint_every`` steps; when it already holds the state of this training
            (the same model, settings and data), training resumes from it.
        checkpoint_every: steps between checkpoints.

    Raises:
        ConfigError: bad settings; ``checkpoint`` holds the state of another training, or
            a damaged one (both are left as they are); ShapeError: data of the wrong shape;
        NonFiniteError: the loss diverged (lower ``lr``).
    """
    _check(steps, batch_size, lr)
    if not (isinstance(checkpoint_every, int) and checkpoint_every > 0):
        raise ConfigError(f"checkpoint_every must be a positive integer, got "
                          f"{checkpoint_every!r}")
    if checkpoint is not None:
        checkpoints.check_path(checkpoint)
    dev = resolve_device(device)
    model.to(dev).train()
    gen = torch.Generator(device=dev).manual_seed(seed)
    streamed = None
    fingerprint = checkpoints.data_fingerprint(data)
    if isinstance(data, StoreBatches):
        if data.batch_size != batch_size:
            raise ConfigError(f"the store's batches hold {data.batch_size} rows but "
                              f"batch_size is {batch_size}; make them equal")
        streamed = _store_examples(data, model, example)

        def from_store(n: int, gen: torch.Generator) -> Tensor:  # the store decides the rows
            return next(streamed)

        data = from_store
    elif example is not None:
        raise ConfigError("example= applies to training from a store")
    if isinstance(data, Tensor):
        model.check_x(data)
        data = data.to(dev)
        if data.shape[0] == 0:
            raise ConfigError("data holds no examples; give at least one")
    opt = torch.optim.Adam(model.net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.1 + 0.45 * (1.0 + math.cos(math.pi * i / steps)))
    settings = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
                "grad_clip": grad_clip, "model": model.config(), "data": fingerprint,
                "device": dev.type}  # a generator's state is of its device's kind
    losses: list[float] = []
    start, spent = 0, 0.0
    if checkpoint is not None and checkpoints.exists(checkpoint):
        start, spent, losses = _resume(Path(checkpoint), settings, model, opt, sched, gen)
        if log is not None:
            log(f"resuming from the checkpoint in {checkpoint}: step {start}/{steps}")
        if streamed is not None:  # the store's batches the first steps used
            for _ in range(start):
                next(streamed)
    t0 = time.perf_counter()
    try:
        for step in range(start, steps):
            if isinstance(data, Tensor):
                idx = torch.randint(data.shape[0], (batch_size,), generator=gen, device=dev)
                batch = data[idx]
            else:
                batch = data(batch_size, gen).to(dev)
            loss = model.loss(batch, generator=gen)
            if not torch.isfinite(loss):
                raise NonFiniteError(f"score-matching loss is {loss.item()} at step {step}; "
                                     "lower lr or check the data for NaN/inf")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.net.parameters(), grad_clip)
            opt.step()
            sched.step()
            model.update_ema()
            losses.append(loss.item())
            if log is not None and (step + 1) % log_every == 0:
                recent = sum(losses[-log_every:]) / len(losses[-log_every:])
                log(f"step {step + 1}/{steps}: loss {recent:.4g}")
            if checkpoint is not None and (step + 1) % checkpoint_every == 0:
                _save_state(Path(checkpoint), settings, step + 1,
                            spent + time.perf_counter() - t0, losses, model, opt, sched, gen)
    finally:
        if streamed is not None:
            streamed.close()  # stops the store's prefetch thread
    model.eval()
    return {"loss": losses, "seconds": spent + time.perf_counter() - t0, "steps": steps,
            "batch_size": batch_size, "lr": lr, "seed": seed}


def _save_state(path: Path, settings: dict[str, Any], step: int, seconds: float,
                losses: list[float], model: ScoreModel, opt: torch.optim.Optimizer,
                sched: Any, gen: torch.Generator) -> None:
    """The training state after ``step`` steps, written atomically to ``path``."""
    tensors, doc = checkpoints.optimizer_state(opt, sched)
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    tensors["generator"] = gen.get_state()
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    checkpoints.save_checkpoint(path, tensors, settings,
                                {**doc, "step": step, "seconds": seconds}, what=_WHAT)


def _resume(path: Path, settings: dict[str, Any], model: ScoreModel, opt: torch.optim.Optimizer,
            sched: Any, gen: torch.Generator) -> tuple[int, float, list[float]]:
    """Loads the state saved in ``path`` into the training's objects: ``(step, seconds,
    losses)``.

    Raises:
        ConfigError: the state is damaged or of another training (left as it is).
    """
    doc, tensors = checkpoints.load_checkpoint(path, settings, what=_WHAT)
    try:
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                               if k.startswith("model.")})
        checkpoints.restore_optimizer(opt, sched, tensors, doc)
        gen.set_state(tensors["generator"])
        step, seconds, losses = int(doc["step"]), float(doc["seconds"]), tensors["losses"]
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise ConfigError(f"{path} is not a usable training state ({err}); delete it to "
                          "train from the start") from err
    if losses.shape != (step,):
        raise ConfigError(f"{path} is not a usable training state ({losses.numel()} losses "
                          f"for step {step}); delete it to train from the start")
    return step, seconds, losses.tolist()


def _store_examples(data: StoreBatches, model: ScoreModel, example: Example | None
                    ) -> Iterator[Tensor]:
    """The store's batches as examples, epoch after epoch, checked against the model."""
    epoch = 0
    while True:
        with contextlib.closing(data.epoch(epoch)) as batches:
            for theta, x in batches:
                batch = example(theta, x) if example is not None else x
                if batch.dim() == len(model.event_shape):  # (B, H, W) maps: one channel
                    batch = batch.unsqueeze(1)
                model.check_x(batch)
                yield batch
        epoch += 1
