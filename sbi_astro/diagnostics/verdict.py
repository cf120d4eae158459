"""One word on calibration: calibrated, overconfident, underconfident or biased.

The verdict combines the joint test (TARP, optionally HPD expected coverage) with the first
two moments of the marginal SBC mid-ranks ``u = (r + 1/2) / (S + 1)``, which are uniform on
(0, 1) for a calibrated posterior: mean ``1/2``, variance ``1/12``.

* **biased**: the mean of ``u`` differs from 1/2 for some parameter (the posterior sits
  systematically on one side of the truth).  Tested first: a shift also changes the spread
  of ``u``.
* **overconfident**: variance of ``u`` above 1/12 (U-shaped ranks: truth too often in the
  tails, posterior too narrow); **underconfident**: below 1/12 (posterior too wide).
* If the marginal moments pass but TARP (or HPD coverage) rejects uniformity, the sign of
  TARP's ATC (or of the mean coverage deviation) decides over- vs underconfident.
* Otherwise **calibrated**.

Each moment is a z-score with its large-``N`` standard error (``sqrt(1/(12 N))`` for the
mean, ``sqrt(1/(180 N))`` for the variance of a uniform) against a Bonferroni threshold
over the ``D`` parameters, so that a calibrated posterior is flagged by each family with
probability at most ``significance``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from ._common import normal_quantile
from .coverage import CoverageResult
from .tarp import TarpResult

LABELS = ("calibrated", "overconfident", "underconfident", "biased")


@dataclasses.dataclass
class Verdict:
    """Attributes:
    label: one of :data:`LABELS`.
    reasons: human-readable sentences behind the label.
    statistics: the numbers used (z-scores, thresholds, p-values).
    """

    label: str
    reasons: list[str]
    statistics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "reasons": list(self.reasons), "statistics": self.statistics}


def rank_moments(u: Tensor) -> tuple[Tensor, Tensor]:
    """z-scores ``(D,)`` of the mean and variance of mid-ranks ``u (N, D)`` vs uniform."""
    n = u.shape[0]
    u = u.to(torch.float64)
    z_mean = (u.mean(0) - 0.5) / math.sqrt(1.0 / (12.0 * n))
    z_var = (u.var(0) - 1.0 / 12.0) / math.sqrt(1.0 / (180.0 * n))
    return z_mean, z_var


def calibration_verdict(normalized_ranks: Tensor, tarp: TarpResult | None = None,
                        coverage: CoverageResult | None = None, *,
                        significance: float = 0.01,
                        param_names: tuple[str, ...] | None = None) -> Verdict:
    """Classifies calibration from SBC mid-ranks and the joint tests.

    Args:
        normalized_ranks: ``(N, D)`` mid-ranks in (0, 1), e.g.
            :attr:`~sbi_astro.diagnostics.sbc.SBCResult.normalized_ranks`.
        tarp: a :class:`TarpResult` on the same simulations (joint test).
        coverage: a :class:`CoverageResult` on the same simulations (joint test).
        significance: per-family false-alarm probability for a calibrated posterior.
        param_names: names for the messages.

    Returns:
        A :class:`Verdict`.
    """
    n, d = normalized_ranks.shape
    names = param_names or tuple(f"theta_{i}" for i in range(d))
    z_mean, z_var = rank_moments(normalized_ranks)
    z_star = normal_quantile(1.0 - significance / (2.0 * d))
    stats: dict[str, Any] = {
        "num_simulations": n, "significance": significance, "z_threshold": z_star,
        "rank_mean_z": z_mean.tolist(), "rank_variance_z": z_var.tolist(),
    }
    if tarp is not None:
        stats.update(tarp_ks_pvalue=tarp.ks_pvalue, tarp_atc=tarp.atc)
    if coverage is not None:
        stats.update(hpd_ks_pvalue=coverage.ks_pvalue,
                     hpd_mean_deviation=coverage.mean_deviation)

    biased = (z_mean.abs() > z_star).nonzero().flatten().tolist()
    if biased:
        worst = max(biased, key=lambda k: abs(z_mean[k].item()))
        side = "above" if z_mean[worst] > 0 else "below"
        reasons = [f"posterior of {names[k]!r} is shifted (rank-mean z = {z_mean[k]:.1f}, "
                   f"threshold {z_star:.2f})" for k in biased]
        reasons.append(f"largest shift: {names[worst]!r}, the truth lies {side} the posterior "
                       "median too often")
        return Verdict("biased", reasons, stats)

    over = (z_var > z_star).nonzero().flatten().tolist()
    under = (z_var < -z_star).nonzero().flatten().tolist()
    if over or under:
        worst = max(over + under, key=lambda k: abs(z_var[k].item()))
        label = "overconfident" if z_var[worst] > 0 else "underconfident"
        what = "too narrow" if label == "overconfident" else "too wide"
        reasons = [f"posterior of {names[k]!r} is {what} (rank-variance z = {z_var[k]:.1f}, "
                   f"threshold {z_star:.2f})" for k in (over if label == "overconfident"
                                                        else under)]
        return Verdict(label, reasons, stats)

    if tarp is not None and tarp.ks_pvalue < significance:
        label = "overconfident" if tarp.atc < 0 else "underconfident"
        return Verdict(label, [f"TARP rejects joint calibration (KS p = {tarp.ks_pvalue:.2g}); "
                               f"ATC = {tarp.atc:+.3f}"], stats)
    if coverage is not None and coverage.ks_pvalue < significance:
        label = "overconfident" if coverage.mean_deviation < 0 else "underconfident"
        return Verdict(label, [f"HPD coverage rejects calibration (KS p = "
                               f"{coverage.ks_pvalue:.2g}); mean deviation "
                               f"{coverage.mean_deviation:+.3f}"], stats)
    tests = "marginal ranks" + (", TARP" if tarp is not None else "") + (
        ", HPD coverage" if coverage is not None else "")
    return Verdict("calibrated", [f"no evidence of miscalibration ({tests}) at significance "
                                  f"{significance}"], stats)
