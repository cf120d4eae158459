"""``xray_powerlaw``: absorbed power law ``tbabs * zpowerlw`` (see :mod:`simulators.xray.base`).

Example:
    >>> import torch
    >>> sim = XrayPowerLaw(device="cpu")
    >>> sim.param_names
    ('nH', 'photon_index', 'log10_norm')
    >>> x = sim.simulate(sim.prior.sample((4,)), generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape) == (4, *sim.event_shape)
    True
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from sbi_astro.priors import Marginal, Uniform

from . import _physics as phys
from .base import XrayOptions, XraySimulator

#: Default prior range of log10_norm per observation: about +-1.5 dex around the level
#: that reproduces the observed count rate (so that NPE trains where the data are).
NORM_RANGE = {"chandra_3c273": (-5.0, -2.5), "chandra_dgtau": (-6.0, -3.5),
              "xmm_ngc7793": (-4.5, -2.0)}


@dataclasses.dataclass(frozen=True)
class PowerLawOptions(XrayOptions):
    """The :class:`XrayOptions`, and:

    Attributes:
        fix_nH, fix_photon_index, fix_log10_norm, fix_redshift: fix a parameter (``None`` =
            free; ``redshift`` is fixed to 0 by default).
    """

    fix_nH: float | None = None
    fix_photon_index: float | None = None
    fix_log10_norm: float | None = None
    fix_redshift: float | None = 0.0


class XrayPowerLaw(XraySimulator):
    """Absorbed power law ``tbabs * zpowerlw`` through a real response.

    Parameters: ``nH`` [1e22 cm^-2], ``photon_index``, ``log10_norm`` (log10 of photons
    keV^-1 cm^-2 s^-1 at 1 keV in the source frame), ``redshift`` (fixed to 0 by default).
    """

    name = "xray_powerlaw"
    Options = PowerLawOptions

    norm_range_table = NORM_RANGE

    def _parameters_for(self, norm_range: tuple[float, float]
                        ) -> list[tuple[Marginal, float | None]]:
        o = self.options
        lo, hi = norm_range
        return [
            (Uniform("nH", 0.0, o.nH_max, unit="1e22 cm-2",
                     description="hydrogen column density"), o.fix_nH),
            (Uniform("photon_index", 0.5, 3.5, description="photon index Gamma"),
             o.fix_photon_index),
            (Uniform("log10_norm", lo, hi, unit="log10(ph keV-1 cm-2 s-1)",
                     description="log10 of the flux density at 1 keV"), o.fix_log10_norm),
            (Uniform("redshift", 0.0, 2.0, description="cosmological redshift"),
             o.fix_redshift),
        ]

    def _photon_flux(self, p: dict[str, Tensor], edges: Tensor,
                     log_transmission: Tensor) -> Tensor:
        z = None if self.options.fix_redshift == 0.0 else p["redshift"]
        return phys.powerlaw_flux(edges, p["photon_index"], 10.0 ** p["log10_norm"], z,
                                  log_scale=log_transmission)

