"""Posterior predictive checks: the finite-draw coverage a correct predictive gives."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro.diagnostics.ppc import expected_interval_coverage


@pytest.mark.parametrize("k", [20, 100])
def test_expected_interval_coverage_matches_monte_carlo(k):
    # K draws and one new draw from the same distribution, many times: the fraction of new
    # draws inside the interpolated 5-95 % interval of the K (as posterior_predictive
    # computes it) against 0.9 (K - 1) / (K + 1); 5 sigma of the binomial error
    trials = 40_000
    gen = torch.Generator().manual_seed(k)
    draws = torch.randn(k, trials, generator=gen, dtype=torch.float64)
    new = torch.randn(trials, generator=gen, dtype=torch.float64)
    q = torch.quantile(draws, torch.tensor([0.05, 0.95], dtype=torch.float64), dim=0)
    inside = ((new >= q[0]) & (new <= q[1])).double().mean().item()
    expected = expected_interval_coverage(k)
    assert expected == pytest.approx(0.9 * (k - 1) / (k + 1))
    assert abs(inside - expected) < 5 * math.sqrt(expected * (1 - expected) / trials)
    # and it is far from the nominal 0.9 at K = 20: the correction matters
    if k == 20:
        assert inside < 0.83
