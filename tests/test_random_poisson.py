"""``RowRandom.poisson``: values pinned to the whole-array implementation, statistics."""

from __future__ import annotations

import torch

from sbi_astro.random import RowRandom, fold

LAM = torch.tensor([[0.0, 0.3, 2.5, 9.9, 10.0, 55.0], [1e-4, 7.0, 12.0, 400.0, 3.3, 0.9],
                    [9.99, 10.01, 123.4, 5000.0, 0.05, 20.0]], dtype=torch.float64)
# Drawn by the first (whole-array) implementation: the compressed loops must give the
# same counts, element by element, from the same counters.
PINNED = [[0.0, 0.0, 4.0, 5.0, 8.0, 53.0], [0.0, 6.0, 15.0, 415.0, 4.0, 2.0],
          [11.0, 11.0, 117.0, 5027.0, 0.0, 19.0]]


def test_poisson_values_are_pinned():
    keys = fold(torch.tensor(42), torch.arange(3))
    assert RowRandom(keys).poisson(LAM).tolist() == PINNED
    # a row alone, or with other rows, draws the same counts
    assert RowRandom(keys[1:2]).poisson(LAM[1:2]).tolist() == PINNED[1:2]
    # the torch path (every device but CPU) draws them too, from the same stream key
    assert RowRandom(keys)._poisson_torch(fold(keys, 0), LAM).tolist() == PINNED


def test_poisson_moments_both_branches():
    for lam in (3.7, 250.0):
        n = 20000
        x = RowRandom(fold(torch.tensor(1), torch.arange(n))).poisson(
            torch.full((n,), lam, dtype=torch.float64))
        # standard errors: mean sqrt(lam/n), variance lam*sqrt(2/n) (+ kurtosis 1/lam)
        assert abs(float(x.mean()) - lam) < 5 * (lam / n) ** 0.5
        assert abs(float(x.var()) - lam) < 5 * lam * (2 / n) ** 0.5
