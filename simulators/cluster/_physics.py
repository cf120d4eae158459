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
(Henyey-type fully implicit scheme, :func:`residual`).  The implicit steps, their Newton
solver and the stochastic heating are in :mod:`simulators.cluster.solver`.

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
