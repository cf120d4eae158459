"""Log-likelihoods of a signal given data, and their gradient: what a RIM consumes.

A log-likelihood here is any callable ``log_likelihood(signal, data) -> (B,)`` with
``signal (B, *signal_shape)`` and ``data (B, *data_shape)`` that torch can differentiate in
``signal``.  :func:`gaussian_log_likelihood` and :func:`poisson_log_likelihood` build one
from a differentiable forward model ``forward(signal) -> expected data`` (a blur, a response
matrix, a simulator's ``expected``); :func:`likelihood_gradient` takes its gradient with
respect to the link-space estimate by autograd.

Example:
    >>> import torch
    >>> blur = lambda s: 2.0 * s
    >>> ll = gaussian_log_likelihood(blur, sigma=0.5)
    >>> s, y = torch.ones(1, 3), torch.full((1, 3), 3.0)
    >>> grad, value = likelihood_gradient(ll, s, y, "identity")
    >>> grad.tolist()  # 2 (y - 2 s) / 0.5**2
    [[8.0, 8.0, 8.0]]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import ConfigError, ShapeError
from .links import Link, to_signal

LogLikelihood = Callable[[Tensor, Tensor], Tensor]
Forward = Callable[[Tensor], Tensor]


def _rows(value: Tensor, batch: int) -> Tensor:
    """Sums all but the leading (batch) dimension."""
    return value.reshape(batch, -1).sum(1)


def gaussian_log_likelihood(forward: Forward, sigma: float | Tensor) -> LogLikelihood:
    """``log N(data | forward(signal), sigma^2)`` per row, without the constant.

    Args:
        forward: differentiable ``(B, *signal_shape) -> (B, *data_shape)``.
        sigma: noise standard deviation, a float or a tensor broadcasting to the data
            (same units as the data).

    Returns:
        ``fn(signal, data) -> (B,)``: ``-0.5 sum((data - forward(signal))^2 / sigma^2)``.
    """
    if isinstance(sigma, float | int) and not sigma > 0:
        raise ConfigError(f"sigma must be positive, got {sigma}")

    def log_likelihood(signal: Tensor, data: Tensor) -> Tensor:
        r = (data - forward(signal)) / sigma
        return -0.5 * _rows(r * r, signal.shape[0])

    return log_likelihood


def poisson_log_likelihood(forward: Forward, *, floor: float = 1e-30) -> LogLikelihood:
    """The Poisson log-likelihood of counts, ``sum(n log mu - mu - log n!)`` per row.

    Its gradient is that of the C-statistic (Cash 1979) times ``-1/2``.

    Args:
        forward: differentiable ``(B, *signal_shape) -> (B, *data_shape)`` expected counts
            (non-negative; background included).
        floor: expected counts are clamped to at least this before the log.
    """

    def log_likelihood(signal: Tensor, data: Tensor) -> Tensor:
        mu = forward(signal).clamp_min(floor)
        return _rows(data * torch.log(mu) - mu - torch.lgamma(data + 1.0), signal.shape[0])

    return log_likelihood


def likelihood_gradient(log_likelihood: LogLikelihood, z: Tensor, data: Tensor,
                        link: Link) -> tuple[Tensor, Tensor]:
    """Gradient of the log-likelihood with respect to the link-space estimate ``z``.

    Rows are independent (each row's log-likelihood depends on its own signal only), so the
    gradient of the sum is every row's own gradient.  The graph is not kept: the RIM treats
    the gradient as an input (Putzky & Welling 2017), so training needs no second
    derivatives.

    Args:
        log_likelihood: ``fn(signal, data) -> (B,)``.
        z: link-space estimate ``(B, *signal_shape)``.
        data: observations ``(B, *data_shape)``.
        link: ``"identity"`` or ``"log"``, or one of them per map channel.

    Returns:
        ``(grad (B, *signal_shape), log_likelihood (B,))``, both detached.

    Raises:
        ShapeError: the log-likelihood does not return one value per row.
    """
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = log_likelihood(to_signal(link, z), data)
        if value.shape != z.shape[:1]:
            raise ShapeError(f"the log-likelihood must return one value per row, shape "
                             f"({z.shape[0]},); got {tuple(value.shape)}. Sum over the data "
                             "dimensions inside it")
        (grad,) = torch.autograd.grad(value.sum(), z)
    return grad.detach(), value.detach()
