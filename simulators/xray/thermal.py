"""``xray_thermal``: absorbed optically thin thermal plasma (MEKAL) ``tbabs * (plasma [+
plasma])`` (see :mod:`simulators.xray.base`).

Example:
    >>> sim = XrayThermal(device="cpu")
    >>> sim.param_names
    ('nH', 'kT', 'abundance', 'log10_norm')
    >>> sim.options.observation
    'chandra_dgtau'
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from sbi_astro.priors import LogUniform, Marginal, Uniform

from . import _physics as phys
from .base import XrayOptions, XraySimulator
from .mekal_table import log_table, mekal_table

#: Default prior range of log10_norm per observation: about +-1.5 dex around the level
#: that reproduces the observed count rate (so that NPE trains where the data are).
NORM_RANGE = {"chandra_3c273": (-4.5, -1.5), "chandra_dgtau": (-5.5, -2.5),
              "xmm_ngc7793": (-4.0, -1.5)}


@dataclasses.dataclass(frozen=True)
class ThermalOptions(XrayOptions):
    """The :class:`XrayOptions` (default observation ``chandra_dgtau``, whose PHA has no
    grouping), and:

    Attributes:
        components: 1 or 2 temperature components (the second adds ``kT2``,
            ``log10_norm2``; both share ``abundance``, ``redshift`` and ``nH``).
        fix_<name>: fix a parameter (``None`` = free); ``redshift`` is fixed to 0 by default.
        kT_range: prior range of ``kT`` (and ``kT2``) [keV], log-uniform, inside 0.08-64 keV.
        abundance_max: upper bound of the uniform ``abundance`` prior [solar].
    """

    default_observation: ClassVar[str] = "chandra_dgtau"

    components: int = 1
    fix_nH: float | None = None
    fix_kT: float | None = None
    fix_abundance: float | None = None
    fix_redshift: float | None = 0.0
    fix_log10_norm: float | None = None
    fix_kT2: float | None = None
    fix_log10_norm2: float | None = None
    kT_range: tuple[float, ...] = (0.2, 10.0)
    abundance_max: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.components not in (1, 2):
            raise ValueError(f"components must be 1 or 2, got {self.components}")
        lo, hi = self.kT_range
        if not 0.08 <= lo < hi <= 64.0:
            raise ValueError(f"kT_range must lie inside the table, 0.08-64 keV; got "
                             f"{self.kT_range}")


class XrayThermal(XraySimulator):
    """Absorbed optically thin thermal plasma (MEKAL, CIE) through a real response.

    Model: ``tbabs * (mekal(kT, abundance, z, norm) [+ mekal(kT2, abundance, z, norm2)])``.
    Parameters: ``nH`` [1e22 cm^-2], ``kT`` [keV], ``abundance`` [solar, Anders & Grevesse
    1989; scales C ... Ni, H and He fixed], ``redshift``, ``log10_norm`` with XSPEC's
    ``norm = 1e-14 / (4 pi D_A^2 (1+z)^2) int n_e n_H dV`` [cm^-5].

    The emissivity comes from the tabulated MEKAL model (``data/mekal_table.npz``): the
    photon flux in an observed bin is ``1e14 norm / (1+z) * int_bin(1+z) [eps_HHe(kT) +
    abundance * eps_metals(kT)] dE'``, the table interpolated linearly in ``log kT`` of the
    log emissivity.  With the redshift fixed (the default) the table is pre-binned onto the
    response grid once; a free redshift integrates the fine table on the fly.
    """

    name = "xray_thermal"
    Options = ThermalOptions
    # NPE on the log scale of the log-uniform temperatures: on the DG Tau benchmark cell at
    # 10^4 simulations, C2ST 0.683 against 0.711 on the box scale (docs/inference.md)
    default_theta_transform = "logit_cdf"

    norm_range_table = NORM_RANGE

    def _parameters_for(self, norm_range: tuple[float, float]
                        ) -> list[tuple[Marginal, float | None]]:
        o = self.options
        lo, hi = norm_range
        kt_lo, kt_hi = o.kT_range
        out = [
            (Uniform("nH", 0.0, o.nH_max, unit="1e22 cm-2",
                     description="hydrogen column density"), o.fix_nH),
            (LogUniform("kT", kt_lo, kt_hi, unit="keV", description="plasma temperature"),
             o.fix_kT),
            (Uniform("abundance", 0.0, o.abundance_max, unit="solar",
                     description="metal abundance (Anders & Grevesse 1989)"), o.fix_abundance),
            (Uniform("redshift", 0.0, 1.0, description="cosmological redshift"),
             o.fix_redshift),
            (Uniform("log10_norm", lo, hi, unit="log10(cm-5)",
                     description="log10 of the XSPEC norm 1e-14 EM / (4 pi D_A^2 (1+z)^2)"),
             o.fix_log10_norm),
        ]
        if o.components == 2:
            out += [
                (LogUniform("kT2", kt_lo, kt_hi, unit="keV",
                            description="temperature of the second component"), o.fix_kT2),
                (Uniform("log10_norm2", lo, hi, unit="log10(cm-5)",
                         description="log10 norm of the second component"), o.fix_log10_norm2),
            ]
        return out

    def _tables(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``log kT (T,)``, ``log eps_HHe`` and ``log eps_metals`` ``(T, E')`` where E' is the
        response grid (fixed redshift) or the fine rest-frame grid (free redshift)."""
        key = ("log_kt", like.device, like.dtype)
        if key not in self._constants:
            tab = mekal_table()
            fine = tab["energy_edges"]
            z = self.options.fix_redshift
            comps = []
            for name in ("hhe", "metals"):
                v = tab[name].astype(np.float64)
                if z is not None:
                    cum = np.concatenate([np.zeros((v.shape[0], 1)), np.cumsum(v, axis=1)], 1)
                    e = self.model_edges * (1.0 + z)
                    at = np.stack([np.interp(e, fine, c) for c in cum])
                    v = np.diff(at, axis=1) / (1.0 + z)
                comps.append(log_table(v))
            self.constant("log_kt", torch.as_tensor(np.log(tab["kt"].astype(np.float64))), like)
            self.constant("log_hhe", torch.as_tensor(comps[0]), like)
            self.constant("log_met", torch.as_tensor(comps[1]), like)
            self.constant("fine_edges", torch.as_tensor(fine), like)
        return (self._constants[key], self._constants[("log_hhe", like.device, like.dtype)],
                self._constants[("log_met", like.device, like.dtype)])

    def plasma_flux(self, kt: Tensor, abundance: Tensor, norm: Tensor, redshift: Tensor,
                    edges: Tensor) -> Tensor:
        """Photon flux per bin ``(N, E)`` [photons cm^-2 s^-1] of one plasma component."""
        log_kt, log_hhe, log_met = self._tables(kt)
        x = torch.log(kt)[:, None]
        idx = torch.searchsorted(log_kt, x.contiguous()).clamp(1, log_kt.shape[0] - 1)
        x0, x1 = log_kt[idx - 1], log_kt[idx]
        w = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
        i0, i1 = idx[:, 0] - 1, idx[:, 0]

        def interp(tab: Tensor) -> Tensor:
            return torch.exp(tab[i0] + w * (tab[i1] - tab[i0]))

        eps = interp(log_hhe) + abundance[:, None] * interp(log_met)
        if self.options.fix_redshift is None:
            fine = self._constants[("fine_edges", kt.device, kt.dtype)]
            cum = torch.cat([eps.new_zeros(eps.shape[0], 1), torch.cumsum(eps, 1)], 1)
            e = edges[None, :] * (1.0 + redshift[:, None])
            at = phys.cumulative_interp(e, fine, cum)
            eps = (at[:, 1:] - at[:, :-1]) / (1.0 + redshift[:, None])
        return norm[:, None] * phys.xspec_plasma_norm_factor() * eps

    def _photon_flux(self, p: dict[str, Tensor], edges: Tensor,
                     log_transmission: Tensor) -> Tensor:
        flux = self.plasma_flux(p["kT"], p["abundance"], 10.0 ** p["log10_norm"],
                                p["redshift"], edges)
        if self.options.components == 2:
            flux = flux + self.plasma_flux(p["kT2"], p["abundance"], 10.0 ** p["log10_norm2"],
                                           p["redshift"], edges)
        return flux * torch.exp(log_transmission)
