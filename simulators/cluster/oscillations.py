"""Counting gravothermal oscillations in a time series (used by tests and benchmarks)."""

from __future__ import annotations

import numpy as np


def count_peaks(y: np.ndarray, prominence: float = 0.3) -> int:
    """Number of maxima rising ``prominence`` above the preceding minimum and falling as
    much before the next one (a simple prominence count, e.g. on log central density).

    Example:
        >>> count_peaks(np.sin(np.linspace(0, 6 * np.pi, 600)), prominence=0.5)
        3
    """
    count, lo, hi, rising = 0, y[0], y[0], True
    for v in y[1:]:
        if rising:
            hi = max(hi, v)
            if hi - v > prominence and hi - lo > prominence:
                count, rising, lo = count + 1, False, v
        else:
            lo = min(lo, v)
            if v - lo > prominence:
                rising, hi = True, v
    return count
