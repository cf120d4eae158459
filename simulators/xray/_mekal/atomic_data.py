"""MEKAL's elements, physical constants and atomic-data tables (``mekal1.dat`` ...
``mekal6.dat``), read into :class:`MekalData`.

Example:
    >>> NUM_ION, int(ION_START[ELEMENTS.index("Fe")])  # 207 ions; Fe I is ion 151
    (207, 151)
    >>> f"{RAW_TO_CGS:.4e}"  # photons cm^3 s^-1 keV^-1 keV^1/2 per raw unit
    '3.0310e-15'
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
