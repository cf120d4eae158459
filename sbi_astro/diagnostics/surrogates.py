"""Surrogate data: is a series more structured than linear stochastic noise?

Surrogates keep the series' power spectrum (phase randomisation, Theiler et al. 1992) and
its amplitude distribution (AAFT, IAAFT: Schreiber & Schmitz 1996): they realise the null
hypothesis of a stationary linear Gaussian process seen through a monotone measurement
function.  :func:`surrogate_test` compares the longest H1 lifetime of the series' delay
embedding (:mod:`.topology`) with that of its surrogates; the p-value is the rank of the
data among them.  Randomness comes from an explicit :class:`numpy.random.Generator` or seed.

Example:
    >>> import numpy as np
    >>> x = np.sin(0.05 * np.arange(2000)) + 0.1 * np.random.default_rng(0).standard_normal(2000)
    >>> s = surrogate(x, "iaaft", seed=1)
    >>> bool(np.allclose(np.sort(s), np.sort(x)))  # the same values, reordered
    True

References:
    Theiler et al. (1992), Physica D 58, 77 (surrogate data).
    Schreiber & Schmitz (1996), Phys. Rev. Lett. 77, 635 (IAAFT surrogates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from ._common import as_series, numpy_rng
from .topology import embed_and_persist

__all__ = ["SurrogateTestResult", "surrogate", "surrogate_test"]


def _phase_randomise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = x.size
    spec = np.fft.rfft(x - x.mean())
    phases = rng.uniform(0.0, 2.0 * math.pi, spec.size)
    phases[0] = 0.0
    if n % 2 == 0:
        phases[-1] = 0.0  # the Nyquist term must stay real
    return np.fft.irfft(np.abs(spec) * np.exp(1j * phases), n) + x.mean()


def surrogate(x: np.ndarray, kind: str = "iaaft", *, seed: int | np.random.Generator | None,
              iterations: int = 100) -> np.ndarray:
    """One surrogate series of the linear-Gaussian null hypothesis.

    Args:
        x: series ``(T,)``.
        kind: ``"phase"`` (same power spectrum, Gaussian values), ``"aaft"`` (amplitude
            adjusted: same values, approximately the same spectrum) or ``"iaaft"``
            (iteratively refined AAFT: same values, spectrum matched to convergence).
        seed: int or numpy Generator (required).
        iterations: maximum IAAFT iterations.
    """
    x = as_series(x)
    rng = numpy_rng(seed)
    if kind == "phase":
        return _phase_randomise(x, rng)
    sorted_x = np.sort(x)
    if kind == "aaft":
        ranks = np.argsort(np.argsort(x))
        gauss = np.sort(rng.standard_normal(x.size))[ranks]
        shuffled = _phase_randomise(gauss, rng)
        return sorted_x[np.argsort(np.argsort(shuffled))]
    if kind == "iaaft":
        amp = np.abs(np.fft.rfft(x))
        y = rng.permutation(x)
        prev = None
        for _ in range(iterations):
            spec = np.fft.rfft(y)
            y = np.fft.irfft(amp * np.exp(1j * np.angle(spec)), x.size)
            ranks = np.argsort(np.argsort(y))
            y = sorted_x[ranks]
            if prev is not None and np.array_equal(ranks, prev):
                break
            prev = ranks
        return y
    raise ConfigError(f"unknown surrogate kind {kind!r}; use 'phase', 'aaft' or 'iaaft'")


@dataclass
class SurrogateTestResult:
    """Outcome of :func:`surrogate_test`.

    Attributes:
        statistic: the statistic of the data (longest H1 lifetime of the standardised
            embedding by default).
        null: the statistic of each surrogate ``(n_surrogates,)``.
        p_value: ``(1 + #{null >= statistic}) / (1 + n_surrogates)`` (one-sided rank test);
            its smallest value is ``1 / (1 + n_surrogates)``.
        delay, dim: the embedding used for the data and every surrogate.
    """

    statistic: float
    null: np.ndarray
    p_value: float
    delay: int
    dim: int


def surrogate_test(x: np.ndarray, *, seed: int | np.random.Generator | None,
                   n_surrogates: int = 99, kind: str = "iaaft", delay: int | None = None,
                   dim: int | None = None, homology: int = 1, max_points: int = 1000,
                   n_perm: int | None = 200) -> SurrogateTestResult:
    """Tests "more topological structure than linear stochastic noise".

    The data and ``n_surrogates`` surrogates (same spectrum and amplitude distribution) are
    embedded with the *same* delay and dimension (chosen on the data), and the longest
    lifetime in homology dimension ``homology`` is compared.  A small p-value rejects the
    null hypothesis of a stationary linear Gaussian process seen through a monotone
    measurement function.

    Args:
        x: series ``(T,)``.
        seed: int or numpy Generator (required).
        n_surrogates: number of surrogates; ``p < 0.01`` needs at least 99.
        kind: surrogate kind (see :func:`surrogate`).
        delay, dim: embedding parameters (default: chosen on ``x``).
        homology: homology dimension of the statistic.
        max_points, n_perm: cloud thinning and ripser landmarks (per series).
    """
    if n_surrogates < 1:
        raise ConfigError(f"n_surrogates must be >= 1, got {n_surrogates}")
    x = as_series(x)
    rng = numpy_rng(seed)
    base = embed_and_persist(x, delay=delay, dim=dim, max_points=max_points, n_perm=n_perm,
                             maxdim=homology)
    key = f"longest_H{homology}"
    null = np.empty(n_surrogates)
    for i in range(n_surrogates):
        s = surrogate(x, kind, seed=rng)
        res = embed_and_persist(s, delay=base.delay, dim=base.dim, max_points=max_points,
                                n_perm=n_perm, maxdim=homology)
        null[i] = res.summaries[key]
    stat = base.summaries[key]
    p = (1.0 + float((null >= stat).sum())) / (1.0 + n_surrogates)
    return SurrogateTestResult(stat, null, p, base.delay, base.dim)
