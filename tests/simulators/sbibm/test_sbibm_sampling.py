"""The building blocks of the sbibm plugins: binomial and truncated-normal samplers, the ODE
solver and the extra priors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from sbi_astro.priors import Prior
from sbi_astro.random import RowRandom, fold
from simulators.sbibm._ode import dopri5
from simulators.sbibm._priors import GaussianPrior, LogNormal
from simulators.sbibm._sampling import binomial, truncated_normal


def _rng(n: int, seed: int = 0) -> RowRandom:
    return RowRandom(fold(torch.tensor(seed), torch.arange(n)))


@pytest.mark.parametrize("p", [0.0, 0.003, 0.05, 0.3, 0.5, 0.7, 0.995, 1.0])
def test_binomial_counts_follow_the_binomial_pmf(p):
    n_rows, n = 20_000, 1000
    k = binomial(_rng(n_rows, seed=int(p * 1000)), n, torch.full((n_rows, 1), p,
                                                                 dtype=torch.float64))[:, 0]
    assert k.dtype == torch.float64 and (k == k.round()).all()
    if p in (0.0, 1.0):
        assert (k == n * p).all()
        return
    # chi-square over the counts with expected frequency >= 5, the rest pooled in one bin
    counts = np.bincount(k.numpy().astype(np.int64), minlength=n + 1)
    exp = stats.binom(n, p).pmf(np.arange(n + 1)) * n_rows
    keep = exp >= 5
    obs_k = np.append(counts[keep], counts[~keep].sum())
    exp_k = np.append(exp[keep], exp[~keep].sum())
    chi2 = ((obs_k - exp_k) ** 2 / exp_k).sum()
    assert stats.chi2.sf(chi2, len(obs_k) - 1) > 1e-4, (p, chi2, len(obs_k))


def test_binomial_rows_are_batch_independent():
    probs = torch.linspace(0.001, 0.999, 50, dtype=torch.float64).expand(400, 50)
    big = binomial(_rng(400), 1000, probs)
    small = binomial(_rng(3), 1000, probs[:3])
    assert torch.equal(big[:3], small)


def test_truncated_normal_matches_scipy_including_far_intervals():
    u = _rng(1, 1).uniform((20_000,), dtype=torch.float64)[0]
    for mean, std, low, high in [(0.3, 0.316, -1.0, 1.0), (1.8, 0.316, -1.0, 1.0),
                                 (-9.5, 1.0, -10.0, 10.0), (14.0, 1.0, -10.0, 10.0)]:
        draws = truncated_normal(u, torch.tensor(mean), std, low, high)
        assert ((draws >= low) & (draws <= high)).all()
        ref = stats.truncnorm((low - mean) / std, (high - mean) / std, loc=mean, scale=std)
        assert stats.kstest(draws.numpy(), ref.cdf).pvalue > 1e-4, (mean, std)


def test_dopri5_against_analytic_solutions_and_gradients():
    k = torch.tensor([[0.5], [2.0], [0.1]], dtype=torch.float64, requires_grad=True)
    times = [0.0, 0.7, 3.0]
    y = dopri5(lambda t, y, p: -p * y, torch.ones(3, 1, dtype=torch.float64), k, times,
               atol=1e-10, rtol=1e-10)[:, :, 0]
    tt = torch.tensor(times, dtype=torch.float64)
    assert torch.allclose(y, torch.exp(-k * tt), rtol=1e-8, atol=0)
    # d y(3) / d k = -3 exp(-3 k), through the accepted steps
    (grad,) = torch.autograd.grad(y[:, 2].sum(), k)
    assert torch.allclose(grad[:, 0], (-3.0 * torch.exp(-3.0 * k[:, 0])).detach(), rtol=1e-7)

    def osc(t, y, p):  # y'' = -w^2 y
        return torch.stack([y[:, 1], -p[:, 0] ** 2 * y[:, 0]], -1)

    w = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    y = dopri5(osc, torch.tensor([[1.0, 0.0]] * 2, dtype=torch.float64), w, [3.0, 6.0],
               atol=1e-9, rtol=1e-9)
    # global error ~ (number of steps, a few hundred) x tolerance
    assert torch.allclose(y[:, :, 0], torch.cos(w * torch.tensor([3.0, 6.0])), atol=1e-6)
    with pytest.raises(ValueError, match="increasing"):
        dopri5(osc, y[:, 0], w, [2.0, 1.0])


def test_lognormal_marginal_and_correlated_gaussian_prior():
    prior = Prior([LogNormal("beta", math.log(0.4), 0.5)])
    v = torch.tensor([[0.1], [0.4], [2.0], [0.0], [-1.0]], dtype=torch.float64)
    want = stats.lognorm(s=0.5, scale=0.4).logpdf(v[:, 0].numpy())
    assert np.allclose(prior.log_prob(v).numpy()[:3], want[:3], rtol=1e-12)
    assert torch.isinf(prior.log_prob(v)[3:]).all()
    s = prior.sample((50_000,), generator=torch.Generator().manual_seed(0))[:, 0].double()
    # the log is N(log 0.4, 0.25): mean within 5 standard errors
    assert abs(float(torch.log(s).mean()) - math.log(0.4)) < 5 * 0.5 / math.sqrt(50_000)

    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    gp = GaussianPrior(["a", "b"], torch.tensor([1.0, -1.0]), cov, dtype=torch.float64)
    th = torch.tensor([[0.3, 0.2], [1.0, -1.0]], dtype=torch.float64)
    want = stats.multivariate_normal([1.0, -1.0], cov.numpy()).logpdf(th.numpy())
    assert np.allclose(gp.log_prob(th).numpy(), want, rtol=1e-12)
    for draws in (gp.sample((40_000,), generator=torch.Generator().manual_seed(1)),
                  gp.sample_rows(_rng(40_000, 2))):
        emp = torch.cov(draws.T)
        se = torch.sqrt((torch.outer(cov.diagonal(), cov.diagonal()) + cov**2) / 40_000)
        assert ((emp - cov).abs() < 5 * se).all()
    assert gp.to("cpu").covariance.equal(cov)
    assert gp.marginals[1].scale == pytest.approx(math.sqrt(0.5), rel=1e-15)
