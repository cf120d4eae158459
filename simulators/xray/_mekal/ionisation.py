"""Collisional ionisation equilibrium of MEKAL: ionisation and recombination rates, ion
fractions and the electron density.

Example:
    >>> import numpy as np
    >>> frac = np.zeros(NUM_ION)
    >>> frac[ION_START + N_ION - 1] = 1.0  # every element fully ionised
    >>> round(float(electron_density_ratio(frac)), 4)  # n_e / n_H at solar abundances
    1.2091
"""

from __future__ import annotations

import math

import numpy as np

from .atomic_data import ELEMENTS, ION_START, N_ION, NUM_ION, SOLAR, YLIM, MekalData
from .fit_functions import f10, f12, f13


def ionisation_rates(data: MekalData, kt: float) -> np.ndarray:
    """Total collisional ionisation rate coefficient of each ion ``(207,)`` (raw units).

    The packed ``IONIS`` stream holds, per ion: ``nj`` direct-ionisation shells (5 numbers
    each: threshold [keV] and 4 fit coefficients), then a flag selecting an excitation-
    autoionisation fit (none, 3-term, 1-term, 18 levels, or 12 level pairs followed by a
    5-coefficient collision-strength fit).
    """
    a = data.aion
    t15 = kt**1.5
    out = np.zeros(NUM_ION)
    pos = -1  # index of the number being read (the stream is consumed in order)
    for k in range(NUM_ION):
        pos += 1
        nj = int(round(a[pos]))
        if nj:
            sa, pos = _direct_ionisation(a, pos, nj, kt)
            out[k] = sa / t15
        pos += 1
        terms, pos = _excitation_autoionisation(a, pos, int(round(a[pos])), kt)
        for term in terms:
            out[k] += term
    return out


def _direct_ionisation(a: np.ndarray, pos: int, nj: int, kt: float) -> tuple[float, int]:
    """Sum over the ``nj`` direct-ionisation shells read after ``pos`` (times ``kT^1.5``),
    and the position of the last number read."""
    sa = 0.0
    for _ in range(nj):
        y = a[pos + 1] / kt
        x = 1.0 / y
        if x > 0.055:
            f4 = ((-5.725e-4 + x * (0.01345 + x * (0.8691 + 0.03404 * x)))
                  / (1.0 + x * (2.197 + x * (0.2454 + 2.053e-3 * x))))
        else:
            f4 = 0.7699 * x**1.9496
        fuy = float(f13(y))
        fb = 1.0 + y - y * fuy * (2.0 + y) if y < 10.0 else f12(y)
        if y < YLIM:
            sa += math.exp(-y) * ((a[pos + 2] * (1.0 - y * fuy) + a[pos + 3] * fb
                                   + a[pos + 4] * fuy) / y + a[pos + 5] * f4)
        pos += 5
    return sa, pos


def _excitation_autoionisation(a: np.ndarray, pos: int, ind: int, kt: float
                               ) -> tuple[list[float], int]:
    """The excitation-autoionisation terms (in the order they are added) of the fit with
    flag ``ind`` read after ``pos``, and the position of the last number read."""
    tsq = math.sqrt(kt)
    terms = []
    tail = False
    if ind == 1:
        pass
    elif ind == 3:
        y = a[pos + 1] / kt
        if y < YLIM:
            yfuy = y * float(f13(y))
            terms.append(math.exp(-y) * (a[pos + 2] * yfuy / y + a[pos + 3] * (1 - yfuy)
                                         + a[pos + 4] * yfuy + a[pos + 5] * y * (1 - yfuy)) / tsq)
        pos += 5
    elif ind == 4:
        y = a[pos + 1] / kt
        if y < YLIM:
            terms.append(a[pos + 2] * math.exp(-y) * (1.0 - y * float(f13(y))) / tsq)
        pos += 2
    elif ind == 5:
        sd = 0.0
        for _ in range(18):
            y = a[pos + 1] / kt
            if y < YLIM:
                yay = y * a[pos + 2]
                fuy = float(f13(yay))
                sd += math.exp(-y) * (float(f13(y)) * a[pos + 3] + a[pos + 4]
                                      + y * (a[pos + 5] * fuy + a[pos + 6] * (1 - yay * fuy)))
            pos += 6
        terms.append(sd / tsq)
    elif ind == 6:
        sk = 0.0
        for _ in range(12):
            y1, y2 = a[pos + 1] / kt, a[pos + 2] / kt
            if y1 < YLIM:
                f1 = math.exp(-y1) * (y1 + 1.0)
                if y2 < YLIM:
                    sk += (f1 - math.exp(-y2) * (y2 + 1.0)) * a[pos + 3]
            pos += 3
        terms.append(sk * tsq)
        tail = True
    elif ind == 7:
        tail = True
    else:
        y = a[pos + 1] / kt
        if y < YLIM:
            terms.append(a[pos + 2] * math.exp(-y) * (1.0 + a[pos + 3] * float(f13(y))) / tsq)
        pos += 3
    if tail:
        y = a[pos + 1] / kt
        g = f10(y, *a[pos + 2: pos + 7])
        if y < YLIM:
            terms.append(g * math.exp(-y) / tsq)
        pos += 6
    return terms, pos


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

