"""Pure torch physics of the conducting gas-sphere model of a star cluster.

The cluster is a self-gravitating, heat-conducting gas sphere (Lynden-Bell & Eggleton
1980; Heggie & Ramamani 1989; Breen & Heggie 2012).  In N-body units (``G = M = 1``,
total mass ``M``, star mass ``m = 1/N``) and Lagrangian mass coordinate ``M_r``:

    dr/dM_r     = 1 / (4 pi r^2 rho)                              (mass)
    dp/dM_r     = -G M_r / (4 pi r^4),     p = rho sigma^2         (hydrostatic equilibrium)
    L / (4 pi r^2) = -k_c C G m ln(Lambda) (rho/sigma) d sigma^2/dr  (conduction)
    sigma^2 D/Dt ln(sigma^3 / rho) = -dL/dM_r + eps               (first law)

(the Lynden-Bell & Eggleton flux, conductivity ~ rho lambda_J^2 / t_r, written out with the
Jeans length and the local relaxation time), Spitzer's local relaxation time
``t_r = 0.34 sigma^3 / (G^2 m rho ln Lambda)`` (Spitzer 1987, eq. 2-62) for the time step
control and the stochastic heating, Coulomb logarithm
``ln Lambda = ln(gamma N)`` with ``gamma = 0.11`` (Giersz & Heggie 1994), the conductivity
constant ``C = 0.104`` (calibrated by Heggie & Stevenson 1988 on the Fokker-Planck rate of
self-similar collapse), and the three-body binary energy generation per unit mass
``eps = alpha G^5 m^3 rho^2 / sigma^7`` with ``alpha = 90`` (Heggie 1989; the value used by
Breen & Heggie 2012; Heggie & Ramamani 1989 and Goodman 1987 use 85-90).  ``sigma`` is the
one-dimensional velocity dispersion.

The conduction prefactor ``k_c = 3`` is the single-component form of Heggie & Aarseth's
(1992, MNRAS 257, 513) equation (24), the gas model's conduction law with the conductivity
constant ``C``.  Where the project's literature search (stored web pages, documentation and
public code; the papers' full texts are not among them) found each constant:

* ``k_c = 3`` and ``C = 0.104`` -- a public gas-model code that reproduces Heggie & Aarseth
  (1992) (``hypermania/cluster-hydro-sim`` at commit ``637a1dc``: ``docs/heggie-reproduction.tex``
  "We use the Heggie--Ramamani conductivity C = 0.104, also documented in Breen & Heggie
  (2012)", and the unit conversion of their eq. (24) in
  ``script/mathematica/heggie_units.wls``).  Its dimensionless flux ``-rho c_2 d sqrt(u)/dr``
  with ``c_2 = 2 sqrt(2/3) C``, ``u = 3 sigma^2 / 2`` and time unit
  ``r_0 / (3 (m / M_0) ln Lambda sqrt(G M_0 / r_0))`` is, in physical units,
  ``L / (4 pi r^2) = -6 C G m ln(Lambda) rho d sigma / dr = -3 C G m ln(Lambda) (rho / sigma)
  d sigma^2 / dr``: ``k_c = 3`` (derivation in ``docs/simulators/cluster.md``).  With it
  this model collapses at 16.6 t_rh(0) (80 shells; 16.1 with 120) against 15.7 for the
  Fokker-Planck model (Cohn 1980), and oscillates after collapse for ``N >= 1e4`` and not
  for ``N <= 7e3`` (40 and 60 shells), against the published threshold of ~7,000;
* ``gamma = 0.11`` -- the gaseous-model code SPEDI of Spurzem and collaborators
  (``pau-amaro-seoane/gaseous-model``, ``readpm.f`` at commit ``b53a22d``) sets
  ``XCOUL = DLOG(GAMMA*XNTOT)`` with "Standard Value of 0.11 for 1-component system", and
  its Plummer input deck (``Simula_BH_test/kug1.dat``) uses ``GAMMA= 0.11``;
* the self-similar halo ``rho ~ r^-2.21`` of the gas model (Lynden-Bell & Eggleton 1980,
  abstract; 2.23 for the anisotropic gas model, Louis & Spurzem 1991, abstract) --
  reproduced by this model (-2.21, ``tests/simulators/cluster``);
* ``alpha = 90`` -- not found in any stored text: the value as recalled.  It acts on the
  model only through ``alpha * heat_scale``, and ``heat_scale`` is a parameter of the
  simulator (LogUniform(0.5, 2)), so the prior covers 45-180.

An earlier version used ``k_c = 2.7``, a calibration (collapse at 18.4 t_rh(0), oscillation
threshold between 7e3 and 2e4); the recalled form ``27 sqrt(pi) / 10 = 4.79`` collapses at
10.4 t_rh(0), 1.5 times faster than the Fokker-Planck models.

Discretisation: ``K`` Lagrangian shells; radii ``r_k`` at shell boundaries, ``sigma^2_k``
and ``rho_k`` at shell centres; backward Euler in time for all equations at once
(Henyey-type fully implicit scheme).  The unknowns ``(ln r_k, ln sigma^2_k)`` are found by
Newton's method; the Jacobian is banded (shell ``k``'s equations involve shells ``k-2 ..
k+1``), so it is assembled from 8 directional differences (a 4-colouring of the band,
Curtis, Powell & Reid 1974) and solved as a batched linear system on the input's device.

Stochastic heating: binary heating in a real cluster comes in discrete events.  The binary
energy input over a step ``dt`` is multiplied by a log-normal factor of mean 1 and variance
``a^2 t_rc / dt`` (``t_rc`` the central relaxation time), the discretisation of a white-
noise modulation of the heating rate with ``a^2`` units of variance per central relaxation
time: ``a`` is about ``1 / sqrt(number of heating events per t_rc)``.  ``a = 0`` gives the
deterministic gas model.

References:
    Lynden-Bell & Eggleton (1980), MNRAS 191, 483.
    Heggie & Stevenson (1988), MNRAS 230, 223 (C = 0.104).
    Heggie & Aarseth (1992), MNRAS 257, 513, eq. (24) (the conduction law, k_c = 3).
    Heggie & Ramamani (1989), MNRAS 237, 757.
    Louis & Spurzem (1991), MNRAS 251, 408 (anisotropic gas model, alpha = 2.23).
    Cohn (1980), ApJ 242, 765 (Fokker-Planck collapse, 15.7 t_rh(0)).
    Goodman (1987), ApJ 313, 576 (gravothermal oscillations, N_crit ~ 7000).
    Giersz & Heggie (1994), MNRAS 268, 257 (gamma = 0.11).
    Breen & Heggie (2012), MNRAS 420, 309; MNRAS 425, 2493.
    Spitzer (1987), Dynamical Evolution of Globular Clusters (t_r, t_rh).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

G = 1.0
C_COND = 0.104  # conductivity constant (Heggie & Stevenson 1988)
GAMMA_COULOMB = 0.11  # ln Lambda = ln(gamma N) (Giersz & Heggie 1994)
ALPHA_BINARY = 90.0  # eps = alpha G^5 m^3 rho^2 / sigma^7 (Breen & Heggie 2012)
T_R_COEFF = 0.34  # local relaxation time coefficient (Spitzer 1987)
T_RH_COEFF = 0.138  # half-mass relaxation time coefficient (Spitzer 1987, eq. 2-63)
PLUMMER_A = 3.0 * math.pi / 16.0  # Plummer scale radius in Henon units (E = -1/4)
PLUMMER_RH = PLUMMER_A / math.sqrt(2.0 ** (2.0 / 3.0) - 1.0)  # half-mass radius 0.7686
COND_PREFACTOR = 3.0  # k_c in the conduction law (Heggie & Aarseth 1992, eq. 24; see the docstring)
N_COLORS = 4  # band of the Jacobian: shells k-2..k+1


@dataclass(frozen=True)
class Grid:
    """The Lagrangian mass grid.

    Attributes:
        m_out: mass inside each shell's outer boundary ``(K,)``.
        dm: shell masses ``(K,)``.
        dm_face: mass associated with each boundary, ``(dm_k + dm_{k+1}) / 2`` ``(K,)``
            (half a shell at the surface).
    """

    m_out: Tensor
    dm: Tensor
    dm_face: Tensor


def make_grid(n_shells: int, m_inner: float = 1e-5, m_outer: float = 0.995,
              dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> Grid:
    """Shells equally spaced in ``log M_r`` from ``m_inner`` to ``m_outer`` (total mass 1)."""
    m_out = torch.logspace(math.log10(m_inner), math.log10(m_outer), n_shells, dtype=dtype,
                           device=device)
    dm = torch.diff(m_out, prepend=m_out.new_zeros(1))
    dm_face = torch.cat([(dm[:-1] + dm[1:]) / 2, dm[-1:] / 2])
    return Grid(m_out, dm, dm_face)


def coulomb_log(n_stars: Tensor) -> Tensor:
    """``ln(gamma N)`` with ``gamma = 0.11``."""
    return torch.log(GAMMA_COULOMB * n_stars)


def t_rh_initial(n_stars: Tensor) -> Tensor:
    """Initial half-mass relaxation time of the Plummer model (N-body time units).

    ``t_rh = 0.138 N r_h^{3/2} / (G^{1/2} M^{1/2} ln(gamma N))`` (Spitzer 1987).
    """
    return T_RH_COEFF * n_stars * PLUMMER_RH**1.5 / coulomb_log(n_stars)


def plummer_state(grid: Grid) -> tuple[Tensor, Tensor]:
    """Plummer radii ``(K,)`` and the ``sigma^2 (K,)`` of exact discrete equilibrium.

    The radii enclose the grid masses in a Plummer sphere; the pressures are integrated
    inwards from ``p = 0`` at the surface with the discrete hydrostatic equation, so the
    initial model is in equilibrium to round-off.
    """
    r = PLUMMER_A / torch.sqrt(grid.m_out ** (-2.0 / 3.0) - 1.0)
    rho = density(r[None], grid)[0]
    dp = G * grid.m_out * grid.dm_face / (4.0 * math.pi * r**4)
    p = torch.flip(torch.cumsum(torch.flip(dp, [0]), 0), [0])
    return r, p / rho


def density(r: Tensor, grid: Grid) -> Tensor:
    """Shell densities ``(B, K)`` from boundary radii ``(B, K)``."""
    r3 = r**3
    vol = (4.0 * math.pi / 3.0) * (r3 - torch.cat([torch.zeros_like(r3[:, :1]), r3[:, :-1]], 1))
    return grid.dm / vol


def central_relaxation_time(rho_c: Tensor, sig2_c: Tensor, mu: Tensor) -> Tensor:
    """``0.34 sigma^3 / (G^2 rho m ln Lambda)`` with ``mu = m ln Lambda`` (all ``(B,)``)."""
    return T_R_COEFF * sig2_c * torch.sqrt(sig2_c) / (G**2 * rho_c * mu)


# Non-integer powers are written with exp/log and products: torch's vectorised ``pow``
# rounds differently depending on where an element falls in the batch, and the chaotic
# post-collapse dynamics amplify such round-off, which would make a row's trajectory
# depend on the batch it is simulated in.
def residual(z: Tensor, z_old: Tensor, dt: Tensor, mu: Tensor, heat: Tensor,
             grid: Grid) -> Tensor:
    """Backward-Euler residual of the gas model ``(B, 2K)``, zero at the new state.

    Args:
        z: new state ``(B, 2K)``, interleaved ``(ln r_k, ln sigma^2_k)`` per shell.
        z_old: state at the start of the step ``(B, 2K)``.
        dt: time step ``(B,)`` (N-body units).
        mu: ``m ln Lambda`` ``(B,)``.
        heat: binary heating prefactor ``alpha * scale * G^5 m^3 * noise factor`` ``(B,)``.
        grid: the mass grid.

    Returns:
        per shell ``(hydrostatic, energy)`` residuals, made dimensionless.
    """
    lr, ls = z[:, 0::2], z[:, 1::2]
    r, sig2 = torch.exp(lr), torch.exp(ls)
    rho = density(r, grid)
    p = rho * sig2
    # hydrostatic equilibrium at each boundary (p = 0 outside the last shell)
    p_next = torch.cat([p[:, 1:], torch.zeros_like(p[:, :1])], 1)
    r2 = r * r
    grav = G * grid.m_out * grid.dm_face / (4.0 * math.pi * r2 * r2)
    p_ref = torch.cat([(p[:, :-1] + p[:, 1:]) / 2, p[:, -1:]], 1)
    hydro = (p_next - p + grav) / p_ref
    # conduction through each inner boundary, L_0 = L_K = 0
    r3 = r**3
    r3_in = torch.cat([torch.zeros_like(r3[:, :1]), r3[:, :-1]], 1)
    r_mid = torch.exp(torch.log((r3 + r3_in) / 2) / 3.0)
    kappa_cell = COND_PREFACTOR * C_COND * G * mu[:, None] * rho / torch.sqrt(sig2)
    kappa = torch.sqrt(kappa_cell[:, :-1] * kappa_cell[:, 1:])
    grad = (sig2[:, 1:] - sig2[:, :-1]) / (r_mid[:, 1:] - r_mid[:, :-1])
    lum_inner = -4.0 * math.pi * r2[:, :-1] * kappa * grad
    zero = torch.zeros_like(lum_inner[:, :1])
    lum = torch.cat([lum_inner, zero], 1)
    lum_in = torch.cat([zero, lum_inner], 1)
    eps = heat[:, None] * rho * rho * torch.exp(-3.5 * ls)
    # first law: sigma^2 d ln(sigma^3/rho) = (-dL/dM + eps) dt, divided by sigma^2
    lr_old, ls_old = z_old[:, 0::2], z_old[:, 1::2]
    rho_old = density(torch.exp(lr_old), grid)
    ds = 1.5 * (ls - ls_old) - (torch.log(rho) - torch.log(rho_old))
    energy = ds + dt[:, None] * ((lum - lum_in) / grid.dm - eps) / sig2
    return torch.stack([hydro, energy], -1).reshape(z.shape)


@functools.lru_cache(maxsize=16)
def _band(n_shells: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Colour tangents ``(8, 2K)`` and the row, column, source indices of the band."""
    rows, cols, src = [], [], []
    for i in range(n_shells):
        for off in (-2, -1, 0, 1):
            k = i + off
            if not 0 <= k < n_shells:
                continue
            for e in (0, 1):
                for v in (0, 1):
                    rows.append(2 * i + e)
                    cols.append(2 * k + v)
                    src.append((k % N_COLORS) * 2 + v)
    tangents = torch.zeros(2 * N_COLORS, 2 * n_shells, dtype=torch.float64)
    for k in range(n_shells):
        for v in (0, 1):
            tangents[(k % N_COLORS) * 2 + v, 2 * k + v] = 1.0

    def as_t(a: list[int]) -> Tensor:
        return torch.tensor(a, dtype=torch.long, device=device)

    return tangents.to(device), as_t(rows), as_t(cols), as_t(src)


def banded_jacobian(fun, z: Tensor, n_shells: int, step: float = 1e-7
                    ) -> tuple[Tensor, Tensor]:
    """Residual ``(B, 2K)`` and its dense Jacobian ``(B, 2K, 2K)``.

    ``fun`` maps ``(R * B, 2K)`` states to residuals row by row (``R`` replicas of the
    batch).  One call evaluates the state and 8 perturbed replicas, each moving one colour
    class of (shell mod 4, variable) by ``step`` in the log variables; the forward
    differences give every non-zero of the band (relative error ~``step``, enough for
    Newton's method to converge to round-off).  Forward-mode AD gives the same matrix but
    is ~50x slower in eager torch.
    """
    b, n = z.shape
    tangents, rows, cols, src = _band(n_shells, z.device)
    reps = tangents.shape[0]
    zz = torch.cat([z, z.repeat(reps, 1) + step * tangents.to(z.dtype).repeat_interleave(b, 0)])
    out = fun(zz)
    res = out[:b]
    jv = (out[b:].reshape(reps, b, n) - res[None]) / step
    vals = jv[src, :, rows]  # (nnz, B)
    jac = torch.zeros(b, n, n, dtype=z.dtype, device=z.device)
    jac[:, rows, cols] = vals.T
    return res, jac


@dataclass(frozen=True)
class SolverSettings:
    """Numerical settings of :func:`evolve`.

    Attributes:
        n_shells: number of Lagrangian shells.
        m_inner: mass fraction inside the innermost shell (the grid is uniform in
            ``log M_r`` from there to 0.995); it bounds how small a core is resolved.
        target_change: wanted largest change of ``ln rho``, ``ln sigma^2`` per step.
        dt_max: largest step in units of the initial half-mass relaxation time.
        dt_trc: largest step in central relaxation times; implicit Euler damps any
            oscillation it does not resolve, so this must be small (~10) for the
            gravothermal oscillations to appear.
        max_steps: hard cap on accepted + rejected steps (raises when reached).
        newton_iters: Newton iterations before a step is rejected and halved.
        newton_tol: a row has converged once its largest log-variable update is below
            this (the error left after that update is of order its square).
    """

    n_shells: int = 60
    m_inner: float = 1e-5
    target_change: float = 0.08
    dt_max: float = 0.2
    dt_trc: float = 10.0
    max_steps: int = 20000
    newton_iters: int = 8
    newton_tol: float = 1e-4


def _residual_replicas(z: Tensor, *, z_old: Tensor, dt: Tensor, mu: Tensor, heat: Tensor,
                       grid: Grid) -> Tensor:
    return residual(z, z_old, dt, mu, heat, grid)


def _newton(z: Tensor, z_old: Tensor, dt: Tensor, mu: Tensor, heat: Tensor, grid: Grid,
            settings: SolverSettings) -> tuple[Tensor, Tensor]:
    """Newton iterations of one backward-Euler step for a batch of rows ``(B, 2K)``.

    Each iteration assembles the banded Jacobian and solves only for the rows that have
    neither converged nor failed (a row's iterates do not depend on the other rows), so a
    batch costs the sum of its rows' iterations rather than the slowest row's times ``B``.

    Returns:
        the new states ``(B, 2K)`` and whether each row converged ``(B,)``.
    """
    n_shells = z.shape[1] // 2
    reps = 2 * N_COLORS + 1
    ok = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
    work = torch.arange(z.shape[0], device=z.device)  # rows still iterating
    for _it in range(settings.newton_iters):
        if work.numel() == 0:
            break
        fun = functools.partial(_residual_replicas, z_old=z_old[work].repeat(reps, 1),
                                dt=dt[work].repeat(reps), mu=mu[work].repeat(reps),
                                heat=heat[work].repeat(reps), grid=grid)
        res, jac = banded_jacobian(fun, z[work], n_shells)
        delta = torch.linalg.solve(jac, -res)
        bad = ~torch.isfinite(delta).all(1)
        delta = torch.where(bad[:, None], torch.zeros_like(delta), delta)
        size = delta.abs().amax(1)
        scale = torch.clamp(0.5 / size.clamp_min(1e-300), max=1.0)  # damp large updates
        z = z.index_copy(0, work, z[work] + scale[:, None] * delta)
        conv = ~bad & (size < settings.newton_tol)
        ok = ok.index_copy(0, work, conv)
        work = work[~(conv | bad)]
    return z, ok


def core_observables(z: Tensor, grid: Grid) -> Tensor:
    """``(B, 3)``: ``log10`` of central density, central 1-D dispersion and core radius.

    The central values are those of the innermost shell; the core radius is King's,
    ``r_c^2 = 9 sigma_c^2 / (4 pi G rho_c)``.
    """
    r, sig2 = torch.exp(z[:, 0::2]), torch.exp(z[:, 1::2])
    rho_c = density(r, grid)[:, 0]
    s2 = sig2[:, 0]
    rc = torch.sqrt(9.0 * s2 / (4.0 * math.pi * G * rho_c))
    return torch.stack([torch.log10(rho_c), 0.5 * torch.log10(s2), torch.log10(rc)], -1)


def evolve(n_stars: Tensor, heat_scale: Tensor, noise_amp: Tensor, noise: Tensor,
           times: Tensor, settings: SolverSettings, *, stop_density: float = math.inf
           ) -> tuple[Tensor, Tensor, Tensor]:
    """Evolves a batch of gas spheres from Plummer models.

    Each row takes its own adaptive steps; rows never exchange information, so a row's
    result does not depend on the batch it is computed in.

    Args:
        n_stars: number of stars ``(B,)``.
        heat_scale: multiplier of the binary heating coefficient ``alpha`` ``(B,)``.
        noise_amp: stochastic heating amplitude ``a`` ``(B,)`` (0: deterministic).
        noise: standard normal numbers ``(B, S)``, one per accepted step (``S`` at least
            ``settings.max_steps``).
        times: output times ``(T,)``, increasing, in units of the initial half-mass
            relaxation time.
        settings: numerical settings.
        stop_density: a row stops evolving once its central density exceeds this value
            (N-body units); its remaining outputs stay NaN (for collapse studies).

    Returns:
        ``obs (B, 3, T)`` (see :func:`core_observables`) at ``times``, the number of
        accepted steps per row ``(B,)``, and the final state ``(B, 2K)`` (interleaved
        ``ln r``, ``ln sigma^2``).
    """
    dtype, dev = torch.float64, n_stars.device
    b = n_stars.shape[0]
    k = settings.n_shells
    grid = make_grid(k, m_inner=settings.m_inner, dtype=dtype, device=dev)
    r0, s0 = plummer_state(grid)
    z = torch.stack([torch.log(r0), torch.log(s0)], -1).reshape(1, 2 * k).repeat(b, 1)
    n_stars = n_stars.to(dtype)
    mu = coulomb_log(n_stars) / n_stars
    trh = t_rh_initial(n_stars)
    heat0 = ALPHA_BINARY * heat_scale.to(dtype) * G**5 / n_stars**3
    amp = noise_amp.to(dtype)
    times = times.to(dtype=dtype, device=dev)
    n_out = times.shape[0]
    obs = torch.full((b, 3, n_out), float("nan"), dtype=dtype, device=dev)
    t = torch.zeros(b, dtype=dtype, device=dev)
    dt = torch.full((b,), 1e-4, dtype=dtype, device=dev)  # in units of t_rh(0)
    step = torch.zeros(b, dtype=torch.long, device=dev)
    o_prev = core_observables(z, grid)
    at0 = times <= 0
    obs[:, :, at0] = o_prev[:, :, None]
    t_end = times[-1]
    stopped = torch.zeros(b, dtype=torch.bool, device=dev)
    z_last, dt_last = z.clone(), torch.ones_like(dt)
    for _ in range(settings.max_steps):
        stopped = stopped | (o_prev[:, 0] > math.log10(stop_density))
        active = (t < t_end) & ~stopped
        if not bool(active.any()):
            break
        dt = torch.minimum(dt, t_end - t).clamp_min(0.0)
        dt_code = dt * trh
        rho_c = density(torch.exp(z[:, 0::2]), grid)[:, 0]
        t_rc = central_relaxation_time(rho_c, torch.exp(z[:, 1]), mu)
        xi = torch.gather(noise, 1, step.clamp_max(noise.shape[1] - 1)[:, None])[:, 0]
        var = torch.log1p(amp**2 * t_rc / dt_code.clamp_min(1e-300))
        factor = torch.exp(torch.sqrt(var) * xi - var / 2)
        heat = heat0 * factor
        z_old = z
        # predictor: linear extrapolation of the last accepted step (fewer Newton steps)
        z_new = z + (z - z_last) * (dt / dt_last.clamp_min(1e-300))[:, None].clamp(max=2.0)
        # Newton's method on the active rows only (finished rows cost nothing)
        ia = active.nonzero()[:, 0]
        za, ok_a = _newton(z_new[ia], z_old[ia], dt_code[ia], mu[ia], heat[ia], grid, settings)
        z_new = z_new.index_copy(0, ia, za)
        ok = torch.zeros(b, dtype=torch.bool, device=dev).index_copy(0, ia, ok_a)
        finite = torch.isfinite(z_new).all(1)
        change = (z_new - z_old).abs().amax(1)
        accept = active & ok & finite & (change < 4 * settings.target_change)
        reject = active & ~accept
        t_new = t + torch.where(accept, dt, torch.zeros_like(dt))
        z_last = torch.where(accept[:, None], z_old, z_last)
        dt_last = torch.where(accept, dt, dt_last)
        z = torch.where(accept[:, None], z_new, z_old)
        o_new = core_observables(z, grid)
        # linear interpolation onto the output times crossed by this step
        frac = ((times[None, :] - t[:, None]) / dt.clamp_min(1e-300)[:, None]).clamp(0, 1)
        crossed = (accept[:, None] & (times[None, :] > t[:, None])
                   & (times[None, :] <= t_new[:, None]))
        interp = o_prev[:, :, None] + frac[:, None, :] * (o_new - o_prev)[:, :, None]
        obs = torch.where(crossed[:, None, :], interp, obs)
        o_prev = torch.where(accept[:, None], o_new, o_prev)
        t = t_new
        step = step + accept.long()
        grow = (settings.target_change / change.clamp_min(1e-12)).clamp(0.3, 2.0)
        dt = torch.where(accept, dt * grow, torch.where(reject, dt * 0.25, dt))
        rho_c = density(torch.exp(z[:, 0::2]), grid)[:, 0]
        t_rc = central_relaxation_time(rho_c, torch.exp(z[:, 1]), mu) / trh
        dt = torch.minimum(dt.clamp(max=settings.dt_max), settings.dt_trc * t_rc)
    else:
        if bool(((t < t_end) & ~stopped).any()):
            raise RuntimeError(
                f"gas model did not reach t = {float(t_end):g} t_rh within {settings.max_steps} "
                "steps; raise max_steps or target_change, or shorten the time window")
    return obs, step, z
