"""The foreground wedge of 21 cm observations: its slope and the removal of the modes
inside it.

Example:
    >>> import torch
    >>> flat = torch.randn(1, 8, 8, 1, generator=torch.Generator().manual_seed(0))
    >>> cube = flat.expand(1, 8, 8, 8).double()  # constant along the line of sight
    >>> float(remove_wedge(cube, 100.0, torch.tensor(0.0)).abs().max()) < 1e-12
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cosmology import C_KM_S, comoving_distance, hubble_e
from .fields import wavenumbers


def wedge_slope(z: Tensor, omega_m: Tensor, h: float) -> Tensor:
    """Slope ``k_par / k_perp`` of the horizon foreground wedge (Liu, Parsons & Trott 2014,
    eq. 16 with ``sin theta = 1``): ``D_C(z) E(z) / (D_H (1 + z))``."""
    dh = C_KM_S / (100.0 * h)
    return comoving_distance(z, omega_m, h) * hubble_e(z, omega_m) / (dh * (1 + z))


def remove_wedge(cube: Tensor, box: float, slope: Tensor) -> Tensor:
    """Zeroes the Fourier modes with ``|k_par| <= slope k_perp`` (line of sight = last axis).

    Args:
        cube: ``(..., n, n, n)``.
        box: side [Mpc].
        slope: wedge slope per cube, broadcast against ``(...)``.
    """
    n = cube.shape[-1]
    kx, ky, kz = wavenumbers(n, box, device=cube.device)
    kperp = torch.sqrt(kx**2 + ky**2)
    keep = kz.abs() > slope.to(torch.float64)[..., None, None, None] * kperp
    fk = torch.fft.rfftn(cube, dim=(-3, -2, -1))
    return torch.fft.irfftn(fk * keep.to(cube.dtype), s=(n, n, n), dim=(-3, -2, -1))
