"""X-ray absorption cross-section tables (``tbabs``, ``phabs``) shipped with the plugin.

Example:
    >>> e, sigma = absorption_table("tbabs")
    >>> e.shape == sigma.shape, bool((sigma > 0).all())
    (True, True)
"""

from __future__ import annotations

import functools

import numpy as np
from astropy.io import fits

from sbi_astro.errors import ConfigError

from .observations import data_path

ABSORPTION_TABLES = {"tbabs": "absorption/xsect_tbabs_wilm.fits.gz",
                     "phabs": "absorption/xsect_phabs_aspl.fits.gz"}


@functools.lru_cache(maxsize=4)
def absorption_table(model: str) -> tuple[np.ndarray, np.ndarray]:
    """``(energy [keV], sigma [1e-22 cm^2 per H])`` of ``tbabs`` or ``phabs``."""
    if model not in ABSORPTION_TABLES:
        raise ConfigError(f"unknown absorption model {model!r}; use one of "
                          f"{sorted(ABSORPTION_TABLES)}")
    with fits.open(data_path(ABSORPTION_TABLES[model])) as hdul:
        d = hdul[1].data
        return np.asarray(d["ENERGY"], float), np.asarray(d["SIGMA"], float)

