"""The vectorised ensemble MCMC: exact moments of a correlated Gaussian, each observation's
samples independent of the others in the batch, seeded."""

from __future__ import annotations

import torch

from sbi_astro.inference.mcmc import ensemble_sample
from sbi_astro.priors import Prior, Uniform

PRIOR = Prior([Uniform("a", -10.0, 10.0), Uniform("b", -10.0, 10.0)])
COV = torch.tensor([[1.0, 0.9], [0.9, 1.0]]) * 0.25
PREC = torch.linalg.inv(COV)


def _log_prob(means):
    def log_prob(theta, rows):  # (W, n, 2), (n,) -> (W, n)
        r = theta - means[rows]
        return -0.5 * torch.einsum("wni,ij,wnj->wn", r, PREC, r)
    return log_prob


def test_moments_of_a_correlated_gaussian():
    means = torch.tensor([[1.0, -2.0], [-3.0, 0.5]])
    s = ensemble_sample(_log_prob(means), PRIOR, num_observations=2, num_samples=8_000,
                        generator=torch.Generator().manual_seed(0))
    assert s.shape == (8_000, 2, 2)
    for i in range(2):
        # 8,000 samples with an integrated autocorrelation of a few thinned steps (~1,000
        # effective): the mean to 0.06 (4 effective standard errors of 0.5 / sqrt(1,000)),
        # the covariance entries (0.25 and 0.225) to 0.04
        torch.testing.assert_close(s[:, i].mean(0), means[i], atol=0.06, rtol=0)
        torch.testing.assert_close(torch.cov(s[:, i].T), COV, atol=0.04, rtol=0)


def test_an_observation_gets_the_same_samples_whatever_the_batch():
    means = torch.tensor([[1.0, -2.0], [-3.0, 0.5], [0.0, 0.0]])
    one = ensemble_sample(_log_prob(means[:1]), PRIOR, num_observations=1, num_samples=500,
                          generator=torch.Generator().manual_seed(4))
    three = ensemble_sample(_log_prob(means), PRIOR, num_observations=3, num_samples=500,
                            generator=torch.Generator().manual_seed(4))
    assert torch.equal(one[:, 0], three[:, 0])
    again = ensemble_sample(_log_prob(means), PRIOR, num_observations=3, num_samples=500,
                            generator=torch.Generator().manual_seed(4))
    assert torch.equal(three, again)


def test_fair_and_poor_starts_in_one_batch():
    # observation 0 is wide (its 16,384 importance-weighted prior draws are a fair start:
    # short warm-up), observation 1 narrow (a poor start: four times the warm-up); each
    # gets its own schedule, so each has the right moments and the same samples alone
    scales = torch.tensor([[4.0], [0.05]])
    means = torch.tensor([[1.0, -2.0], [-3.0, 0.5]])

    def log_prob(theta, rows):
        r = (theta - means[rows]) / scales[rows]
        return -0.5 * torch.einsum("wni,ij,wnj->wn", r, PREC, r)

    both = ensemble_sample(log_prob, PRIOR, num_observations=2, num_samples=8_000,
                           generator=torch.Generator().manual_seed(1))
    for i in range(2):
        # means to 4 effective standard errors (~1,000 effective samples), covariances to
        # 20 % of their largest entry
        cov = COV * scales[i] ** 2
        torch.testing.assert_close(both[:, i].mean(0), means[i],
                                   atol=4 * 0.5 * float(scales[i]) / 1000**0.5, rtol=0)
        torch.testing.assert_close(torch.cov(both[:, i].T), cov, atol=0.2 * float(cov.max()),
                                   rtol=0)

    def first(theta, rows):  # observation 0 alone
        r = (theta - means[:1][rows]) / scales[:1][rows]
        return -0.5 * torch.einsum("wni,ij,wnj->wn", r, PREC, r)

    alone = ensemble_sample(first, PRIOR, num_observations=1, num_samples=8_000,
                            generator=torch.Generator().manual_seed(1))
    assert torch.equal(alone[:, 0], both[:, 0])
