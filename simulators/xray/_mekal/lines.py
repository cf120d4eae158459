"""MEKAL's lines: collisional excitation, dielectronic satellites, radiative and
dielectronic recombination and inner-shell ionisation contributions per line.

Example:
    >>> import numpy as np
    >>> z = np.zeros(0)
    >>> lp = np.array([[1, 1, 0, 1, 0, 0, 0, 0, 0]])  # H line from ion 1 (H I), excitation only
    >>> rp = np.zeros((1, 14))
    >>> rp[0, :4] = [0.0102, 0.4, 1.0, 1.0]  # energy [keV], f, energy factor, a (g = a)
    >>> data = MekalData(z, z, z, z, np.array([1]), lp, np.array([""]), rp, z, z)
    >>> xz = np.zeros(NUM_ION)
    >>> xz[0] = 1.0
    >>> energy, flux, element, ion = lines(data, 1.0, xz)
    >>> bool(np.isclose(flux[0], 0.4 * np.exp(-0.0102) * 1.646e5 / 0.0102))  # f g e^-y / E
    True
"""

from __future__ import annotations

import math

import numpy as np

from .atomic_data import CHARGE, NUM_ION, MekalData
from .fit_functions import f10, f11

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


def _f7(z, t5, elden, bri):
    ex = -0.73 / z**0.415
    betac = 330.0 / z**14.57 * (t5 / z**2) ** ex
    return 1.0 / (1.0 + betac * elden * bri)


def _f8(bri, brf, f5, f6, itr):
    if itr != 6:
        return f5 * bri + (f6 + (1.0 - bri) * f5) * (1.0 - brf)
    return (f6 + (1.0 - bri) * f5) * brf


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
            t2 = cii * f11(bii * y) * 1.231 / bii / (1.0 + 2e5 * z**-3.5)
        else:
            yy = (z - 2.0) ** 4.3 * 6e12
            fn = yy + 1.33333333 * elden
            f5 = elden / fn
            f6 = (yy + elden / 3.0) / fn
            brf = _f7(z, t5, elden, bri)
            t2 = 0.22 * f11(1.33 * y) * _f8(bri, brf, f5, f6, 6 if ii == 1 else 5)
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
        g = f10(y, *rp[i, 3:8])
        fg = _line_factor(data, i, rp[i, 1], g, y, t_k, xz, elden)
        energy.append(el)
        flux.append(fg * math.exp(-y) * xzi * 1.646e5 / el)
        elem.append(int(lp[i, 0]) - 1)
        ion.append(nzz)
    return np.array(energy), np.array(flux), np.array(elem, dtype=int), np.array(ion, dtype=int)
