"""The tabulated MEKAL emissivities (``data/mekal_table.npz``) the thermal simulator reads.

The table is built once from the MEKAL atomic data by :mod:`simulators.xray.build_mekal_table`.

Example:
    >>> import numpy as np
    >>> log_table(np.array([0.0, 1.0, 2.0]))[1:].round(3).tolist()
    [0.0, 0.693]
"""

from __future__ import annotations

import functools

import numpy as np

from sbi_astro.errors import ConfigError

from .observations import data_path

MEKAL_TABLE = "mekal_table.npz"


@functools.lru_cache(maxsize=1)
def mekal_table() -> dict[str, np.ndarray]:
    """The tabulated MEKAL emissivities (see :mod:`simulators.xray.build_mekal_table`)."""
    path = data_path(MEKAL_TABLE)
    if not path.exists():
        raise ConfigError(f"{path} is missing; build it with `python -m "
                          "simulators.xray.build_mekal_table <mekal_atomic_data dir>`")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def log_table(values: np.ndarray) -> np.ndarray:
    """log of a non-negative table, floored at 1e-300 x its maximum (exp gives ~0 back)."""
    v = np.asarray(values, dtype=np.float64)
    return np.log(np.maximum(v, v.max() * 1e-300 + 1e-320))
