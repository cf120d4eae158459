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
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import numpy as np
import torch
from torch import Tensor

from sbi_astro.errors import ConfigError
from sbi_astro.priors import Marginal, Prior
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator

from . import _physics as phys
from .absorption import ABSORPTION_TABLES, absorption_table
from .observations import OBSERVATIONS, InstrumentResponse, cached_response
from .reference import EmceeSettings, emcee_posterior


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
