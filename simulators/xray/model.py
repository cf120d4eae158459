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

import contextlib
import dataclasses
import functools
import logging
import math
import warnings

import numpy as np
import torch
from astropy.io import fits
from torch import Tensor

from sbi_astro.errors import ConfigError, NotAvailableError
from sbi_astro.priors import LogUniform, Marginal, Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator

from . import _physics as phys
from .mekal_table import log_table, mekal_table
from .observations import OBSERVATIONS, InstrumentResponse, cached_response, data_path
from .reference import EmceeSettings, emcee_posterior

ABSORPTION_TABLES = {"tbabs": "absorption/xsect_tbabs_wilm.fits.gz",
                     "phabs": "absorption/xsect_phabs_aspl.fits.gz"}

#: Default prior range of log10_norm per observation: about +-1.5 dex around the level
#: that reproduces the observed count rate (so that NPE trains where the data are).
NORM_RANGE = {
    "powerlaw": {"chandra_3c273": (-5.0, -2.5), "chandra_dgtau": (-6.0, -3.5),
                 "xmm_ngc7793": (-4.5, -2.0)},
    "thermal": {"chandra_3c273": (-4.5, -1.5), "chandra_dgtau": (-5.5, -2.5),
                "xmm_ngc7793": (-4.0, -1.5)},
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


@dataclasses.dataclass(frozen=True)
class XrayOptions:
    """Options shared by the X-ray simulators.

    Attributes:
        observation: shipped observation (``chandra_3c273``, ``chandra_dgtau``,
            ``xmm_ngc7793``).
        energy_range: ``(low, high)`` [keV] of the channels kept.
        grouping: ``"file"`` (PHA GROUPING), ``"none"`` or ``"min:N"``.
        exposure: exposure override [s] (``None``: the observation's).
        background: add the scaled observed background to the expected counts.
        absorption: ``"tbabs"`` (Wilms abundances) or ``"phabs"``.
        nH_max: upper prior bound of nH [1e22 cm^-2].
        log10_norm_range: prior range of log10_norm (``None``: per-observation default).
    """

    observation: str = "chandra_3c273"
    energy_range: tuple[float, ...] = (0.5, 7.0)
    grouping: str = "file"
    exposure: float | None = None
    background: bool = True
    absorption: str = "tbabs"
    nH_max: float = 1.0
    log10_norm_range: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {sorted(OBSERVATIONS)}, got "
                             f"{self.observation!r}")
        if len(self.energy_range) != 2 or not 0 <= self.energy_range[0] < self.energy_range[1]:
            raise ValueError(f"energy_range must be (low, high) keV, got {self.energy_range}")
        if self.absorption not in ABSORPTION_TABLES:
            raise ValueError(f"absorption must be one of {sorted(ABSORPTION_TABLES)}")
        if self.exposure is not None and self.exposure <= 0:
            raise ValueError(f"exposure must be positive, got {self.exposure}")


class XraySimulator(Simulator):
    """Shared instrument, noise and likelihood code of the X-ray simulators.

    Subclasses define ``_parameters()`` (the full parameter list as ``(marginal, fixed
    value or None)``) and ``_photon_flux(params, edges, log_transmission)`` (photons
    cm^-2 s^-1 per input energy bin, times the transmission ``exp(log_transmission)``).
    """

    x_standardization = "structured"
    #: emcee settings of :meth:`reference_posterior`
    mcmc = EmceeSettings()
    last_mcmc_diagnostics: list[dict[str, float]] = []
    #: rows simulated per chunk (memory/cache trade-off only; results do not depend on it)
    chunk_rows = 4096

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

    @functools.cached_property
    def model_bins(self) -> slice:
        """The response's input energy bins that reach a channel: the contiguous range
        from the first to the last bin with a non-zero row of the folded response.  Bins
        outside it add exactly zero counts (e.g. 276 of 1,090 for Chandra 3C 273 filtered
        to 0.5-7 keV, 608 of 2,067 for XMM NGC 7793), so the model is not evaluated there."""
        live = np.flatnonzero(np.any(self.response.fold_matrix != 0, axis=1))
        if live.size == 0:
            raise ConfigError(f"{self.name}: the response of {self.options.observation!r} "
                              f"folds no energy bin into the selected channels; widen "
                              f"energy_range (now {self.options.energy_range})")
        return slice(int(live[0]), int(live[-1]) + 1)

    @property
    def model_edges(self) -> np.ndarray:
        """Edges ``(E' + 1,)`` [keV] of :attr:`model_bins`, the grid the model is computed on."""
        b = self.model_bins
        return self.response.energy_edges[b.start:b.stop + 1]

    def _consts(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``edges (E'+1,)``, ``sigma (E',)`` in ``like``'s dtype; the folded response
        ``(E', G)`` and the background ``(G,)`` in float64 (see :meth:`source_counts`)."""
        r = self.response
        if ("edges", like.device, like.dtype) not in self._constants:
            e_tab, s_tab = absorption_table(self.options.absorption)
            edges = torch.as_tensor(self.model_edges, dtype=torch.float64)
            mid = 0.5 * (edges[1:] + edges[:-1])
            sigma = phys.cross_section_at(mid, torch.as_tensor(e_tab), torch.as_tensor(s_tab))
            f64 = like.new_empty((), dtype=torch.float64)
            self.constant("sigma", sigma, like)
            self.constant("edges", edges, like)
            self.constant("fold", torch.as_tensor(r.fold_matrix[self.model_bins]), f64)
            self.constant("background", torch.as_tensor(r.background), f64)
        f64_key = (like.device, torch.float64)
        return (self._constants[("edges", like.device, like.dtype)],
                self._constants[("sigma", like.device, like.dtype)],
                self._constants[("fold", *f64_key)],
                self._constants[("background", *f64_key)])

    def _photon_flux(self, p: dict[str, Tensor], edges: Tensor,
                     log_transmission: Tensor) -> Tensor:  # pragma: no cover
        """Absorbed photon flux per input bin ``(N, E)``: the model's flux times
        ``exp(log_transmission)`` (``-nH sigma``, ``(N, E)``)."""
        raise NotImplementedError

    def source_counts(self, theta: Tensor) -> Tensor:
        """Expected source counts per group ``(N, G)`` for flat ``theta (N, D)``, float64.

        The model is evaluated in the simulator's dtype; the fold is a float64 matrix
        product.  A float32 BLAS product picks its kernel (and summation order) by the
        number of rows and threads, so a row's counts would change by ~1e-6 with the batch
        around it, flipping a few Poisson draws per 10,000 spectra; in float64 the change
        is ~1e-15, far below what moves a draw.
        """
        edges, sigma, fold, _ = self._consts(theta)
        p = self.full_params(theta)
        log_t = phys.log_transmission(p["nH"], sigma)
        return self._photon_flux(p, edges, log_t).to(torch.float64) @ fold

    def _mean_counts(self, theta: Tensor) -> Tensor:
        """Expected total counts ``(N, G)`` in float64 (source, plus background if on)."""
        _, _, _, bkg = self._consts(theta)
        mu = self.source_counts(theta)
        return mu + bkg if self.options.background else mu

    def _expected(self, theta: Tensor) -> Tensor:
        return self._mean_counts(theta).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        # Chunks of rows keep the (rows x energy bins) intermediates cache-sized; each chunk
        # reads its rows' own streams of one split, so results do not depend on the chunking.
        keys = rng.split().keys
        out = []
        with torch.no_grad():
            for i in range(0, theta.shape[0], self.chunk_rows):
                mu = self._mean_counts(theta[i:i + self.chunk_rows]).clamp_min(0.0)
                # exact Poisson counts from the rows' own counter streams (core sampler)
                rr = RowRandom(keys[i:i + self.chunk_rows])
                out.append(rr.poisson(mu).to(self.dtype))
        return torch.cat(out)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        mu = self._expected(theta).clamp_min(1e-30)
        return phys.poisson_log_likelihood(mu, x.to(mu.dtype))

    def _log_posterior_fn(self, x_row: Tensor):
        """numpy ``(W, D) -> (W,)`` unnormalised log posterior of one observation (float64)."""
        prior = self.prior

        def fn(th: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.atleast_2d(th), dtype=torch.float64)
            inside = prior.within_support(t)
            out = torch.full((t.shape[0],), -math.inf, dtype=torch.float64)
            if inside.any():
                ti = t[inside]
                mu = self._expected(ti).to(torch.float64).clamp_min(1e-300)
                ll = phys.poisson_log_likelihood(mu, x_row.to(torch.float64)[None])
                out[inside] = ll + prior.log_prob(ti.to(prior.low.dtype)).to(torch.float64)
            return out.numpy()

        return fn

    def _reference_posterior(self, x: Tensor, num_samples: int, rng: RowRandom) -> Tensor:
        """Posterior samples by MCMC on the exact Poisson likelihood, with convergence checks
        (:func:`simulators.xray.reference.emcee_posterior`; settings in ``mcmc``, the
        diagnostics of the last call in ``last_mcmc_diagnostics``).  Seeds come from ``rng``."""
        seeds = (rng.uniform((), dtype=torch.float64) * 2**31).long().tolist()
        out, diags = [], []
        for i in range(x.shape[0]):
            samples, diag = emcee_posterior(self._log_posterior_fn(x[i].cpu()), self.prior,
                                            num_samples, int(seeds[i]), self.mcmc)
            out.append(samples)
            diags.append(diag)
        self.last_mcmc_diagnostics = diags
        bad = [i for i, d in enumerate(diags) if d["chain_over_tau"] < self.mcmc.min_tau]
        if bad:
            warnings.warn(f"{self.name}: MCMC chains of observations {bad} are shorter than "
                          f"{self.mcmc.min_tau} autocorrelation times even after "
                          f"{self.mcmc.max_steps} steps; their reference posteriors may be "
                          "unconverged (see last_mcmc_diagnostics)", RuntimeWarning,
                          stacklevel=3)
        return torch.stack(out, 1).to(device=x.device, dtype=self.dtype)

    def default_embedding(self) -> EmbeddingSpec:
        g = self.response.num_groups
        return EmbeddingSpec("conv1d", {"in_shape": [g], "out_features": 32,
                                        "asinh": True})

    # -- data ---------------------------------------------------------------------------
    def observed(self) -> Tensor:
        """The real observed counts per group ``(G,)`` of the chosen observation."""
        return torch.as_tensor(self.response.observed, dtype=self.dtype, device=self.device)


# -- power law ----------------------------------------------------------------------------


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

    def _photon_flux(self, p: dict[str, Tensor], edges: Tensor,
                     log_transmission: Tensor) -> Tensor:
        z = None if self.options.fix_redshift == 0.0 else p["redshift"]
        return phys.powerlaw_flux(edges, p["photon_index"], 10.0 ** p["log10_norm"], z,
                                  log_scale=log_transmission)


# -- thermal plasma -----------------------------------------------------------------------

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

    observation: str = "chandra_dgtau"
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

    def _parameters(self) -> list[tuple[Marginal, float | None]]:
        o = self.options
        lo, hi = o.log10_norm_range or NORM_RANGE["thermal"][o.observation]
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
