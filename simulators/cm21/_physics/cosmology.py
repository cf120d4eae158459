"""The cosmological model of the 21 cm simulator: flat LCDM background, the linear matter
power spectrum and halo abundance.

Units: comoving distances in Mpc (not Mpc/h), wavenumbers in 1/Mpc, masses in solar masses.
``omega_m`` is a tensor (it may vary per row); the other numbers are those of
:class:`Cosmology`.

Example:
    >>> import torch
    >>> float(growth_factor(torch.tensor(1.0), torch.tensor(1.0)))  # EdS: D = a
    0.5
    >>> om = torch.tensor(0.3111, dtype=torch.float64)
    >>> h = Cosmology().h
    >>> round(float(sigma_tophat(torch.tensor(8.0 / h), om, Cosmology())), 4)  # sigma_8
    0.8102
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
