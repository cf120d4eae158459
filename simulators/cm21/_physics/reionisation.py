"""Reionisation of the 21 cm simulator: the 21cmFAST excursion-set ionisation criterion and
the brightness temperature [mK].

Example:
    >>> import torch
    >>> [round(r, 3) for r in filter_radii(1.0, 0.8)]  # cell radius, then x 1.1 steps
    [0.62, 0.682, 0.751]
    >>> x_hi, density = torch.ones(1, 2, 2, 2), torch.ones(1, 2, 2, 2)  # neutral, mean density
    >>> z, om = torch.tensor([9.0]), torch.tensor([0.3111])
    >>> dtb = brightness_temperature(x_hi, density, z, om, Cosmology())
    >>> bool(torch.allclose(dtb, t21_prefactor(z, om, Cosmology())))
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .cosmology import DELTA_C, Cosmology, tophat_window
from .fields import wavenumbers


def filter_radii(cell: float, r_max: float, factor: float = 1.1) -> list[float]:
    """Smoothing radii ``R_0 = L_cell (3/4pi)^{1/3}`` (the cell's equal-volume sphere)
    times powers of ``factor``, up to ``r_max`` [Mpc] (as in 21cmFAST)."""
    r0 = cell * (3 / (4 * math.pi)) ** (1 / 3)
    out = [r0]
    while out[-1] * factor < r_max:
        out.append(out[-1] * factor)
    return out


def _erfcinv(y: Tensor) -> Tensor:
    return torch.erfinv(1 - y)


def excursion_set(delta0_k: Tensor, box: float, radii: list[float], r_mfp: Tensor,
                  zeta: Tensor, sigma_min: Tensor, sigma_r: Tensor, sigma_mfp: Tensor,
                  growth: Tensor, fcoll_mean: Tensor) -> Tensor:
    """Ionised fraction boxes from the 21cmFAST excursion-set criterion.

    A cell is fully ionised if ``zeta f_coll(x, R) >= 1`` for any top-hat radius ``R`` from
    ``R_mfp`` down to the cell radius; otherwise it is partially ionised with
    ``x_i = min(1, zeta f_coll(x, R_0))``.  ``f_coll`` is the conditional Press-Schechter
    collapsed fraction (Lacey & Cole 1993)::

        f_coll(R) = erfc[(delta_c / D - delta_R) / sqrt(2 (sigma_min^2 - sigma_R^2))]

    (``delta_R`` the smoothed field linearly extrapolated to ``z = 0``), rescaled at each
    ``(R, z)`` by ``fcoll_mean / <f_coll>_box`` so that the box average follows the global
    (Sheth-Tormen) collapsed fraction, as 21cmFAST does.  The box average uses the mean and
    variance of ``delta_R`` and the Gaussian identity
    ``<erfc((a - d)/b)> = erfc((a - m) / sqrt(b^2 + 2 v))``.

    Args:
        delta0_k: ``rfftn`` of the density contrast extrapolated to ``z = 0``,
            ``(B, Z', n, n, n//2+1)`` with ``Z' = Z`` (one evolved field per redshift) or
            ``Z' = 1`` (the linear field, shared by all redshifts).
        box: side [Mpc].
        radii: fixed radius grid [Mpc], ascending; radii ``>= R_mfp`` of a row are skipped
            and its ``R_mfp`` itself is always used.
        r_mfp, zeta: ``(B,)``.
        sigma_min: ``sigma(M_min(z))`` at ``z = 0``, ``(B, Z)``.
        sigma_r: ``sigma(R)`` at ``z = 0`` for ``radii``, ``(B, len(radii))``.
        sigma_mfp: ``sigma(R_mfp)``, ``(B,)``.
        growth: ``D(z)``, ``(B, Z)``.
        fcoll_mean: global collapsed fraction above ``M_min(z)``, ``(B, Z)``.

    Returns:
        Ionised fraction ``(B, Z, n, n, n)`` in ``[0, 1]``.
    """
    n = delta0_k.shape[-3]
    b, z = growth.shape
    kx, ky, kz = wavenumbers(n, box, device=delta0_k.device)
    kmag = torch.sqrt(kx**2 + ky**2 + kz**2)
    dtype = delta0_k.real.dtype
    barrier = (DELTA_C / growth).to(torch.float64)  # (B, Z)
    ionised = torch.zeros(b, z, n, n, n, dtype=torch.bool, device=delta0_k.device)

    def smoothed(window: Tensor) -> Tensor:
        return torch.fft.irfftn(delta0_k * window.to(dtype), s=(n, n, n), dim=(-3, -2, -1))

    def threshold(field: Tensor, sig_r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return _threshold(field, sig_r, barrier, sigma_min, fcoll_mean, zeta)

    # radii of the fixed grid, largest first (order does not matter for "any R")
    for j in range(len(radii) - 1, 0, -1):
        active = radii[j] < r_mfp  # (B,)
        if not bool(active.any()):
            continue
        field = smoothed(tophat_window(kmag * radii[j]))
        thr, _, _ = threshold(field, sigma_r[:, j])
        thr = torch.where(active[:, None], thr, torch.full_like(thr, math.inf))
        ionised |= field >= thr.to(dtype)[:, :, None, None, None]
    # the row's own R_mfp
    field = smoothed(tophat_window(kmag * r_mfp.to(torch.float64)[:, None, None, None, None]))
    thr, _, _ = threshold(field, sigma_mfp)
    ionised |= field >= thr.to(dtype)[:, :, None, None, None]
    # the cell scale: flag, then partial ionisation of the remaining cells
    field = smoothed(tophat_window(kmag * radii[0]))
    thr, s2, norm = threshold(field, sigma_r[:, 0])
    ionised |= field >= thr.to(dtype)[:, :, None, None, None]
    arg = barrier[:, :, None, None, None].to(dtype) - field
    fcoll = torch.erfc(arg / torch.sqrt(2 * s2).to(dtype)[:, :, None, None, None])
    partial = (zeta[:, None] * norm).to(dtype)[:, :, None, None, None] * fcoll
    return torch.where(ionised, torch.ones_like(partial), partial.clamp(0.0, 1.0))



def _threshold(field: Tensor, sig_r: Tensor, barrier: Tensor, sigma_min: Tensor,
               fcoll_mean: Tensor, zeta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Smoothed-field threshold ``(B, Z)`` above which ``zeta f_coll norm >= 1`` for a field
    ``(B, Z', n, n, n)`` smoothed on the scale of ``sig_r (B,)``; with ``s2 = sigma_min^2 -
    sig_r^2`` and ``norm``, the rescaling to the global collapsed fraction (see
    :func:`excursion_set`)."""
    b, z = barrier.shape
    n = field.shape[-1]
    flat = field.reshape(b, field.shape[1], n**3)
    mean = flat.mean(-1).to(torch.float64).expand(b, z)
    var = flat.var(-1).to(torch.float64).expand(b, z)
    s2 = (sigma_min.to(torch.float64) ** 2 - sig_r.to(torch.float64)[:, None] ** 2)
    s2 = s2.clamp_min(1e-12)
    box_mean = torch.erfc((barrier - mean) / torch.sqrt(2 * (s2 + var)))
    norm = fcoll_mean.to(torch.float64) / box_mean.clamp_min(1e-300)
    target = 1 / (zeta.to(torch.float64)[:, None] * norm)  # f_coll needed
    thr = barrier - torch.sqrt(2 * s2) * _erfcinv(target.clamp(max=2.0 - 1e-16))
    thr = torch.where(target < 2.0, thr, torch.full_like(thr, math.inf))
    return thr, s2, norm

def t21_prefactor(z: Tensor, omega_m: Tensor, cosmo: Cosmology) -> Tensor:
    """``27 (Omega_b h^2 / 0.023) sqrt(0.15 / (Omega_m h^2) (1 + z) / 10)`` [mK]."""
    h2 = cosmo.h**2
    return 27.0 * (cosmo.omega_b * h2 / 0.023) * torch.sqrt(0.15 / (omega_m * h2) * (1 + z) / 10)


def brightness_temperature(x_hi: Tensor, density: Tensor, z: Tensor, omega_m: Tensor,
                           cosmo: Cosmology) -> Tensor:
    """21 cm brightness temperature [mK] in the ``T_S >> T_CMB`` limit, no velocity term.

    ``dT_b = 27 x_HI (1 + delta) (Omega_b h^2 / 0.023) sqrt(0.15 / (Omega_m h^2) (1 + z) / 10)``
    (Furlanetto, Oh & Briggs 2006, eq. 2.25; Mesinger et al. 2011, eq. 1).

    Args:
        x_hi: neutral fraction ``(..., n, n, n)``.
        density: ``1 + delta``, same shape.
        z, omega_m: broadcast against the leading dimensions ``(...)``.
    """
    pre = t21_prefactor(z, omega_m, cosmo)
    return x_hi * density * pre[..., None, None, None].to(x_hi.dtype)
