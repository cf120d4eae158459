"""Lag embedding and persistent homology of a scalar time series.

A scalar series ``x(t)`` of a deterministic system is turned into a point cloud by delay
embedding (Takens 1981), ``v_i = (x_i, x_{i+tau}, ..., x_{i+(m-1) tau})``, with the delay
``tau`` at the first minimum of the average mutual information (Fraser & Swinney 1986) and
the dimension ``m`` from the false-nearest-neighbour test (Kennel, Brown & Abarbanel 1992).
The cloud's Vietoris-Rips persistence diagrams are computed with ``ripser`` (Bauer 2021;
Tralie, Saul & Bar-On 2018), on greedy landmarks (``n_perm``) for large clouds.

Loops (H1 bars) in the embedding are the signature of (quasi-)periodic or chaotic
recurrence.  Whether a series has *more* structure than linear stochastic noise is tested
against surrogates that keep its power spectrum and amplitude distribution
(:mod:`.surrogates`).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.sin(0.05 * np.arange(4000)) + 0.1 * rng.standard_normal(4000)
    >>> res = embed_and_persist(x, n_perm=200)
    >>> bool(res.summaries["longest_H1"] > 1.5)  # one big loop: a limit cycle
    True

References:
    Takens (1981), "Detecting strange attractors in turbulence", LNM 898.
    Fraser & Swinney (1986), Phys. Rev. A 33, 1134 (mutual information delay).
    Kennel, Brown & Abarbanel (1992), Phys. Rev. A 45, 3403 (false nearest neighbours).
    Bauer (2021), J. Appl. Comput. Topol. 5, 391 (Ripser).
    Cavanna, Jahanseir & Sheehy (2015), arXiv:1506.03797 (greedy permutations, sparse Rips).
    Pasquato et al. (2023), arXiv:2311.16306 (these diagnostics on star-cluster dynamics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from ..errors import ConfigError, ShapeError
from ._common import as_series

__all__ = [
    "mutual_information",
    "mutual_information_delay",
    "false_nearest_neighbours",
    "embedding_dimension",
    "delay_embed",
    "persistence_diagrams",
    "landmarks",
    "longest_lifetime",
    "persistence_entropy",
    "betti_curve",
    "embed_and_persist",
    "TopologyResult",
]


# -- delay and dimension -----------------------------------------------------------------
def mutual_information(x: np.ndarray, lag: int, bins: int = 16) -> float:
    """Average mutual information (nats) between ``x_t`` and ``x_{t+lag}`` (histogram estimate).

    Args:
        x: series ``(T,)``.
        lag: non-negative delay in samples, ``< T``.
        bins: histogram bins per axis (equal width over the range of ``x``).
    """
    x = as_series(x)
    if not 0 <= lag < x.size - 1:
        raise ConfigError(f"lag must be in [0, {x.size - 2}], got {lag}")
    a, b = x[: x.size - lag], x[lag:]
    edges = np.linspace(x.min(), x.max() + 1e-12 * (abs(x.max()) + 1.0), bins + 1)
    pxy, _, _ = np.histogram2d(a, b, bins=[edges, edges])
    pxy /= pxy.sum()
    px, py = pxy.sum(1), pxy.sum(0)
    nz = pxy > 0
    return float((pxy[nz] * np.log(pxy[nz] / (px[:, None] * py[None, :])[nz])).sum())


def mutual_information_delay(x: np.ndarray, max_lag: int | None = None, bins: int = 16) -> int:
    """The delay at the first local minimum of the average mutual information.

    Falls back to the first lag where the AMI drops below ``AMI(0) / e`` when the curve
    has no local minimum before ``max_lag`` (e.g. for smooth, slowly decorrelating noise).

    Args:
        x: series ``(T,)``.
        max_lag: largest lag tried (default ``T // 10``).
        bins: histogram bins per axis.

    Returns:
        the delay ``tau >= 1`` in samples.
    """
    x = as_series(x)
    max_lag = max(2, x.size // 10) if max_lag is None else int(max_lag)
    ami = np.array([mutual_information(x, k, bins) for k in range(max_lag + 1)])
    for k in range(1, max_lag):
        if ami[k] < ami[k - 1] and ami[k] <= ami[k + 1]:
            return k
    below = np.nonzero(ami < ami[0] / math.e)[0]
    return int(below[0]) if below.size else max_lag


def delay_embed(x: np.ndarray, dim: int, delay: int) -> np.ndarray:
    """The delay-embedding point cloud ``(T - (dim - 1) * delay, dim)``.

    Example:
        >>> delay_embed(np.arange(6.0), dim=2, delay=2)
        array([[0., 2.],
               [1., 3.],
               [2., 4.],
               [3., 5.]])
    """
    x = as_series(x, min_len=2)
    if dim < 1 or delay < 1:
        raise ConfigError(f"dim and delay must be >= 1, got dim={dim}, delay={delay}")
    n = x.size - (dim - 1) * delay
    if n < 2:
        raise ShapeError(f"series of length {x.size} is too short for dim={dim}, delay={delay}")
    idx = np.arange(n)[:, None] + delay * np.arange(dim)[None, :]
    return x[idx]


def false_nearest_neighbours(x: np.ndarray, delay: int, max_dim: int = 8,
                             rtol: float = 15.0, atol: float = 2.0) -> np.ndarray:
    """Fraction of false nearest neighbours for ``dim = 1 .. max_dim`` (Kennel et al. 1992).

    A neighbour in dimension ``d`` is false when adding the ``(d+1)``-th coordinate grows
    the distance by more than ``rtol`` times, or beyond ``atol`` times the series' standard
    deviation.

    Returns:
        ``(max_dim,)`` fractions, entry ``d - 1`` for dimension ``d``.
    """
    x = as_series(x)
    std = x.std()
    out = np.ones(max_dim)
    for d in range(1, max_dim + 1):
        n = x.size - d * delay
        if n < 10:
            break
        cloud = delay_embed(x, d, delay)[:n]
        nxt = x[np.arange(n) + d * delay]
        dist, idx = cKDTree(cloud).query(cloud, k=2)
        r, j = dist[:, 1], idx[:, 1]
        extra = np.abs(nxt - nxt[j])
        ok = r > 0
        false = (extra[ok] / r[ok] > rtol) | (np.sqrt(r[ok] ** 2 + extra[ok] ** 2) / std > atol)
        out[d - 1] = false.mean() if ok.any() else 0.0
    return out


def embedding_dimension(x: np.ndarray, delay: int, max_dim: int = 8,
                        threshold: float = 0.02) -> int:
    """The smallest dimension whose false-nearest-neighbour fraction is below ``threshold``.

    Noise never reaches zero false neighbours, so the threshold is a few per cent; when no
    dimension reaches it, the one with the fewest false neighbours is returned.
    """
    fnn = false_nearest_neighbours(x, delay, max_dim)
    below = np.nonzero(fnn < threshold)[0]
    return int(below[0] + 1) if below.size else int(np.argmin(fnn) + 1)


# -- persistence ------------------------------------------------------------------------
def persistence_diagrams(cloud: np.ndarray, maxdim: int = 1, n_perm: int | None = 1000,
                         thresh: float = math.inf) -> list[np.ndarray]:
    """Vietoris-Rips persistence diagrams of a point cloud with ``ripser``.

    Args:
        cloud: points ``(n, m)``.
        maxdim: highest homology dimension.
        n_perm: number of greedy (farthest-point, :func:`landmarks`) points used when
            ``n > n_perm``; a full Rips complex of 5,000 points takes minutes and gigabytes,
            1,000 landmarks take about a second. ``None`` uses every point.
        thresh: largest edge length of the filtration (``inf``: full).

    Returns:
        ``maxdim + 1`` arrays ``(k, 2)`` of (birth, death); H0 has one infinite bar.
    """
    try:
        from ripser import ripser
    except ImportError as err:  # pragma: no cover - ripser is a dependency
        raise ImportError("persistent homology needs ripser: pip install ripser") from err
    cloud = np.asarray(cloud, dtype=np.float64)
    if cloud.ndim != 2:
        raise ShapeError(f"cloud must be (n_points, dim), got shape {cloud.shape}")
    if n_perm is not None and cloud.shape[0] > n_perm:
        cloud = cloud[landmarks(cloud, int(n_perm))]
    return [np.asarray(d) for d in ripser(cloud, maxdim=maxdim, thresh=thresh)["dgms"]]


def landmarks(cloud: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """Indices ``(n,)`` of a greedy farthest-point subsample (a "greedy permutation").

    Each new landmark is the point farthest from those already chosen, so the landmarks
    cover the cloud to within the last insertion radius and bars longer than twice that
    radius survive (Cavanna, Jahanseir & Sheehy 2015).  This is the subsampling ripser
    does for ``n_perm``; doing it here in numpy is several times faster for small ``n``.

    Example:
        >>> landmarks(np.array([[0.0], [0.1], [1.0], [0.5]]), 3).tolist()
        [0, 2, 3]
    """
    cloud = np.asarray(cloud, dtype=np.float64)
    n = min(int(n), cloud.shape[0])
    idx = np.empty(n, dtype=np.int64)
    idx[0] = start
    dist = np.linalg.norm(cloud - cloud[start], axis=1)
    for i in range(1, n):
        idx[i] = int(np.argmax(dist))
        dist = np.minimum(dist, np.linalg.norm(cloud - cloud[idx[i]], axis=1))
    return idx


def _finite(dgm: np.ndarray) -> np.ndarray:
    dgm = np.asarray(dgm, dtype=np.float64).reshape(-1, 2)
    return dgm[np.isfinite(dgm[:, 1])]


def longest_lifetime(dgm: np.ndarray) -> float:
    """The longest finite bar (death - birth) of a diagram; 0 when it has none."""
    d = _finite(dgm)
    return float((d[:, 1] - d[:, 0]).max()) if d.size else 0.0


def persistence_entropy(dgm: np.ndarray) -> float:
    """Shannon entropy (nats) of the normalised finite lifetimes (Chintakunta et al. 2015).

    Example:
        >>> round(persistence_entropy(np.array([[0.0, 1.0], [0.0, 1.0]])), 6)
        0.693147
    """
    d = _finite(dgm)
    life = d[:, 1] - d[:, 0]
    life = life[life > 0]
    if life.size == 0:
        return 0.0
    p = life / life.sum()
    return float(-(p * np.log(p)).sum())


def betti_curve(dgm: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Number of bars alive, ``birth <= eps < death``, at each scale of ``grid``.

    Example:
        >>> betti_curve(np.array([[0.0, 2.0], [1.0, np.inf]]), np.array([0.5, 1.5, 3.0]))
        array([1, 2, 1])
    """
    d = np.asarray(dgm, dtype=np.float64).reshape(-1, 2)
    g = np.asarray(grid, dtype=np.float64)[:, None]
    return ((d[None, :, 0] <= g) & (g < d[None, :, 1])).sum(1)


@dataclass
class TopologyResult:
    """Delay-embedding topology of one series.

    Attributes:
        delay: embedding delay (samples).
        dim: embedding dimension.
        cloud: the (standardised) point cloud ``(n, dim)``.
        diagrams: persistence diagrams H0..H_maxdim.
        summaries: longest lifetimes and persistence entropies per dimension.
    """

    delay: int
    dim: int
    cloud: np.ndarray
    diagrams: list[np.ndarray]
    summaries: dict[str, float] = field(default_factory=dict)


def embed_and_persist(x: np.ndarray, *, delay: int | None = None, dim: int | None = None,
                      max_points: int = 5000, n_perm: int | None = 500, maxdim: int = 1,
                      fnn_threshold: float = 0.02, max_dim: int = 6) -> TopologyResult:
    """Standardises ``x``, chooses delay and dimension, embeds and computes persistence.

    Args:
        x: series ``(T,)`` sampled uniformly in time.
        delay, dim: fixed embedding parameters (default: AMI minimum, FNN test).
        max_points: the cloud is thinned by striding to at most this many points.
        n_perm: greedy landmarks handed to ripser (``None``: all points).
        maxdim: highest homology dimension.
        fnn_threshold: false-neighbour fraction accepted by :func:`embedding_dimension`.
        max_dim: largest dimension tried by the FNN test.
    """
    x = as_series(x)
    z = (x - x.mean()) / (x.std() + 1e-300)
    tau = mutual_information_delay(z) if delay is None else int(delay)
    m = embedding_dimension(z, tau, max_dim, fnn_threshold) if dim is None else int(dim)
    m = max(m, 2)  # a loop needs at least a plane
    cloud = delay_embed(z, m, tau)
    stride = max(1, math.ceil(cloud.shape[0] / max_points))
    cloud = cloud[::stride]
    dgms = persistence_diagrams(cloud, maxdim=maxdim, n_perm=n_perm)
    summaries = {}
    for k, d in enumerate(dgms):
        summaries[f"longest_H{k}"] = longest_lifetime(d)
        summaries[f"entropy_H{k}"] = persistence_entropy(d)
    return TopologyResult(tau, m, cloud, dgms, summaries)
