"""Per-observation fine-tuning of a trained RIM (Adam et al. 2023).

A RIM trained on simulations can fit a given observation worse than its likelihood allows
(an observation unlike the training set, or more counts than it learned to use).  Following
Adam et al. (2023), the weights of a copy of the machine are optimised further on that one
observation, minimising the negative log-likelihood of its final estimate, with a quadratic
penalty that keeps the weights near the trained ones (the trained machine acts as the
prior; a short run with a small learning rate keeps it from fitting the noise)::

    loss(w) = -log p(data | signal(z_T(w))) / size(data) + penalty * |w - w_0|^2 / 2

The likelihood alone rewards fitting the noise, so the run should stop once the misfit
reaches what the noise allows (Morozov's discrepancy principle): ``stop_below`` is that
level of the negative log-likelihood per data value (for Poisson counts, the saturated
value plus half the expected C-statistic per channel, about 0.5 with many counts).

Example:
    >>> import torch
    >>> from sbi_astro.solvers.rim import RIM, RIMConfig, gaussian_log_likelihood
    >>> rim = RIM(RIMConfig(signal_shape=(4,), steps=3, hidden=8), device="cpu")
    >>> ll = gaussian_log_likelihood(lambda s: s, sigma=0.1)
    >>> y = torch.ones(1, 4)
    >>> tuned, history = fine_tune(rim, y, ll, iterations=20, lr=1e-2)
    >>> history[-1] < history[0]  # the negative log-likelihood fell
    True

References:
    Adam et al. (2023), ApJ 951, 6, arXiv:2301.04168 (RIM reconstruction of lensed
    sources and convergence maps, with per-observation fine-tuning).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import ConfigError
from .likelihoods import LogLikelihood
from .links import to_signal
from .model import RIM


def fine_tune(rim: RIM, data: Tensor, log_likelihood: LogLikelihood, *, iterations: int = 50,
              lr: float = 1e-4, penalty: float = 0.0, stop_below: float | None = None,
              stop: Callable[[Tensor], bool] | None = None) -> tuple[RIM, list[float]]:
    """A copy of ``rim`` whose weights are optimised on ``data``'s likelihood.

    Args:
        rim: the trained machine (left unchanged).
        data: the observation(s) ``(B, *data_shape)`` (usually ``B = 1``).
        log_likelihood: ``fn(signal, data) -> (B,)``.
        iterations: Adam steps.
        lr: Adam's learning rate.
        penalty: weight of ``|w - w_0|^2 / 2``.
        stop_below: stop as soon as the negative log-likelihood per data value is at or
            below this (``None``: run all iterations).
        stop: stop as soon as ``stop(signal)`` is true for the current final estimate
            ``(B, *signal_shape)``, e.g. once a reduced chi^2 reaches 1.

    Returns:
        ``(tuned copy, negative log-likelihood per data value before each step and after
        the last)``.  The copy holds the weights of the lowest value in that history (Adam
        on one observation does not descend monotonically), or those of the first value at
        or below ``stop_below`` or where ``stop`` first held.
    """
    if iterations < 1 or not lr > 0 or penalty < 0:
        raise ConfigError(f"fine_tune needs iterations >= 1, lr > 0 and penalty >= 0; got "
                          f"{iterations}, {lr}, {penalty}")
    tuned = copy.deepcopy(rim)
    tuned.train()
    start = [p.detach().clone() for p in tuned.parameters()]
    opt = torch.optim.Adam(tuned.parameters(), lr=lr)
    data = data.to(tuned.device)
    size = data.numel()
    history = []

    def nll() -> tuple[Tensor, Tensor]:
        signal = to_signal(tuned.config.link, tuned(data, log_likelihood)[-1])
        return -log_likelihood(signal, data).sum() / size, signal.detach()

    best = (float("inf"), None)

    def keep_best() -> None:
        nonlocal best
        if history[-1] < best[0]:
            best = (history[-1], copy.deepcopy(tuned.state_dict()))

    def done(signal: Tensor) -> bool:
        return ((stop_below is not None and history[-1] <= stop_below)
                or (stop is not None and bool(stop(signal))))

    for _ in range(iterations):
        loss, signal = nll()
        history.append(float(loss.detach()))
        if done(signal):
            best = (history[-1], copy.deepcopy(tuned.state_dict()))
            break
        keep_best()
        if penalty:
            loss = loss + 0.5 * penalty * sum(((p - p0) ** 2).sum()
                                              for p, p0 in zip(tuned.parameters(), start,
                                                               strict=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    else:
        with torch.no_grad():
            history.append(float(nll()[0]))
        keep_best()
    tuned.load_state_dict(best[1])
    tuned.eval()
    return tuned, history
