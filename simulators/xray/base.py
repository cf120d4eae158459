"""The shared base of the X-ray spectral simulators: :class:`XrayOptions` and
:class:`XraySimulator`.

The models are :class:`simulators.xray.powerlaw.XrayPowerLaw` (``xray_powerlaw``, absorbed
power law ``tbabs * zpowerlw``) and :class:`simulators.xray.thermal.XrayThermal`
(``xray_thermal``, absorbed optically thin thermal plasma ``tbabs * (plasma [+ plasma])``).

Both share :class:`XraySimulator`: the observation's ARF x RMF x EXPOSURE folding matrix
(filtered and grouped, see :mod:`simulators.xray.observations`), Poisson source counts plus
Poisson background counts whose mean is the observed background scaled by ``EXPOSURE x
BACKSCAL``, and the exact Poisson likelihood of that process.  ``x`` is the counts vector per
output group (float).  Every parameter can be fixed with an option ``fix_<name>=value``; fixed
parameters leave the prior (``theta`` only holds the free ones).

Example:
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("xray_thermal", device="cpu")
    >>> isinstance(sim, XraySimulator), sim.event_shape == (sim.response.num_groups,)
    (True, True)
    >>> XrayOptions(energy_range=(7.0, 0.5))
    Traceback (most recent call last):
        ...
    ValueError: energy_range must be (low, high) keV, got (7.0, 0.5)

Both are benchmark tasks (:mod:`sbi_astro.benchmark_references`, references in
``data/benchmark/``):

    >>> sim = load_simulator("xray_powerlaw", device="cpu")
    >>> tuple(sim.reference_observation(1).shape), tuple(sim.reference_samples(1, 500).shape)
    ((40,), (500, 3))
    >>> d = sim.reference_diagnostics(1)
    >>> bool(d["split_rhat"] < 1.01 and d["ess"] >= 10_000)
    True
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from sbi_astro.benchmark_references import BenchmarkReferences
from sbi_astro.errors import ConfigError
from sbi_astro.options import FilePath
from sbi_astro.priors import Marginal, Prior
from sbi_astro.provenance import file_record
from sbi_astro.random import RowRandom
from sbi_astro.reference_mcmc import EmceeSettings, emcee_posterior
from sbi_astro.simulator import EmbeddingSpec, Simulator

from . import _physics as phys
from .absorption import ABSORPTION_TABLES, absorption_table
from .observations import (
    OBSERVATIONS,
    InstrumentResponse,
    Observation,
    ObservationFiles,
    cached_response,
)


@dataclasses.dataclass(frozen=True)
class XrayOptions:
    """Options shared by the X-ray simulators.

    Attributes:
        observation: a shipped observation (``chandra_3c273``, ``chandra_dgtau``,
            ``xmm_ngc7793``; the default is the simulator's), or ``None`` with ``pha``.
        pha: your own OGIP PHA (type I) spectrum, instead of ``observation``.  Its
            ``RESPFILE``, ``ANCRFILE`` and ``BACKFILE`` are found relative to its folder, as
            XSPEC does; ``EXPOSURE``, ``BACKSCAL``, ``AREASCAL``, ``GROUPING`` and ``QUALITY``
            come from the file.
        arf, rmf: override the PHA's ``ANCRFILE`` / ``RESPFILE``.
        energy_range: ``(low, high)`` [keV] of the channels kept.
        grouping: ``"file"`` (PHA GROUPING), ``"none"`` or ``"min:N"``.
        exposure: exposure override [s] (``None``: the observation's).
        background: ``True``: add the scaled observed background (``BACKFILE``) to the
            expected counts; ``False``: do not; a path: that background spectrum instead of
            ``BACKFILE``.
        absorption: ``"tbabs"`` (Wilms abundances) or ``"phabs"``.
        nH_max: upper prior bound of nH [1e22 cm^-2].
        log10_norm_range: prior range of log10_norm (``None``: per-observation default for
            a shipped observation; for your own spectrum, 1.5 dex either side of the norm
            that reproduces its net count rate, see :meth:`XraySimulator.data_norm_center`).
    """

    #: the shipped observation used when neither ``observation`` nor ``pha`` is given
    default_observation: ClassVar[str] = "chandra_3c273"

    observation: str | None = None
    energy_range: tuple[float, ...] = (0.5, 7.0)
    grouping: str = "file"
    exposure: float | None = None
    background: bool | FilePath = True
    absorption: str = "tbabs"
    nH_max: float = 1.0
    log10_norm_range: tuple[float, ...] | None = None
    pha: FilePath | None = None
    arf: FilePath | None = None
    rmf: FilePath | None = None

    def __post_init__(self) -> None:
        if self.pha is not None and self.observation is not None:
            raise ValueError(f"give either observation (a shipped one, here "
                             f"{self.observation!r}) or pha (your own spectrum, here "
                             f"{self.pha}), not both")
        if self.pha is None:
            if self.arf is not None or self.rmf is not None:
                raise ValueError("arf and rmf override the files of your own spectrum: give "
                                 "pha too")
            if self.observation is None:
                object.__setattr__(self, "observation", self.default_observation)
            if self.observation not in OBSERVATIONS:
                raise ValueError(f"observation must be one of {sorted(OBSERVATIONS)} (or give "
                                 f"your own spectrum with pha=PATH), got {self.observation!r}")
        if len(self.energy_range) != 2 or not 0 <= self.energy_range[0] < self.energy_range[1]:
            raise ValueError(f"energy_range must be (low, high) keV, got {self.energy_range}")
        if self.absorption not in ABSORPTION_TABLES:
            raise ValueError(f"absorption must be one of {sorted(ABSORPTION_TABLES)}")
        if self.exposure is not None and self.exposure <= 0:
            raise ValueError(f"exposure must be positive, got {self.exposure}")


class XraySimulator(BenchmarkReferences, Simulator):
    """Shared instrument, noise and likelihood code of the X-ray simulators.

    Subclasses define ``_parameters()`` (the full parameter list as ``(marginal, fixed
    value or None)``) and ``_photon_flux(params, edges, log_transmission)`` (photons
    cm^-2 s^-1 per input energy bin, times the transmission ``exp(log_transmission)``).
    """

    x_standardization = "structured"
    #: the benchmark references (one file per shipped observation)
    references_dir = Path(__file__).resolve().parent / "data" / "benchmark"
    #: emcee settings of :meth:`reference_posterior`
    mcmc = EmceeSettings()
    last_mcmc_diagnostics: list[dict[str, float]] = []
    #: rows simulated per chunk (memory/cache trade-off only; results do not depend on it)
    chunk_rows = 4096

    #: per shipped observation, the default prior range of log10_norm (set by each model)
    norm_range_table: ClassVar[dict[str, tuple[float, float]]] = {}
    #: half-width [dex] of the log10_norm prior derived from your own spectrum
    data_norm_halfwidth: ClassVar[float] = 1.5

    # -- parameters ---------------------------------------------------------------------
    def _parameters_for(self, norm_range: tuple[float, float]
                        ) -> list[tuple[Marginal, float | None]]:  # pragma: no cover
        """Every parameter as ``(marginal, fixed value or None)``, log10_norm on
        ``norm_range``."""
        raise NotImplementedError

    def _parameters(self) -> list[tuple[Marginal, float | None]]:
        return self._parameters_for(self._norm_range())

    def _norm_range(self) -> tuple[float, float]:
        o = self.options
        if o.log10_norm_range is not None:
            return tuple(float(v) for v in o.log10_norm_range)
        if o.pha is None:
            return self.norm_range_table[o.observation]
        c = self.data_norm_center()
        return (c - self.data_norm_halfwidth, c + self.data_norm_halfwidth)

    def data_norm_center(self) -> float:
        """The log10_norm whose expected source counts equal the spectrum's net counts (its
        counts minus the scaled background in the selected channels), the other free
        parameters at the centres of their priors and the fixed ones at their values: the
        centre of the default log10_norm prior for your own spectrum.

        Raises:
            ConfigError: no net counts in the selected channels.
        """
        r = self.response
        net = float(r.observed.sum() - (r.background.sum() if self.options.background
                                        is not False else 0.0))
        if net <= 0:
            raise ConfigError(f"{self.name}: the spectrum has no net counts in energy_range "
                              f"{tuple(self.options.energy_range)} keV ({r.observed.sum():g} "
                              f"counts, background {r.background.sum():g}); widen the range "
                              "or give log10_norm_range")
        params = self._parameters_for((-1.0, 1.0))  # log10_norm at its centre, 0
        row = {m.name: torch.tensor([float(fixed) if fixed is not None else
                                     float(m.icdf(torch.tensor(0.5, dtype=torch.float64)))],
                                    dtype=torch.float64) for m, fixed in params}
        edges, sigma, fold, _ = self._consts(torch.zeros((), dtype=torch.float64))
        log_t = phys.log_transmission(row["nH"], sigma)
        counts = float((self._photon_flux(row, edges, log_t).to(torch.float64) @ fold).sum())
        return math.log10(net / counts)

    def prior_notes(self) -> dict[str, str]:
        o = self.options
        if o.pha is None or o.log10_norm_range is not None:
            return {}
        return {"log10_norm": f"range derived from the spectrum's net counts: "
                              f"{self.data_norm_center():.3f} +/- {self.data_norm_halfwidth:g} dex"}

    def physical_support(self) -> dict[str, tuple[float, float]]:
        """Where the models are defined: column densities, abundances and redshifts >= 0,
        temperatures inside the MEKAL table (0.08-64 keV), any index and norm."""
        inf = math.inf
        return {"nH": (0.0, inf), "photon_index": (-inf, inf), "log10_norm": (-inf, inf),
                "log10_norm2": (-inf, inf), "redshift": (0.0, inf), "abundance": (0.0, inf),
                "kT": (0.08, 64.0), "kT2": (0.08, 64.0)}

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
    @property
    def files(self) -> ObservationFiles:
        """The observation's files (a shipped preset is the same mechanism)."""
        o = self.options
        bkg = Path(o.background) if isinstance(o.background, str) else None
        if o.pha is None:
            return dataclasses.replace(ObservationFiles.preset(o.observation), background=bkg)
        return ObservationFiles(Path(o.pha), arf=Path(o.arf) if o.arf else None,
                                rmf=Path(o.rmf) if o.rmf else None, background=bkg)

    @functools.cached_property
    def _observation_and_response(self) -> tuple[Observation, InstrumentResponse]:
        o = self.options
        return cached_response(self.files, tuple(float(v) for v in o.energy_range),
                               o.grouping, o.exposure, name=o.observation)

    @property
    def observation(self) -> Observation:
        """The spectrum, background and responses read from the files."""
        return self._observation_and_response[0]

    @property
    def response(self) -> InstrumentResponse:
        """The folded, filtered and grouped response."""
        return self._observation_and_response[1]

    def data_files(self) -> dict[str, dict]:
        """The PHA, ARF, RMF and background files read, with their SHA-256."""
        obs = self.observation
        paths = {"pha": obs.spectrum.path, "rmf": obs.rmf.path,
                 "arf": obs.arf.path if obs.arf is not None else None,
                 "background": obs.background.path if obs.background is not None else None}
        return {k: file_record(v) for k, v in paths.items() if v is not None}

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
            raise ConfigError(f"{self.name}: the response of {self.files.pha.name!r} "
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

    def photon_flux(self, theta: Tensor) -> Tensor:
        """Absorbed photon flux per input bin of :attr:`model_edges` ``(N, E')`` [photons
        cm^-2 s^-1], float64, for flat ``theta (N, D)``: the spectrum before the instrument
        (ARF and RMF), ``source_counts(theta) == photon_flux(theta) @ fold``."""
        edges, sigma, _, _ = self._consts(theta)
        p = self.full_params(theta)
        log_t = phys.log_transmission(p["nH"], sigma)
        return self._photon_flux(p, edges, log_t).to(torch.float64)

    def source_counts(self, theta: Tensor) -> Tensor:
        """Expected source counts per group ``(N, G)`` for flat ``theta (N, D)``, float64.

        The model is evaluated in the simulator's dtype; the fold is a float64 matrix
        product.  A float32 BLAS product picks its kernel (and summation order) by the
        number of rows and threads, so a row's counts would change by ~1e-6 with the batch
        around it, flipping a few Poisson draws per 10,000 spectra; in float64 the change
        is ~1e-15, far below what moves a draw.
        """
        _, _, fold, _ = self._consts(theta)
        return self.photon_flux(theta) @ fold

    def _mean_counts(self, theta: Tensor) -> Tensor:
        """Expected total counts ``(N, G)`` in float64 (source, plus background if on)."""
        _, _, _, bkg = self._consts(theta)
        mu = self.source_counts(theta)
        return mu + bkg if self.options.background is not False else mu

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

    def references_file(self) -> Path:
        """``data/benchmark/<name>_<observation>.npz``."""
        return self.references_dir / f"{self.name}_{self.options.observation}.npz"

    def references_refusal(self) -> str | None:
        if self.options.pha is not None:
            return ("benchmark references exist for the shipped observations only, not for "
                    "your own spectrum")
        return None

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
        (:func:`sbi_astro.reference_mcmc.emcee_posterior`; settings in ``mcmc``, the
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
