"""The regularised least-squares baseline against the dense normal equations."""

from __future__ import annotations

import torch

from sbi_astro.solvers.baseline import gradient_normal, regularised_least_squares


def test_matches_the_dense_normal_equations():
    g = torch.Generator().manual_seed(0)
    side, sigma, lam = 6, 0.1, 3.0
    a = torch.randn(30, side * side, generator=g, dtype=torch.float64) / side  # underdetermined

    def forward(x):
        return (x.reshape(x.shape[0], -1) @ a.T).reshape(x.shape[0], 1, 30)

    def adjoint(y):
        return (y.reshape(y.shape[0], -1) @ a).reshape(y.shape[0], 1, side, side)

    y = torch.randn(3, 1, 30, generator=g, dtype=torch.float64)
    x = regularised_least_squares(forward, adjoint, y, sigma, lam, iters=500, tol=1e-12)
    eye = torch.eye(side * side, dtype=torch.float64).reshape(-1, 1, side, side)
    gtg = gradient_normal(eye).reshape(side * side, -1)  # columns G^T G e_i
    assert torch.allclose(gtg, gtg.T)  # G^T G is symmetric, as the CG solve needs
    k = a.T @ a / sigma**2 + lam * gtg
    want = torch.linalg.solve(k, (y.reshape(3, -1) @ a).T / sigma**2).T
    torch.testing.assert_close(x.reshape(3, -1), want, rtol=1e-7, atol=1e-9)
    # a constant map has no gradient: the penalty leaves it alone
    assert gradient_normal(torch.ones(1, 1, side, side)).abs().max() == 0
