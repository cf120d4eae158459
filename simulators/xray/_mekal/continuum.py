"""MEKAL's continuum: free-free (Karzas & Latter Gaunt factors), free-bound edges and the
two-photon decay of H- and He-like ions.

Example:
    >>> import numpy as np
    >>> from simulators.xray._mekal import NUM_ION
    >>> z = np.zeros(0)
    >>> conemx = np.zeros((NUM_ION, 6))
    >>> conemx[1, 0] = 1.0  # H+: effective charge squared 1, no bound-free edges
    >>> data = MekalData(z, z, np.zeros((25, 25)), conemx, z, z, z, z, z, z)  # ln g_ff = 0
    >>> xz = np.zeros(NUM_ION)
    >>> xz[1] = 1.0  # fully ionised hydrogen
    >>> continuum(data, 1.0, xz, np.array([1.0, 2.0]))  # g_ff = 1: exp(-E / kT) / E
    array([0.36787944, 0.06766764])
"""

from __future__ import annotations

import math

import numpy as np

from .atomic_data import CMAX, ELEMENTS, ION_START, N_ION, YLIM, MekalData
from .fit_functions import f10

_BF = np.array([6.9248, -2.1368, 1.4878, -0.5867, 7.0540, -2.3572, 2.4469, -1.1122, 7.0799,
                -2.3877, 2.5579, -1.1304, 7.0873, -2.3932, 2.5715, -1.1090, 7.0865, -2.3896,
                2.5563, -1.0801, 7.0837, -2.3845, 2.5371, -1.0550, 7.0769, -2.3769, 2.5122,
                -1.0299, 7.0728, -2.3724, 2.4966, -1.0133, 7.0699, -2.3692, 2.4848, -1.0007,
                7.0658, -2.3638, 2.4690, -0.9871, 7.0572, -2.3588, 2.4556, -0.9764, 7.0530,
                -2.3551, 2.4443, -0.9667, 7.0557, -2.3555, 2.4422, -0.9626, 7.0487, -2.3492,
                2.4259, -0.9510, 7.0489, -2.3481, 2.4206, -0.9455]).reshape(15, 4)
# Two-photon continuum: energies [keV] and oscillator-like factors of the H-like (row 0) and
# He-like (row 1) ions of each element, and the spectral shapes psi(x), x = E / E_2p.
_E2P = np.array([[0.0102, 0.0408, 0.368, 0.500, 0.654, 1.022, 1.236, 1.473, 1.728, 2.006,
                  2.621, 3.324, 4.105, 6.965, 8.051],
                 [0.0000, 0.0200, 0.304, 0.426, 0.569, 0.915, 1.119, 1.343, 1.575, 1.853,
                  2.450, 3.124, 3.887, 6.666, 7.798]])
_F2P = np.array([[0.415] * 15,
                 [0.000, 0.274, 0.645, 0.671, 0.691, 0.719, 0.729, 0.737, 0.745, 0.751,
                  0.761, 0.768, 0.775, 0.787, 0.790]])
_PHI = np.array([
    [0.000, 0.426, 0.768, 1.049, 1.281, 1.476, 1.642, 1.784, 1.905, 2.010, 2.101, 2.181,
     2.252, 2.314, 2.367, 2.412, 2.451, 2.484, 2.513, 2.538, 2.559, 2.576, 2.589, 2.597,
     2.602, 2.603, 2.602, 2.597, 2.589, 2.576, 2.559, 2.538, 2.513, 2.484, 2.451, 2.412,
     2.367, 2.314, 2.252, 2.181, 2.101, 2.010, 1.905, 1.784, 1.642, 1.476, 1.281, 1.049,
     0.768, 0.426, 0.000],
    [0.000, 0.122, 0.323, 0.617, 0.920, 1.176, 1.417, 1.600, 1.772, 1.923, 2.065, 2.177,
     2.282, 2.378, 2.462, 2.541, 2.604, 2.661, 2.708, 2.742, 2.777, 2.803, 2.820, 2.832,
     2.850, 2.859, 2.850, 2.832, 2.820, 2.803, 2.777, 2.742, 2.708, 2.661, 2.604, 2.541,
     2.462, 2.378, 2.282, 2.177, 2.065, 1.923, 1.772, 1.600, 1.417, 1.176, 0.920, 0.617,
     0.323, 0.122, 0.000]])
_LOG_GRID = -4.0 + 0.25 * np.arange(25)  # log10 gamma^2 and log10 u grids of the Gaunt table


def _lin_extrap(x, grid, values):
    """Linear interpolation on a uniform grid, extrapolating from the end intervals."""
    i = np.clip(np.floor((x - grid[0]) / (grid[1] - grid[0])).astype(int), 0, grid.size - 2)
    w = (x - grid[i]) / (grid[i + 1] - grid[i])
    return values[..., i] + w * (values[..., i + 1] - values[..., i])


def continuum(data: MekalData, kt: float, xz: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Continuum emission ``(M,)`` at ``energy (M,)`` [keV] (raw units per keV).

    Args:
        xz: ion abundances relative to H ``(207,)`` (fraction x element abundance).

    Free-free: ``sum_i xz_i Z_i^2 g_ff(gamma^2, u) exp(-u) / E`` with ``Z_i^2`` the
    effective charge squared (``CONEMX[:, 0]``) and ``ln g`` interpolated in the Karzas-Latter
    table over ``log10 gamma^2 = log10(Z^2 Ry / kT)`` and ``log10 u = log10(E / kT)``.
    Free-bound: hydrogenic recombination edges of the ground and excited shells.
    Two-photon: decay of the 2s levels of H- and He-like ions.
    """
    e = np.asarray(energy, dtype=float)
    u = e / kt
    gff = np.zeros_like(e)
    gfb = np.zeros_like(e)
    g2p = np.zeros_like(e)
    ok = u < YLIM
    lu = np.log10(np.where(ok, u, 1.0))
    p = data.conemx
    for e_idx in range(len(ELEMENTS)):
        k0, n = ION_START[e_idx], N_ION[e_idx]
        for i in range(k0, k0 + n):
            x_i = xz[i]
            if x_i <= 0:
                continue
            xez = x_i * p[i, 0]
            if xez > CMAX:
                gl = math.log10(0.0136 * p[i, 0] / kt)
                lng = _lin_extrap(gl, _LOG_GRID, data.gaunt.T).ravel()  # ln g on the u grid
                small = u < 1e-4
                val = np.where(small, np.exp(lng[0]) - 0.551328895 * np.log(
                    np.where(small, u, 1.0) / 1e-4), np.exp(_lin_extrap(lu, _LOG_GRID, lng)))
                gff += np.where(ok, xez * val, 0.0)
            # two-photon: H-like (charge Z - 1) is index k0 + n - 2, He-like k0 + n - 3
            for row, ion in ((0, k0 + n - 2), (1, k0 + n - 3)):
                if i != ion or ion < k0:
                    continue
                if row == 1:
                    g = 0.05
                elif e_idx == 0:
                    g = f10(_E2P[0, 0] / kt, 0.08, -0.16, 0.11, 0.0, 0.0)
                else:
                    g = 0.055
                e2p = _E2P[row, e_idx]
                if e2p <= 0:
                    continue
                twz = 164995.0 * _F2P[row, e_idx] * g * x_i / e2p
                if twz > CMAX and e2p / kt < YLIM:
                    amp = twz * math.exp(-e2p / kt)
                    x = e / e2p
                    psi = np.interp(np.clip(x, 0, 1), np.linspace(0, 1, 51), _PHI[row])
                    g2p += np.where(x < 1.0, amp * x * psi, 0.0)
            n0 = int(round(p[i, 1]))
            if n0 > 0:
                for nq in range(n0, 16):
                    n2 = nq * nq
                    if nq == n0:
                        a31 = _BF[nq - 1, 0] * p[i, 2] * x_i / kt
                        a32 = p[i, 3] / kt
                    else:
                        a31 = _BF[nq - 1, 0] * p[i, 4] * x_i / kt / (n2 * nq)
                        a32 = p[i, 5] / kt / n2
                    if a32 >= YLIM or a31 * math.exp(a32) <= CMAX:
                        continue
                    y = u - a32
                    above = (y >= 0) & (y < YLIM) & ok
                    xx = 1.0 / (1.0 + np.sqrt(u / (a32 * n2)))
                    b = _BF[nq - 1]
                    term = (((b[3] * xx + b[2]) * xx + b[1]) * xx + 1.0) * xx * a31 * np.exp(
                        -np.where(above, y, 0.0))
                    gfb += np.where(above, term, 0.0)
    gff = gff * np.exp(-np.where(ok, u, YLIM))
    return np.where(ok, (gff + gfb + g2p) / e, 0.0)
