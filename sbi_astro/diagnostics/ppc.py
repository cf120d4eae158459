"""Posterior predictive checks: re-simulate from posterior samples, compare with the data.

For each observation ``x_j`` and ``K`` of its posterior samples, new data
``x_rep ~ p(x | theta_k)`` are simulated (one batched call).  Two comparisons follow:

* **summary statistics** ``T`` (default: mean, std, min and max over the event elements, or
  any callables): the posterior predictive p-value ``P(T(x_rep) >= T(x_obs))`` (ties count
  half).  Values near 0 or 1 flag data the fitted model cannot reproduce.
* **per-element residuals** (per energy bin, pixel, ...): ``z = (x_obs - mean x_rep) /
  std x_rep`` and whether ``x_obs`` falls in the central 90% predictive interval.  For a
  well-specified model and a calibrated posterior the coverage is close to (slightly
  above, since posterior predictive checks are conservative) 0.9.

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> g = torch.Generator().manual_seed(0)
    >>> theta, x = sim.sample_joint(20, generator=g)
    >>> post = sim.reference_posterior(x, 200, generator=g)
    >>> res = posterior_predictive(sim, post, x, num_draws=100)
    >>> res.pvalues.shape
    torch.Size([20, 4])
    >>> bool(res.interval_coverage >= 0.8)  # 90 % intervals: 0.95-1.0 for seeds 0-7
    True

References:
    Gelman, Meng & Stern (1996), "Posterior predictive assessment of model fitness via
    realized discrepancies", Statistica Sinica 6, 733-807.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, OutOfSupportError, ShapeError
from ..simulator import Simulator
from ._common import make_generator

Statistic = Callable[[Tensor], Tensor]
_SALT = 0x99C


def default_statistics(event_dim: int) -> dict[str, Statistic]:
    """Mean, standard deviation, minimum and maximum over the ``event_dim`` last dims."""

    def flat(x: Tensor) -> Tensor:
        return x.reshape(*x.shape[: x.dim() - event_dim], -1).to(torch.float64)

    return {
        "mean": lambda x: flat(x).mean(-1),
        "std": lambda x: flat(x).std(-1) if flat(x).shape[-1] > 1 else flat(x)[..., 0] * 0,
        "min": lambda x: flat(x).min(-1).values,
        "max": lambda x: flat(x).max(-1).values,
    }


@dataclasses.dataclass
class PPCResult:
    """Outcome of :func:`posterior_predictive`.

    Attributes:
        statistic_names: names of the summary statistics ``(T,)``.
        t_obs: statistics of the observations ``(N, T)``.
        t_rep: statistics of the replicated data ``(K, N, T)``.
        pvalues: posterior predictive p-values ``(N, T)``.
        x_obs: observations ``(N, *E)``.
        x_rep_quantiles: 5, 25, 50, 75, 95% quantiles of the replicated data
            ``(5, N, *E)``.
        residual_z: ``(x_obs - mean) / std`` of the replications ``(N, *E)``.
        interval_coverage: fraction of observed elements inside the central 90% interval.
        expected_interval_coverage: the finite-draw reference, ``0.9 (K - 1) / (K + 1)``:
            how often a new continuous value exchangeable with the ``K`` draws falls inside
            their interval (it runs between interpolated order statistics, so less often
            than 90 %: 0.81 at ``K = 20``, 0.88 at ``K = 100``).  Data well inside the
            model usually cover more (a posterior predictive is wider than the noise at
            the true parameters; ties of counts add more); clearly less is a misfit.
    """

    statistic_names: tuple[str, ...]
    t_obs: Tensor
    t_rep: Tensor
    pvalues: Tensor
    x_obs: Tensor
    x_rep_quantiles: Tensor
    residual_z: Tensor
    interval_coverage: float
    expected_interval_coverage: float = 0.9

    def to_dict(self) -> dict[str, Any]:
        extreme = ((self.pvalues < 0.025) | (self.pvalues > 0.975)).double().mean(0)
        return {
            "statistics": list(self.statistic_names),
            "num_observations": int(self.t_obs.shape[0]),
            "num_draws": int(self.t_rep.shape[0]),
            "mean_pvalue": dict(zip(self.statistic_names, self.pvalues.mean(0).tolist(),
                                    strict=True)),
            "fraction_extreme_pvalue": dict(zip(self.statistic_names, extreme.tolist(),
                                                strict=True)),
            "interval90_coverage": self.interval_coverage,
            "interval90_expected": self.expected_interval_coverage,
            "residual_rms": self.residual_z.pow(2).mean().sqrt().item(),
        }


def _in_support(simulator: Simulator, theta: Tensor) -> Tensor:
    """Replaces out-of-support draws by an in-support draw of the same observation."""
    ok = simulator.prior.within_support(theta)  # (K, N)
    if ok.all():
        return theta
    if not ok.any(0).all():
        bad = (~ok.any(0)).nonzero()[0].item()
        raise OutOfSupportError(f"all posterior samples of observation {bad} lie outside the "
                                "prior's support; the estimator leaks mass, cannot re-simulate")
    first = ok.to(torch.int8).argmax(0)  # index of the first in-support draw per observation
    fill = theta[first, torch.arange(theta.shape[1], device=theta.device)]
    return torch.where(ok[..., None], theta, fill[None])


def posterior_predictive(simulator: Simulator, samples: Tensor, x_obs: Tensor, *,
                         num_draws: int = 100,
                         statistics: Mapping[str, Statistic] | None = None,
                         seed: int | torch.Generator | None = 0,
                         simulate: Callable[[Tensor], Tensor] | None = None) -> PPCResult:
    """Posterior predictive check of observations ``x_obs`` given posterior samples.

    Args:
        simulator: the forward model (``simulate`` is called once on ``(K, N, D)``).
        samples: posterior samples ``(S, N, D)``; the first ``num_draws`` are used.
            Samples outside the prior's support are replaced by an in-support sample of the
            same observation (the simulator rejects them).
        x_obs: observations ``(N, *event_shape)``.
        num_draws: replications ``K`` per observation (``<= S``).
        statistics: name -> function ``x (*B, *E) -> (*B,)``; default
            :func:`default_statistics`.
        seed: seeds the simulator's noise.
        simulate: how to re-simulate, ``theta (K, N, D) -> x (K, N, *E)``, e.g. row-keyed
            chunks on a cluster (:class:`~sbi_astro.executor.RowSimulations`); default
            ``simulator.simulate`` seeded by ``seed``.

    Returns:
        A :class:`PPCResult`.
    """
    ev = tuple(simulator.event_shape)
    x_obs = simulator.check_x(x_obs)
    if samples.dim() != 3 or x_obs.shape[:-len(ev) or None] != samples.shape[1:2]:
        raise ShapeError(f"posterior_predictive needs samples (S, N, D) and x_obs (N, *{ev}), "
                         f"got {tuple(samples.shape)} and {tuple(x_obs.shape)}")
    if not 1 <= num_draws <= samples.shape[0]:
        raise ConfigError(f"num_draws must be in 1..{samples.shape[0]} (the number of "
                          f"posterior samples), got {num_draws}")
    theta = _in_support(simulator, samples[:num_draws])
    with torch.no_grad():
        if simulate is None:
            x_rep = simulator.simulate(theta, generator=make_generator(seed, _SALT))
        else:
            x_rep = simulator.check_x(simulate(theta))
    if tuple(x_rep.shape) != (*theta.shape[:2], *ev):
        raise ShapeError(f"re-simulations must have shape {(*theta.shape[:2], *ev)}, got "
                         f"{tuple(x_rep.shape)}")  # (K, N, *E)
    x_rep = x_rep.to(torch.float64).cpu()
    x_o = x_obs.to(torch.float64).cpu()
    stats = dict(statistics) if statistics is not None else default_statistics(len(ev))
    names = tuple(stats)
    t_obs = torch.stack([stats[k](x_o) for k in names], -1)  # (N, T)
    t_rep = torch.stack([stats[k](x_rep) for k in names], -1)  # (K, N, T)
    greater = (t_rep > t_obs).double().mean(0)
    ties = (t_rep == t_obs).double().mean(0)
    pvalues = greater + 0.5 * ties
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)
    quant = torch.quantile(x_rep, q, dim=0)
    std = x_rep.std(0) if num_draws > 1 else torch.ones_like(x_o)
    z = (x_o - x_rep.mean(0)) / std.clamp_min(1e-12)
    inside = ((x_o >= quant[0]) & (x_o <= quant[-1])).double().mean().item()
    return PPCResult(statistic_names=names, t_obs=t_obs, t_rep=t_rep, pvalues=pvalues,
                     x_obs=x_o, x_rep_quantiles=quant, residual_z=z, interval_coverage=inside,
                     expected_interval_coverage=expected_interval_coverage(num_draws))


def expected_interval_coverage(num_draws: int, level: float = 0.9) -> float:
    """Mean coverage of a new draw by the central ``level`` interval of ``num_draws`` draws
    from the same continuous distribution, with linearly interpolated quantiles:
    ``level (K - 1) / (K + 1)`` (the interval's ends sit at order-statistic positions
    ``1 + (K - 1) p``, and the ``i``-th of ``K`` order statistics has mean CDF
    ``i / (K + 1)``)."""
    k = int(num_draws)
    return level * (k - 1) / (k + 1) if k > 1 else 0.0
