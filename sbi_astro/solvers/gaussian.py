"""The exact score of a Gaussian prior diffused by an SDE: a reference for tests and examples.

For ``x_0 ~ N(mu, Sigma)`` and the marginal ``x_t = m(t) x_0 + s(t) z``,
``x_t ~ N(m mu, m^2 Sigma + s^2 I)`` and

    ``grad log p_t(x) = -(m^2 Sigma + s^2 I)^{-1} (x - m mu)``,

evaluated through the eigendecomposition of ``Sigma`` (computed once).  It has the
interface of :class:`~sbi_astro.solvers.score_model.ScoreModel` (``sde``, ``event_shape``,
``score(t, x)``), so the posterior sampler accepts it as a prior.

Example:
    >>> import torch
    >>> from sbi_astro.solvers.sde import VESDE
    >>> prior = GaussianScore(torch.zeros(2), torch.eye(2), VESDE(0.01, 10.0))
    >>> prior.score(torch.zeros(1), torch.ones(1, 2))  # -x / (1 + 0.01**2)
    tensor([[-0.9999, -0.9999]])
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ShapeError
from .sde import SDE


class GaussianScore:
    """Score of the diffused ``N(mean, cov)``.

    Args:
        mean: ``(D,)``.
        cov: ``(D, D)`` symmetric positive semi-definite.
        sde: the diffusion.
        event_shape: shape of one ``x`` (default ``(D,)``; e.g. ``(1, H, W)`` with
            ``D = H W``, flattened row-major).
    """

    def __init__(self, mean: Tensor, cov: Tensor, sde: SDE,
                 event_shape: tuple[int, ...] | None = None):
        d = mean.shape[-1]
        if mean.dim() != 1 or cov.shape != (d, d):
            raise ShapeError(f"mean must be (D,) and cov (D, D), got {tuple(mean.shape)} and "
                             f"{tuple(cov.shape)}")
        self.event_shape = tuple(event_shape) if event_shape is not None else (d,)
        if torch.Size(self.event_shape).numel() != d:
            raise ShapeError(f"event_shape {self.event_shape} does not hold {d} values")
        self.sde = sde
        self.mean = mean
        cov64 = cov.to(torch.float64)
        evals, evecs = torch.linalg.eigh(0.5 * (cov64 + cov64.T))
        self.evals = evals.clamp_min(0.0).to(mean.dtype)
        self.evecs = evecs.to(mean.dtype)

    def to(self, device: str | torch.device) -> GaussianScore:
        """This score with its tensors on ``device``."""
        for name in ("mean", "evals", "evecs"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def eval(self) -> GaussianScore:
        """No-op (the interface of a module)."""
        return self

    def score(self, t: Tensor, x: Tensor) -> Tensor:
        """``grad_x log p_t(x)``: ``t`` ``(N,)``, ``x`` ``(N, *event_shape)``."""
        flat = x.reshape(x.shape[0], -1)
        m = self.sde.mean_scale(t)[:, None]
        s = self.sde.std(t)[:, None]
        r = (flat - m * self.mean) @ self.evecs
        r = r / (m**2 * self.evals + s**2)
        return (-(r @ self.evecs.T)).reshape(x.shape)
