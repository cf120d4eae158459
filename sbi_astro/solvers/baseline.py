"""The classical baseline of a pixel-level linear inverse problem: gradient-regularised
least squares (a maximum-a-posteriori estimate under a Gaussian smoothness prior).

For data ``y = A x + n`` with ``n ~ N(0, sigma^2 I)``, :func:`regularised_least_squares`
solves ``argmin_x |y - A x|^2 / sigma^2 + lam |grad x|^2`` (``grad``: forward differences
along the last two axes, zero across the far edges) by conjugate gradients on the normal
equations ``(A^T A / sigma^2 + lam G^T G) x = A^T y / sigma^2``; :func:`tune_regularisation`
picks ``lam`` on a grid by the RMS error on validation images with known truth.  This is the
baseline a learned prior must beat (Adam et al. 2022 compare with it).

Example:
    >>> import torch
    >>> blur = lambda x: torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = torch.rand(4, 1, 8, 8, generator=g)
    >>> y = blur(truth) + 0.01 * torch.randn(4, 1, 8, 8, generator=g)
    >>> lam, errors = tune_regularisation(blur, blur, y, truth, 0.01, [1.0, 100.0, 1e4])
    >>> x = regularised_least_squares(blur, blur, y, 0.01, lam)
    >>> bool((x - truth).pow(2).mean() < (y - truth).pow(2).mean())
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError
from .likelihood import conjugate_gradient

Forward = Callable[[Tensor], Tensor]


def gradient_normal(x: Tensor) -> Tensor:
    """``G^T G x`` for ``G`` the forward differences along the last two axes."""
    dx = torch.diff(x, dim=-1, append=x[..., -1:])
    dy = torch.diff(x, dim=-2, append=x[..., -1:, :])
    gx = -torch.diff(dx, dim=-1, prepend=torch.zeros_like(dx[..., :1]))
    gy = -torch.diff(dy, dim=-2, prepend=torch.zeros_like(dy[..., :1, :]))
    return gx + gy


def regularised_least_squares(forward: Forward, adjoint: Forward, y: Tensor,
                              noise_sigma: float, lam: float, *, iters: int = 300,
                              tol: float = 1e-6) -> Tensor:
    """``argmin_x |y - A x|^2 / sigma^2 + lam |grad x|^2`` for each of the ``N`` data
    ``y (N, *data_shape)``; returns ``x (N, *source_shape)``."""
    if not noise_sigma > 0 or not lam >= 0:
        raise ConfigError(f"noise_sigma must be > 0 and lam >= 0, got {noise_sigma}, {lam}")
    b = adjoint(y) / noise_sigma**2
    shape, n = b.shape, b.shape[0]

    def matvec(v: Tensor) -> Tensor:
        x = v.reshape(shape)
        return (adjoint(forward(x)) / noise_sigma**2 + lam * gradient_normal(x)).reshape(n, -1)

    return conjugate_gradient(matvec, b.reshape(n, -1), iters=iters, tol=tol).reshape(shape)


def tune_regularisation(forward: Forward, adjoint: Forward, y: Tensor, truth: Tensor,
                        noise_sigma: float, lams: Sequence[float], **kwargs: float
                        ) -> tuple[float, list[float]]:
    """The ``lam`` of ``lams`` with the lowest RMS error on validation data ``y`` of known
    ``truth``, and the RMS error of each."""
    if not lams:
        raise ConfigError("give at least one regularisation strength to try")
    errors = [float((regularised_least_squares(forward, adjoint, y, noise_sigma, lam, **kwargs)
                     - truth).pow(2).mean().sqrt()) for lam in lams]
    return float(lams[min(range(len(lams)), key=errors.__getitem__)]), errors
