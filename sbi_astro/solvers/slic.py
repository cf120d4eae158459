"""SLIC: a likelihood score learned from noise realisations (Legin et al. 2023).

When the noise ``eta = y - f(x)`` is correlated or non-Gaussian, its density has no
formula, but realisations of it (blank sky, dark frames, simulations) can train a score
model ``s_eta(t', eta) ~ grad log p_{t'}(eta)`` (:func:`~sbi_astro.solvers.train_score_model`
with a VE SDE on noise).  :class:`NoiseScoreLikelihood` then gives

    ``grad_{x_t} log p(y | x_t) ~ -(1/m) J_f(x_t / m)^T s_eta(t', y - f(x_t / m))``

(a vector-Jacobian product through ``f``).  The time ``t'`` is the noise model's time whose
standard deviation is ``sqrt(sigma_min'^2 + (gain * std(t) / m)^2)``: the residual
``y - f(x_t / m) ~ eta + J_f (x_0 - x_t / m)`` is the noise plus the prior's diffusion noise
seen through ``f``, approximated as white with per-pixel standard deviation
``gain * std(t) / m`` (``gain``: root-mean-square of ``J_f z`` per pixel for unit ``z``,
1 for a denoising problem, ``sqrt(sum kernel^2)`` for a normalised blur; see
:func:`operator_gain`).  This is the convolved likelihood of Adam et al. (2022) with the
noise density learned: as ``t -> 0``, ``t' -> 0`` and the score is that of the noise itself.
Where the matched standard deviation exceeds the noise model's ``sigma_max`` (early in the
reverse diffusion, for a VP prior), the residual is dominated by the diffusion noise and
its Gaussian score ``-r / sigma^2`` is used.

References:
    Legin, Adam, Hezaveh & Perreault-Levasseur (2023), "Beyond Gaussian noise: a
    generalized approach to likelihood analysis with non-Gaussian noise", ApJL 949 L41,
    arXiv:2302.03046.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .sde import SDE, VESDE, expand

Forward = Callable[[Tensor], Tensor]


def operator_gain(forward: Forward, event_shape: tuple[int, ...], *, probes: int = 16,
                  seed: int = 0, device: str | torch.device = "cpu") -> float:
    """Root-mean-square per output pixel of ``forward(z)`` for ``z ~ N(0, I)``, linear
    ``forward`` (for a nonlinear one, apply it to its Jacobian yourself): a float."""
    g = torch.Generator(device=device).manual_seed(seed)
    z = torch.randn((probes, *event_shape), generator=g, device=device)
    with torch.no_grad():
        out = forward(z) - forward(torch.zeros_like(z))
    return float(out.pow(2).mean().sqrt())


class NoiseScoreLikelihood:
    """Likelihood score from a learned noise score model (SLIC).

    Args:
        noise_model: score model of the noise, trained with a :class:`VESDE` on
            realisations of ``eta`` (shape ``(N, *obs_shape)``).
        forward: ``f``: ``(N, *event_shape) -> (N, *obs_shape)``, differentiable.
        obs_shape: shape of one observation.
        gain: see the module docstring (default 1: denoising).
        t_floor: smallest noise-model time used (default the model's training ``eps``).
    """

    def __init__(self, noise_model: Any, forward: Forward, obs_shape: tuple[int, ...], *,
                 gain: float = 1.0, t_floor: float | None = None):
        if not isinstance(noise_model.sde, VESDE):
            raise ConfigError("SLIC needs a noise model trained with a VESDE (noise plus "
                              f"Gaussian noise is its marginal), got {noise_model.sde}")
        if not (gain > 0 and math.isfinite(gain)):
            raise ConfigError(f"gain must be positive and finite, got {gain}")
        self.noise_model = noise_model
        self.forward = forward
        self.obs_shape = tuple(obs_shape)
        self.gain = float(gain)
        self.t_floor = float(t_floor if t_floor is not None else getattr(noise_model, "eps", 0))

    def to(self, device: str | torch.device) -> NoiseScoreLikelihood:
        """This likelihood with the noise model on ``device`` (in eval mode)."""
        self.noise_model = self.noise_model.to(device).eval()
        return self

    def noise_std(self, t: Tensor, sde: SDE) -> Tensor:
        """Standard deviation ``(N,)`` of the noise model's marginal matched to ``t`` ``(N,)``."""
        extra = self.gain * sde.std(t) / sde.mean_scale(t)
        return torch.sqrt(self.noise_model.sde.sigma_min**2 + extra**2)

    def noise_time(self, t: Tensor, sde: SDE) -> Tensor:
        """The noise model's time ``t'`` ``(N,)`` matched to the prior's time ``t`` ``(N,)``."""
        return self.noise_model.sde.time_of_std(self.noise_std(t, sde)).clamp_min(self.t_floor)

    def score(self, t: Tensor, x: Tensor, y: Tensor, *, sde: SDE, prior: Any = None) -> Tensor:
        """``-(1/m) J_f^T s_eta(t', y - f(x_t / m))``: ``(N, *event_shape)``."""
        m = expand(sde.mean_scale(t), x)
        fx, vjp = torch.func.vjp(self.forward, x / m)
        res = (y - fx).detach()
        sigma = self.noise_std(t, sde)
        with torch.no_grad():
            s_eta = self.noise_model.score(self.noise_time(t, sde), res)
        # beyond the model's sigma_max the diffusion noise dominates: its Gaussian score
        wide = expand(sigma > self.noise_model.sde.sigma_max, res)
        s_eta = torch.where(wide, -res / expand(sigma, res) ** 2, s_eta)
        return -vjp(s_eta)[0] / m
