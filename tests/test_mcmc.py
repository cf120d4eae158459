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
    def log_prob(theta):  # (W, N, 2) -> (W, N)
        r = theta - means
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
