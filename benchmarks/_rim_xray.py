"""The X-ray deconvolution problem of the RIM study and benchmark: the plugin's
``xray_deconvolution`` inverse problem (:mod:`simulators.xray.inverse`), with the helper
names the study script uses.

The signal is the intrinsic (absorbed, before the instrument) photon spectrum ``s``
[photons cm^-2 s^-1 keV^-1] on the live input-energy bins of the shipped Chandra ACIS
3C 273 response; the data are Poisson counts per channel (no grouping, 0.5-7 keV) with mean
``(s * dE) @ (ARF x RMF x exposure) + background``.  Spectra are clamped below at
:data:`FLOOR`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from simulators.xray.inverse import FAMILIES, FLOOR, XrayDeconvolution

OBSERVATION = "chandra_3c273"
__all__ = ["FAMILIES", "FLOOR", "OBSERVATION", "count_level", "level_name", "log_error",
           "make_problem", "reduced_cstat", "regularised_ml", "richardson_lucy",
           "sample_spectra", "weighted_log_error"]


class XrayProblem(XrayDeconvolution):
    """The plugin's problem with the real counts as an attribute ``observed (G,)``."""

    @property
    def observed(self) -> Tensor:  # type: ignore[override]
        return self._observed


def make_problem(observation: str = OBSERVATION) -> tuple[XrayProblem, dict]:
    """The problem and the simulators of :data:`FAMILIES` on ``observation``."""
    problem = XrayProblem(observation)
    return problem, problem.sims


def sample_spectra(problem: XrayProblem, sims: dict, n_per_family: int, seed: int
                   ) -> tuple[Tensor, list[str]]:
    """Spectra ``(F n, E)`` (flux density, clamped at FLOOR) from every family's prior."""
    labels = [label for label in sims for _ in range(n_per_family)]
    return problem.sample_signals(len(sims) * n_per_family, seed), labels


def richardson_lucy(problem: XrayProblem, counts: Tensor, iterations: list[int]
                    ) -> dict[int, Tensor]:
    return problem.richardson_lucy(counts, iterations)


def regularised_ml(problem: XrayProblem, counts: Tensor, weights: list[float], *,
                   steps: int = 200, lr: float = 0.05) -> dict[float, Tensor]:
    return problem.regularised_ml(counts, weights, lr=lr, steps=steps)


def log_error(est: Tensor, truth: Tensor) -> Tensor:
    """RMS over bins of ``ln(est / truth)`` per spectrum ``(B,)``, ``est`` clamped at FLOOR."""
    return (est.clamp_min(FLOOR).log() - truth.log()).pow(2).mean(1).sqrt()


def weighted_log_error(problem: XrayProblem, est: Tensor, truth: Tensor) -> Tensor:
    return problem.errors(est, truth)["weighted_ln"]


def reduced_cstat(problem: XrayProblem, est: Tensor, counts: Tensor) -> Tensor:
    return problem.misfit(est, counts)


def count_level(total: Tensor, edges: tuple[float, ...]) -> Tensor:
    """Index ``(B,)`` of the count level of each spectrum's total expected counts."""
    return torch.bucketize(total, torch.tensor(edges, dtype=total.dtype)) - 1


def level_name(lo: float, hi: float) -> str:
    def fmt(v: float) -> str:
        return "inf" if math.isinf(v) else f"{v:g}"
    return f"{fmt(lo)}-{fmt(hi)}"
