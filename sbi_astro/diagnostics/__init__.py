"""Calibration diagnostics of posterior estimators, vectorised in torch (CPU or CUDA).

Conventions: posterior samples are ``(S, N, D)`` (samples, simulations, parameters), true
parameters ``(N, D)``, observations ``(N, *event_shape)``.  Every randomised diagnostic takes
a ``seed`` and is reproducible.

* :mod:`.tarp` - TARP expected coverage with random references (Lemos et al. 2023).
* :mod:`.sbc` - simulation-based calibration ranks and uniformity tests (Talts et al. 2018).
* :mod:`.coverage` - expected coverage of highest-posterior-density regions.
* :mod:`.c2st` - classifier two-sample test (seeded torch MLP; and sbibm's scikit-learn
  protocol, to compare with sbibm's published numbers).
* :mod:`.mmd` - maximum mean discrepancy with a Gaussian kernel (median heuristic).
* :mod:`.ppc` - posterior predictive checks.
* :mod:`.images` - calibration of image posteriors: TARP over all pixels, z-scores, chi^2.
* :mod:`.recovery` - parameter recovery: R^2 of posterior means, posterior widths.
* :mod:`.verdict` - one word: calibrated, overconfident, underconfident or biased.

Dynamics diagnostics of simulated or observed time series (numpy, imported on their own):

* :mod:`.topology` - lag embedding, persistent homology (ripser), surrogate-data test.
* :mod:`.sindy` - sparse identification of dynamics (pysindy 2.x), ensembles, forecast skill.
"""

from .c2st import c2st, c2st_sbibm, c2st_scores
from .coverage import CoverageResult, expected_coverage, hpd_levels, posterior_log_probs
from .images import ImageCalibrationResult, image_calibration
from .mmd import mmd
from .ppc import PPCResult, default_statistics, posterior_predictive
from .recovery import RecoveryResult, parameter_recovery
from .sbc import SBCResult, rank_histogram, sbc, sbc_ranks
from .tarp import (
    TarpResult,
    bootstrap_ecp,
    coverage_values,
    draw_references,
    ecp_curve,
    tarp,
    tarp_ecp,
)
from .verdict import LABELS, Verdict, calibration_verdict

__all__ = [
    "LABELS",
    "CoverageResult",
    "ImageCalibrationResult",
    "PPCResult",
    "RecoveryResult",
    "SBCResult",
    "TarpResult",
    "Verdict",
    "bootstrap_ecp",
    "c2st",
    "c2st_sbibm",
    "c2st_scores",
    "calibration_verdict",
    "coverage_values",
    "default_statistics",
    "draw_references",
    "ecp_curve",
    "expected_coverage",
    "hpd_levels",
    "image_calibration",
    "mmd",
    "parameter_recovery",
    "posterior_log_probs",
    "posterior_predictive",
    "rank_histogram",
    "sbc",
    "sbc_ranks",
    "tarp",
    "tarp_ecp",
]
