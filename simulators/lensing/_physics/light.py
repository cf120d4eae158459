"""Surface-brightness profiles of lensed sources (conventions in
:mod:`simulators.lensing._physics`).

Example:
    >>> import torch
    >>> from simulators.lensing._physics.pixels import pixel_grid
    >>> x, y = pixel_grid(200, 0.01)  # 2 x 2 arcsec
    >>> sb = gaussian_light(x, y, torch.tensor(3.0), torch.tensor(0.1))
    >>> round(float(sb.sum() * 0.01**2), 4)  # total flux
    3.0
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .geometry import shift

#: Radius floor (arcsec) of the Sersic profile at its centre (lenstronomy's ``smoothing``).
SERSIC_SMOOTHING = 1e-4


def sersic(x: Tensor, y: Tensor, amp: Tensor, R_sersic: Tensor, n_sersic: Tensor,
           e1: Tensor, e2: Tensor, center_x: Tensor | float = 0.0,
           center_y: Tensor | float = 0.0) -> Tensor:
    """Elliptical Sersic surface brightness, lenstronomy's ``SERSIC_ELLIPSE``.

    ``I = amp * exp(-b_n [(R / R_sersic)^(1/n) - 1])`` with ``R = sqrt(q x'^2 + y'^2 / q)``:
    ``R_sersic`` is the half-light radius of the *circularised* (product-average) ellipse,
    not of the major axis (GALFIT's and caustics' convention; multiply by ``sqrt(q)`` to
    convert a major-axis radius).  ``b_n = 1.9992 n - 0.3271`` (Capaccioli 1989), the
    approximation lenstronomy uses.  ``R`` is floored at 1e-4 arcsec.

    Args:
        x, y: source-plane positions, arcsec.
        amp: surface brightness at ``R_sersic`` (flux per arcsec^2).
        R_sersic: half-light radius, arcsec.
        n_sersic: Sersic index.
        e1, e2: ellipticity.
        center_x, center_y: centre, arcsec.

    Returns:
        surface brightness, in ``amp``'s unit.
    """
    dx, dy = shift(x, center_x), shift(y, center_y)
    # R^2 = q x'^2 + y'^2/q written directly in e1, e2 (smooth at e = 0).
    norm2 = (1.0 - e1 * e1 - e2 * e2).clamp_min(1e-6)
    u = (1.0 - e1) * dx - e2 * dy
    v = -e2 * dx + (1.0 + e1) * dy
    r2 = ((u * u + v * v) / norm2).clamp_min(SERSIC_SMOOTHING ** 2)
    bn = (1.9992 * n_sersic - 0.3271).clamp_min(1e-5)
    rs = torch.as_tensor(R_sersic, dtype=r2.dtype).clamp_min(SERSIC_SMOOTHING)
    # (r / rs)^(1/n) = exp((log r^2 / 2 - log rs) / n); per-profile factors hoisted.
    inv_n = 1.0 / n_sersic
    frac = torch.exp(torch.log(r2) * (0.5 * inv_n) - torch.log(rs) * inv_n)
    return (amp * torch.exp(bn)) * torch.exp(-bn * frac)


def gaussian_light(x: Tensor, y: Tensor, flux: Tensor, sigma: Tensor,
                   center_x: Tensor | float = 0.0, center_y: Tensor | float = 0.0) -> Tensor:
    """Circular Gaussian with total ``flux``: ``flux / (2 pi sigma^2) exp(-r^2 / 2 sigma^2)``."""
    dx, dy = shift(x, center_x), shift(y, center_y)
    return flux / (2.0 * math.pi * sigma * sigma) * torch.exp(
        -(dx * dx + dy * dy) / (2.0 * sigma * sigma))
