"""Summary statistics of 21 cm boxes and lightcones: power spectra and neutral-fraction history.

Example:
    >>> import torch
    >>> from simulators.cm21.summaries import log_k_edges, power_spectrum
    >>> field = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> edges = log_k_edges(16, 64.0, 5)
    >>> d2, k, modes = power_spectrum(field, 64.0, edges)
    >>> tuple(d2.shape), tuple(k.shape)
    ((2, 5), (5,))
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._physics import wavenumbers


def log_k_edges(n: int, box: float, num: int) -> Tensor:
    """``num + 1`` log-spaced bin edges [1/Mpc] from the fundamental mode to the Nyquist mode
    (each edge shifted by half a fundamental mode so that the first bin holds modes)."""
    kf = 2 * math.pi / box
    kn = math.pi * n / box
    return torch.logspace(math.log10(0.999 * kf), math.log10(kn), num + 1, dtype=torch.float64)


def power_spectrum(field: Tensor, box: float, k_edges: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Spherically averaged dimensionless power spectrum of a periodic cube.

    ``P(k) = <|delta_k|^2> V_cell^2 / V`` averaged over the modes in each ``|k|`` bin, and
    ``Delta^2(k) = k^3 P(k) / 2 pi^2`` at the bin's mode-averaged ``|k|``.  The ``k = 0``
    mode is excluded, so a constant offset (the mean) does not contribute.

    Args:
        field: ``(..., n, n, n)`` in any unit ``u`` (e.g. mK, or a density contrast).
        box: side length [Mpc].
        k_edges: ``(nb + 1,)`` bin edges [1/Mpc].

    Returns:
        ``Delta^2 (..., nb)`` [u^2], mode-averaged ``k (nb,)`` [1/Mpc] and the number of
        (complex, independent) modes per bin ``(nb,)``.  Empty bins give ``Delta^2 = 0``.
    """
    n = field.shape[-1]
    batch = field.shape[:-3]
    fk = torch.fft.rfftn(field, dim=(-3, -2, -1))
    pk = (fk.real**2 + fk.imag**2) * (box**3 / n**6)
    kx, ky, kz = wavenumbers(n, box, device=field.device)
    kmag = torch.sqrt(kx**2 + ky**2 + kz**2).expand(n, n, n // 2 + 1)
    # rfft stores half the modes: interior kz planes stand for two (conjugate) modes
    weight = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=field.device)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    weight = weight.expand(n, n, n // 2 + 1).clone()
    weight[0, 0, 0] = 0.0  # the mean
    edges = k_edges.to(field.device, torch.float64)
    nb = edges.numel() - 1
    idx = torch.bucketize(kmag.reshape(-1), edges, right=True) - 1
    inside = (idx >= 0) & (idx < nb)
    idx = torch.where(inside, idx, torch.full_like(idx, nb))  # overflow bin, dropped
    w = (weight.reshape(-1) * inside).to(torch.float64)
    counts = torch.zeros(nb + 1, dtype=torch.float64, device=field.device).index_add_(0, idx, w)
    ksum = torch.zeros_like(counts).index_add_(0, idx, w * kmag.reshape(-1))
    flat = pk.reshape(*batch, -1).to(torch.float64) * w
    psum = torch.zeros(*batch, nb + 1, dtype=torch.float64, device=field.device)
    psum = psum.index_add_(psum.dim() - 1, idx, flat)
    counts, ksum, psum = counts[:nb], ksum[:nb], psum[..., :nb]
    safe = counts.clamp_min(1.0)
    kmean = ksum / safe
    d2 = kmean**3 * (psum / safe) / (2 * math.pi**2)
    return d2.to(field.dtype), kmean, counts / 2


def neutral_fraction(x_hi: Tensor) -> Tensor:
    """Volume-averaged neutral fraction of boxes ``(..., n, n, n)`` -> ``(...)``."""
    return x_hi.mean(dim=(-3, -2, -1))
