"""Pure torch functions of the semi-numerical 21 cm model (no state, batched, device-agnostic).

Units: comoving distances in Mpc (not Mpc/h), wavenumbers in 1/Mpc, masses in solar masses,
temperatures in K, brightness temperatures in mK.  The matter density ``omega_m`` is a tensor
(it may vary per row); the other cosmological numbers are the floats of :class:`Cosmology`.

Contents:
    * background: :func:`hubble_e`, :func:`growth_factor`, :func:`comoving_distance`,
      :func:`redshift_at_distance`;
    * linear power: :func:`eh98_transfer`, :func:`linear_power`, :func:`sigma_tophat`;
    * haloes: :func:`virial_mass`, :func:`fcoll_ps`, :func:`fcoll_st`;
    * fields: :func:`wavenumbers`, :func:`gaussian_field`, :func:`zeldovich_displacement`,
      :func:`cic_deposit`, :func:`tophat_window`;
    * reionisation: :func:`excursion_set`, :func:`brightness_temperature`, :func:`t21_prefactor`.

References:
    Eisenstein & Hu (1998), ApJ 496, 605 (no-wiggle transfer function, eqs. 26-31).
    Barkana & Loeb (2001), Phys. Rep. 349, 125 (virial mass-temperature relation, eq. 26).
    Sheth & Tormen (1999), MNRAS 308, 119; Press & Schechter (1974); Bond et al. (1991)
    and Lacey & Cole (1993) (conditional collapsed fraction).
    Furlanetto, Zaldarriaga & Hernquist (2004), ApJ 613, 1 (excursion-set bubbles).
    Mesinger & Furlanetto (2007), ApJ 669, 663; Mesinger, Furlanetto & Cen (2011), MNRAS
    411, 955 (21cmFAST: ionisation criterion, radii stepping, T_S >> T_CMB dT_b).
    Hockney & Eastwood (1981) (cloud-in-cell assignment).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import Tensor

C_KM_S = 299792.458
RHO_CRIT_H2 = 2.77536627e11  # critical density / h^2 [Msun / Mpc^3]
DELTA_C = 1.686  # linear collapse threshold (spherical collapse, EdS value)
# Sheth-Tormen mass-function constants as refit by Jenkins et al. (2001) and used by 21cmFAST
# (Sheth, Mo & Tormen 2001 form): A = 0.353, a = 0.73, p = 0.175.
ST_A, ST_a, ST_p = 0.353, 0.73, 0.175

_GL_X, _GL_W = np.polynomial.legendre.leggauss(96)


@dataclasses.dataclass(frozen=True)
class Cosmology:
    """Fixed cosmological numbers (Planck 2018 TT,TE,EE+lowE+lensing, flat LCDM).

    ``omega_m`` (total matter) is not here: it is a tensor argument so that it can be a
    per-row parameter.
    """

    h: float = 0.6766
    omega_b: float = 0.04897
    n_s: float = 0.9665
    sigma_8: float = 0.8102
    t_cmb: float = 2.7255


def _gl(a: Tensor, b: Tensor, fn) -> Tensor:
    """Gauss-Legendre integral of ``fn`` over ``[a, b]`` (broadcast; 96 nodes)."""
    x = torch.as_tensor(_GL_X, dtype=a.dtype, device=a.device)
    w = torch.as_tensor(_GL_W, dtype=a.dtype, device=a.device)
    half = (b - a)[..., None] / 2
    t = (a[..., None] + b[..., None]) / 2 + half * x
    return (half * w * fn(t)).sum(-1)


def hubble_e(z: Tensor, omega_m: Tensor) -> Tensor:
    """Dimensionless Hubble rate ``E(z) = H(z)/H0`` of flat LCDM (radiation neglected)."""
    return torch.sqrt(omega_m * (1 + z) ** 3 + 1 - omega_m)


def growth_factor(z: Tensor, omega_m: Tensor) -> Tensor:
    """Linear growth factor ``D(z)`` normalised to ``D(0) = 1`` (broadcasting).

    ``D(a) ∝ E(a) ∫_0^a da' / (a' E(a'))^3`` (Heath 1977), exact for flat LCDM with
    pressureless matter; ``D = a`` for ``omega_m = 1``.
    """
    z, omega_m = torch.broadcast_tensors(torch.as_tensor(z), torch.as_tensor(omega_m))
    z = z.to(torch.float64) if not z.is_floating_point() else z
    omega_m = omega_m.to(z)

    def unnorm(a: Tensor) -> Tensor:
        om = omega_m[..., None]

        def integrand(ap: Tensor) -> Tensor:
            return (om / ap + (1 - om) * ap**2) ** -1.5

        ea = torch.sqrt(omega_m * a**-3 + 1 - omega_m)
        return ea * _gl(torch.zeros_like(a), a, integrand)

    return unnorm(1 / (1 + z)) / unnorm(torch.ones_like(z))


def comoving_distance(z: Tensor, omega_m: Tensor, h: float) -> Tensor:
    """Line-of-sight comoving distance to redshift ``z`` [Mpc]."""
    z, omega_m = torch.broadcast_tensors(torch.as_tensor(z), torch.as_tensor(omega_m))
    om = omega_m[..., None]
    dh = C_KM_S / (100.0 * h)
    return dh * _gl(torch.zeros_like(z), z, lambda t: 1 / torch.sqrt(om * (1 + t) ** 3 + 1 - om))


def redshift_at_distance(dist: Tensor, omega_m: Tensor, h: float, z_max: float = 60.0,
                         num: int = 6001) -> Tensor:
    """Inverse of :func:`comoving_distance`: ``dist (N, M)`` [Mpc] and ``omega_m (N,)`` give
    ``z (N, M)``.

    Linear interpolation on a grid of ``num`` redshifts in ``[0, z_max]`` (cumulative
    trapezoid, error < 1e-6 in z for the default grid).
    """
    zg = torch.linspace(0, z_max, num, dtype=torch.float64, device=dist.device)
    om = omega_m.to(torch.float64)[:, None]
    inv_e = 1 / torch.sqrt(om * (1 + zg) ** 3 + 1 - om)  # (N, G)
    dz = zg[1] - zg[0]
    cum = torch.cat([torch.zeros_like(inv_e[:, :1]),
                     torch.cumsum((inv_e[:, 1:] + inv_e[:, :-1]) * dz / 2, dim=1)], dim=1)
    dg = cum * (C_KM_S / (100.0 * h))
    d = dist.to(torch.float64).contiguous()
    idx = torch.searchsorted(dg.contiguous(), d).clamp(1, num - 1)
    d0, d1 = dg.gather(1, idx - 1), dg.gather(1, idx)
    w = (d - d0) / (d1 - d0)
    return (zg[idx - 1] + w * dz).to(dist.dtype)


# -- linear power spectrum ------------------------------------------------------------------
def eh98_transfer(k: Tensor, omega_m: Tensor, cosmo: Cosmology) -> Tensor:
    """Eisenstein & Hu (1998) no-wiggle transfer function ``T(k)``, ``k`` in 1/Mpc.

    Eqs. (26)-(31): shape parameter with baryon suppression, no acoustic oscillations.
    """
    h = cosmo.h
    om_h2 = omega_m * h**2
    ob_h2 = cosmo.omega_b * h**2
    fb = cosmo.omega_b / omega_m
    theta = cosmo.t_cmb / 2.7
    s = 44.5 * torch.log(9.83 / om_h2) / math.sqrt(1 + 10 * ob_h2**0.75)  # Mpc, eq. 26
    alpha = 1 - 0.328 * torch.log(431 * om_h2) * fb + 0.38 * torch.log(22.3 * om_h2) * fb**2
    gamma = omega_m * h * (alpha + (1 - alpha) / (1 + (0.43 * k * s) ** 4))  # eq. 30
    q = k / h * theta**2 / gamma  # eq. 28 (k/h in h/Mpc)
    l0 = torch.log(2 * math.e + 1.8 * q)
    c0 = 14.2 + 731 / (1 + 62.5 * q)
    return l0 / (l0 + c0 * q**2)


def tophat_window(x: Tensor) -> Tensor:
    """Fourier transform of the real-space spherical top hat, ``3 (sin x - x cos x) / x^3``."""
    small = x.abs() < 1e-2
    xs = torch.where(small, torch.ones_like(x), x)
    full = 3 * (torch.sin(xs) - xs * torch.cos(xs)) / xs**3
    return torch.where(small, 1 - x**2 / 10, full)


_LNK = torch.linspace(math.log(1e-5), math.log(1e4), 4096, dtype=torch.float64)


def _sigma2_unnormed(r: Tensor, omega_m: Tensor, cosmo: Cosmology) -> Tensor:
    """``∫ dlnk k^3 k^{n_s} T^2 W^2(kR) / 2 pi^2`` (no amplitude); ``r``/``omega_m`` broadcast."""
    lnk = _LNK.to(r.device)
    k = torch.exp(lnk)
    om = omega_m[..., None]
    pk = k**cosmo.n_s * eh98_transfer(k, om, cosmo) ** 2
    integrand = k**3 * pk * tophat_window(k * r[..., None]) ** 2 / (2 * math.pi**2)
    return torch.trapezoid(integrand, lnk, dim=-1)


def power_amplitude(omega_m: Tensor, cosmo: Cosmology) -> Tensor:
    """Amplitude ``A`` of ``P(k) = A k^n_s T(k)^2`` [Mpc^3] giving ``sigma(8 Mpc/h) = sigma_8``."""
    omega_m = omega_m.to(torch.float64)
    r8 = torch.full_like(omega_m, 8.0 / cosmo.h)
    return cosmo.sigma_8**2 / _sigma2_unnormed(r8, omega_m, cosmo)


def linear_power(k: Tensor, omega_m: Tensor, cosmo: Cosmology) -> Tensor:
    """Linear matter power spectrum at ``z = 0`` [Mpc^3]; ``k`` [1/Mpc] broadcasts with
    ``omega_m``."""
    amp = power_amplitude(torch.as_tensor(omega_m, dtype=torch.float64), cosmo)
    return amp * k**cosmo.n_s * eh98_transfer(k, omega_m, cosmo) ** 2


def sigma_tophat(r: Tensor, omega_m: Tensor, cosmo: Cosmology) -> Tensor:
    """rms linear density contrast at ``z = 0`` in spheres of radius ``r`` [Mpc] (broadcast)."""
    r, omega_m = torch.broadcast_tensors(r.to(torch.float64), omega_m.to(torch.float64))
    return torch.sqrt(power_amplitude(omega_m, cosmo) * _sigma2_unnormed(r, omega_m, cosmo))


def mass_to_radius(m: Tensor, omega_m: Tensor, cosmo: Cosmology) -> Tensor:
    """Lagrangian radius [Mpc] of mass ``m`` [Msun]."""
    rho = omega_m * RHO_CRIT_H2 * cosmo.h**2
    return (3 * m / (4 * math.pi * rho)) ** (1 / 3)


# -- haloes -----------------------------------------------------------------------------------
def virial_mass(t_vir: Tensor, z: Tensor, omega_m: Tensor, cosmo: Cosmology,
                mu: float = 0.6) -> Tensor:
    """Halo mass [Msun] of virial temperature ``t_vir`` [K] at redshift ``z``.

    Barkana & Loeb (2001) eq. (26) with ``Delta_c = 18 pi^2 + 82 d - 39 d^2`` (Bryan & Norman
    1998), ``d = Omega_m(z) - 1``; ``mu = 0.6`` (ionised gas, valid above 1e4 K).
    """
    omz = omega_m * (1 + z) ** 3 / hubble_e(z, omega_m) ** 2
    d = omz - 1
    delta_c = 18 * math.pi**2 + 82 * d - 39 * d**2
    return (1e8 / cosmo.h * (mu / 0.6) ** -1.5
            * (omega_m / omz * delta_c / (18 * math.pi**2)) ** -0.5
            * (t_vir / 1.98e4) ** 1.5 * ((1 + z) / 10) ** -1.5)


def fcoll_ps(nu: Tensor) -> Tensor:
    """Press-Schechter collapsed fraction above peak height ``nu = delta_c / sigma(M) D``."""
    return torch.erfc(nu / math.sqrt(2))


def fcoll_st(nu: Tensor) -> Tensor:
    """Sheth-Tormen collapsed fraction above peak height ``nu`` (closed form).

    ``∫_nu^inf A sqrt(2a/pi) [1 + (a v^2)^-p] exp(-a v^2 / 2) dv
    = A [erfc(sqrt(a/2) nu) + 2^-p Gamma(1/2 - p) Q(1/2 - p, a nu^2 / 2) / sqrt(pi)]``.
    """
    s = torch.as_tensor(0.5 - ST_p, dtype=nu.dtype, device=nu.device)
    tail = torch.special.gammaincc(s, ST_a * nu**2 / 2)
    return ST_A * (torch.erfc(math.sqrt(ST_a / 2) * nu)
                   + 2**-ST_p * math.gamma(0.5 - ST_p) / math.sqrt(math.pi) * tail)


# -- fields -----------------------------------------------------------------------------------
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


# -- reionisation -----------------------------------------------------------------------------
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
    ncell = n**3
    barrier = (DELTA_C / growth).to(torch.float64)  # (B, Z)
    ionised = torch.zeros(b, z, n, n, n, dtype=torch.bool, device=delta0_k.device)

    def smoothed(window: Tensor) -> Tensor:
        return torch.fft.irfftn(delta0_k * window.to(dtype), s=(n, n, n), dim=(-3, -2, -1))

    def threshold(field: Tensor, sig_r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Smoothed-field threshold above which ``zeta f_coll norm >= 1``; ``(B, Z)``."""
        flat = field.reshape(b, field.shape[1], ncell)
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


# -- observational effects ----------------------------------------------------------------------
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
