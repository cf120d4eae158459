"""Vectorised ensemble MCMC: every chain of every observation advances in one batched step.

The affine-invariant "stretch move" of Goodman & Weare (2010; emcee's default,
Foreman-Mackey et al. 2013), run on a tensor of walkers ``(W, N, D)``: ``N`` observations,
``W`` walkers each.  Each step updates one half of every observation's ensemble from random
partners in the other half: ``y = x_j + z (x - x_j)`` with ``z ~ g(z) ~ 1/sqrt(z)`` on
``[1/a, a]``, accepted with probability ``min(1, z^(D-1) p(y) / p(x))``; one log-density
evaluation per walker and half-step, for all observations at once.  The move is invariant
under affine maps, so correlated and badly scaled posteriors mix as well as isotropic ones.

Walkers start at the ``W`` most probable of ``init_factor * W`` prior draws per observation
(distinct points near the mode; the ensemble needs spread), run ``warmup`` steps, then one
sample per walker every ``thin`` steps until ``num_samples`` per observation are collected.
Randomness comes from a ``torch.Generator`` through one draw: each observation gets a key
and its own counter-based stream (:class:`sbi_astro.random.RowRandom`), so an observation's
samples do not depend on how many others are sampled with it (up to the last bits of
batched network evaluations).

Example:
    >>> import torch
    >>> mean = torch.tensor([[1.0, -2.0]])
    >>> def log_prob(theta):                        # (W, N, D) -> (W, N)
    ...     return -0.5 * ((theta - mean) ** 2 / torch.tensor([0.01, 4.0])).sum(-1)
    >>> from sbi_astro.priors import Prior, Uniform
    >>> prior = Prior([Uniform("a", -10.0, 10.0), Uniform("b", -10.0, 10.0)])
    >>> s = ensemble_sample(log_prob, prior, num_observations=1, num_samples=4000,
    ...                     generator=torch.Generator().manual_seed(0))
    >>> s.shape, [round(v, 1) for v in s[:, 0].std(0).tolist()]
    (torch.Size([4000, 1, 2]), [0.1, 2.0])

References:
    Goodman & Weare (2010), Comm. App. Math. Comp. Sci. 5, 65 (affine-invariant ensembles).
    Foreman-Mackey, Hogg, Lang & Goodman (2013), PASP 125, 306 (emcee).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..random import RowRandom, keys_from_generator


def _initial_walkers(log_prob: Callable[[Tensor], Tensor], prior, keys: Tensor, walkers: int,
                     factor: int) -> Tensor:
    """The ``walkers`` most probable of ``factor * walkers`` prior draws, per observation
    (observation ``i`` draws from a generator seeded by its key alone)."""
    draws = []
    for key in keys.tolist():
        gen = torch.Generator().manual_seed(key & (2**63 - 1))
        draws.append(prior.sample((factor * walkers,), generator=gen))
    draws = torch.stack(draws, dim=1).to(keys.device)  # (M, N, D)
    lp = log_prob(draws)  # (M, N)
    lp = torch.where(torch.isfinite(lp), lp, torch.full_like(lp, -torch.inf))
    top = torch.topk(lp, walkers, dim=0).indices  # (W, N)
    return torch.gather(draws, 0, top[..., None].expand(-1, -1, draws.shape[-1]))


def ensemble_sample(log_prob: Callable[[Tensor], Tensor], prior, *, num_observations: int,
                    num_samples: int, walkers: int | None = None, warmup: int = 200,
                    thin: int = 5, init_factor: int = 8, stretch: float = 2.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """Posterior samples ``(S, N, D)`` by vectorised affine-invariant ensemble MCMC.

    Args:
        log_prob: unnormalised log posterior, ``theta (W, N, D) -> (W, N)`` (``-inf`` outside
            the support), batched over walkers and observations.
        prior: has ``sample(shape, generator=...)`` (the starting points), ``(..., D)``, as
            :class:`sbi_astro.priors.Prior` does.
        num_observations: ``N``.
        num_samples: ``S`` per observation.
        walkers: walkers per observation (default ``max(64, 8 D)``, even).
        warmup: steps discarded.
        thin: steps between collected samples.
        init_factor: prior draws per walker to choose the start from.
        stretch: the move's scale ``a > 1``.
        generator: seeds everything (global state is not touched when given).
    """
    if num_samples < 1 or num_observations < 1 or warmup < 0 or thin < 1 or stretch <= 1:
        raise ConfigError("ensemble MCMC needs num_samples, num_observations, thin >= 1, "
                          "warmup >= 0 and stretch > 1")
    d = prior.sample((1,)).shape[-1]
    w = walkers if walkers is not None else max(64, 8 * d)
    w += w % 2
    if w < 2 * d:
        raise ConfigError(f"ensemble MCMC needs at least 2 D = {2 * d} walkers, got {w}")
    keys = keys_from_generator(num_observations, generator)
    x = _initial_walkers(log_prob, prior, keys, w, init_factor)
    lp = log_prob(x)
    dev, dtype = x.device, x.dtype
    rng = RowRandom(keys.to(dev))  # one counter-based stream per observation
    half = w // 2
    per_walker = math.ceil(num_samples / w)
    out = []

    for step in range(warmup + per_walker * thin):
        for first in (True, False):
            moving = slice(0, half) if first else slice(half, w)
            others = x[half:] if first else x[:half]
            u, v, a = rng.uniform((3, half), dtype=dtype).permute(1, 2, 0)  # each (half, N)
            z = ((stretch - 1.0) * u + 1.0) ** 2 / stretch  # g(z) ~ 1/sqrt(z) on [1/a, a]
            pick = (v * half).long().clamp_max(half - 1)
            partner = torch.gather(others, 0, pick[..., None].expand(-1, -1, d))
            cur = x[moving]
            y = partner + z[..., None] * (cur - partner)
            lp_y = log_prob(y)
            log_accept = (d - 1) * torch.log(z) + lp_y - lp[moving]
            accept = torch.log(a) < log_accept
            x[moving] = torch.where(accept[..., None], y, cur)
            lp[moving] = torch.where(accept, lp_y, lp[moving])
        if step >= warmup and (step - warmup + 1) % thin == 0:
            out.append(x.clone())
    samples = torch.cat(out, 0)  # (per_walker * W, N, D), walker-major per collection step
    return samples[:num_samples]
