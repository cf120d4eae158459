"""Counter-based random numbers: one independent, reproducible stream per simulation.

Every simulation row ``i`` gets a 64-bit key, and every random number it uses is a pure
function of ``(key, stream, element)`` (SplitMix64 hashing, Steele et al. 2014).  Hence a
row's output depends only on its key and its parameters, never on how many other rows are
simulated with it, in which chunk, by which worker, or on which device: the integer
arithmetic is the same on CPU and CUDA.

Keys are derived by :func:`fold`, e.g. ``fold(campaign_key, row_index)``.

Example:
    >>> import torch
    >>> keys = fold(torch.tensor(7), torch.arange(4))
    >>> a = RowRandom(keys).normal((3,))
    >>> b = RowRandom(keys[2:]).normal((3,))
    >>> bool(torch.equal(a[2:], b))
    True

References:
    Steele, Lea & Flood (2014), "Fast splittable pseudorandom number generators", OOPSLA.
    Hörmann (1993), "The transformed rejection method for generating Poisson random
    variables", Insurance: Mathematics and Economics 12, 39-45 (PTRS).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import ConfigError, NonFiniteError

#: Seeds are integers in ``[0, SEED_MAX]`` (63 bits): every seed gives its own streams, and
#: negative or wider numbers are refused rather than folded onto another seed.
SEED_MAX = 2**63 - 1


def _signed(c: int) -> int:
    """Reinterprets an unsigned 64-bit constant as a signed int64."""
    return c - (1 << 64) if c >= (1 << 63) else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def _srl(z: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def mix64(z: Tensor) -> Tensor:
    """SplitMix64 finaliser: a bijective 64-bit hash (int64 in, int64 out, wrapping)."""
    z = (z ^ _srl(z, 30)) * _M1
    z = (z ^ _srl(z, 27)) * _M2
    return z ^ _srl(z, 31)


def _mix64_(z: Tensor) -> Tensor:
    """:func:`mix64` in place on a tensor the caller owns (the same bits, one temporary
    instead of ten: the noise of an image is dominated by these integer passes)."""
    for shift, mult in ((30, _M1), (27, _M2), (31, None)):
        t = z >> shift
        t &= (1 << (64 - shift)) - 1
        z ^= t
        if mult is not None:
            z *= mult
    return z


def box_muller(key: Tensor, n: int) -> Tensor:
    """``n`` float32 standard normals per row key ``(N,)`` -> ``(N, n)``: what
    :meth:`RowRandom.normal` draws for a non-float64 dtype from the stream key ``key``.

    Each 64-bit hash ``mix64(key + c * golden)`` (counter ``c = 1, 2, ...``) gives two
    24-bit uniforms, ``u1`` from its low bits (in ``(0, 1)``) and ``u2`` from its high bits,
    and two normals ``r cos(2 pi u2)``, ``r sin(2 pi u2)`` with ``r = sqrt(-2 ln u1)``.  A
    pure function of ``key``, so a caller may ``torch.compile`` it (the lensing simulators
    do, fused with the noise model).
    """
    m = (n + 1) // 2
    ctr = torch.arange(1, m + 1, device=key.device, dtype=torch.int64) * _GOLDEN
    bits = mix64(key[:, None] + ctr[None, :])
    u1 = ((bits & ((1 << 24) - 1)).to(torch.float32) + 0.5) * 2.0**-24  # (0, 1)
    u2 = _srl(bits, 40).to(torch.float32) * (2.0 * math.pi * 2.0**-24)  # [0, 2 pi)
    r = torch.sqrt(-2.0 * torch.log(u1))
    z = torch.stack((r * torch.cos(u2), r * torch.sin(u2)), dim=-1)
    return z.reshape(key.shape[0], 2 * m)[:, :n]


def fold(key: Tensor | int, data: Tensor | int) -> Tensor:
    """Derives a new key from ``key`` and ``data`` (broadcasting int64 tensors)."""
    key = torch.as_tensor(key, dtype=torch.int64)
    data = torch.as_tensor(data, dtype=torch.int64, device=key.device)
    return mix64(key ^ mix64(data * _GOLDEN + _GOLDEN))


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` as an int after checking it is an integer in ``[0, SEED_MAX]``.

    Raises:
        ConfigError: a negative, too large, fractional or non-integer seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        try:
            as_float = float(seed)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            as_float = None
        if as_float is None or not as_float.is_integer() or isinstance(seed, bool):
            raise ConfigError(f"{name} must be an integer from 0 to 2**63 - 1, got {seed!r}")
        seed = int(as_float)
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{name} must be an integer from 0 to 2**63 - 1 "
                          f"(= {SEED_MAX}), got {seed}; pick a seed in that range")
    return int(seed)


def key_from_seed(seed: int) -> Tensor:
    """The root key of a seed, an integer in ``[0, SEED_MAX]`` (see :func:`check_seed`)."""
    return fold(torch.tensor(check_seed(seed), dtype=torch.int64), 0x5EED)


def keys_from_generator(
    num: int, generator: torch.Generator | None, device: torch.device | str = "cpu"
) -> Tensor:
    """Row keys ``(num,)`` for rows ``0..num-1`` from one draw of ``generator``.

    Only one number is drawn, so the first ``k`` rows get the same keys whatever ``num``.
    ``generator=None`` draws from torch's global generator (never seeded by this library).
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    root = torch.randint(-(2**62), 2**62, (), generator=generator, device=gen_device)
    return fold(root.to(device), torch.arange(num, device=device))


class RowRandom:
    """Independent random streams, one per row, addressed by counters.

    Each call (``uniform``, ``normal``, ``poisson``, ...) consumes one stream of every row,
    so the n-th call of a simulator gets the same numbers for a row whatever the batch.

    Args:
        keys: int64 keys of shape ``(N,)``, one per row.
    """

    def __init__(self, keys: Tensor):
        if keys.dtype != torch.int64 or keys.dim() != 1:
            raise TypeError("RowRandom needs a 1-D int64 tensor of row keys")
        self.keys = keys
        self._stream = 0

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def __len__(self) -> int:
        return self.keys.shape[0]

    def _next_key(self) -> Tensor:
        key = fold(self.keys, self._stream)
        self._stream += 1
        return key

    def split(self) -> RowRandom:
        """A new, independent ``RowRandom`` over the same rows (consumes one stream)."""
        return RowRandom(self._next_key())

    @staticmethod
    def _bits(key: Tensor, shape: tuple[int, ...]) -> Tensor:
        n = math.prod(shape)
        ctr = torch.arange(1, n + 1, device=key.device, dtype=torch.int64).mul_(_GOLDEN)
        z = _mix64_(key[:, None] + ctr[None, :])
        return z.reshape(key.shape[0], *shape)

    @staticmethod
    def _unit(bits: Tensor) -> Tensor:
        """53 random bits -> float64 in the open interval (0, 1)."""
        return _srl(bits, 11).to(torch.float64).mul_(2.0**-53).add_(2.0**-54)

    def uniform(self, shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform numbers in (0, 1) of shape ``(N, *shape)``."""
        return self._unit(self._bits(self._next_key(), tuple(shape))).to(dtype)

    def normal(self, shape: tuple[int, ...] = (), dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal numbers of shape ``(N, *shape)``.

        ``float64``: the inverse CDF of a 53-bit uniform, one hash per number.
        Other dtypes: the Box-Muller transform in float32 of two 24-bit uniforms cut from
        one 64-bit hash, which gives two normals (``r cos``, ``r sin``) per hash: ~2.5x
        cheaper on CPU, where the noise of an image is dominated by hashing and
        ``erfinv``.  Its largest draw is ``sqrt(2 * 25 * ln 2) = 5.9`` (the smallest
        uniform is ``2**-25``): the tail beyond it has probability 4e-9.
        """
        shape = tuple(shape)
        key = self._next_key()
        if dtype == torch.float64:
            u = self._unit(self._bits(key, shape))
            return u.mul_(2.0).sub_(1.0).erfinv_().mul_(math.sqrt(2.0))
        z = box_muller(key, math.prod(shape))
        return z.reshape(len(self), *shape).to(dtype)

    def poisson(self, rate: Tensor) -> Tensor:
        """Exact Poisson counts with mean ``rate`` of shape ``(N, *E)``, returned in rate's dtype.

        Inversion for ``rate < 10``, Hörmann's PTRS transformed rejection above; every
        attempt of every element uses its own counter, so results do not depend on the
        batch.  On CPU the same algorithm runs compiled (:mod:`sbi_astro.poisson_cpu`, the
        same counts, ~4x faster); elsewhere in torch.
        """
        if rate.shape[:1] != (len(self),):
            raise ValueError(f"rate must have leading dimension {len(self)}, got {tuple(rate.shape)}")
        if not torch.isfinite(rate).all() or (rate < 0).any():
            raise NonFiniteError(
                "Poisson rates must be finite and non-negative; check the model's expected counts"
            )
        key = self._next_key()
        if rate.device.type == "cpu":
            from . import poisson_cpu  # numba: imported on the first CPU draw only

            if poisson_cpu.available():
                return poisson_cpu.poisson(rate, fold(key, 0), fold(key, 1))
        return self._poisson_torch(key, rate)

    def _poisson_torch(self, key: Tensor, rate: Tensor) -> Tensor:
        """:meth:`poisson` in torch on any device, from the stream key ``key``."""
        n = rate.shape[0]
        lam = rate.to(torch.float64).reshape(-1)
        per_row = lam.numel() // n if n else 0
        out = torch.zeros_like(lam)
        if out.numel() == 0:
            return out.reshape(rate.shape).to(rate.dtype)
        # row of every flat element, for the counter of (row, element)
        row_of = torch.arange(n, device=lam.device).repeat_interleave(per_row)
        small = lam < 10.0
        # Each branch works on the flat indices it owns, and every loop only on the elements
        # still undecided: the numbers are those of the element's own counter, so the
        # result is the same as evaluating the whole array.  (``index_select`` rather than
        # ``[]``: several times faster on CPU.)
        idx = small.nonzero().squeeze(1)
        if idx.numel():
            out.index_copy_(0, idx, self._poisson_inversion(
                fold(key, 0), lam.index_select(0, idx), idx, row_of, per_row))
        idx = (~small).nonzero().squeeze(1)
        if idx.numel():
            out.index_copy_(0, idx, self._poisson_ptrs(
                fold(key, 1), lam.index_select(0, idx), idx, row_of, per_row))
        return out.reshape(rate.shape).to(rate.dtype)

    @staticmethod
    def _unit_at(key: Tensor, idx: Tensor, row_of: Tensor, per_row: int) -> Tensor:
        """The uniform that ``_unit(_bits(key, shape))`` gives at the flat indices ``idx``
        of an ``(N, per_row)`` array (``row_of``: the row of every flat index)."""
        rows = row_of.index_select(0, idx)
        cols = idx - rows * per_row
        return RowRandom._unit(mix64(key.index_select(0, rows) + (cols + 1) * _GOLDEN))

    def _poisson_inversion(self, key: Tensor, lam: Tensor, idx: Tensor, row_of: Tensor,
                           per_row: int) -> Tensor:
        # Sequential search: K = #{i >= 1 : u > F(i - 1)}, F the CDF summed term by term.
        # F only grows, so an element, once decided, stays decided: counting over the
        # whole array or over the undecided elements only gives the same K.  The
        # undecided ones are compacted whenever they fall below a quarter of the array.
        u = self._unit_at(key, idx, row_of, per_row)
        p = torch.exp(-lam)
        cdf = p.clone()
        k = torch.zeros_like(lam)
        pos = None  # positions in ``k`` of the current arrays' elements (None: all)
        kk = k
        # P(K > 60 | lam < 10) < 1e-25: the loop ends long before float64 loses the tail.
        for i in range(1, 80):
            live = u > cdf
            count = int(live.sum())
            if count == 0:
                break
            if 4 * count < live.numel():
                if pos is not None:
                    k.index_copy_(0, pos, kk)
                keep = live.nonzero().squeeze(1)
                pos = keep if pos is None else pos.index_select(0, keep)
                u, p, cdf, lam, live = (t.index_select(0, keep) for t in (u, p, cdf, lam, live))
                kk = k.index_select(0, pos)
            kk += live
            p = p * lam / i
            cdf = cdf + p
        if pos is not None:
            k.index_copy_(0, pos, kk)
        return k

    def _poisson_ptrs(self, key: Tensor, lam: Tensor, idx: Tensor, row_of: Tensor,
                      per_row: int) -> Tensor:
        from .poisson_cpu import ptrs_constants  # shared with the compiled sampler

        loglam = torch.log(lam)
        b, a, invalpha, vr = ptrs_constants(torch.sqrt(lam))
        out = torch.zeros_like(lam)
        live = torch.arange(lam.shape[0], device=lam.device)
        attempt = 0
        while live.numel():
            at = idx.index_select(0, live)
            uu = self._unit_at(fold(key, 2 * attempt), at, row_of, per_row) - 0.5
            v = self._unit_at(fold(key, 2 * attempt + 1), at, row_of, per_row)
            lm, bl, al, vrl = (t.index_select(0, live) for t in (lam, b, a, vr))
            us = 0.5 - uu.abs()
            k = torch.floor((2.0 * al / us + bl) * uu + lm + 0.43)
            quick = (us >= 0.07) & (v <= vrl)
            reject = (k < 0) | ((us < 0.013) & (v > us))
            # the log test only where the quick tests leave it open (~15% of draws)
            accept = quick.clone()
            j = (~quick & ~reject).nonzero().squeeze(1)
            if j.numel():
                lj = live.index_select(0, j)
                kj, usj, vj, alj, blj, lmj = (t.index_select(0, j) for t in (k, us, v, al, bl, lm))
                accept.index_copy_(0, j, (
                    torch.log(vj) + torch.log(invalpha.index_select(0, lj))
                    - torch.log(alj / (usj * usj) + blj)
                    <= -lmj + kj * loglam.index_select(0, lj) - torch.lgamma(kj + 1.0)
                ))
            acc = accept.nonzero().squeeze(1)
            out.index_copy_(0, live.index_select(0, acc), k.index_select(0, acc))
            live = live[~accept]
            attempt += 1
            if attempt > 1000:  # acceptance is > 0.85 per attempt: unreachable in practice
                raise RuntimeError("PTRS Poisson sampler failed to converge")
        return out
