"""The MEKAL optically thin plasma in collisional ionisation equilibrium, from its atomic data.

A numpy re-implementation (build time only) of the MEKAL model: ionisation balance from the
ionisation (``mekal1``, IONIS) and recombination (``mekal2``, RECOMB) rate fits; continuum
from free-free emission (Karzas & Latter Gaunt factors, ``mekal3``), free-bound edges and the
two-photon decay of H- and He-like ions (``mekal4``, CONEMX); 5,412 lines (``mekal5``,
LINEFILE) with collisional excitation, dielectronic satellites, radiative and dielectronic
recombination and inner-shell ionisation contributions (Ca/Fe satellite data ``mekal6``).
Written from the published algorithm and the public reference implementations' structure;
no code copied.  Solar abundances are Anders & Grevesse (1989), MEKAL's own table.

Units: temperatures ``kT`` in keV, energies in keV.  The functions return emission per unit
``n_e n_H`` in MEKAL's raw unit; multiply by :data:`RAW_TO_CGS` ``/ sqrt(kT)`` to get
photons cm^3 s^-1 keV^-1 (continuum) or photons cm^3 s^-1 (lines).

References:
    Mewe, Gronenschild & van den Oord (1985), A&AS 62, 197.
    Mewe, Lemen & van den Oord (1986), A&AS 65, 511.
    Kaastra (1992), "An X-ray spectral code for optically thin plasmas", SRON report.
    Liedahl, Osterheld & Goldstein (1995), ApJ 438, L115 (Fe L lines).
    Arnaud & Rothenflug (1985), A&AS 60, 425; Arnaud & Raymond (1992), ApJ 398, 394.
    Anders & Grevesse (1989), Geochim. Cosmochim. Acta 53, 197.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
from astropy.io import fits

#: Elements of MEKAL, their nuclear charges and log10 solar abundances (H = 12, AG89).
ELEMENTS = ("H", "He", "C", "N", "O", "Ne", "Na", "Mg", "Al", "Si", "S", "Ar", "Ca", "Fe", "Ni")
CHARGE = np.array([1, 2, 6, 7, 8, 10, 11, 12, 13, 14, 16, 18, 20, 26, 28])
LOG_ABUNDANCE_AG89 = np.array([12.00, 10.99, 8.56, 8.05, 8.93, 8.09, 6.33, 7.58, 6.47, 7.55,
                               7.21, 6.56, 6.36, 7.67, 6.25])
SOLAR = 10.0 ** (LOG_ABUNDANCE_AG89 - 12.0)
N_ION = CHARGE + 1
#: index of each element's neutral ion in the 207-ion vector (ions ordered by element, then
#: by charge, neutral first).
ION_START = np.concatenate([[0], np.cumsum(N_ION)[:-1]])
NUM_ION = int(N_ION.sum())  # 207

# Free-free emissivity constant of Rybicki & Lightman (1979, eq. 5.14b) divided by the photon
# energy and h: (2^5 pi e^6 / 3 m_e c^3 h) sqrt(2 pi / 3 k m_e) / sqrt(K per keV) / keV_erg
# [photons cm^3 s^-1 keV^-1 keV^1/2]; MEKAL's raw emission times this / sqrt(kT) is the
# photon emissivity per n_e n_H.
_E, _ME, _C, _H, _K = 4.80320471e-10, 9.1093837e-28, 2.99792458e10, 6.62607015e-27, 1.380649e-16
_KEV_ERG, _KEV_K = 1.602176634e-9, 1.160451812e7
FF_CGS = (2**5 * math.pi * _E**6 / (3 * _ME * _C**3)) * math.sqrt(2 * math.pi / (3 * _K * _ME))
RAW_TO_CGS = FF_CGS / math.sqrt(_KEV_K) / _H  # erg cancels: per Hz -> per keV via h [erg s]

YLIM = 69.0
CMAX = 1e-3


@dataclasses.dataclass(frozen=True)
class MekalData:
    """The six MEKAL atomic-data tables, as arrays (see module docstring)."""

    aion: np.ndarray      # (NAMAX,) packed ionisation-rate coefficients
    arec: np.ndarray      # (207, 13) recombination-rate coefficients
    gaunt: np.ndarray     # (25 gamma^2, 25 u) ln of Karzas-Latter free-free Gaunt data
    conemx: np.ndarray    # (207, 6) continuum parameters per ion
    nrl: np.ndarray       # (L,) line numbers
    lp: np.ndarray        # (L, 9) integer line parameters
    trans: np.ndarray     # (L,) transition flags (str)
    rp: np.ndarray        # (L, 14) real line parameters (rp[:, 0] = energy in keV)
    cafe_id: np.ndarray   # Ca/Fe/Mg satellite line numbers
    cafe_cdr: np.ndarray  # and their dielectronic-recombination coefficients


def read_mekal_data(directory: str | Path) -> MekalData:
    """Reads ``mekal1.dat`` ... ``mekal6.dat`` (FITS binary tables) from ``directory``."""
    d = Path(directory)

    def table(name):
        with fits.open(d / name) as hdul:
            return hdul[1].data.copy()

    aion = np.asarray(table("mekal1.dat")["DATA"], dtype=float).ravel()
    arec = np.asarray(table("mekal2.dat")["DATA"], dtype=float)
    gaunt = np.asarray(table("mekal3.dat")["DATA"], dtype=float).T  # rows are u, cols gamma^2
    conemx = np.asarray(table("mekal4.dat")["DATA"], dtype=float)
    lines = table("mekal5.dat")
    cafe = table("mekal6.dat")
    return MekalData(
        aion=aion, arec=arec, gaunt=gaunt, conemx=conemx,
        nrl=np.asarray(lines["NRL"], dtype=int), lp=np.asarray(lines["LP"], dtype=int),
        trans=np.asarray(lines["TRANS"]).astype(str), rp=np.asarray(lines["RP"], dtype=float),
        cafe_id=np.asarray(cafe["IDNR"], dtype=int),
        cafe_cdr=np.asarray(cafe["CDRCAFE"], dtype=float))


# -- auxiliary functions of the rate fits ----------------------------------------------


def _f13(u):
    """exp(u) E1(u) approximation used by the ionisation fits."""
    u = np.asarray(u, dtype=float)
    corr = np.where(u < 1.0, 0.03 / np.sqrt(u + 0.01), 0.03 * np.sqrt(u + 0.01))
    return np.log(1.0 + 1.0 / u) - (0.36 + corr) / (1.0 + u) ** 2


def _f10(y, a, b, c, d, e):
    """Maxwell-averaged collision strength fit ``a + b f2 + c f3 + d f4 + e f5``."""
    y = float(y)
    if y < 1.0:
        if y < 0.3:
            e1 = -0.57731566 + y * (0.99999193 + y * (-0.24991055 + y * 0.05519968)) - math.log(y)
            f5 = e1 * math.exp(y)
            f2 = y * f5
        else:
            f2 = (0.06225196 + y * (1.646421 + y * 1.040425)) / (0.85539 + y * (2.754082 + y))
            f5 = f2 / y
        f3 = y * (1.0 - f2)
        f4 = y * (1.0 - f3)
    else:
        if y < 10.0:
            f2 = (0.250621 + y * (2.334733 + y)) / (1.681534 + y * (3.330657 + y))
            f3 = y * (1.0 - f2)
            f4 = y * (1.0 - f3)
        else:
            f4 = (0.37559 + y * (-0.6993774 + y * 2.0)) / (-2.520804 + y * (2.617596 + y))
            f3 = 1.0 - f4 / y
            f2 = 1.0 - f3 / y
        f5 = f2 / y
    return a + b * f2 + c * f3 + d * f4 + e * f5


def _f11(x):
    """E1(x) (small x series, large x rational approximation times exp(-x))."""
    if x <= 1.0:
        p = (((0.00107857 * x - 0.00976004) * x + 0.05519968) * x - 0.24991055) * x + 0.99999193
        return -math.log(x) + p * x - 0.57721566
    return (0.250621 / x + x + 2.334733) * math.exp(-x) / (x * x + 3.330657 * x + 1.681534)


_LAG_T = np.array([.8764941047e-1, .4626963289, 1.141057774, 2.129283645, 3.437086633,
                   5.078018614, 7.070338535, 9.438314336, 12.21422336, 15.44152736,
                   19.18015685, 23.51590569, 28.57872974, 34.58339870, 41.94045264, 51.70116033])
_LAG_C = np.array([.2061517149, .3310578549, .2657957776, .1362969342, .4732892869e-1,
                   .1129990008e-1, .1849070943e-2, .2042719153e-3, .1484458687e-4,
                   .6828319330e-6, .1881024841e-7, .2862350242e-9, .2127079033e-11,
                   .6297967002e-14, .50504737e-17, .416146237e-21])


def _f12(y):
    """Gauss-Laguerre quadrature used for large ``y`` in the direct-ionisation fit."""
    return float(np.sum((_LAG_T / (_LAG_T + y)) ** 2 * _LAG_C))


def _f7(z, t5, elden, bri):
    ex = -0.73 / z**0.415
    betac = 330.0 / z**14.57 * (t5 / z**2) ** ex
    return 1.0 / (1.0 + betac * elden * bri)


def _f8(bri, brf, f5, f6, itr):
    if itr != 6:
        return f5 * bri + (f6 + (1.0 - bri) * f5) * (1.0 - brf)
    return (f6 + (1.0 - bri) * f5) * brf


# -- ionisation balance ----------------------------------------------------------------


def ionisation_rates(data: MekalData, kt: float) -> np.ndarray:
    """Total collisional ionisation rate coefficient of each ion ``(207,)`` (raw units).

    The packed ``IONIS`` stream holds, per ion: ``nj`` direct-ionisation shells (5 numbers
    each: threshold [keV] and 4 fit coefficients), then a flag selecting an excitation-
    autoionisation fit (none, 3-term, 1-term, 18 levels, or 12 level pairs followed by a
    5-coefficient collision-strength fit).
    """
    a = data.aion
    t15, tsq = kt**1.5, math.sqrt(kt)
    out = np.zeros(NUM_ION)
    pos = -1  # index of the number being read (the stream is consumed in order)
    for k in range(NUM_ION):
        pos += 1
        nj = int(round(a[pos]))
        if nj:
            sa = 0.0
            for _ in range(nj):
                y = a[pos + 1] / kt
                x = 1.0 / y
                if x > 0.055:
                    f4 = ((-5.725e-4 + x * (0.01345 + x * (0.8691 + 0.03404 * x)))
                          / (1.0 + x * (2.197 + x * (0.2454 + 2.053e-3 * x))))
                else:
                    f4 = 0.7699 * x**1.9496
                fuy = float(_f13(y))
                fb = 1.0 + y - y * fuy * (2.0 + y) if y < 10.0 else _f12(y)
                if y < YLIM:
                    sa += math.exp(-y) * ((a[pos + 2] * (1.0 - y * fuy) + a[pos + 3] * fb
                                           + a[pos + 4] * fuy) / y + a[pos + 5] * f4)
                pos += 5
            out[k] = sa / t15
        pos += 1
        ind = int(round(a[pos]))
        tail = False
        if ind == 1:
            pass
        elif ind == 3:
            y = a[pos + 1] / kt
            if y < YLIM:
                yfuy = y * float(_f13(y))
                out[k] += math.exp(-y) * (a[pos + 2] * yfuy / y + a[pos + 3] * (1 - yfuy)
                                          + a[pos + 4] * yfuy + a[pos + 5] * y * (1 - yfuy)) / tsq
            pos += 5
        elif ind == 4:
            y = a[pos + 1] / kt
            if y < YLIM:
                out[k] += a[pos + 2] * math.exp(-y) * (1.0 - y * float(_f13(y))) / tsq
            pos += 2
        elif ind == 5:
            sd = 0.0
            for _ in range(18):
                y = a[pos + 1] / kt
                if y < YLIM:
                    yay = y * a[pos + 2]
                    fuy = float(_f13(yay))
                    sd += math.exp(-y) * (float(_f13(y)) * a[pos + 3] + a[pos + 4]
                                          + y * (a[pos + 5] * fuy + a[pos + 6] * (1 - yay * fuy)))
                pos += 6
            out[k] += sd / tsq
        elif ind == 6:
            sk = 0.0
            for _ in range(12):
                y1, y2 = a[pos + 1] / kt, a[pos + 2] / kt
                if y1 < YLIM:
                    f1 = math.exp(-y1) * (y1 + 1.0)
                    if y2 < YLIM:
                        sk += (f1 - math.exp(-y2) * (y2 + 1.0)) * a[pos + 3]
                pos += 3
            out[k] += sk * tsq
            tail = True
        elif ind == 7:
            tail = True
        else:
            y = a[pos + 1] / kt
            if y < YLIM:
                out[k] += a[pos + 2] * math.exp(-y) * (1.0 + a[pos + 3] * float(_f13(y))) / tsq
            pos += 3
        if tail:
            y = a[pos + 1] / kt
            g = _f10(y, *a[pos + 2: pos + 7])
            if y < YLIM:
                out[k] += g * math.exp(-y) / tsq
            pos += 6
    return out


def recombination_rates(data: MekalData, kt: float) -> np.ndarray:
    """Total (radiative + dielectronic) recombination rate coefficient into each ion ``(207,)``."""
    r = data.arec
    out = np.zeros(NUM_ION)
    t15, t25, tsq = kt**1.5, kt**2.5, math.sqrt(kt)

    def boltz(e):
        y = e / kt
        return math.exp(-y) if y < YLIM else 0.0

    for k in range(NUM_ION):
        c = r[k]
        ind = int(round(c[0]))
        if ind < 0:
            continue
        if ind == 0:
            out[k] = (c[1] - c[2] * math.log(kt) + c[3] * kt ** (1 / 3)) / tsq
            continue
        alfa = c[1] / kt ** c[2] if ind <= 8 else c[1] / kt ** (c[2] + c[3] * kt)
        if ind == 2:
            if kt > c[3]:
                alfa += c[4] / kt ** c[5]
            elif c[6] / kt < YLIM:
                alfa += c[7] * boltz(c[6]) / t15 * (1.0 + c[9] * boltz(c[8]))
        elif ind == 3:
            if c[3] / kt < YLIM:
                alfa += (c[4] * boltz(c[3]) / t15 * (1.0 + c[6] * boltz(c[5])) ** c[7]
                         * (1.0 + c[9] * boltz(c[8])) ** c[10])
        elif ind in (4, 5):
            if kt > c[3]:
                if c[4] / kt < YLIM:
                    alfa += c[5] * boltz(c[4]) / t15 * (1.0 + c[7] * boltz(c[6]))
            elif ind == 4:
                alfa += c[8] / kt ** c[9]
            else:
                alfa += c[9] / t15 * boltz(c[8])
        elif ind == 6:
            if c[3] / kt < YLIM:
                alfa += c[4] * boltz(c[3]) / t15 * (1.0 + c[6] * boltz(c[5]))
            if kt < c[7]:
                alfa += c[9] * boltz(c[8]) / t25 * (((kt + c[10]) * kt + c[11]) * kt + c[12])
        elif ind == 7:
            if c[3] / kt < YLIM:
                alfa += c[4] * boltz(c[3]) / t15 * (1.0 + c[6] * boltz(c[5]))
        elif ind in (8, 9):
            ip = 3 if ind == 8 else 4  # 0-based start of the (energy, coefficient) pairs
            for m in range(ip, ip + 8, 2):
                if c[m + 1] != 0.0:
                    alfa += c[m + 1] / t15 * boltz(c[m])
        else:  # ind == 1
            alfa += c[4] / t15 * boltz(c[3])
        out[k] = alfa
    return out


def ion_fractions(data: MekalData, kt: float) -> np.ndarray:
    """Equilibrium fraction of each ion within its element ``(207,)`` (each element sums to 1).

    Hydrogen is taken fully ionised (as in MEKAL).  Ratios of adjacent stages follow from the
    balance ``n_{i+1} / n_i = S_i / alpha_{i+1}``; fractions below 1e-5 are set to zero
    (MEKAL's cut, which keeps negligible ions out of the line and continuum sums).
    """
    s = ionisation_rates(data, kt)
    a = recombination_rates(data, kt)
    out = np.zeros(NUM_ION)
    out[1] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for e in range(1, len(ELEMENTS)):
            k0, n = ION_START[e], N_ION[e]
            logr = np.log(s[k0:k0 + n - 1]) - np.log(a[k0 + 1:k0 + n])
            logf = np.concatenate([[0.0], np.cumsum(logr)])
            logf = np.where(np.isnan(logf), -np.inf, logf)
            logf -= logf.max()
            f = np.exp(logf)
            out[k0:k0 + n] = f / f.sum()
    out[out < 1e-5] = 0.0
    return out


def electron_density_ratio(frac: np.ndarray, abundance: np.ndarray = SOLAR) -> float:
    """``n_e / n_H`` from ion fractions ``(207,)`` and abundances per element ``(15,)``."""
    ne = 0.0
    for e in range(len(ELEMENTS)):
        k0, n = ION_START[e], N_ION[e]
        ne += abundance[e] * float(np.dot(frac[k0:k0 + n], np.arange(n)))
    return ne


# -- continuum -------------------------------------------------------------------------

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
                    g = _f10(_E2P[0, 0] / kt, 0.08, -0.16, 0.11, 0.0, 0.0)
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


# -- lines -----------------------------------------------------------------------------

_IZION = CHARGE
_CDR = np.array([21.84, 47.09, 87.63, 31.55, 76.39, 114.60, 21.60, 36.63, 55.61, 15.29, 8.74,
                 3.79, 0.284, 0.728, 21.84, 31.55, 76.39, 114.60, 47.09])
_BDR = np.array([0.3, 0.14, 0.06, 0.3, 0.14, 0.06, 0.3, 0.14, 0.06, 0.27, 0.26, 0.24, 0.22,
                 0.21, 0.3, 0.3, 0.14, 0.06, 0.14])
_B6 = np.array([5e-6, 3e-5, 5e-5, 5e-6, 3e-5, 5e-5, 5e-6, 3e-5, 5e-5, 5e-6, 5e-6, 5e-6, 5e-6,
                5e-6, 5e-6, 5e-6, 3e-5, 5e-5, 3e-5])
_CIID = np.array([0.0, 0.0, 0.0, 0.106, 0.0, 0.0, 0.27, 0.0, 0.0, 0.28, 0.28, 0.46, 0.33, 0.3,
                  0.0, 0.106, 0.0, 0.0, 0.0])
_BRI = np.array([0.0, 0.0, 0.111, 0.225, 0.293, 0.338, 0.353, 0.370, 0.391, 0.425, 0.506,
                 0.595, 0.675, 0.821, 0.838])
_SAT_ELEMENTS = (8, 13, 14)  # 1-based element numbers of Mg, Ca, Fe (own satellite data)


def _line_factor(data: MekalData, i: int, f: float, g: float, y: float, t_k: float,
                 xz: np.ndarray, elden: float) -> float:
    """Collision strength times the excitation, satellite, recombination and inner-shell
    contributions of line ``i`` (the quantity MEKAL calls ``fg``)."""
    lp, rp = data.lp[i], data.rp[i]
    iel, iz = int(lp[0]), int(lp[1]) - 1
    nzz = int(lp[3]) - 1  # 0-based ion index
    iex, idrs, idr, ii, itr = (int(v) for v in lp[4:9])
    el, a = rp[0], rp[2]
    z = float(_IZION[iel - 1])
    z4 = z**4
    bri = _BRI[iel - 1]
    t5 = t_k * 1e-5
    fg = f * g
    if iex not in (0, 2):
        yy = (y + 0.6) / (y + 1.15)
        c1f = 1.0 + 7.0 * yy * (1.065 * (1 - bri) + 0.4 * math.exp(-0.21 * y))
        brf = _f7(z, t5, elden, bri)
        ex = (bri + c1f * (1.0 - brf) / yy / 7.46) * 1.065 if iex == 3 else c1f * brf
    else:
        ex = 1.0
    ex *= fg
    drs = 0.0
    if idrs != 0:
        iz += 1
        z12 = (iz + 1) ** 2
        x = el * a / (iz + 1)
        c1 = math.exp(y / (1.0 + z12 / iz**3 / 0.019))
        c1 = 8538.1 * f * c1 / ((x * 81.160 + 7.7235) * x + 1.0) / t_k
        drs = c1 * (a * el) ** 1.5 * math.sqrt(iz / (iz * iz + 13.4)) * z12
    dr = rr = 0.0
    xzn = xz[nzz]
    xzn1 = xz[nzz + 1] if nzz + 1 < NUM_ION else 0.0
    if xzn1 > 0:
        if idr != 0:
            if idr == 1:
                xcdr = _CDR[itr - 1]
                if iel in _SAT_ELEMENTS and data.trans[i].startswith("*"):
                    hit = np.nonzero(data.cafe_id == data.nrl[i])[0]
                    if hit.size:
                        xcdr = data.cafe_cdr[hit[0]]
                dr = xcdr / z4 * math.exp(_BDR[itr - 1] * y) / (_B6[itr - 1] + 1.0 / (z - 1.0) ** 4)
                rr = rp[8] * t_k ** rp[9]
            elif idr == 2:
                dr = (11.0 * math.exp(0.284 * y) / (1.0 + z4 * 6e-6)
                      + 27.0 * math.exp(0.1 * y) / (1.0 + z4 * 3e-5))
                rr = rp[8] * t_k ** rp[9]
            else:
                ex1, ex2 = math.exp(0.284 * y), math.exp(0.1 * y)
                f5 = 2.3 * ex1 + 215.0 * ex2 / (1.0 + z4 * 1.9e-4)
                f6 = 16.0 * ex1 / (1.0 + z4 * 7e-5) + 90.0 * ex2 / (1.0 + z4 * 8e-5)
                brf = _f7(z, t5, elden, bri)
                dr = _f8(bri, brf, f5, f6, idr + 2)
                f5 = (iz + 1.0) ** 2.62 / t_k**0.31 * 18.72e-4
                f6 = (iz + 1.0) ** 2.08 / t_k**0.04 * 0.575e-4
                rr = _f8(bri, brf, f5, f6, idr + 2)
            fr = xzn1 / xzn * el / 12.3985
            rr = fr * math.exp(y) * rr
            dr = fr * 0.47 * z4 / t_k * dr
        else:
            rr = xzn1 / xzn * math.exp(y) * el / 12.3985 * rp[8] * t_k ** rp[9]
    rii = 0.0
    if ii != 0 and nzz >= 1 and xz[nzz - 1] > 0:
        xzm = xz[nzz - 1]
        if ii == 2:
            if itr != 0:
                cii = _CIID[itr - 1]
                bii = 1.242 + 0.009 * (z - 26) if 7 <= itr <= 14 else 1.296
            else:
                bii, cii = 1.164 + 0.008 * (z - 26), 0.3
            t2 = cii * _f11(bii * y) * 1.231 / bii / (1.0 + 2e5 * z**-3.5)
        else:
            yy = (z - 2.0) ** 4.3 * 6e12
            fn = yy + 1.33333333 * elden
            f5 = elden / fn
            f6 = (yy + elden / 3.0) / fn
            brf = _f7(z, t5, elden, bri)
            t2 = 0.22 * _f11(1.33 * y) * _f8(bri, brf, f5, f6, 6 if ii == 1 else 5)
        rii = xzm / xzn * math.exp(y) * t2
    return ex + drs + dr + rii + rr


def lines(data: MekalData, kt: float, xz: np.ndarray, elden: float = 1.0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Line energies [keV], emission (raw units, integrated over the line), element index
    and emitting ion (0-based index into the ``NUM_ION`` ions, as ``xz``).

    Density effects (relevant above ~1e12 cm^-3) are neglected: ``elden`` [cm^-3] only enters
    the low-density limits of the metastable-level branching (XSPEC's default 1 cm^-3).
    """
    t_k = kt * 1.16048e7
    energy, flux, elem, ion = [], [], [], []
    rp, lp = data.rp, data.lp
    for i in range(rp.shape[0]):
        nzz = int(lp[i, 3]) - 1
        xzi = xz[nzz]
        if xzi <= 0:
            continue
        el, a = rp[i, 0], rp[i, 2]
        y = el * a / kt
        if y >= 40.0:
            continue
        g = _f10(y, *rp[i, 3:8])
        fg = _line_factor(data, i, rp[i, 1], g, y, t_k, xz, elden)
        energy.append(el)
        flux.append(fg * math.exp(-y) * xzi * 1.646e5 / el)
        elem.append(int(lp[i, 0]) - 1)
        ion.append(nzz)
    return np.array(energy), np.array(flux), np.array(elem, dtype=int), np.array(ion, dtype=int)
