"""sbi's training loop over batches streamed from a store (:mod:`sbi_astro.store_batches`):
NPE, NLE and NRE on stores larger than memory, with bounded memory."""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch
from torch import nn

from ..store_batches import StoreBatches, row_bytes
from . import sbi_adapter

#: training rows (spread over the store, at most SAMPLE_BYTES of them) that size the
#: network's standardisation layers
SAMPLE_ROWS = 10_000
SAMPLE_BYTES = 16 * 2**20


def train_streamed(inference: Any, method: str, data: StoreBatches, config: Any,
                   on_epoch: Any = None, transform: Any = None) -> tuple[nn.Module, dict]:
    """sbi's training loop (Adam, gradient clipping, early stopping on the validation loss,
    the best weights kept, ``config.lr_schedule``) over batches streamed from disk.

    Args:
        inference: the sbi trainer (:func:`trainer`), whose builder makes the network.
        data: the batches.
        transform: applied to each batch's theta (e.g. the logit of the prior box).

    Returns:
        The network (best validation loss) and the same summary as :func:`train`.
    """
    prep = transform or (lambda t: t)
    theta0, x0 = data.sample(min(data.num_train, SAMPLE_ROWS,
                                 max(2, SAMPLE_BYTES // row_bytes(data.metadata))))
    net = sbi_adapter.build_network(inference, prep(theta0), x0).to(data.device)
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    sched = _schedule(opt, config)
    best, best_state, since = math.inf, None, 0
    train_losses, val_losses = [], []
    for epoch in range(config.max_epochs):
        t0 = time.perf_counter()
        net.train()
        total, rows = 0.0, 0
        for theta, x in data.epoch(epoch):
            opt.zero_grad()
            loss = sbi_adapter.batch_loss(inference, method, prep(theta), x).mean()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), max_norm=sbi_adapter.CLIP_MAX_NORM)
            opt.step()
            total += float(loss.detach()) * len(theta)
            rows += len(theta)
        net.eval()
        vtotal, vrows = 0.0, 0
        with torch.no_grad():
            for theta, x in data.validation():
                vtotal += float(sbi_adapter.batch_loss(inference, method, prep(theta), x).sum())
                vrows += len(theta)
        val = vtotal / max(vrows, 1)
        train_losses.append(total / max(rows, 1))
        val_losses.append(val)
        if epoch == 0 or val < best:
            best, since = val, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            since += 1
        if on_epoch is not None:
            on_epoch({"epoch": epoch + 1, "training_loss": train_losses[-1],
                      "validation_loss": val, "seconds": time.perf_counter() - t0,
                      "learning_rate": float(opt.param_groups[0]["lr"])})
        if since >= config.stop_after_epochs:
            break
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(val)
        elif sched is not None:
            sched.step()
    net.load_state_dict(best_state)
    summary = {"epochs": len(val_losses), "best_validation_loss": float(best),
               "training_loss": train_losses, "validation_loss": val_losses,
               "streamed": True, "dropped_rows": int(data.dropped),
               "data_wait_seconds": float(data.wait_seconds)}
    if sched is not None:
        summary["final_learning_rate"] = float(opt.param_groups[0]["lr"])
    return net, summary


def _schedule(opt: torch.optim.Optimizer, config: Any) -> Any:
    """``config.lr_schedule`` on ``opt``, as :func:`sbi_adapter.trainer` sets it (or None)."""
    floor = config.learning_rate * sbi_adapter.PLATEAU_MIN_FRACTION
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(config.max_epochs - 1, 1), eta_min=floor)
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=sbi_adapter.PLATEAU_FACTOR, patience=config.lr_patience,
            min_lr=floor)
    return None
