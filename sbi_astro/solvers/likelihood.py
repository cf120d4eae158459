"""Likelihood scores ``grad_{x_t} log p(y | x_t)`` for posterior sampling with a score prior.

Posterior sampling runs the reverse diffusion with the score
``grad log p_t(x_t | y) = grad log p_t(x_t) + grad log p_t(y | x_t)``.  The second term is
intractable in general; each class here gives a stated approximation.  Every one has
``obs_shape`` (the shape of one observation) and
``score(t, x, y, *, sde, prior) -> (N, *event_shape)`` with ``t`` ``(N,)``, ``x`` ``(N,
*event_shape)`` and ``y`` ``(N, *obs_shape)``, in the units of ``x`` and ``y``.

* :class:`GaussianLinearLikelihood` -- ``y = A x + n``, ``n ~ N(0, Sigma)``, dense ``A``: the
  convolved likelihood of Adam et al. (2022).  With ``x_t = m x_0 + s z`` and the
  approximation ``x_0 | x_t ~ N(x_t / m, (s / m)^2 I)`` (uninformative about ``x_0``),
  ``p(y | x_t) = N(y | A x_t / m, Sigma + (s / m)^2 A A^T)``, exact at ``t -> 0``.
  Evaluated through one eigendecomposition of the whitened ``A A^T`` (``O(M^3)`` once,
  ``O(M D)`` per row and step).
* :class:`LinearOperatorLikelihood` -- the same likelihood, matrix free, for a linear
  ``forward`` with diagonal noise: ``C^{-1} r`` by conjugate gradients (at most
  ``cg_iters`` iterations, relative tolerance ``cg_tol``; the truncation is the stated
  approximation, exact when CG converges), ``A^T`` by a vector-Jacobian product.
* :class:`TweedieLikelihood` -- any differentiable ``forward`` and log-likelihood (Gaussian,
  Poisson, ...): diffusion posterior sampling (Chung et al. 2022),
  ``p(y | x_t) ~ p(y | forward(x0_hat))`` with Tweedie's denoiser
  ``x0_hat = (x_t + s^2 grad log p_t(x_t)) / m``, differentiated through the prior
  (``through_prior=True``) or with ``d x0_hat / d x_t ~ I / m`` (cheaper), times ``scale``.

References:
    Adam, Coogan, Malkin, Legin, Perreault-Levasseur, Hezaveh & Bengio (2022), "Posterior
    samples of source galaxies in strong gravitational lenses with score-based priors",
    arXiv:2211.03812.  Chung, Kim, McCann, Klasky & Ye (2022), "Diffusion posterior sampling
    for general noisy inverse problems", arXiv:2209.14687.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from .sde import SDE, expand

Forward = Callable[[Tensor], Tensor]


def _noise_cov(noise: float | Tensor, m: int, dtype: torch.dtype) -> Tensor:
    noise = torch.as_tensor(noise, dtype=dtype)
    if noise.dim() == 0:
        return noise**2 * torch.eye(m, dtype=dtype)
    if noise.shape == (m,):
        return torch.diag(noise**2)
    if noise.shape == (m, m):
        return noise
    raise ShapeError(f"noise must be a standard deviation (scalar or (M,) = ({m},)) or a "
                     f"covariance (M, M), got {tuple(noise.shape)}")


class GaussianLinearLikelihood:
    """Convolved likelihood of ``y = A x + n``, ``n ~ N(0, noise)``, for a dense ``A``.

    Args:
        A: ``(M, D)``; ``x`` is flattened row-major to ``D`` values.
        noise: standard deviation (scalar or ``(M,)``, units of ``y``) or covariance
            ``(M, M)``.
        obs_shape: shape of one observation (default ``(M,)``).
    """

    def __init__(self, A: Tensor, noise: float | Tensor, obs_shape: tuple[int, ...] | None = None):
        if A.dim() != 2:
            raise ShapeError(f"A must be a matrix (M, D), got shape {tuple(A.shape)}")
        m = A.shape[0]
        self.obs_shape = tuple(obs_shape) if obs_shape is not None else (m,)
        if math.prod(self.obs_shape) != m:
            raise ShapeError(f"obs_shape {self.obs_shape} does not hold M = {m} values")
        A64 = A.to(torch.float64)
        cov = _noise_cov(noise, m, torch.float64)
        chol = torch.linalg.cholesky(cov)
        At = torch.linalg.solve_triangular(chol, A64, upper=False)  # L^-1 A
        lam, U = torch.linalg.eigh(At @ At.T)
        self.A = A
        self.lam = lam.clamp_min(0.0).to(A.dtype)                    # (M,)
        self.W = (U.T @ At).to(A.dtype)                              # (M, D) = U^T L^-1 A
        eye = torch.eye(m, dtype=torch.float64)
        self.P = (U.T @ torch.linalg.solve_triangular(chol, eye, upper=False)).to(A.dtype)
        self._y_proj: tuple[Tensor, int, Tensor] | None = None  # (y, its version, y P^T)

    def to(self, device: str | torch.device) -> GaussianLinearLikelihood:
        """This likelihood with its tensors on ``device``."""
        for name in ("A", "lam", "W", "P"):
            setattr(self, name, getattr(self, name).to(device))
        self._y_proj = None
        return self

    def _project(self, y: Tensor) -> Tensor:
        """``y P^T`` ``(N, M)``, kept for the next call with the same, unchanged ``y``: a
        sampler passes one ``y`` at every step (a third of the work per call with a 64 x 64
        image of a 64 x 64 source)."""
        c = self._y_proj
        if c is not None and c[0] is y and c[1] == y._version:
            return c[2]
        proj = y.reshape(y.shape[0], -1) @ self.P.T
        self._y_proj = (y, y._version, proj)
        return proj

    def score(self, t: Tensor, x: Tensor, y: Tensor, *, sde: SDE, prior: Any = None) -> Tensor:
        """``(1/m) A^T C^-1 (y - A x / m)``, ``C = Sigma + (s/m)^2 A A^T``: ``(N, *event)``."""
        m = sde.mean_scale(t)[:, None]
        r2 = (sde.std(t)[:, None] / m) ** 2
        proj = self._project(y) - (x.reshape(x.shape[0], -1) / m) @ self.W.T
        proj = proj / (1.0 + r2 * self.lam)
        return ((proj @ self.W) / m).reshape(x.shape)


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, *, iters: int = 50,
                       tol: float = 1e-4) -> Tensor:
    """Solves ``K u = b`` row by row for symmetric positive-definite ``K``: ``b`` ``(N, M)``.

    Stops when every row's residual norm is below ``tol`` times its ``|b|`` or after
    ``iters`` iterations (rows that converged are frozen, so a row's answer does not depend
    on the other rows).
    """
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum(1)
    stop = (tol**2) * rr
    for _ in range(iters):
        live = rr > stop
        if not bool(live.any()):
            break
        kp = matvec(p)
        alpha = torch.where(live, rr / (p * kp).sum(1).clamp_min(1e-30), torch.zeros_like(rr))
        u = u + alpha[:, None] * p
        r = r - alpha[:, None] * kp
        rr_new = (r * r).sum(1)
        beta = torch.where(live, rr_new / rr.clamp_min(1e-30), torch.zeros_like(rr))
        p = torch.where(live[:, None], r + beta[:, None] * p, p)
        rr = torch.where(live, rr_new, rr)
    return u


class LinearOperatorLikelihood:
    """Convolved likelihood of ``y = forward(x) + n``, ``n ~ N(0, diag(noise^2))``, matrix free.

    Args:
        forward: linear map ``(N, *event_shape) -> (N, *obs_shape)`` (differentiable, or
            give ``adjoint``).
        noise: standard deviation, a scalar or a tensor of ``obs_shape`` (units of ``y``).
        obs_shape: shape of one observation.
        adjoint: ``A^T``: ``(N, *obs_shape) -> (N, *event_shape)``; default a vector-Jacobian
            product through ``forward``.
        cg_iters: most CG iterations per likelihood evaluation.
        cg_tol: relative residual at which CG stops.
    """

    def __init__(self, forward: Forward, noise: float | Tensor, obs_shape: tuple[int, ...], *,
                 adjoint: Forward | None = None, cg_iters: int = 50, cg_tol: float = 1e-4):
        self.forward = forward
        self.adjoint = adjoint
        self.obs_shape = tuple(obs_shape)
        self.noise = torch.as_tensor(noise)
        if self.noise.dim() and tuple(self.noise.shape) != self.obs_shape:
            raise ShapeError(f"noise must be a scalar or of obs_shape {self.obs_shape}, got "
                             f"{tuple(self.noise.shape)}")
        if cg_iters < 1 or not 0 < cg_tol < 1:
            raise ConfigError(f"cg_iters must be >= 1 and cg_tol in (0, 1), got {cg_iters}, "
                              f"{cg_tol}")
        self.cg_iters, self.cg_tol = cg_iters, cg_tol

    def to(self, device: str | torch.device) -> LinearOperatorLikelihood:
        """This likelihood with its noise tensor on ``device``."""
        self.noise = self.noise.to(device)
        return self

    def _adjoint(self, like: Tensor, v: Tensor) -> Tensor:
        if self.adjoint is not None:
            return self.adjoint(v)
        _, vjp = torch.func.vjp(self.forward, torch.zeros_like(like))
        return vjp(v)[0]

    def score(self, t: Tensor, x: Tensor, y: Tensor, *, sde: SDE, prior: Any = None) -> Tensor:
        """``(1/m) A^T C^-1 (y - A x / m)`` with ``C^-1`` by CG: ``(N, *event_shape)``."""
        n = x.shape[0]
        m, s = sde.mean_scale(t), sde.std(t)
        r2 = (s / m) ** 2
        sig = self.noise.to(x).expand(self.obs_shape).reshape(1, -1)
        res = (y - self.forward(x / expand(m, x))).reshape(n, -1) / sig

        def matvec(v: Tensor) -> Tensor:  # (I + r^2 B B^T) v,  B = diag(1/sig) A
            back = self._adjoint(x, (v / sig).reshape(n, *self.obs_shape))
            fwd = self.forward(back).reshape(n, -1) / sig
            return v + r2[:, None] * fwd

        u = conjugate_gradient(matvec, res, iters=self.cg_iters, tol=self.cg_tol)
        return self._adjoint(x, (u / sig).reshape(n, *self.obs_shape)) / expand(m, x)


def gaussian_log_likelihood(noise: float | Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """``log N(y | mu, noise^2)`` summed per row, up to a constant (:class:`TweedieLikelihood`)."""

    def log_lik(y: Tensor, mu: Tensor) -> Tensor:
        return -0.5 * (((y - mu) / noise) ** 2).reshape(y.shape[0], -1).sum(1)

    return log_lik


def poisson_log_likelihood(y: Tensor, mu: Tensor) -> Tensor:
    """``log Poisson(y | mu)`` summed per row, up to a constant (``mu`` clamped at 1e-6)."""
    mu = mu.clamp_min(1e-6)
    return (y * torch.log(mu) - mu).reshape(y.shape[0], -1).sum(1)


class TweedieLikelihood:
    """Diffusion-posterior-sampling likelihood score for any differentiable forward model.

    Args:
        forward: ``(N, *event_shape) -> (N, *obs_shape)`` (e.g. a simulator's ``expected``).
        log_likelihood: ``(y, mu) -> (N,)`` (:func:`gaussian_log_likelihood`,
            :func:`poisson_log_likelihood` or the user's).
        obs_shape: shape of one observation.
        scale: weight of the likelihood score (``1``: the plain approximation).
        through_prior: differentiate Tweedie's denoiser through the prior network (DPS)
            rather than taking ``d x0_hat / d x_t = I / m``.
    """

    def __init__(self, forward: Forward, log_likelihood: Callable[[Tensor, Tensor], Tensor],
                 obs_shape: tuple[int, ...], *, scale: float = 1.0, through_prior: bool = True):
        self.forward = forward
        self.log_likelihood = log_likelihood
        self.obs_shape = tuple(obs_shape)
        self.scale = scale
        self.through_prior = through_prior

    def to(self, device: str | torch.device) -> TweedieLikelihood:
        """Itself (the callables carry their own device)."""
        return self

    def score(self, t: Tensor, x: Tensor, y: Tensor, *, sde: SDE, prior: Any) -> Tensor:
        """``scale * grad_{x_t} log p(y | forward(x0_hat(x_t)))``: ``(N, *event_shape)``."""
        m, s = expand(sde.mean_scale(t), x), expand(sde.std(t), x)
        with torch.enable_grad():
            xt = x.detach().requires_grad_(True)
            if self.through_prior:
                x0 = (xt + s**2 * prior.score(t, xt)) / m
            else:
                with torch.no_grad():
                    shift = s**2 * prior.score(t, x)
                x0 = (xt + shift) / m
            ll = self.log_likelihood(y, self.forward(x0)).sum()
            (grad,) = torch.autograd.grad(ll, xt)
        return self.scale * grad
