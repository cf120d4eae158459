"""Exact samplers on counter-based streams: binomial counts and truncated normals.

Both take their uniforms from :class:`~sbi_astro.random.RowRandom`, so every element's
draw depends only on its row key, never on the batch.

Example:
    >>> import torch
    >>> from sbi_astro.random import RowRandom, fold
    >>> rng = RowRandom(fold(torch.tensor(3), torch.arange(4000)))
    >>> k = binomial(rng, 1000, torch.full((4000, 1), 0.3, dtype=torch.float64))
    >>> abs(k.mean().item() - 300) < 1.5   # sd of the mean: 14.5 / sqrt(4000) = 0.23
    True

References:
    Hörmann (1993), "The generation of binomial random variates", J. Stat. Comput. Simul.
    46, 101-110 (BTRS: transformed rejection with squeeze).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_astro.random import RowRandom

#: BTRS is used where ``n min(p, 1 - p) >= 10``; sequential inversion below.
_BTRS_MIN_MEAN = 10.0
_ATTEMPTS = 16  # BTRS attempts drawn per block (each accepts with probability > 0.7)


def _inversion(u: Tensor, n: int, p: Tensor) -> Tensor:
    """Smallest ``k`` with ``F(k) >= u`` for Binomial(n, p), ``p <= 0.5``, ``n p < 10``."""
    q = 1.0 - p
    pmf = torch.exp(n * torch.log1p(-p))
    cdf = pmf.clone()
    k = torch.zeros_like(p)
    ratio = p / q
    for i in range(1, n + 1):
        live = u > cdf
        if not bool(live.any()):
            break
        k = k + live.to(k.dtype)
        pmf = pmf * ratio * ((n - i + 1) / i)
        cdf = cdf + pmf
    return k


def _btrs(rng: RowRandom, row: Tensor, col: Tensor, n: int, p: Tensor, shape: tuple[int, int]
          ) -> Tensor:
    """BTRS draws for the elements ``(row, col)`` of an ``(N, E)`` array, ``p <= 0.5``."""
    spq = torch.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    m = torch.floor((n + 1) * p)
    log_ratio = torch.log(p / (1.0 - p))
    log_fm = -torch.lgamma(m + 1.0) - torch.lgamma(n - m + 1.0)
    out = torch.full_like(p, -1.0)
    live = torch.arange(p.shape[0], device=p.device)
    while live.numel():
        block = rng.uniform((shape[1], _ATTEMPTS, 2), dtype=torch.float64)  # (N, E, A, 2)
        uv = block[row.index_select(0, live), col.index_select(0, live)]  # (L, A, 2)
        pl = [t.index_select(0, live)[:, None] for t in (a, b, c, v_r, alpha, m, log_ratio,
                                                         log_fm)]
        al, bl, cl, vrl, alphal, ml, lrl, lfml = pl
        uu, v = uv[..., 0] - 0.5, uv[..., 1]
        us = 0.5 - uu.abs()
        k = torch.floor((2.0 * al / us + bl) * uu + cl)
        valid = (k >= 0) & (k <= n)
        kc = k.clamp(0, n)
        quick = (us >= 0.07) & (v <= vrl)
        # exact log f(k) / f(m) of the binomial pmf
        log_f = (-torch.lgamma(kc + 1.0) - torch.lgamma(n - kc + 1.0) - lfml
                 + (kc - ml) * lrl)
        slow = torch.log(v * alphal / (al / (us * us) + bl)) <= log_f
        accept = valid & (quick | slow)
        first = torch.where(accept.any(1), accept.to(torch.int8).argmax(1), -1)
        done = first >= 0
        pick = k.gather(1, first.clamp_min(0)[:, None])[:, 0]
        out = out.index_copy(0, live[done], pick[done])
        live = live[~done]
    return out


def binomial(rng: RowRandom, n: int, probs: Tensor) -> Tensor:
    """Exact Binomial(n, probs) counts of shape ``(N, E)`` (float64, like ``probs``).

    Consumes one stream of ``rng`` (a split), whatever the probabilities, so later draws
    of the caller stay aligned across batches.
    """
    sub = rng.split()
    p = probs.to(torch.float64).clamp(0.0, 1.0)
    flip = p > 0.5
    ps = torch.where(flip, 1.0 - p, p)
    u = sub.uniform(tuple(p.shape[1:]), dtype=torch.float64)
    k = torch.zeros_like(ps)
    small = n * ps < _BTRS_MIN_MEAN
    if bool(small.any()):
        k = torch.where(small, _inversion(u, n, torch.where(small, ps, 0.0)), k)
    if bool((~small).any()):
        row, col = (~small).nonzero(as_tuple=True)
        draws = _btrs(sub, row, col, n, ps[row, col], tuple(p.shape))
        k = k.index_put((row, col), draws)
    return torch.where(flip, n - k, k)


def binomial_log_pmf(k: Tensor, n: int, probs: Tensor) -> Tensor:
    """``log Binomial(k | n, probs)`` elementwise (``-inf`` where impossible)."""
    p = probs.clamp(0.0, 1.0)
    log_choose = (math.lgamma(n + 1) - torch.lgamma(k + 1.0) - torch.lgamma(n - k + 1.0))
    term_p = torch.where(k > 0, k * torch.log(p), torch.zeros_like(p))
    term_q = torch.where(n - k > 0, (n - k) * torch.log1p(-p), torch.zeros_like(p))
    return log_choose + term_p + term_q


def truncated_normal(u: Tensor, mean: Tensor, std: Tensor | float, low: float, high: float
                     ) -> Tensor:
    """Inverse-CDF draws of ``N(mean, std^2)`` truncated to ``[low, high]`` from ``u in (0, 1)``.

    Works in float64 on the tail nearer the mean (reflecting intervals that lie above it),
    so intervals several standard deviations away keep their precision.
    """
    mean = mean.to(torch.float64)
    a = (low - mean) / std
    b = (high - mean) / std
    flip = a > 0
    lo = torch.where(flip, -b, a)
    hi = torch.where(flip, -a, b)
    plo, phi = torch.special.ndtr(lo), torch.special.ndtr(hi)
    z = torch.special.ndtri((plo + u.to(torch.float64) * (phi - plo)).clamp(1e-300, 1.0))
    z = torch.where(flip, -z, z)
    return (mean + std * z).clamp(low, high)
