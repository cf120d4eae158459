"""``lotka_volterra``: sbibm's predator-prey ODE in torch, observed with log-normal noise.

Prey ``X`` and predators ``Y`` start at ``(30, 1)`` and follow

    dX/dt = alpha X - beta X Y,   dY/dt = -gamma Y + delta X Y

for 20 days.  The data are the two populations at ``t_k = 2.1 k`` days, ``k = 0..9``
(every 21st of sbibm's outputs at 0.1-day spacing), each with multiplicative noise:
``x = exp(log(clamp(u, 1e-10, 1e4)) + 0.1 z)``, ``z ~ N(0, 1)``; ``x[:10]`` is the prey,
``x[10:]`` the predators.  Prior: log-normal with ``log alpha, log gamma ~ N(-0.125,
0.5^2)`` and ``log beta, log delta ~ N(-3, 0.5^2)`` (rates in 1/day).

sbibm solves the ODE in Julia (``Tsit5``, tolerances 1e-8); here a batched Dormand-Prince
5(4) solver integrates ``(log X, log Y)`` to an absolute tolerance of 1e-9 (a relative
accuracy of ~1e-9 on both populations, however small), which reproduces sbibm's
observations from their true parameters to float32 precision (see
``docs/validation_tasks.md``).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("lotka_volterra", device="cpu")
    >>> u = sim.populations(sim.true_parameters(1))     # noise-free, (20,)
    >>> bool(torch.allclose(u[0], torch.tensor(30.0)))   # prey at t = 0
    True

References:
    Lotka (1925), "Elements of Physical Biology"; Volterra (1926), Nature 118, 558;
    Lueckmann et al. (2021), "Benchmarking simulation-based inference", AISTATS (sbibm task
    ``lotka_volterra``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_astro.priors import Prior
from sbi_astro.random import RowRandom
from sbi_astro.simulator import Simulator

from ._ode import dopri5
from ._priors import LogNormal
from .reference import SbibmReference

INITIAL = (30.0, 1.0)
TIMES_OUT = tuple(round(2.1 * k, 10) for k in range(10))  # days 0, 2.1, ..., 18.9
NOISE_SIGMA = 0.1
LOG_CLAMP = (math.log(1e-10), math.log(1e4))  # sbibm clamps u to [1e-10, 1e4] before the log
ATOL = 1e-9  # on (log X, log Y): a relative tolerance on the populations


def _rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    """Lotka-Volterra in logs: ``y = (log X, log Y)``, ``p = (alpha, beta, gamma, delta)``."""
    x, z = torch.exp(y[:, 0]), torch.exp(y[:, 1])
    return torch.stack([p[:, 0] - p[:, 1] * z, p[:, 3] * x - p[:, 2]], dim=-1)


def log_populations(theta: Tensor) -> Tensor:
    """Noise-free ``log`` of (prey at t_0..t_9, predators at t_0..t_9): ``(N, 4)`` -> ``(N, 20)``.

    Computed in float64 whatever ``theta``'s dtype.
    """
    p = theta.to(torch.float64)
    y0 = torch.tensor([math.log(v) for v in INITIAL], dtype=torch.float64,
                      device=theta.device).expand(p.shape[0], 2)
    u = dopri5(_rhs, y0, p, TIMES_OUT, rtol=0.0, atol=ATOL)  # (N, 10, 2)
    return u.transpose(1, 2).reshape(p.shape[0], 2 * len(TIMES_OUT))


def populations(theta: Tensor) -> Tensor:
    """Noise-free populations ``(N, 20)`` (float64), ``exp`` of :func:`log_populations`."""
    return torch.exp(log_populations(theta))


class LotkaVolterra(SbibmReference, Simulator):
    """Lotka-Volterra predator-prey: 4 rates, 20 noisy population counts."""

    name = "lotka_volterra"
    sbibm_data = "lotka_volterra"

    def build_prior(self) -> Prior:
        return Prior([
            LogNormal("alpha", -0.125, 0.5, unit="1 / d", description="prey growth rate"),
            LogNormal("beta", -3.0, 0.5, unit="1 / d", description="predation rate per predator"),
            LogNormal("gamma", -0.125, 0.5, unit="1 / d", description="predator death rate"),
            LogNormal("delta", -3.0, 0.5, unit="1 / d",
                      description="predator growth rate per prey"),
        ])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (2 * len(TIMES_OUT),)

    def populations(self, theta: Tensor) -> Tensor:
        """Noise-free populations ``(*B, 20)`` (the median of ``x``), in ``self.dtype``."""
        theta = self.check_theta(theta)
        flat = theta.reshape(-1, self.dim)
        return populations(flat).reshape(*theta.shape[:-1], 20).to(self.dtype)

    def _log_median(self, theta: Tensor) -> Tensor:
        return log_populations(theta).clamp(*LOG_CLAMP)

    def _expected(self, theta: Tensor) -> Tensor:
        """Log-normal mean ``clamp(u) exp(sigma^2 / 2)`` (differentiable)."""
        return torch.exp(self._log_median(theta) + 0.5 * NOISE_SIGMA**2).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        z = rng.normal(self.event_shape, dtype=torch.float64)
        return torch.exp(self._log_median(theta) + NOISE_SIGMA * z).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        xd = x.to(torch.float64)
        pos = xd > 0
        logx = torch.log(torch.where(pos, xd, torch.ones_like(xd)))
        r = (logx - self._log_median(theta)) / NOISE_SIGMA
        lp = -0.5 * r * r - logx - math.log(NOISE_SIGMA) - 0.5 * math.log(2 * math.pi)
        return torch.where(pos, lp, -math.inf).sum(-1).to(theta.dtype)
