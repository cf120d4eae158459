"""Checking a training set (and observations) before any network sees it.

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("two_moons", device="cpu")
    >>> theta, x = check_theta_x(torch.zeros(20, 2), torch.zeros(20, 2), sim)
    >>> tuple(theta.shape)
    (20, 2)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ShapeError
from ..simulator import Simulator


def check_theta_x(theta: Any, x: Any, sim: Simulator) -> tuple[Tensor, Tensor]:
    """Validates a ``(theta (N, D), x (N, *E))`` training set (tensors or arrays of numbers),
    dropping rows with non-finite values or parameters outside the prior, with a warning."""
    theta, x = as_tensor(theta, "theta"), as_tensor(x, "x")
    if theta.dim() != 2 or theta.shape[1] != sim.dim:
        raise ShapeError(f"theta must be (N, {sim.dim}), got {tuple(theta.shape)}")
    if tuple(x.shape[1:]) != tuple(sim.event_shape) or x.shape[0] != theta.shape[0]:
        raise ShapeError(f"x must be (N={theta.shape[0]}, {', '.join(map(str, sim.event_shape))})"
                         f", got {tuple(x.shape)}")
    # in row blocks, and without a copy when every row is finite: a training set of
    # 300,000 images is 4.9 GB, and each copy of it counts against the machine's memory
    flat = x.reshape(x.shape[0], -1)
    finite = torch.isfinite(theta).all(1)
    for i in range(0, flat.shape[0], _CHECK_ROWS):
        finite[i: i + _CHECK_ROWS] &= torch.isfinite(flat[i: i + _CHECK_ROWS]).all(1)
    inside = sim.prior.to(theta.device).within_support(theta) | ~finite
    ok = finite & inside
    if ok.sum() < 10:
        raise ShapeError(f"fewer than 10 usable simulations to train on ({int((~finite).sum())} "
                         f"of {len(ok)} non-finite, {int((~inside).sum())} outside the prior)")
    if ok.all():
        return theta, x
    if not finite.all():
        warnings.warn(f"dropping {(~finite).sum().item()} simulations with non-finite values",
                      RuntimeWarning, stacklevel=3)
    if not inside.all():
        warnings.warn(f"dropping {(~inside).sum().item()} of {len(ok)} simulations whose "
                      f"parameters lie outside the prior of {sim.name!r} (the estimator "
                      "describes the posterior under that prior); simulate from the prior "
                      "or widen it", RuntimeWarning, stacklevel=3)
    return theta[ok], x[ok]


def as_tensor(value: Any, name: str) -> Tensor:
    """``value`` (a tensor, or an array or nested list of real numbers) as a tensor."""
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ShapeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value
    try:
        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"dtype {arr.dtype}")
        return torch.as_tensor(arr.astype(np.float32, copy=False))
    except (TypeError, ValueError) as err:
        raise ShapeError(f"{name} must be a tensor or an array of real numbers, got "
                         f"{type(value).__name__} ({err})") from None


_CHECK_ROWS = 4096
