"""The X-ray deconvolution problem of the RIM study and benchmark (shared set-up).

The signal is the intrinsic (absorbed, before the instrument) photon spectrum of a source,
``s`` [photons cm^-2 s^-1 keV^-1] on the live input-energy bins of the Chandra ACIS 3C 273
response shipped with the X-ray plugin; the data are Poisson counts per detector channel
(no grouping, 0.5-7 keV) with mean ``(s * dE) @ (ARF x RMF x exposure) + background``.
The plugin is used through its public objects only (``load_simulator``, ``response``,
``model_edges``, ``photon_flux``); the solver sees only the forward callable.

Spectra are clamped below at :data:`FLOOR` (1e-8 photons cm^-2 s^-1 keV^-1, about 1e-4
expected counts per 10 eV bin: below what any count level here can see), so that the
log-space error measures what the data can constrain.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import Tensor

from sbi_astro import load_simulator
from sbi_astro.random import RowRandom
from sbi_astro.solvers.rim import poisson_log_likelihood

FLOOR = 1e-8
OBSERVATION = "chandra_3c273"
#: the training/test families: (label, simulator, options)
FAMILIES = (("powerlaw", "xray_powerlaw", {}),
            ("thermal-1T", "xray_thermal", {"fix_redshift": None}),
            ("thermal-2T", "xray_thermal", {"components": 2}))


@dataclasses.dataclass
class XrayProblem:
    """The forward model of the deconvolution (float32 tensors).

    Attributes:
        edges: input bin edges ``(E + 1,)`` [keV].
        fold: ``(E, G)`` expected counts per unit photon flux density [counts per (photons
            cm^-2 s^-1 keV^-1)]: the plugin's folded response times the bin widths.
        background: expected background counts ``(G,)``.
        observed: the real observed counts ``(G,)``.
    """

    edges: np.ndarray
    fold: Tensor
    background: Tensor
    observed: Tensor

    def expected(self, s: Tensor) -> Tensor:
        """Expected counts ``(B, G)`` of spectra ``s (B, E)``."""
        return s @ self.fold + self.background

    def log_likelihood(self, s: Tensor, counts: Tensor) -> Tensor:
        return poisson_log_likelihood(self.expected)(s, counts)

    def observe(self, s: Tensor, rng: RowRandom) -> Tensor:
        return rng.poisson(self.expected(s).clamp_min(0.0))


def make_problem(observation: str = OBSERVATION) -> tuple[XrayProblem, dict]:
    """The problem and the simulators of :data:`FAMILIES` on ``observation``."""
    sims = {label: load_simulator(name, device="cpu", observation=observation, grouping="none",
                                  **opts) for label, name, opts in FAMILIES}
    ref = next(iter(sims.values()))
    for sim in sims.values():
        assert sim.model_bins == ref.model_bins  # one observation, one grid
    r = ref.response
    width = np.diff(ref.model_edges)
    fold = r.fold_matrix[ref.model_bins] * width[:, None]
    return XrayProblem(edges=np.asarray(ref.model_edges), fold=torch.as_tensor(fold).float(),
                       background=torch.as_tensor(r.background).float(),
                       observed=torch.as_tensor(r.observed).float()), sims


def sample_spectra(problem: XrayProblem, sims: dict, n_per_family: int, seed: int
                   ) -> tuple[Tensor, list[str]]:
    """Spectra ``(F n, E)`` (flux density, clamped at FLOOR) from every family's prior."""
    width = torch.as_tensor(np.diff(problem.edges))
    out, labels = [], []
    for k, (label, sim) in enumerate(sims.items()):
        gen = torch.Generator().manual_seed(1000 * seed + k)
        theta = sim.prior.sample((n_per_family,), generator=gen)
        out.append((sim.photon_flux(theta) / width).clamp_min(FLOOR).float())
        labels += [label] * n_per_family
    return torch.cat(out), labels


def richardson_lucy(problem: XrayProblem, counts: Tensor, iterations: list[int]
                    ) -> dict[int, Tensor]:
    """Richardson-Lucy deconvolution through the same response (float64), from a flat
    spectrum with the observed number of source counts; the estimate after each of
    ``iterations`` (Richardson 1972; Lucy 1974): ``s <- s * F (n / mu) / F 1``."""
    fold, bkg = problem.fold.double(), problem.background.double()
    n = counts.double()
    sens = fold.sum(1)
    level = (n.sum(1, keepdim=True) - bkg.sum()).clamp_min(1.0) / sens.sum()
    s = level * torch.ones(n.shape[0], fold.shape[0], dtype=torch.float64)
    out = {}
    for k in range(1, max(iterations) + 1):
        mu = (s @ fold + bkg).clamp_min(1e-30)
        s = s * ((n / mu) @ fold.T) / sens
        if k in iterations:
            out[k] = s.float()
    return out


def regularised_ml(problem: XrayProblem, counts: Tensor, weights: list[float], *,
                   steps: int = 200, lr: float = 0.05) -> dict[float, Tensor]:
    """Penalised maximum likelihood in ``z = ln s``: minimises ``-ln L(exp z) + w sum_i
    (z_{i+1} - z_i)^2`` (a smoothness prior on the log spectrum) by Adam from the flat start
    of :func:`richardson_lucy`; the estimate for each weight ``w``."""
    fold, bkg = problem.fold.double(), problem.background.double()
    n = counts.double()
    sens = fold.sum(1)
    level = (n.sum(1, keepdim=True) - bkg.sum()).clamp_min(1.0) / sens.sum()
    out = {}
    for w in weights:
        z = (level.log() * torch.ones(n.shape[0], fold.shape[0], dtype=torch.float64)
             ).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            mu = (z.exp() @ fold + bkg).clamp_min(1e-30)
            loss = (mu - n * mu.log()).sum() + w * z.diff(dim=1).pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        out[w] = z.detach().exp().float()
    return out


def log_error(est: Tensor, truth: Tensor) -> Tensor:
    """RMS over bins of ``ln(est / truth)`` per spectrum ``(B,)``, ``est`` clamped at FLOOR."""
    return (est.clamp_min(FLOOR).log() - truth.log()).pow(2).mean(1).sqrt()


def weighted_log_error(problem: XrayProblem, est: Tensor, truth: Tensor) -> Tensor:
    """RMS of ``ln(est / truth)`` per spectrum ``(B,)`` weighted by each bin's expected source
    counts in the truth (``truth * F 1``): the error where the data speak."""
    w = truth * problem.fold.sum(1)
    d2 = (est.clamp_min(FLOOR).log() - truth.log()).pow(2)
    return ((w * d2).sum(1) / w.sum(1)).sqrt()


def reduced_cstat(problem: XrayProblem, est: Tensor, counts: Tensor) -> Tensor:
    """Cash statistic per channel ``(B,)`` of counts given the refolded estimate:
    ``2 sum(mu - n + n ln(n / mu)) / G`` (Cash 1979; XSPEC's C-stat)."""
    mu = (est.double() @ problem.fold.double() + problem.background.double()).clamp_min(1e-30)
    n = counts.double()
    term = mu - n + torch.where(n > 0, n * torch.log(n.clamp_min(1e-30) / mu), 0.0)
    return (2.0 * term.sum(1) / n.shape[1]).float()


def count_level(total: Tensor, edges: tuple[float, ...]) -> Tensor:
    """Index ``(B,)`` of the count level of each spectrum's total expected counts."""
    return torch.bucketize(total, torch.tensor(edges, dtype=total.dtype)) - 1


def level_name(lo: float, hi: float) -> str:
    def fmt(v: float) -> str:
        return "inf" if math.isinf(v) else f"{v:g}"
    return f"{fmt(lo)}-{fmt(hi)}"
