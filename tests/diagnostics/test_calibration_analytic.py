"""Diagnostics on analytic posteriors (conjugate Gaussian model ``gaussian_linear``).

The exact posterior is ``N(x / 2, 0.05 I)``.  We build four "estimators" from it: exact,
0.5x too narrow (overconfident), 2x too wide (underconfident) and shifted by one posterior
standard deviation in every parameter (biased), and check that TARP, SBC and HPD expected
coverage see each for what it is.  Everything is seeded, so the outcomes are fixed; the
tolerances below say why they would hold for (nearly) any seed too.
"""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.diagnostics import calibration_verdict, expected_coverage, sbc, tarp

N, S, D = 300, 1000, 4
CASES = {"exact": (1.0, 0.0), "narrow": (0.5, 0.0), "wide": (2.0, 0.0), "shifted": (1.0, 1.0)}


@pytest.fixture(scope="module")
def problem():
    sim = load_simulator("gaussian_linear", device="cpu", dim=D)
    g = torch.Generator().manual_seed(2024)
    theta = sim.prior.sample((N,), generator=g)
    x = sim.simulate(theta, generator=g)
    mean, std = sim.posterior_mean_std(x)
    z = torch.randn(S, N, D, generator=g)
    out = {}
    for name, (scale, shift) in CASES.items():
        m, sd = mean + shift * std, std * scale
        samples = m + sd * z

        def log_q(t, m=m, sd=sd):
            return (-0.5 * ((t - m) / sd) ** 2).sum(-1) - D * math.log(sd)

        out[name] = (samples, log_q(samples), log_q(theta))
    return theta, out


@pytest.fixture(scope="module")
def results(problem):
    theta, cases = problem
    res = {}
    for name, (samples, lp_s, lp_t) in cases.items():
        t = tarp(samples, theta, seed=0)
        s = sbc(samples, theta)
        c = expected_coverage(lp_s, lp_t, seed=0)
        v = calibration_verdict(s.normalized_ranks, t, c)
        res[name] = (t, s, c, v)
    return res


def test_exact_posterior_is_on_the_diagonal_within_its_band(results):
    t, s, c, v = results["exact"]
    # The band is pointwise 95%: for the exact posterior ~95% of the 51 grid points hold the
    # diagonal on average, but neighbouring points are correlated; 85% leaves room for one
    # excursion of a few points without letting a visibly bent curve (<50%, see below) pass.
    assert t.diagonal_in_band >= 0.85
    # KS p-values are uniform under calibration: > 0.01 fails for 1% of seeds.
    assert t.ks_pvalue > 0.01 and c.ks_pvalue > 0.01
    # ATC is an area over alpha in [0.5, 1]; its sd for N = 300 is ~0.01 (binomial ECP
    # errors of ~0.03 over a 0.5-wide interval, correlated): 0.04 is ~4 sd.
    assert abs(t.atc) < 0.04
    # SBC: per-parameter tests, Bonferroni over D at 1%.
    assert (s.chi2_pvalues > 0.01 / D).all() and (s.ks_pvalues > 0.01 / D).all()
    assert abs(c.mean_deviation) < 0.04  # same argument as the ATC
    assert v.label == "calibrated"


def test_too_narrow_is_overconfident(results):
    t, s, c, v = results["narrow"]
    assert v.label == "overconfident"
    # 0.5x width: P(|theta - mean| > sd_q) etc. shift the curves by O(0.1-0.4), > 10 sd.
    assert t.atc < -0.04 and t.ks_pvalue < 1e-4 and t.diagonal_in_band < 0.5
    assert c.mean_deviation < -0.1  # HPD regions too small: coverage below the diagonal
    assert (s.ks_pvalues < 1e-3).all()
    # U-shaped ranks: the outer bins hold more than expected (> 1.5x for a 0.5x width)
    outer = s.histograms[:, [0, -1]].double().mean(1)
    assert (outer > 1.5 * s.expected[0]).all()


def test_too_wide_is_underconfident(results):
    t, s, c, v = results["wide"]
    assert v.label == "underconfident"
    assert t.atc > 0.04 and t.ks_pvalue < 1e-4 and t.diagonal_in_band < 0.5
    assert c.mean_deviation > 0.1  # HPD regions too large: coverage above the diagonal
    outer = s.histograms[:, [0, -1]].double().mean(1)
    assert (outer < 0.5 * s.expected[0]).all()  # humped ranks: empty tails


def test_shifted_is_biased(results):
    t, s, c, v = results["shifted"]
    assert v.label == "biased"
    assert t.ks_pvalue < 1e-4  # TARP detects the shift (it cannot tell its kind)
    # a +1 sd shift puts the truth below the posterior median 84% of the time
    mean_rank = s.normalized_ranks.mean(0)
    assert (mean_rank < 0.35).all()
    assert c.mean_deviation < -0.1


def test_verdicts_are_all_distinct(results):
    labels = {name: r[3].label for name, r in results.items()}
    assert labels == {"exact": "calibrated", "narrow": "overconfident",
                      "wide": "underconfident", "shifted": "biased"}
