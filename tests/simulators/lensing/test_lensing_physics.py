"""Lensing physics against analytic results (float64 throughout)."""

from __future__ import annotations

import math

import pytest
import torch

from simulators.lensing import _physics as ph

D = torch.float64


def _points(n: int = 400, seed: int = 0, lo: float = 0.05, hi: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    r = lo + (hi - lo) * torch.rand(n, generator=g, dtype=D)
    a = 2 * math.pi * torch.rand(n, generator=g, dtype=D)
    return r * torch.cos(a), r * torch.sin(a)


def _t(v):
    return torch.tensor(v, dtype=D)


def _divergence(fn, x, y):
    """Half the divergence of the deflection, by autograd: the convergence."""
    x = x.clone().requires_grad_(True)
    y = y.clone().requires_grad_(True)
    ax, ay = fn(x, y)
    dax = torch.autograd.grad(ax.sum(), x, retain_graph=True)[0]
    day = torch.autograd.grad(ay.sum(), y)[0]
    return 0.5 * (dax + day)


def test_sis_deflection_is_theta_E_everywhere():
    x, y = _points()
    ax, ay = ph.sis(x, y, _t(1.3))
    # |alpha| = theta_E exactly; 1e-13 is float64 round-off of a few operations.
    torch.testing.assert_close(torch.hypot(ax, ay), torch.full_like(x, 1.3), rtol=1e-13, atol=0)


def test_round_sie_is_sis():
    x, y = _points()
    ax, ay = ph.sie(x, y, _t(1.1), _t(0.0), _t(0.0))
    bx, by = ph.sis(x, y, _t(1.1))
    # q = 1 goes through the t = sqrt(1 - q^2) >= 1e-4 floor: error (t z)^2/3 < 4e-9.
    torch.testing.assert_close(ax, bx, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(ay, by, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("e1,e2", [(0.2, -0.1), (-0.05, 0.3), (0.0, 0.25)])
def test_sie_critical_curve_has_mean_convergence_one(e1, e2):
    """For the SIE, gamma = kappa, so the critical curve is kappa = 1/2: the ellipse of
    product-average radius theta_E, of area pi theta_E^2, enclosing mass pi theta_E^2."""
    theta_E = _t(1.25)
    q, cos, sin = ph.ellipse_angles(_t(e1), _t(e2))
    t = torch.linspace(0, 2 * math.pi, 2001, dtype=D)[:-1]
    xr, yr = theta_E / q.sqrt() * torch.cos(t), theta_E * q.sqrt() * torch.sin(t)
    x, y = cos * xr - sin * yr, sin * xr + cos * yr
    fn = lambda a, b: ph.sie(a, b, theta_E, _t(e1), _t(e2))  # noqa: E731
    # (1) the Jacobian determinant of the lens map vanishes on that ellipse.
    jac = torch.func.vmap(torch.func.jacrev(
        lambda p: torch.stack(fn(p[0], p[1])) - p))(torch.stack([x, y], -1))
    det = torch.linalg.det(jac)
    assert det.abs().max() < 1e-9  # analytic zero; autograd of closed forms is exact to ~1e-12
    # (2) Gauss: div alpha = 2 kappa, so the enclosed mass is half the flux of alpha
    # through the curve; the periodic
    # trapezoid rule converges exponentially, 2000 points give ~1e-12.
    ax, ay = fn(x, y)
    dx_dt = -theta_E / q.sqrt() * torch.sin(t)
    dy_dt = theta_E * q.sqrt() * torch.cos(t)
    # outward normal * dl = (dy/dt', -dx/dt') in the rotated frame, rotated back.
    nxr, nyr = dy_dt, -dx_dt
    nx, ny = cos * nxr - sin * nyr, sin * nxr + cos * nyr
    flux = (ax * nx + ay * ny).sum() * (2 * math.pi / t.numel())
    mean_kappa = flux / 2 / (math.pi * theta_E ** 2)
    assert abs(float(mean_kappa) - 1.0) < 1e-9


@pytest.mark.parametrize("name", ["sie", "cored_sie", "epl", "epl_shallow", "nfw", "shear"])
def test_convergence_is_half_divergence_of_deflection(name):
    x, y = _points(300, seed=1, lo=0.1, hi=4.0)
    p = dict(theta_E=_t(1.2), e1=_t(0.15), e2=_t(-0.2), center_x=_t(0.1), center_y=_t(-0.05))
    if name == "sie":
        fn = lambda a, b: ph.sie(a, b, **p)  # noqa: E731
        kappa = ph.sie_convergence(x, y, **p)
    elif name == "cored_sie":
        fn = lambda a, b: ph.sie(a, b, **p, s_scale=_t(0.2))  # noqa: E731
        kappa = ph.sie_convergence(x, y, **p, s_scale=_t(0.2))
    elif name.startswith("epl"):
        g = _t(2.2 if name == "epl" else 1.7)
        fn = lambda a, b: ph.epl(a, b, p["theta_E"], g, p["e1"], p["e2"],  # noqa: E731
                                 p["center_x"], p["center_y"])
        kappa = ph.epl_convergence(x, y, p["theta_E"], g, p["e1"], p["e2"],
                                   p["center_x"], p["center_y"])
    elif name == "nfw":
        fn = lambda a, b: ph.nfw(a, b, _t(0.8), _t(0.6), _t(0.1), _t(0.2))  # noqa: E731
        kappa = ph.nfw_convergence(x, y, _t(0.8), _t(0.6), _t(0.1), _t(0.2))
    else:
        fn = lambda a, b: ph.shear(a, b, _t(0.05), _t(-0.03))  # noqa: E731
        kappa = torch.zeros_like(x)
    # Closed forms differentiated by autograd: agreement to float64 round-off (~1e-12).
    torch.testing.assert_close(_divergence(fn, x, y), kappa, rtol=1e-9, atol=1e-11)


def test_epl_with_isothermal_slope_is_sie():
    x, y = _points(300, seed=2)
    a = ph.epl(x, y, _t(1.3), _t(2.0), _t(0.2), _t(0.1))
    b = ph.sie(x, y, _t(1.3), _t(0.2), _t(0.1))
    # Independent formulas (hypergeometric series vs atan/atanh); the series is truncated
    # at f^48 ~ 1e-31, but the SIE's 1e-10 arcsec core shifts alpha by ~ s / r, up to
    # 6e-9 relative at r = 0.05 arcsec (lenstronomy's EPL and SIE differ by the same).
    torch.testing.assert_close(a[0], b[0], rtol=2e-8, atol=1e-12)
    torch.testing.assert_close(a[1], b[1], rtol=2e-8, atol=1e-12)


def test_nfw_deflection_at_scale_radius_and_series_branch():
    Rs, aRs = _t(0.9), _t(0.4)
    ax, ay = ph.nfw(Rs * torch.tensor([1.0, 0.0], dtype=D), torch.zeros(2, dtype=D), Rs, aRs)
    assert torch.allclose(torch.hypot(ax, ay)[0], aRs, rtol=1e-14)
    # Around X = 1 (series branch for |X^2 - 1| < 1e-3, closed forms outside) against
    # 30-digit mpmath values of F(X) = (1 - A(X)) / (X^2 - 1) and g(X) = ln(X/2) + A(X).
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30

    def A(X):
        X = mpmath.mpf(X)
        if X < 1:
            return mpmath.acosh(1 / X) / mpmath.sqrt(1 - X * X)
        if X > 1:
            return mpmath.acos(1 / X) / mpmath.sqrt(X * X - 1)
        return mpmath.mpf(1)

    X = torch.tensor([0.3, 0.9994, 0.9996, 1.0, 1.0004, 1.0006, 2.5], dtype=D)
    rho0 = aRs / (4 * Rs**2 * (1 + math.log(0.5)))
    kap = ph.nfw_convergence(X * Rs, torch.zeros_like(X), Rs, aRs) / (2 * rho0 * Rs)
    alx, _ = ph.nfw(X * Rs, torch.zeros_like(X), Rs, aRs)
    gx = alx * X / (4 * rho0 * Rs**2)
    for i, xv in enumerate(X.tolist()):
        a = A(xv)
        F = (1 - a) / (xv * xv - 1) if xv != 1.0 else mpmath.mpf(1) / 3
        g = mpmath.log(mpmath.mpf(xv) / 2) + a
        # series truncated at u^4/11 < 1e-13; closed forms lose ~1e-13 to cancellation.
        assert abs(float(kap[i]) - float(F)) < 1e-12 * abs(float(F))
        assert abs(float(gx[i]) - float(g)) < 1e-12 * abs(float(g))


def test_shear_jacobian():
    x, y = _points(10)
    x = x.clone().requires_grad_(True)
    ax, ay = ph.shear(x, y, _t(0.07), _t(-0.02))
    dax = torch.autograd.grad(ax.sum(), x)[0]
    assert torch.allclose(dax, torch.full_like(dax, 0.07))


def test_lens_equation_maps_sis_images_to_source():
    beta = torch.tensor([0.12, -0.07], dtype=D)
    u = beta / beta.norm()
    theta_E = _t(1.0)
    for sgn in (1.0, -1.0):
        img = u * (beta.norm() + sgn * theta_E)  # the two SIS images of a point source
        ax, ay = ph.sis(img[0], img[1], theta_E)
        back = torch.stack([img[0] - ax, img[1] - ay])
        torch.testing.assert_close(back, beta, rtol=0, atol=1e-14)


def _sis_pixel_mass(x, y, h):
    """Exact integral of 1/(2r) over the pixel [x-h, x+h] x [y-h, y+h] (theta_E = 1)."""
    def prim(a, b):  # antiderivative of 1/r: a asinh(b/a) + b asinh(a/b)
        return a * torch.asinh(b / a) + b * torch.asinh(a / b)

    def f(a, b):
        return prim(a, b)

    # integrate over the 4 quadrant pieces using |x| symmetry of 1/r
    x1, x2, y1, y2 = x - h, x + h, y - h, y + h

    def F(a, b):
        sa, sb = torch.sign(a), torch.sign(b)
        aa, bb = a.abs().clamp_min(1e-300), b.abs().clamp_min(1e-300)
        return sa * sb * f(aa, bb)

    return 0.5 * (F(x2, y2) - F(x1, y2) - F(x2, y1) + F(x1, y1))


def test_pixelated_deflection_of_gaussian_matches_analytic():
    n, dp, sigma, k0 = 96, 0.05, 0.3, 0.8
    x, y = ph.pixel_grid(n, dp)
    kappa = k0 * torch.exp(-(x * x + y * y) / (2 * sigma**2))
    ax, ay = ph.pixelated_deflection(kappa, ph.pixelated_deflection_kernel_fft(n, n, dp))
    r = torch.hypot(x, y)
    # circular: alpha = M(<r) / (pi r), M = 2 pi k0 sigma^2 (1 - exp(-r^2 / 2 sigma^2))
    exact = 2 * k0 * sigma**2 * (1 - torch.exp(-r * r / (2 * sigma**2))) / r
    ring = (r > 0.3) & (r < 2.0)
    rel = (torch.hypot(ax, ay) - exact).abs()[ring] / exact[ring]
    # Midpoint-rule error of the kernel sum, O((dp/sigma)^2) = 0.028 times a small
    # constant: measured 3.4e-3; the box holds all but e^-12 of the mass.
    assert rel.max() < 5e-3
    # ... and second order: halving the pixel size divides the error by ~4.
    x2, y2 = ph.pixel_grid(2 * n, dp / 2)
    kappa2 = k0 * torch.exp(-(x2 * x2 + y2 * y2) / (2 * sigma**2))
    bx, by = ph.pixelated_deflection(kappa2, ph.pixelated_deflection_kernel_fft(2 * n, 2 * n,
                                                                              dp / 2))
    r2 = torch.hypot(x2, y2)
    exact2 = 2 * k0 * sigma**2 * (1 - torch.exp(-r2 * r2 / (2 * sigma**2))) / r2
    ring2 = (r2 > 0.3) & (r2 < 2.0)
    rel2 = (torch.hypot(bx, by) - exact2).abs()[ring2] / exact2[ring2]
    assert 3.0 < float(rel.max() / rel2.max()) < 5.0


def test_pixelated_sis_matches_analytic_up_to_box_truncation():
    n, dp, theta_E = 128, 0.05, 1.0
    x, y = ph.pixel_grid(n, dp)
    # Pixel-averaged SIS convergence (exact mass per pixel), truncated to the inscribed disc:
    # by Newton's shell theorem in 2-D, the mass outside a circle deflects nothing inside
    # it, so inside the disc the only truncation error is the disc's pixelated edge.
    kappa = _sis_pixel_mass(x, y, dp / 2) / dp**2 * theta_E
    R = n * dp / 2
    r = torch.hypot(x, y)
    disc = torch.where(r < R, kappa, torch.zeros_like(kappa))
    kern = ph.pixelated_deflection_kernel_fft(n, n, dp)
    ax, ay = ph.pixelated_deflection(disc, kern)
    inner = (r > 10 * dp) & (r < 0.6 * R)
    err = (torch.hypot(ax, ay) - theta_E).abs()[inner]
    # Pixel-as-point-mass error ~ (dp/r)^2 / 24 at r > 10 dp plus the staircase edge of
    # the disc: measured 1.2e-3 (sampling 1/(2r) at pixel centres instead gives 2.6e-2).
    assert err.max() < 3e-3
    # Direction: radial (measured 4e-6 arcsec tangential).
    cross = (ax * y - ay * x).abs()[inner] / r[inner]
    assert cross.max() < 1e-4
    # The full square box (mass in its corners, beyond the disc) adds a deflection growing
    # outwards (an m = 4 mode, ~ r^3): measured 1.6e-3 at r < 0.3 R, 4e-2 near the edge.
    ax2, ay2 = ph.pixelated_deflection(kappa, kern)
    core = (r > 10 * dp) & (r < 0.3 * R)
    assert (torch.hypot(ax2, ay2) - theta_E).abs()[core].max() < 3e-3
    edge = (r > 0.85 * R) & (r < 0.95 * R)
    assert (torch.hypot(ax2, ay2) - theta_E).abs()[edge].max() > 1e-2


def test_sersic_conventions():
    amp, Re, n = _t(3.0), _t(0.4), _t(1.0)
    # amp is the surface brightness at R_sersic, on the ellipse sqrt(q x'^2 + y'^2 / q) = Re.
    e1, e2 = _t(0.2), _t(0.1)
    q, cos, sin = ph.ellipse_angles(e1, e2)
    t = torch.linspace(0, 2 * math.pi, 17, dtype=D)
    xr, yr = Re / q.sqrt() * torch.cos(t), Re * q.sqrt() * torch.sin(t)
    x, y = cos * xr - sin * yr, sin * xr + cos * yr
    torch.testing.assert_close(ph.sersic(x, y, amp, Re, n, e1, e2), amp.expand(17),
                               rtol=1e-12, atol=0)
    # Half of the flux inside Re (round profile, fine grid); b_n = 1.9992 n - 0.3271 is an
    # approximation good to ~0.5% in the enclosed fraction at n = 1.
    xs, ys = ph.pixel_grid(800, 0.01)
    sb = ph.sersic(xs, ys, amp, Re, n, _t(0.0), _t(0.0))
    inside = sb[torch.hypot(xs, ys) < Re].sum() / sb.sum()
    assert abs(float(inside) - 0.5) < 0.01


def test_psf_margin_makes_edges_right_and_conserves_flux():
    n, dp = 32, 0.1
    kernel = ph.gaussian_psf_kernel(0.3, dp)
    k = kernel.shape[-1]
    # a source just outside the field: its PSF wings must enter the edge pixels.
    def sb(x, y):
        return ph.gaussian_light(x, y, _t(1.0), _t(0.08), _t(1.65), _t(0.0))

    x, y = ph.pixel_grid(n, dp, 1, k // 2)
    kf, shape = ph.kernel_fft(kernel, n)
    img = ph.convolve_valid(sb(x, y) * dp**2, kf, shape, k)
    # reference: a much larger field, convolved directly, then cropped.
    big = 64
    xb, yb = ph.pixel_grid(big, dp)
    ref = torch.nn.functional.conv2d((sb(xb, yb) * dp**2)[None, None],
                                     kernel.flip(0, 1)[None, None], padding=k // 2)[0, 0]
    lo = (big - n) // 2
    torch.testing.assert_close(img, ref[lo:lo + n, lo:lo + n], rtol=0, atol=1e-14)
    assert img[:, -1].sum() > 1e-3  # light did arrive at the edge column
    # flux: a source in the middle keeps its total flux (to its pixel-sampling error).
    x, y = ph.pixel_grid(n, dp, 4, k // 2)
    mid = ph.bin_pixels(ph.gaussian_light(x, y, _t(1.0), _t(0.1)), 4) * dp**2
    assert abs(float(ph.convolve_valid(mid, kf, shape, k).sum()) - 1.0) < 1e-6


def test_bilinear_interpolation_reproduces_linear_maps():
    n, dp = 9, 0.2
    x, y = ph.pixel_grid(n, dp)
    lin = (1.0 + 2.0 * x - 0.5 * y)[None, None]
    g = torch.Generator().manual_seed(3)
    px = (torch.rand(1, 5, 5, generator=g, dtype=D) - 0.5) * 1.5
    py = (torch.rand(1, 5, 5, generator=g, dtype=D) - 0.5) * 1.5
    out = ph.bilinear(lin, px, py, dp)[0, 0]
    torch.testing.assert_close(out, 1.0 + 2.0 * px[0] - 0.5 * py[0], rtol=0, atol=1e-12)
    # no light outside a source map
    far = ph.bilinear(lin, torch.full((1, 1, 1), 5.0, dtype=D), torch.zeros(1, 1, 1, dtype=D), dp)
    assert float(far) == 0.0
