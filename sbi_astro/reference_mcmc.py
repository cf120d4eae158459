"""Reference posteriors by MCMC on a simulator's exact likelihood: emcee with convergence
diagnostics (a plugin's ``reference_posterior``, and the benchmark references of
:mod:`sbi_astro.benchmark_references`).

Per observation: ``walkers`` walkers of emcee's affine-invariant ensemble sampler
(Foreman-Mackey et al. 2013) started at the best of 4,000 prior draws (or at given
points), ``burn`` burn-in steps, then enough steps for the requested draws thinned by
``thin``.  The integrated autocorrelation time tau of every parameter is estimated on the
post-burn-in chain (emcee's ``get_autocorr_time``); while the chain is shorter than
``min_tau`` (50) x tau, as emcee's documentation recommends, it is extended (up to
``max_steps``; it stops early, with ``hopeless`` in the diagnostics, once a tau measured on
at least 10 tau of chain asks for more than ``max_steps``), and the draws are taken evenly
from the whole post-burn-in chain.  The diagnostics give tau, the chain length in units of
tau, the effective sample size (walkers x chain length / tau, the ensemble convention of
emcee's documentation), the mean acceptance fraction and the split-R-hat (Gelman et al.
2013) of the two chain halves over walkers.

Example:
    >>> import numpy as np, torch
    >>> from sbi_astro.priors import Prior, Uniform
    >>> prior = Prior([Uniform("a", -5.0, 5.0)])
    >>> logp = lambda th: -0.5 * (th[:, 0] - 1.0) ** 2 + np.where(np.abs(th[:, 0]) < 5, 0, -np.inf)
    >>> s, diag = emcee_posterior(logp, prior, 2000, seed=0, settings=EmceeSettings(burn=300))
    >>> abs(float(s.mean()) - 1.0) < 0.15, diag["split_rhat"] < 1.05
    (True, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from sbi_astro.errors import NotAvailableError
from sbi_astro.priors import Prior


@dataclasses.dataclass(frozen=True)
class EmceeSettings:
    """Walkers, burn-in steps, thinning, minimum chain length in autocorrelation times,
    and the step budget of :func:`emcee_posterior`."""

    walkers: int = 32
    burn: int = 1500
    thin: int = 10
    min_tau: int = 50
    max_steps: int = 20_000


def emcee_posterior(log_post: Callable[[np.ndarray], np.ndarray], prior: Prior,
                    num_samples: int, seed: int, settings: EmceeSettings,
                    start: np.ndarray | None = None) -> tuple[Tensor, dict[str, float]]:
    """``num_samples`` posterior draws ``(S, D)`` (float64) and the chain's diagnostics.

    Args:
        log_post: vectorised unnormalised log posterior, numpy ``(W, D) -> (W,)``.
        prior: the prior (starting points are its best draws).
        num_samples: draws returned.
        seed: seeds the starting points and the sampler.
        settings: see :class:`EmceeSettings`.
        start: the walkers' starting points ``(walkers, D)`` inside the prior's support;
            ``None``: the best ``walkers`` of 4,000 seeded prior draws.
    """
    try:
        import emcee
    except ImportError as err:  # pragma: no cover - emcee is in the test extra
        raise NotAvailableError("reference posteriors need emcee: pip install emcee") from err
    walkers, burn, thin = settings.walkers, settings.burn, settings.thin
    steps = burn + thin * math.ceil(num_samples / walkers)
    if start is None:
        gen = torch.Generator().manual_seed(seed)
        cand = prior.sample((4000,), generator=gen).to(torch.float64).cpu()
        lp = log_post(cand.numpy())
        start = cand[np.argsort(-lp)[:walkers]].numpy()
    elif np.shape(start) != (walkers, prior.dim):
        raise ValueError(f"start must be (walkers, D) = ({walkers}, {prior.dim}), got "
                         f"{np.shape(start)}")
    dim = start.shape[1]
    sampler = emcee.EnsembleSampler(walkers, dim, log_post, vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()
    sampler.run_mcmc(start, steps, progress=False)
    while True:
        kept = sampler.iteration - burn
        with _quiet_emcee():
            tau = float(np.max(sampler.get_autocorr_time(discard=burn, quiet=True)))
        need = int(math.ceil(settings.min_tau * tau)) - kept
        # a tau measured on >= 10 of itself that asks for more than max_steps: stop now
        # (the estimate errs low on short chains, so the chain cannot get there)
        hopeless = (kept >= 10 * tau
                    and settings.min_tau * tau > settings.max_steps - burn)
        if need <= 0 or hopeless or sampler.iteration >= settings.max_steps:
            break
        sampler.run_mcmc(None, min(need + 100, settings.max_steps - sampler.iteration),
                         progress=False)
    chain = sampler.get_chain(discard=burn)  # (T, W, D)
    diag = {"tau": tau, "chain_over_tau": kept / tau, "ess": walkers * kept / tau,
            "steps": sampler.iteration, "hopeless": hopeless,
            "acceptance": float(np.mean(sampler.acceptance_fraction)),
            "split_rhat": split_rhat(chain)}
    flat = chain.reshape(-1, dim)
    pick = np.linspace(0, flat.shape[0] - 1, num_samples).round().astype(int)
    return torch.as_tensor(flat[pick]), diag


@contextlib.contextmanager
def _quiet_emcee():
    """Silences emcee's log warning about short chains (we check and extend them)."""
    log = logging.getLogger("emcee")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def split_rhat(chain: np.ndarray) -> float:
    """Largest split-R-hat over parameters of a ``(T, W, D)`` ensemble chain.

    Each walker's chain is split in halves, giving ``2 W`` sequences (Gelman et al. 2013,
    Bayesian Data Analysis, 3rd ed., eq. 11.4); values near 1 (< 1.01-1.05) mean the halves
    agree.  Walkers of an affine-invariant ensemble are not independent, so this is a
    consistency check, not a proof of convergence.
    """
    t = chain.shape[0] // 2
    seqs = np.concatenate([chain[:t], chain[t:2 * t]], axis=1)  # (t, 2W, D)
    means = seqs.mean(0)
    b = t * means.var(0, ddof=1)
    w = seqs.var(0, ddof=1).mean(0)
    var = (t - 1) / t * w + b / t
    return float(np.max(np.sqrt(var / np.maximum(w, 1e-300))))
