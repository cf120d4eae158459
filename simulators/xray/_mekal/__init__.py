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

Modules: :mod:`.atomic_data` (elements, constants, reading the tables), :mod:`.fit_functions`
(the auxiliary functions of the rate fits), :mod:`.ionisation` (ionisation balance),
:mod:`.continuum` and :mod:`.lines` (the emission).  Their public names are re-exported here.

Example:
    >>> from simulators.xray import _mekal as mk
    >>> mk.NUM_ION, mk.ELEMENTS[-1]
    (207, 'Ni')
"""

from .atomic_data import (
    CHARGE,
    CMAX,
    ELEMENTS,
    FF_CGS,
    ION_START,
    LOG_ABUNDANCE_AG89,
    N_ION,
    NUM_ION,
    RAW_TO_CGS,
    SOLAR,
    YLIM,
    MekalData,
    read_mekal_data,
)
from .continuum import continuum
from .ionisation import (
    electron_density_ratio,
    ion_fractions,
    ionisation_rates,
    recombination_rates,
)
from .lines import lines

__all__ = ["CHARGE", "CMAX", "ELEMENTS", "FF_CGS", "ION_START", "LOG_ABUNDANCE_AG89", "N_ION",
           "NUM_ION", "RAW_TO_CGS", "SOLAR", "YLIM", "MekalData", "continuum",
           "electron_density_ratio", "ion_fractions", "ionisation_rates", "lines",
           "read_mekal_data", "recombination_rates"]
