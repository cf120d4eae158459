"""Pure torch functions of the semi-numerical 21 cm model (no state, batched, device-agnostic).

Units: comoving distances in Mpc (not Mpc/h), wavenumbers in 1/Mpc, masses in solar masses,
temperatures in K, brightness temperatures in mK.  The matter density ``omega_m`` is a tensor
(it may vary per row); the other cosmological numbers are the floats of :class:`Cosmology`.

Contents (one module each; every public name is re-exported here):
    * :mod:`.cosmology`: the :class:`Cosmology` numbers; background (:func:`hubble_e`,
      :func:`growth_factor`, :func:`comoving_distance`, :func:`redshift_at_distance`);
      linear power (:func:`eh98_transfer`, :func:`tophat_window`, :func:`linear_power`,
      :func:`sigma_tophat`); haloes (:func:`virial_mass`, :func:`fcoll_ps`, :func:`fcoll_st`);
    * :mod:`.fields`: :func:`wavenumbers`, :func:`gaussian_field`,
      :func:`zeldovich_displacement`, :func:`cic_deposit`;
    * :mod:`.reionisation`: :func:`filter_radii`, :func:`excursion_set`,
      :func:`brightness_temperature`, :func:`t21_prefactor`;
    * :mod:`.wedge`: the foreground wedge, :func:`wedge_slope`, :func:`remove_wedge`.

References:
    Eisenstein & Hu (1998), ApJ 496, 605 (no-wiggle transfer function, eqs. 26-31).
    Barkana & Loeb (2001), Phys. Rep. 349, 125 (virial mass-temperature relation, eq. 26).
    Sheth & Tormen (1999), MNRAS 308, 119; Press & Schechter (1974); Bond et al. (1991)
    and Lacey & Cole (1993) (conditional collapsed fraction).
    Furlanetto, Zaldarriaga & Hernquist (2004), ApJ 613, 1 (excursion-set bubbles).
    Mesinger & Furlanetto (2007), ApJ 669, 663; Mesinger, Furlanetto & Cen (2011), MNRAS
    411, 955 (21cmFAST: ionisation criterion, radii stepping, T_S >> T_CMB dT_b).
    Hockney & Eastwood (1981) (cloud-in-cell assignment).

Example:
    >>> import torch
    >>> from simulators.cm21 import _physics as ph
    >>> float(ph.growth_factor(torch.tensor(1.0), torch.tensor(1.0)))  # EdS: D = a
    0.5
"""

from .cosmology import (
    C_KM_S,
    DELTA_C,
    RHO_CRIT_H2,
    ST_A,
    Cosmology,
    ST_a,
    ST_p,
    comoving_distance,
    eh98_transfer,
    fcoll_ps,
    fcoll_st,
    growth_factor,
    hubble_e,
    linear_power,
    mass_to_radius,
    power_amplitude,
    redshift_at_distance,
    sigma_tophat,
    tophat_window,
    virial_mass,
)
from .fields import cic_deposit, gaussian_field, wavenumbers, zeldovich_displacement
from .reionisation import brightness_temperature, excursion_set, filter_radii, t21_prefactor
from .wedge import remove_wedge, wedge_slope

__all__ = [
    "C_KM_S", "DELTA_C", "RHO_CRIT_H2", "ST_A", "ST_a", "ST_p", "Cosmology",
    "brightness_temperature", "cic_deposit", "comoving_distance", "eh98_transfer",
    "excursion_set", "fcoll_ps", "fcoll_st", "filter_radii", "gaussian_field", "growth_factor",
    "hubble_e", "linear_power", "mass_to_radius", "power_amplitude", "redshift_at_distance",
    "remove_wedge", "sigma_tophat", "t21_prefactor", "tophat_window", "virial_mass",
    "wavenumbers", "wedge_slope", "zeldovich_displacement",
]
