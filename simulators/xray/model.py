"""X-ray spectral simulators folded through real instrument responses.

``xray_powerlaw``: absorbed power law ``tbabs * zpowerlw``.
``xray_thermal``: absorbed optically thin thermal plasma ``tbabs * (plasma [+ plasma])``.

Both share :class:`XraySimulator`: the observation's ARF x RMF x EXPOSURE folding matrix
(filtered and grouped, see :mod:`simulators.xray.observations`), Poisson source counts plus
Poisson background counts whose mean is the observed background scaled by ``EXPOSURE x
BACKSCAL``, and the exact Poisson likelihood of that process.  ``x`` is the counts vector per
output group (float).  Every parameter can be fixed with an option ``fix_<name>=value``; fixed
parameters leave the prior (``theta`` only holds the free ones).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("xray_powerlaw", device="cpu")
    >>> sim.param_names
    ('nH', 'photon_index', 'log10_norm')
    >>> x = sim.simulate(sim.prior.sample((4,)), generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape) == (4, *sim.event_shape)
    True
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
from astropy.io import fits
from torch import Tensor

from sbi_astro.errors import ConfigError
from sbi_astro.priors import Marginal, Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator

from . import _physics as phys
from .observations import OBSERVATIONS, InstrumentResponse, cached_response, data_path

ABSORPTION_TABLES = {"tbabs": "absorption/xsect_tbabs_wilm.fits.gz",
                     "phabs": "absorption/xsect_phabs_aspl.fits.gz"}

#: Default prior range of log10_norm per observation: about +-1.5 dex around the level
#: that reproduces the observed count rate (so that NPE trains where the data are).
NORM_RANGE = {
    "powerlaw": {"chandra_3c273": (-5.0, -2.5), "chandra_dgtau": (-6.0, -3.5),
                 "xmm_ngc7793": (-4.5, -2.0)},
    "thermal": {"chandra_3c273": (-4.5, -1.5), "chandra_dgtau": (-5.5, -2.5),
                "xmm_ngc7793": (-5.0, -2.0)},
}


@functools.lru_cache(maxsize=4)
def absorption_table(model: str) -> tuple[np.ndarray, np.ndarray]:
    """``(energy [keV], sigma [1e-22 cm^2 per H])`` of ``tbabs`` or ``phabs``."""
    if model not in ABSORPTION_TABLES:
        raise ConfigError(f"unknown absorption model {model!r}; use one of "
                          f"{sorted(ABSORPTION_TABLES)}")
    with fits.open(data_path(ABSORPTION_TABLES[model])) as hdul:
        d = hdul[1].data
        return np.asarray(d["ENERGY"], float), np.asarray(d["SIGMA"], float)


def _check_common(opts) -> None:
    if opts.observation not in OBSERVATIONS:
        raise ValueError(f"observation must be one of {sorted(OBSERVATIONS)}, got "
                         f"{opts.observation!r}")
    if len(opts.energy_range) != 2 or not 0 <= opts.energy_range[0] < opts.energy_range[1]:
        raise ValueError(f"energy_range must be (low, high) keV, got {opts.energy_range}")
    if opts.absorption not in ABSORPTION_TABLES:
        raise ValueError(f"absorption must be one of {sorted(ABSORPTION_TABLES)}")
    if opts.exposure is not None and opts.exposure <= 0:
        raise ValueError(f"exposure must be positive, got {opts.exposure}")


class XraySimulator(Simulator):
    """Shared instrument, noise and likelihood code of the X-ray simulators.

    Subclasses define ``_parameters()`` (the full parameter list as ``(marginal, fixed
    value or None)``) and ``_photon_flux(params, edges)`` (photons cm^-2 s^-1 per input
    energy bin, before absorption).
    """

    x_standardization = "structured"

    # -- parameters ---------------------------------------------------------------------
    def _parameters(self) -> list[tuple[Marginal, float | None]]:  # pragma: no cover
        raise NotImplementedError

    def build_prior(self) -> Prior:
        _ = self.response  # parse and cache the response at construction
        free = [m for m, fixed in self._parameters() if fixed is None]
        if not free:
            raise ConfigError(f"{self.name}: every parameter is fixed; leave one free")
        return Prior(free)

    @functools.cached_property
    def all_param_names(self) -> tuple[str, ...]:
        return tuple(m.name for m, _ in self._parameters())

    def full_params(self, theta: Tensor) -> dict[str, Tensor]:
        """Named ``(N,)`` tensors of all parameters (fixed ones filled in)."""
        out, j = {}, 0
        for m, fixed in self._parameters():
            if fixed is None:
                out[m.name] = theta[:, j]
                j += 1
            else:
                out[m.name] = theta.new_full((theta.shape[0],), float(fixed))
        return out

    # -- instrument ---------------------------------------------------------------------
    @functools.cached_property
    def response(self) -> InstrumentResponse:
        o = self.options
        return cached_response(o.observation, tuple(float(v) for v in o.energy_range),
                               o.grouping, o.exposure)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.response.num_groups,)

    def _consts(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r = self.response
        if ("edges", like.device, like.dtype) not in self._constants:
            e_tab, s_tab = absorption_table(self.options.absorption)
            edges = torch.as_tensor(r.energy_edges, dtype=torch.float64)
            mid = 0.5 * (edges[1:] + edges[:-1])
            sigma = phys.cross_section_at(mid, torch.as_tensor(e_tab), torch.as_tensor(s_tab))
            self.constant("sigma", sigma, like)
            self.constant("edges", edges, like)
            self.constant("fold", torch.as_tensor(r.fold_matrix), like)
            self.constant("background", torch.as_tensor(r.background), like)
        return (self._constants[("edges", like.device, like.dtype)],
                self._constants[("sigma", like.device, like.dtype)],
                self._constants[("fold", like.device, like.dtype)],
                self._constants[("background", like.device, like.dtype)])

    def _photon_flux(self, p: dict[str, Tensor], edges: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def source_counts(self, theta: Tensor) -> Tensor:
        """Expected source counts per group ``(N, G)`` for flat ``theta (N, D)``."""
        edges, sigma, fold, _ = self._consts(theta)
        p = self.full_params(theta)
        flux = self._photon_flux(p, edges) * phys.transmission(p["nH"], sigma)
        return flux @ fold

    def _expected(self, theta: Tensor) -> Tensor:
        _, _, _, bkg = self._consts(theta)
        mu = self.source_counts(theta)
        return (mu + bkg if self.options.background else mu).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        with torch.no_grad():
            mu = self._expected(theta)
        return rng.poisson(mu.clamp_min(0.0)).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        mu = self._expected(theta).clamp_min(1e-30)
        return phys.poisson_log_likelihood(mu, x.to(mu.dtype))

    def default_embedding(self) -> EmbeddingSpec:
        g = self.response.num_groups
        return EmbeddingSpec("conv1d", {"in_shape": [g], "out_features": 32,
                                        "log_counts": True})

    # -- data ---------------------------------------------------------------------------
    def observed(self) -> Tensor:
        """The real observed counts per group ``(G,)`` of the chosen observation."""
        return torch.as_tensor(self.response.observed, dtype=self.dtype, device=self.device)


def _fixed(opts, name: str) -> float | None:
    return getattr(opts, f"fix_{name}")


# -- power law ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PowerLawOptions:
    """Attributes:
    observation: shipped observation (``chandra_3c273``, ``chandra_dgtau``, ``xmm_ngc7793``).
    energy_range: ``(low, high)`` [keV] of the channels kept.
    grouping: ``"file"`` (PHA GROUPING), ``"none"`` or ``"min:N"``.
    exposure: exposure override [s] (``None``: the observation's).
    background: add the scaled observed background to the expected counts.
    absorption: ``"tbabs"`` (Wilms abundances) or ``"phabs"``.
    fix_nH, fix_photon_index, fix_log10_norm, fix_redshift: fix a parameter (``None`` =
        free; ``redshift`` is fixed to 0 by default).
    nH_max: upper prior bound of nH [1e22 cm^-2].
    log10_norm_range: prior range of log10_norm (``None``: per-observation default).
    """

    observation: str = "chandra_3c273"
    energy_range: tuple[float, ...] = (0.5, 7.0)
    grouping: str = "file"
    exposure: float | None = None
    background: bool = True
    absorption: str = "tbabs"
    fix_nH: float | None = None
    fix_photon_index: float | None = None
    fix_log10_norm: float | None = None
    fix_redshift: float | None = 0.0
    nH_max: float = 1.0
    log10_norm_range: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _check_common(self)


class XrayPowerLaw(XraySimulator):
    """Absorbed power law ``tbabs * zpowerlw`` through a real response.

    Parameters: ``nH`` [1e22 cm^-2], ``photon_index``, ``log10_norm`` (log10 of photons
    keV^-1 cm^-2 s^-1 at 1 keV in the source frame), ``redshift`` (fixed to 0 by default).
    """

    name = "xray_powerlaw"
    Options = PowerLawOptions

    def _parameters(self) -> list[tuple[Marginal, float | None]]:
        o = self.options
        lo, hi = o.log10_norm_range or NORM_RANGE["powerlaw"][o.observation]
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

    def _photon_flux(self, p: dict[str, Tensor], edges: Tensor) -> Tensor:
        return phys.powerlaw_flux(edges, p["photon_index"], 10.0 ** p["log10_norm"],
                                  p["redshift"])
