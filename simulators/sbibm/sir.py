"""``sir``: sbibm's SIR epidemic, an ODE solved in torch, observed through binomial counts.

Population ``N = 10^6``, one infected and no recovered individual on day 0,

    dS/dt = -beta S I / N,   dI/dt = beta S I / N - gamma I,   dR/dt = gamma I,

for 160 days.  The data are 10 counts ``x_k ~ Binomial(1000, I(t_k) / N)`` on days
``t_k = 0, 17, 34, ..., 153`` (every 17th of sbibm's daily outputs).  Prior:
``beta ~ LogNormal(log 0.4, 0.5)`` (contact rate, 1/day), ``gamma ~ LogNormal(log(1/8), 0.2)``
(recovery rate, 1/day).

sbibm solves the ODE in Julia (``Tsit5``, relative and absolute tolerances 1e-8 on the
counts); here a batched Dormand-Prince 5(4) solver integrates the logarithms of the
fractions ``S / N`` and ``I / N`` (``R`` is not observed) to an absolute tolerance of 1e-9,
i.e. a relative accuracy of ~1e-9 on ``I`` however few are infected (see
``docs/validation_tasks.md`` for the agreement with sbibm's observations).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("sir", device="cpu")
    >>> x = sim.simulate(sim.true_parameters(1), generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape)
    (10,)

References:
    Kermack & McKendrick (1927), Proc. R. Soc. A 115, 700-721; Lueckmann et al. (2021),
    "Benchmarking simulation-based inference", AISTATS (sbibm task ``sir``).
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
from ._sampling import binomial, binomial_log_pmf
from .reference import SbibmReference

POPULATION = 1_000_000.0
INFECTED_0 = 1.0
DAYS_OUT = tuple(float(17 * k) for k in range(10))  # days 0, 17, ..., 153
TOTAL_COUNT = 1000
ATOL = 1e-9  # on log S/N and log I/N: a relative tolerance on the fractions


def _rhs(t: Tensor, y: Tensor, p: Tensor) -> Tensor:
    """SIR in log-fractions: ``y = (log S/N, log I/N)``, ``p = (beta, gamma)``."""
    s, i = torch.exp(y[:, 0]), torch.exp(y[:, 1])
    return torch.stack([-p[:, 0] * i, p[:, 0] * s - p[:, 1]], dim=-1)


def infected_fraction(theta: Tensor) -> Tensor:
    """``I(t_k) / N`` at the 10 output days for ``theta = (beta, gamma)`` ``(N, 2)`` -> ``(N, 10)``.

    Computed in float64 whatever ``theta``'s dtype.
    """
    p = theta.to(torch.float64)
    y0 = torch.tensor([math.log1p(-INFECTED_0 / POPULATION), math.log(INFECTED_0 / POPULATION)],
                      dtype=torch.float64, device=theta.device).expand(p.shape[0], 2)
    return torch.exp(dopri5(_rhs, y0, p, DAYS_OUT, rtol=0.0, atol=ATOL)[:, :, 1])


class SIR(SbibmReference, Simulator):
    """SIR epidemic: 2 rates, 10 binomial counts of infected individuals out of 1000."""

    name = "sir"
    sbibm_data = "sir"

    def build_prior(self) -> Prior:
        return Prior([
            LogNormal("beta", math.log(0.4), 0.5, unit="1 / d", description="contact rate"),
            LogNormal("gamma", math.log(0.125), 0.2, unit="1 / d",
                      description="mean recovery rate"),
        ])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (len(DAYS_OUT),)

    def _expected(self, theta: Tensor) -> Tensor:
        """Binomial mean ``1000 I(t_k) / N`` (differentiable)."""
        return (TOTAL_COUNT * infected_fraction(theta).clamp(0.0, 1.0)).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        probs = infected_fraction(theta).clamp(0.0, 1.0)
        return binomial(rng, TOTAL_COUNT, probs).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        probs = infected_fraction(theta).clamp(0.0, 1.0)
        k = x.to(torch.float64)
        ok = (k >= 0) & (k <= TOTAL_COUNT) & (k == torch.round(k))
        lp = binomial_log_pmf(k.clamp(0, TOTAL_COUNT), TOTAL_COUNT, probs)
        lp = torch.where(ok, lp, -math.inf).sum(-1)
        return lp.to(theta.dtype)
