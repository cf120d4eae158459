"""A campaign's unit of work: the rows ``[start, stop)`` of a seed, a pure function.

Row ``i`` of a campaign with seed ``s`` has the key ``fold(root(s), i)``; its parameters come
from ``fold(key, 0)`` and its noise from ``fold(key, 1)`` (see :mod:`sbi_astro.campaign`).
:func:`simulate_given` is the same with the parameters given (posterior predictive
re-simulations): row ``i``'s noise comes from ``fold(key, 1)`` of its own row key.

Example:
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> theta, x = simulate_rows(sim, 1, 10, 14)
    >>> tuple(theta.shape), tuple(x.shape)
    ((4, 2), (4, 2))
"""

from __future__ import annotations

import torch
from torch import Tensor

from .random import RowRandom, fold, key_from_seed
from .simulator import Simulator


def row_keys(seed: int, start: int, stop: int, device: torch.device | str = "cpu") -> Tensor:
    """Keys of campaign rows ``[start, stop)`` for ``seed``: ``(stop - start,)`` int64."""
    root = key_from_seed(seed).to(device)
    return fold(root, torch.arange(start, stop, device=device, dtype=torch.int64))


def simulate_rows(simulator: Simulator, seed: int, start: int, stop: int
                  ) -> tuple[Tensor, Tensor]:
    """Parameters and simulations of campaign rows ``[start, stop)`` (a unit of work).

    Returns:
        ``theta (M, D)`` and ``x (M, *event_shape)`` on the simulator's device.
    """
    keys = row_keys(seed, start, stop, simulator.device)
    theta = simulator.prior.sample_rows(RowRandom(fold(keys, 0)))
    x = simulator.simulate(theta, keys=fold(keys, 1))
    return theta, x


def simulate_given(simulator: Simulator, theta: Tensor, seed: int, start: int) -> Tensor:
    """Simulations of given parameters ``theta (M, D)`` as rows ``[start, start + M)`` of
    ``seed``: row ``i``'s noise depends only on ``(seed, i)``, never on how rows are split.

    Returns:
        ``x (M, *event_shape)`` on ``theta``'s device.
    """
    keys = row_keys(seed, start, start + theta.shape[0], theta.device)
    return simulator.simulate(theta, keys=fold(keys, 1))
