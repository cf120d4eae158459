"""Deflections (arcsec) and convergences of lens mass profiles (SIS, SIE, EPL, NFW, external
shear) and of pixelated convergence maps (conventions in :mod:`simulators.lensing._physics`).

Example:
    >>> import torch
    >>> ax, ay = sis(torch.tensor(3.0), torch.tensor(4.0), torch.tensor(1.5))
    >>> round(float(ax), 6), round(float(ay), 6)  # |alpha| = theta_E, radial
    (0.9, 1.2)
    >>> e0 = torch.tensor(0.0)
    >>> sx, sy = sie(torch.tensor(3.0), torch.tensor(4.0), torch.tensor(1.5), e0, e0)
    >>> round(float(sx), 6), round(float(sy), 6)  # a round SIE is the SIS
    (0.9, 1.2)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .geometry import ellipse_angles, rotate_in, rotate_out, shift

#: Core radius (arcsec) that makes the singular SIE finite at its centre (lenstronomy's).
SIE_CORE = 1e-10

#: Floor of ``sqrt(1 - q^2)`` in the SIE deflection: ``atan(t z) / t`` at ``t = 1e-4`` differs
#: from its round limit ``z`` by ``(t z)^2 / 3 < 4e-9`` relative (lenstronomy clamps ``q`` at
#: ``1 - 1e-8``, i.e. ``t >= 1.4e-4``).
_T_FLOOR = 1e-4


# --------------------------------------------------------------------------- mass profiles
def sis(x: Tensor, y: Tensor, theta_E: Tensor, center_x: Tensor | float = 0.0,
        center_y: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
    """Singular isothermal sphere: ``kappa = theta_E / (2 r)``, ``|alpha| = theta_E``."""
    dx, dy = shift(x, center_x), shift(y, center_y)
    r = torch.sqrt(dx * dx + dy * dy).clamp_min(1e-9)
    return theta_E * dx / r, theta_E * dy / r


def _sie_params(theta_E: Tensor, e1: Tensor, e2: Tensor, s_scale: Tensor | float):
    q, cos, sin = ellipse_angles(e1, e2)
    sq = torch.sqrt(q)
    # kappa = b / 2 [q^2 (s^2 + x^2) + y^2]^-1/2 in the major-axis frame equals lenstronomy's
    # theta_E / 2 [s_scale^2 + q x^2 + y^2 / q]^-1/2 for b = theta_E sqrt(q), s = s_scale/sqrt(q).
    return q, cos, sin, theta_E * sq, s_scale / sq


def sie(x: Tensor, y: Tensor, theta_E: Tensor, e1: Tensor, e2: Tensor,
        center_x: Tensor | float = 0.0, center_y: Tensor | float = 0.0,
        s_scale: Tensor | float = SIE_CORE) -> tuple[Tensor, Tensor]:
    """Deflection of the (optionally cored) singular isothermal ellipsoid.

    Convergence ``kappa = theta_E / 2 / sqrt(s_scale^2 + q x'^2 + y'^2 / q)`` in the frame of
    the major axis, so ``theta_E`` is the circularised (product-average) Einstein radius, as
    in lenstronomy's ``SIE``/``NIE``; ``s_scale`` defaults to lenstronomy's 1e-10 arcsec.

    Args:
        x, y: image-plane positions, arcsec.
        theta_E: Einstein radius, arcsec.
        e1, e2: ellipticity components.
        center_x, center_y: lens centre, arcsec.
        s_scale: core radius, arcsec.

    Returns:
        ``(alpha_x, alpha_y)`` in arcsec (broadcast shape of the inputs).

    References:
        Keeton (2001), eqs. (35)-(36); Kormann et al. (1994).
    """
    q, cos, sin, b, s = _sie_params(theta_E, e1, e2, s_scale)
    xr, yr = rotate_in(shift(x, center_x), shift(y, center_y), cos, sin)
    q2 = q * q
    psi = torch.sqrt(q2 * (s * s + xr * xr) + yr * yr)
    t = torch.sqrt((1.0 - q2).clamp_min(_T_FLOOR ** 2))
    bt = b / t
    ax = bt * torch.atan(t * xr / (psi + s))
    ay = bt * torch.atanh(t * yr / (psi + q2 * s))
    return rotate_out(ax, ay, cos, sin)


def sie_convergence(x: Tensor, y: Tensor, theta_E: Tensor, e1: Tensor, e2: Tensor,
                    center_x: Tensor | float = 0.0, center_y: Tensor | float = 0.0,
                    s_scale: Tensor | float = SIE_CORE) -> Tensor:
    """Convergence of :func:`sie` (dimensionless)."""
    q, cos, sin, b, s = _sie_params(theta_E, e1, e2, s_scale)
    xr, yr = rotate_in(shift(x, center_x), shift(y, center_y), cos, sin)
    return 0.5 * b / torch.sqrt(q * q * (s * s + xr * xr) + yr * yr)


def epl(x: Tensor, y: Tensor, theta_E: Tensor, gamma: Tensor, e1: Tensor, e2: Tensor,
        center_x: Tensor | float = 0.0, center_y: Tensor | float = 0.0,
        n_terms: int = 48) -> tuple[Tensor, Tensor]:
    """Deflection of the elliptical power law (EPL/PEMD).

    ``kappa = (3 - gamma) / 2 * (theta_E / sqrt(q x'^2 + y'^2 / q))^(gamma - 1)``; ``gamma = 2``
    is the SIE.  The hypergeometric function of Tessore & Metcalf (2015, eq. 23) is summed by
    their recurrence (eq. 28) with a fixed number of terms: the terms fall like
    ``((1 - q) / (1 + q))^n``, so 48 terms reach 1e-12 relative for ``q >= 0.3``.

    Args:
        x, y: positions, arcsec.
        theta_E: Einstein radius, arcsec.
        gamma: logarithmic slope of the 3-D density (1 < gamma < 3).
        e1, e2: ellipticity.
        center_x, center_y: centre, arcsec.
        n_terms: terms of the series.

    Returns:
        ``(alpha_x, alpha_y)``, arcsec.
    """
    q, cos, sin = ellipse_angles(e1, e2)
    b = theta_E * torch.sqrt(q)
    t = gamma - 1.0
    xr, yr = rotate_in(shift(x, center_x), shift(y, center_y), cos, sin)
    zx, zy = q * xr, yr
    r = torch.sqrt(zx * zx + zy * zy).clamp_min(1e-9)
    c1, s1 = zx / r, zy / r
    c2, s2 = c1 * c1 - s1 * s1, 2.0 * c1 * s1
    f = (1.0 - q) / (1.0 + q)
    om_x, om_y = c1, s1
    sum_x, sum_y = c1, s1
    for n in range(1, n_terms):
        fac = -f * (2.0 * n - (2.0 - t)) / (2.0 * n + (2.0 - t))
        om_x, om_y = fac * (c2 * om_x - s2 * om_y), fac * (s2 * om_x + c2 * om_y)
        sum_x, sum_y = sum_x + om_x, sum_y + om_y
    amp = 2.0 * b / (1.0 + q) * (b / r) ** (t - 1.0)
    return rotate_out(amp * sum_x, amp * sum_y, cos, sin)


def epl_convergence(x: Tensor, y: Tensor, theta_E: Tensor, gamma: Tensor, e1: Tensor,
                    e2: Tensor, center_x: Tensor | float = 0.0,
                    center_y: Tensor | float = 0.0) -> Tensor:
    """Convergence of :func:`epl`."""
    q, cos, sin = ellipse_angles(e1, e2)
    xr, yr = rotate_in(shift(x, center_x), shift(y, center_y), cos, sin)
    r = torch.sqrt(q * xr * xr + yr * yr / q)
    return (3.0 - gamma) / 2.0 * (theta_E / r) ** (gamma - 1.0)


def _nfw_a(X: Tensor) -> tuple[Tensor, Tensor]:
    """``A(X) = arccosh(1/X)/sqrt(1-X^2)`` (``arccos(1/X)/sqrt(X^2-1)`` above 1) and
    ``(1 - A) / (X^2 - 1)``, both continued through ``X = 1`` by their series in
    ``u = X^2 - 1`` (used for ``|u| < 1e-3``; truncation error below 1e-12)."""
    u = X * X - 1.0
    near = u.abs() < 1e-3
    lo = (u < 0) & ~near
    hi = (u > 0) & ~near
    v_lo = torch.sqrt(torch.where(lo, -u, torch.ones_like(u)))
    v_hi = torch.sqrt(torch.where(hi, u, torch.ones_like(u)))
    a_lo = torch.atanh(v_lo.clamp_max(1.0 - torch.finfo(X.dtype).eps)) / v_lo
    a_hi = torch.atan(v_hi) / v_hi
    a_near = 1.0 - u / 3.0 + u * u / 5.0 - u ** 3 / 7.0
    a = torch.where(lo, a_lo, torch.where(hi, a_hi, a_near))
    f_near = 1.0 / 3.0 - u / 5.0 + u * u / 7.0 - u ** 3 / 9.0
    f = torch.where(near, f_near, (1.0 - a) / torch.where(near, torch.ones_like(u), u))
    return a, f


def _nfw_rho0(Rs: Tensor, alpha_Rs: Tensor) -> Tensor:
    return alpha_Rs / (4.0 * Rs * Rs * (1.0 + math.log(0.5)))


def nfw(x: Tensor, y: Tensor, Rs: Tensor, alpha_Rs: Tensor, center_x: Tensor | float = 0.0,
        center_y: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
    """Deflection of the spherical NFW profile, lenstronomy's ``(Rs, alpha_Rs)`` form.

    ``alpha_Rs`` is the deflection (arcsec) at the scale radius ``Rs`` (arcsec);
    ``|alpha|(R) = 4 rho0 Rs^2 g(X) / X`` with ``X = R / Rs`` and
    ``g(X) = ln(X / 2) + A(X)`` (Wright & Brainerd 2000; Keeton 2001).
    """
    dx, dy = shift(x, center_x), shift(y, center_y)
    r = torch.sqrt(dx * dx + dy * dy).clamp_min(1e-8)
    X = (r / Rs).clamp_min(1e-6)
    a, _ = _nfw_a(X)
    g = torch.log(X / 2.0) + a
    fac = 4.0 * _nfw_rho0(Rs, alpha_Rs) * Rs * g / (X * X)
    return fac * dx, fac * dy


def nfw_convergence(x: Tensor, y: Tensor, Rs: Tensor, alpha_Rs: Tensor,
                    center_x: Tensor | float = 0.0, center_y: Tensor | float = 0.0) -> Tensor:
    """Convergence of :func:`nfw`: ``2 rho0 Rs (1 - A(X)) / (X^2 - 1)``."""
    dx, dy = shift(x, center_x), shift(y, center_y)
    X = (torch.sqrt(dx * dx + dy * dy) / Rs).clamp_min(1e-6)
    _, f = _nfw_a(X)
    return 2.0 * _nfw_rho0(Rs, alpha_Rs) * Rs * f


def shear(x: Tensor, y: Tensor, gamma1: Tensor, gamma2: Tensor, ra_0: Tensor | float = 0.0,
          dec_0: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
    """External shear, potential ``(gamma1 (x^2 - y^2) + 2 gamma2 x y) / 2`` about ``(ra_0,
    dec_0)`` (lenstronomy's ``SHEAR``)."""
    dx, dy = shift(x, ra_0), shift(y, dec_0)
    return gamma1 * dx + gamma2 * dy, gamma2 * dx - gamma1 * dy


# ------------------------------------------------------------------- pixelated convergence
def pixelated_deflection_kernel_fft(ny: int, nx: int, pixel_scale: float, *,
                                    dtype: torch.dtype = torch.float64,
                                    device: torch.device | str | None = None
                                    ) -> tuple[Tensor, Tensor]:
    """Real FFTs of the deflection kernels ``dA (x, y) / (pi r^2)`` for a ``(ny, nx)`` map.

    The kernels are tabulated at the exact pixel offsets ``-(n-1)..(n-1)`` (no half-pixel
    shift; the zero offset contributes nothing) and zero-padded to ``(2 ny, 2 nx)``, which
    makes the circular convolution equal to the linear one on the map's own pixels.

    Returns:
        ``(kx_fft, ky_fft)``, each ``(2 ny, 2 nx // 2 + 1)`` complex.
    """
    iy = torch.arange(-(ny - 1), ny, dtype=torch.float64, device=device) * pixel_scale
    ix = torch.arange(-(nx - 1), nx, dtype=torch.float64, device=device) * pixel_scale
    yy, xx = torch.meshgrid(iy, ix, indexing="ij")
    r2 = xx * xx + yy * yy
    r2[ny - 1, nx - 1] = 1.0
    norm = pixel_scale * pixel_scale / math.pi
    kx, ky = norm * xx / r2, norm * yy / r2
    kx[ny - 1, nx - 1] = 0.0
    ky[ny - 1, nx - 1] = 0.0
    shape = (2 * ny, 2 * nx)
    return (torch.fft.rfft2(kx.to(dtype), s=shape), torch.fft.rfft2(ky.to(dtype), s=shape))


def pixelated_deflection(kappa: Tensor, kernels: tuple[Tensor, Tensor]
                         ) -> tuple[Tensor, Tensor]:
    """Deflection on the pixel centres of a convergence map, by FFT convolution.

    ``alpha(x) = (1/pi) sum_k kappa_k dA (x - x_k) / |x - x_k|^2`` with zero padding, i.e.
    the mass outside the map is zero (so the map must contain the mass that matters).

    Args:
        kappa: convergence ``(*B, ny, nx)``.
        kernels: output of :func:`pixelated_deflection_kernel_fft` for ``(ny, nx)``.

    Returns:
        ``(alpha_x, alpha_y)``, each ``(*B, ny, nx)``, arcsec.
    """
    ny, nx = kappa.shape[-2:]
    shape = (2 * ny, 2 * nx)
    kf = torch.fft.rfft2(kappa, s=shape)
    out = []
    for k in kernels:
        full = torch.fft.irfft2(kf * k, s=shape)
        out.append(full[..., ny - 1: 2 * ny - 1, nx - 1: 2 * nx - 1])
    return out[0], out[1]
