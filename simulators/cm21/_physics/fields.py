"""Density fields on periodic grids: Fourier wavenumbers, Gaussian random fields, Zel'dovich
displacements and cloud-in-cell deposit (lengths in Mpc, displacements in cells).

Example:
    >>> import torch
    >>> n = 4
    >>> lattice = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64)] * 3,
    ...                                      indexing="ij")).reshape(1, 3, -1)
    >>> bool((cic_deposit(lattice, n) == 1).all())  # one particle per cell: 1 + delta = 1
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def wavenumbers(n: int, box: float, *, device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """Broadcastable ``(kx, ky, kz)`` [1/Mpc] of the ``rfftn`` grid of ``n^3`` cells, side
    ``box`` [Mpc]."""
    kf = 2 * math.pi / box
    k1 = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype) * kf
    kr = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=dtype) * kf
    return k1[:, None, None], k1[None, :, None], kr[None, None, :]


def gaussian_field(white: Tensor, box: float, pk: Tensor) -> Tensor:
    """Gaussian random field with power spectrum ``pk`` from white noise.

    Args:
        white: unit-variance white noise ``(B, n, n, n)``.
        box: side length [Mpc].
        pk: ``P(|k|)`` [Mpc^3] on the rfft grid ``(B or 1, n, n, n//2+1)`` (the ``k = 0``
            entry is ignored: the field has zero mean).

    Returns:
        ``delta_k`` of shape ``(B, n, n, n//2+1)`` (unnormalised ``rfftn`` convention):
        ``irfftn(delta_k)`` is the real-space field with ``<|delta(k)|^2> = V P(k)``.
    """
    n = white.shape[-1]
    vcell = (box / n) ** 3
    wk = torch.fft.rfftn(white, dim=(-3, -2, -1))
    amp = torch.sqrt(pk / vcell).to(wk.real.dtype)
    amp = amp.clone()
    amp[..., 0, 0, 0] = 0
    return wk * amp


def zeldovich_displacement(delta_k: Tensor, box: float, shift: float = 0.5) -> Tensor:
    """Zel'dovich displacement ``psi`` [cells] ``(B, 3, n, n, n)`` with ``delta = -div psi``.

    ``psi`` is evaluated at the lattice ``q = i + shift`` (cell units).  The default puts the
    particles at cell corners, half-way between grid points: a small displacement then moves
    cloud-in-cell weight linearly between the two neighbouring cells (a centred difference),
    whereas particles sitting on grid points respond one-sidedly (non-linearly in the sign of
    ``psi``), which biases the large-scale density by ~10 per cent.
    """
    n = delta_k.shape[-3]
    kx, ky, kz = wavenumbers(n, box, device=delta_k.device, dtype=delta_k.real.dtype)
    k2 = kx**2 + ky**2 + kz**2
    k2[0, 0, 0] = 1.0
    phase = torch.exp(1j * (kx + ky + kz) * (shift * box / n))
    comps = []
    for ki in (kx, ky, kz):
        psi_k = 1j * ki / k2 * phase * delta_k
        comps.append(torch.fft.irfftn(psi_k, s=(n, n, n), dim=(-3, -2, -1)))
    return torch.stack(comps, dim=1) * (n / box)  # Mpc -> cells


def cic_deposit(pos: Tensor, n: int) -> Tensor:
    """Cloud-in-cell density ``1 + delta`` of unit-mass particles in a periodic grid.

    Args:
        pos: particle positions in cell units ``(B, 3, P)``.
        n: cells per side.

    Returns:
        ``(B, n, n, n)``: particles per cell divided by the mean (``P / n^3``).
    """
    b, _, p = pos.shape
    pos = torch.remainder(pos, n)
    i0 = torch.floor(pos)
    f = pos - i0
    # int32 index arithmetic (half the memory traffic of int64); fine while b n^3 < 2^31
    idt = torch.int32 if b * n**3 < 2**31 else torch.int64
    i0 = i0.to(idt)
    i1 = i0 + 1
    i1 = torch.where(i1 == n, torch.zeros_like(i1), i1)  # periodic wrap
    # flat index = (ix n + iy) n + iz + row offset, built from per-axis parts (2 per axis)
    offset = (torch.arange(b, device=pos.device, dtype=idt) * n**3)[:, None]
    ax = (i0[:, 0] * n**2 + offset, i1[:, 0] * n**2 + offset)
    ay = (i0[:, 1] * n, i1[:, 1] * n)
    az = (i0[:, 2], i1[:, 2])
    wx = (1 - f[:, 0], f[:, 0])
    wy = (1 - f[:, 1], f[:, 1])
    wz = (1 - f[:, 2], f[:, 2])
    out = torch.zeros(b * n**3, dtype=pos.dtype, device=pos.device)
    for dx in (0, 1):
        for dy in (0, 1):
            axy = ax[dx] + ay[dy]
            wxy = wx[dx] * wy[dy]
            for dz in (0, 1):
                out.index_add_(0, (axy + az[dz]).reshape(-1), (wxy * wz[dz]).reshape(-1))
    return out.reshape(b, n, n, n) * (n**3 / p)
