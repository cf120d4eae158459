"""Auxiliary functions of MEKAL's rate fits (named after MEKAL's ``F10`` ... ``F13``).

Example:
    >>> round(f11(1.0), 6)  # E1(1) = 0.219384
    0.219384
    >>> f10(1.0, 1.0, 0.0, 0.0, 0.0, 0.0)  # the constant term alone
    1.0
"""

from __future__ import annotations

import math

import numpy as np


def f13(u):
    """exp(u) E1(u) approximation used by the ionisation fits."""
    u = np.asarray(u, dtype=float)
    corr = np.where(u < 1.0, 0.03 / np.sqrt(u + 0.01), 0.03 * np.sqrt(u + 0.01))
    return np.log(1.0 + 1.0 / u) - (0.36 + corr) / (1.0 + u) ** 2


def f10(y, a, b, c, d, e):
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


def f11(x):
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


def f12(y):
    """Gauss-Laguerre quadrature used for large ``y`` in the direct-ionisation fit."""
    return float(np.sum((_LAG_T / (_LAG_T + y)) ** 2 * _LAG_C))
