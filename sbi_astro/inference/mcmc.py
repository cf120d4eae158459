"""Vectorised ensemble MCMC: every chain of every observation advances in one batched step.

The affine-invariant "stretch move" of Goodman & Weare (2010; emcee's default,
Foreman-Mackey et al. 2013), run on a tensor of walkers ``(W, N, D)``: ``N`` observations,
``W`` walkers each.  Each step updates one half of every observation's ensemble from random
partners in the other half: ``y = x_j + z (x - x_j)`` with ``z ~ g(z) ~ 1/sqrt(z)`` on
``[1/a, a]``, accepted with probability ``min(1, z^(D-1) p(y) / p(x))``; one log-density
evaluation per walker and half-step, for all observations at once.  The move is invariant
under affine maps, so correlated and badly scaled posteriors mix as well as isotropic ones.

Walkers start at ``W`` distinct points of ``init_draws`` prior draws per observation (where
the weights are too uneven, of draws from proposals adapted to the posterior, round by
round), resampled by their importance weights (an approximate posterior draw with the
spread the ensemble needs), run ``warmup`` steps (four times as
many where the start is still not a fair draw; each observation stops once it has its
samples), then one
sample per walker every ``thin`` steps until ``num_samples`` per observation are collected.
Randomness comes from a ``torch.Generator`` through one draw: each observation gets a key
and its own counter-based stream (:class:`sbi_astro.random.RowRandom`), so an observation's
samples do not depend on how many others are sampled with it (up to the last bits of
batched network evaluations).

Example:
    >>> import torch
    >>> mean = torch.tensor([[1.0, -2.0]])
    >>> def log_prob(theta, rows):                  # (W, n, D), (n,) -> (W, n)
    ...     return -0.5 * ((theta - mean[rows]) ** 2 / torch.tensor([0.01, 4.0])).sum(-1)
    >>> from sbi_astro.priors import Prior, Uniform
    >>> prior = Prior([Uniform("a", -10.0, 10.0), Uniform("b", -10.0, 10.0)])
    >>> s = ensemble_sample(log_prob, prior, num_observations=1, num_samples=4000,
    ...                     generator=torch.Generator().manual_seed(0))
    >>> s.shape, [round(v, 1) for v in s[:, 0].std(0).tolist()]
    (torch.Size([4000, 1, 2]), [0.1, 2.1])

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

#: rows per log-density call while the starting draws are weighed (bounds memory)
INIT_CHUNK = 65_536
#: rounds of adapted starting draws while an observation's start is poor
INIT_ROUNDS = 8


def kish_ess(log_weights: Tensor, dim: int = -1) -> Tensor:
    """Kish effective sample size ``(sum w)^2 / sum w^2`` of log importance weights along
    ``dim`` (0 where all are -inf)."""
    top = log_weights.amax(dim, keepdim=True)
    w = torch.exp(log_weights - torch.where(torch.isfinite(top), top, 0.0))
    ess = w.sum(dim) ** 2 / w.pow(2).sum(dim)
    return torch.nan_to_num(ess, nan=0.0)


def _initial_walkers(log_prob: Callable[[Tensor, Tensor], Tensor], prior, keys: Tensor,
                     walkers: int, num_draws: int) -> tuple[Tensor, Tensor]:
    """The starting walkers ``(W, N, D)`` and whether each observation's start is a fair
    posterior draw ``(N,)``.

    Observation ``i`` draws ``num_draws`` points from the prior, from a generator seeded by
    its key alone, and weighs them by ``exp(log_prob - log prior)``.  Its start is fair when
    the Kish effective sample size of its weights is at least a quarter of the walkers.
    While it is not, it draws ``max(num_draws / 4, 4 W)`` more points from a proposal
    adapted to its draws so far, up to ``INIT_ROUNDS`` times (population Monte Carlo;
    Cappé et al. 2004): a Gaussian with ``INFLATE`` times the covariance of the weighted
    draws (the weights tempered until their effective sample size is ``FIT_ESS``, so a few
    heavy draws still give a spread; each round narrows the proposal around the
    posterior), a ``DEFENSIVE`` share of the draws from the prior (Hesterberg 1995).  Every
    draw of every round is then weighed by the posterior over the mixture of all the
    proposals used (:func:`_mixture_weights`), so a mode that only the prior draws found
    keeps its weight.  A posterior thousands of times narrower than the prior is found in
    a few rounds; prior draws alone would need millions.  The walkers are drawn from all
    its draws without replacement with probabilities proportional to the weights
    (sampling-importance-resampling, by the Gumbel top-k trick): an approximate posterior
    draw with its spread; where one draw dominates the weights, the ``walkers`` most
    probable.
    """
    n = keys.shape[0]
    dev = keys.device
    gens = [torch.Generator().manual_seed(key & (2**63 - 1)) for key in keys.tolist()]
    draws: list[list[Tensor]] = [[] for _ in range(n)]  # each observation's, every round
    log_post: list[list[Tensor]] = [[] for _ in range(n)]
    used: list[list[tuple[_Proposal | None, int]]] = [[] for _ in range(n)]
    weights: list[Tensor] = [torch.empty(0)] * n
    proposals: list[_Proposal | None] = [None] * n  # None: the prior
    need = list(range(n))
    fair = [False] * n
    size = num_draws
    for round_ in range(INIT_ROUNDS + 1):
        new_t = torch.stack([_propose(prior, proposals[i], size, gens[i]) for i in need],
                            1).to(dev)  # (M, n, D)
        rows = torch.tensor(need, device=dev)
        step = max(1, INIT_CHUNK // len(need))
        lp = torch.cat([log_prob(new_t[j:j + step], rows) for j in range(0, size, step)])
        for c, i in enumerate(need):
            draws[i].append(new_t[:, c])
            log_post[i].append(lp[:, c].double())
            used[i].append((proposals[i], size))
            weights[i] = _mixture_weights(prior, used[i], torch.cat(draws[i]),
                                          torch.cat(log_post[i]))
            fair[i] = float(kish_ess(weights[i])) >= walkers / 4
        need = [i for i in need if not fair[i]]
        if round_ == INIT_ROUNDS or not need:
            break
        d = new_t.shape[-1]
        for i in need:
            proposals[i] = _fit_proposal(torch.cat(draws[i]), weights[i],
                                         max(FIT_ESS, 4 * d)) or proposals[i]
        size = max(num_draws // 4, 4 * walkers)
    start = []
    for i in range(n):
        u = torch.rand(weights[i].shape[0], generator=gens[i], dtype=torch.float64).to(dev)
        gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))
        start.append(torch.cat(draws[i])[torch.topk(weights[i] + gumbel, walkers).indices])
    return torch.stack(start, 1), torch.tensor(fair, device=dev)


#: share of an adapted proposal's draws taken from the prior (the defensive component)
DEFENSIVE = 0.1
#: an adapted proposal's covariance over its draws' weighted covariance
INFLATE = 2.0
#: effective sample size of the (tempered) weights an adapted proposal is fitted to
FIT_ESS = 32

_Proposal = tuple[Tensor, Tensor]  # mean (D,), Cholesky factor (D, D) of the Gaussian


def _propose(prior, proposal: _Proposal | None, num: int, gen: torch.Generator) -> Tensor:
    """``num`` draws ``(num, D)`` (on the CPU) from the prior, or from the defensive mixture
    of ``proposal`` (stratified: exactly ``DEFENSIVE * num`` draws from the prior, the
    others from the Gaussian)."""
    if proposal is None:
        return prior.sample((num,), generator=gen).cpu()
    mean, chol = proposal
    from_prior = prior.sample((round(DEFENSIVE * num),), generator=gen).cpu()
    eps = torch.randn(num - from_prior.shape[0], mean.shape[0], generator=gen,
                      dtype=torch.float64)
    return torch.cat([from_prior, (mean + eps @ chol.T).to(from_prior.dtype)])


def _log_density(proposal: _Proposal | None, theta: Tensor, log_prior: Tensor) -> Tensor:
    """Log density (float64, CPU) at ``theta`` of the prior (``log_prior``, its log density
    there), or of ``proposal``'s defensive mixture."""
    if proposal is None:
        return log_prior
    normal = torch.distributions.MultivariateNormal(proposal[0], scale_tril=proposal[1])
    return torch.logaddexp(math.log(DEFENSIVE) + log_prior,
                           math.log1p(-DEFENSIVE) + normal.log_prob(theta.double()))


def _mixture_weights(prior, used: list[tuple[_Proposal | None, int]], draws: Tensor,
                     log_post: Tensor) -> Tensor:
    """Log importance weights of every draw so far, on ``draws``' device: the log posterior
    over the mixture of all the proposals used, each in proportion to its draws (the
    deterministic-mixture weights of Owen & Zhou 2000; Elvira et al. 2017).  A draw from
    an early, wide round keeps a fair weight where later proposals are narrow, so a mode
    only the prior draws found is not lost."""
    x = draws.cpu()
    log_prior = prior.log_prob(x).double()
    total = sum(m for _, m in used)
    log_mix = torch.logsumexp(torch.stack([math.log(m / total) + _log_density(q, x, log_prior)
                                           for q, m in used]), 0)
    weight = log_post.cpu() - log_mix
    weight = torch.where(torch.isfinite(weight), weight, torch.full_like(weight, -torch.inf))
    return weight.to(draws.device)


def _fit_proposal(draws: Tensor, weight: Tensor, min_ess: int) -> _Proposal | None:
    """The Gaussian of weighted ``draws (M, D)``: mean and ``INFLATE`` times the covariance,
    with the log weights scaled down (tempered) until their effective sample size is at
    least ``min_ess``; ``None`` when fewer than ``min_ess`` draws have a finite weight."""
    ok = torch.isfinite(weight)
    if int(ok.sum()) < min_ess:
        return None
    x, lw = draws[ok].cpu().double(), weight[ok].cpu()
    beta = 1.0
    if float(kish_ess(lw)) < min_ess:  # the largest temper with enough ESS (at 0 it is len(lw))
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if float(kish_ess(mid * lw)) >= min_ess else (lo, mid)
        beta = lo
    w = torch.softmax(beta * lw, 0)
    mean = w @ x
    r = x - mean
    cov = INFLATE * (r.T * w) @ r
    jitter = 1e-9 * float(cov.diagonal().mean()) + 1e-300
    chol, info = torch.linalg.cholesky_ex(cov + jitter * torch.eye(x.shape[1], dtype=x.dtype))
    return None if int(info) != 0 else (mean, chol)


def ensemble_sample(log_prob: Callable[[Tensor, Tensor], Tensor], prior, *, num_observations: int,
                    num_samples: int, walkers: int | None = None, warmup: int = 50,
                    thin: int = 2, init_draws: int = 4_096, stretch: float = 2.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """Posterior samples ``(S, N, D)`` by vectorised affine-invariant ensemble MCMC.

    Args:
        log_prob: unnormalised log posterior ``(theta, rows) -> (W, n)`` of ``theta (W, n,
            D)`` for the observations ``rows (n,)`` (indices into ``0..N-1``; ``-inf``
            outside the support), batched over walkers and observations.
        prior: has ``sample(shape, generator=...)`` (the starting points), ``(..., D)``, as
            :class:`sbi_astro.priors.Prior` does.
        num_observations: ``N``.
        num_samples: ``S`` per observation.
        walkers: walkers per observation (default ``max(64, 8 D)``, even).
        warmup: steps discarded when an observation's start is a fair posterior draw (the
            effective sample size of its importance weights is at least a quarter of the
            walkers, after up to ``INIT_ROUNDS`` rounds of adapted draws); otherwise
            ``4 * warmup`` for that observation (its walkers start bunched near modes and
            need longer to spread).  An observation stops stepping once it has its samples,
            so a poor start costs its own observation only.
        thin: steps between collected samples.
        init_draws: prior draws per observation to choose the start from, in the first
            round (at least twice the walkers); a quarter as many in each adapted round.
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
    x, fair = _initial_walkers(log_prob, prior, keys, w, max(init_draws, 2 * w))
    dev, dtype = x.device, x.dtype
    obs = torch.arange(x.shape[1], device=dev)
    lp = log_prob(x, obs)
    # each observation its own warm-up (so its samples do not depend on the others'); an
    # observation stops stepping once it has its samples
    per_walker = math.ceil(num_samples / w)  # samples per walker, one every thin steps
    warmups = torch.where(fair, warmup, 4 * warmup)  # (N,)
    ends = warmups + per_walker * thin
    rng = RowRandom(keys.to(dev))  # one counter-based stream per observation
    half = w // 2
    out = torch.empty(per_walker, *x.shape, dtype=dtype, device=dev)  # (K, W, N, D)

    for step in range(int(ends.max())):
        act = obs[step < ends]  # the observations still stepping
        for first in (True, False):
            moving = slice(0, half) if first else slice(half, w)
            others = (x[half:] if first else x[:half])[:, act]
            # every stream advances every step, used or not: draws stay row-keyed
            u, v, a = rng.uniform((3, half), dtype=dtype)[act].permute(1, 2, 0)  # (half, n)
            z = ((stretch - 1.0) * u + 1.0) ** 2 / stretch  # g(z) ~ 1/sqrt(z) on [1/a, a]
            pick = (v * half).long().clamp_max(half - 1)
            partner = torch.gather(others, 0, pick[..., None].expand(-1, -1, d))
            cur = x[moving][:, act]
            y = partner + z[..., None] * (cur - partner)
            lp_y = log_prob(y, act)
            lp_cur = lp[moving][:, act]
            accept = torch.log(a) < (d - 1) * torch.log(z) + lp_y - lp_cur
            x[moving, act] = torch.where(accept[..., None], y, cur)
            lp[moving, act] = torch.where(accept, lp_y, lp_cur)
        since = step + 1 - warmups  # steps after each observation's warm-up
        k = torch.div(since, thin, rounding_mode="floor") - 1
        due = (since > 0) & (since % thin == 0) & (k < per_walker)
        if bool(due.any()):
            out[k[due], :, obs[due]] = x[:, due].transpose(0, 1)
    samples = out.reshape(-1, *x.shape[1:])  # (K * W, N, D), walker-major per collection
    return samples[:num_samples]
