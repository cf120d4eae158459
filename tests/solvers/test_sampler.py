"""Posterior sampling on a linear-Gaussian problem with an analytic posterior.

Prior ``x ~ N(0, Sigma)`` over 16 pixels (Ornstein-Uhlenbeck covariance, correlation length
3 pixels), data ``y = A x + n`` with ``A`` a normalised Gaussian blur (width 1.5 pixels) and
white noise ``sigma_n = 0.1``: the posterior is ``N(mu_post, C_post)`` with
``C_post = (Sigma^-1 + A^T A / sigma_n^2)^-1``.  Samples are compared per pixel with it, in
units of the posterior standard deviation, over 8 observations x 1,000 chains (Monte
Carlo error of a mean 0.03, of a standard deviation ratio 0.02).
"""

from __future__ import annotations

import pytest
import torch

from sbi_astro.diagnostics import tarp
from sbi_astro.errors import ConfigError, ShapeError
from sbi_astro.solvers import (
    VESDE,
    VPSDE,
    GaussianLinearLikelihood,
    GaussianScore,
    LinearOperatorLikelihood,
    TweedieLikelihood,
    gaussian_log_likelihood,
    sample_posterior,
)

D, SIGMA_N = 16, 0.1


def _problem(num_obs: int = 8, seed: int = 0):
    i = torch.arange(D, dtype=torch.float64)
    cov = torch.exp(-(i[:, None] - i[None, :]).abs() / 3.0)
    A = torch.exp(-0.5 * (i[:, None] - i[None, :]) ** 2 / 1.5**2)
    A = A / A.sum(1, keepdim=True)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(num_obs, D, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    y = x0 @ A.T + SIGMA_N * torch.randn(num_obs, D, generator=g, dtype=torch.float64)
    post_cov = torch.linalg.inv(torch.linalg.inv(cov) + A.T @ A / SIGMA_N**2)
    post_mean = y @ A @ post_cov / SIGMA_N**2  # (C A^T y / s^2)^T, C symmetric
    return cov, A, x0, y, post_mean, post_cov


class ExactGaussianLikelihood:
    """``grad log p_t(y | x_t)`` of the Gaussian prior, exact: ``x_0 | x_t ~ N(mu_t, C_t)``
    with ``C_t = (Sigma^-1 + m^2 / s^2)^-1``, ``mu_t = C_t m x_t / s^2``, so
    ``p(y | x_t) = N(y | A mu_t, s_n^2 I + A C_t A^T)`` (a reference for the sampler)."""

    obs_shape = (D,)

    def __init__(self, cov, A):
        self.cov, self.A = cov, A

    def to(self, device):
        return self

    def score(self, t, x, y, *, sde, prior=None):
        m, s = float(sde.mean_scale(t[:1])), float(sde.std(t[:1]))
        eye = torch.eye(D, dtype=torch.float64)
        ct = torch.linalg.inv(torch.linalg.inv(self.cov) + m**2 / s**2 * eye)
        gain = self.A @ ct * (m / s**2)                      # d(A mu_t)/dx_t
        k = SIGMA_N**2 * eye + self.A @ ct @ self.A.T
        res = y.double() - x.double() @ gain.T
        return (torch.linalg.solve(k, res.T).T @ gain).to(x.dtype)


def _compare(samples, post_mean, post_cov):
    std = post_cov.diagonal().sqrt()
    z = (samples.double().mean(0) - post_mean) / std
    ratio = samples.double().std(0) / std
    return float(z.abs().max()), float(ratio.min()), float(ratio.max())


@pytest.mark.parametrize("sde", [VESDE(0.01, 20.0), VPSDE()], ids=["ve", "vp"])
def test_sampler_with_exact_scores_recovers_the_analytic_posterior(sde):
    """With the exact prior and exact time-t likelihood scores the reverse SDE is exact up to
    discretisation: means within 0.15 posterior std of the truth (measured 0.09 - 0.10; the
    largest of 128 Monte Carlo errors of size 0.03 is ~0.09) and standard deviation ratios
    within [0.92, 1.08] (measured 0.94 - 1.04; Monte Carlo error 0.022 each)."""
    cov, A, _, y, post_mean, post_cov = _problem()
    prior = GaussianScore(torch.zeros(D), cov.float(), sde)
    s = sample_posterior(prior, ExactGaussianLikelihood(cov, A), y.float(), num_samples=1000,
                         steps=200, corrector_steps=0, seed=0, device="cpu")
    zmax, rmin, rmax = _compare(s, post_mean, post_cov)
    assert zmax < 0.15 and 0.92 < rmin and rmax < 1.08, (zmax, rmin, rmax)


@pytest.mark.parametrize("sde", [VESDE(0.01, 20.0), VPSDE()], ids=["ve", "vp"])
def test_convolved_likelihood_posterior_matches_the_analytic_one(sde):
    """The convolved likelihood (Adam et al. 2022) is approximate at intermediate t: without
    correction the means are off by up to 0.45 posterior std and the widths 6 % too narrow
    (measured).  200 Langevin steps at t_min, where it is exact, bring the means within 0.3
    std (measured 0.19 - 0.22) and the widths within [0.93, 1.15] (measured 0.99 - 1.11:
    unadjusted Langevin widens by ~5 % at snr 0.1).
    """
    cov, A, _, y, post_mean, post_cov = _problem()
    prior = GaussianScore(torch.zeros(D), cov.float(), sde)
    lik = GaussianLinearLikelihood(A.float(), SIGMA_N)
    s = sample_posterior(prior, lik, y.float(), num_samples=1000, steps=200,
                         corrector_steps=0, final_steps=200, snr=0.1, seed=0, device="cpu")
    zmax, rmin, rmax = _compare(s, post_mean, post_cov)
    assert zmax < 0.3 and 0.93 < rmin and rmax < 1.15, (zmax, rmin, rmax)


def test_posteriors_are_calibrated_by_tarp():
    """TARP on 200 fresh problems drawn from the prior (the setting where calibration is
    defined): the KS p-value of the coverage values is not rejected at 1 %, and the
    area-to-curve is within 0.05 (measured p = 0.5, ATC = 0.016 with 200 samples; 100
    here); a posterior made 1.5x too narrow is rejected (measured p = 1e-4)."""
    cov, A, x0, y, _, _ = _problem(num_obs=200, seed=3)
    sde = VPSDE()
    prior = GaussianScore(torch.zeros(D), cov.float(), sde)
    lik = GaussianLinearLikelihood(A.float(), SIGMA_N)
    s = sample_posterior(prior, lik, y.float(), num_samples=100, steps=200,
                         corrector_steps=0, final_steps=200, seed=1, device="cpu")
    res = tarp(s.double(), x0, seed=0)
    assert res.ks_pvalue > 0.01 and abs(res.atc) < 0.05, (res.ks_pvalue, res.atc)
    narrow = s.mean(0) + (s - s.mean(0)) / 1.5
    bad = tarp(narrow.double(), x0, seed=0)
    assert bad.ks_pvalue < 0.01, bad.ks_pvalue


def test_matrix_free_likelihood_equals_the_dense_one():
    """CG solve of (sigma_n^2 + r^2 A A^T) u = res to 1e-6 against the eigendecomposition."""
    cov, A, _, y, _, _ = _problem()
    sde = VESDE(0.01, 20.0)
    A32 = A.float()
    dense = GaussianLinearLikelihood(A32, SIGMA_N)
    free = LinearOperatorLikelihood(lambda x: x @ A32.T, SIGMA_N, (D,), cg_iters=200,
                                    cg_tol=1e-7)
    x = torch.randn(8, D, generator=torch.Generator().manual_seed(0))
    for t in (0.05, 0.4, 0.9):
        tt = torch.full((8,), t)
        a = dense.score(tt, x, y.float(), sde=sde)
        b = free.score(tt, x, y.float(), sde=sde)
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-3 * float(a.abs().max())), t


def test_tweedie_likelihood_is_the_gaussian_score_at_small_t():
    """As t -> 0, x0_hat -> x_t and the DPS score tends to A^T (y - A x) / sigma_n^2."""
    cov, A, _, y, _, _ = _problem()
    sde = VPSDE()
    prior = GaussianScore(torch.zeros(D), cov.float(), sde)
    A32 = A.float()
    lik = TweedieLikelihood(lambda x: x @ A32.T, gaussian_log_likelihood(SIGMA_N), (D,))
    x = torch.randn(8, D, generator=torch.Generator().manual_seed(0))
    t = torch.full((8,), 1e-5)
    got = lik.score(t, x, y.float(), sde=sde, prior=prior)
    want = (y.float() - x @ A32.T) @ A32 / SIGMA_N**2
    assert torch.allclose(got, want, rtol=2e-3, atol=1e-2)


def test_seeds_do_not_depend_on_chunks_or_sample_count():
    cov, A, _, y, _, _ = _problem(num_obs=3)
    prior = GaussianScore(torch.zeros(D), cov.float(), VESDE(0.01, 20.0))
    lik = GaussianLinearLikelihood(A.float(), SIGMA_N)
    kw = dict(steps=20, corrector_steps=1, final_steps=3, seed=7, device="cpu")
    whole = sample_posterior(prior, lik, y.float(), num_samples=6, **kw)
    chunks = sample_posterior(prior, lik, y.float(), num_samples=6, chunk_size=4, **kw)
    fewer = sample_posterior(prior, lik, y.float(), num_samples=2, chunk_size=1, **kw)
    assert torch.allclose(whole, chunks, atol=1e-5)
    assert torch.allclose(whole[:2], fewer, atol=1e-5)
    other = sample_posterior(prior, lik, y.float(), num_samples=6, **{**kw, "seed": 8})
    assert not torch.allclose(whole, other)
    # chains differ from one another and the observations keep their own streams
    assert (whole[0] - whole[1]).abs().min() > 0


def test_the_dense_likelihood_keeps_its_data_projection_only_for_the_same_data():
    """The projection of ``y`` is computed once per ``y`` a sampler passes; another ``y``, or
    the same one changed in place, gives the score a fresh likelihood gives."""
    cov, A, _, y, _, _ = _problem(num_obs=3)
    sde = VESDE(0.01, 20.0)
    t, x = torch.full((3,), 0.3), torch.randn(3, D)
    lik, y = GaussianLinearLikelihood(A.float(), SIGMA_N), y.float()

    def fresh(y):
        return GaussianLinearLikelihood(A.float(), SIGMA_N).score(t, x, y, sde=sde)

    assert torch.equal(lik.score(t, x, y, sde=sde), fresh(y))
    assert torch.equal(lik.score(t, x, y, sde=sde), fresh(y))  # from the kept projection
    y.add_(0.5)  # in place: the kept projection is stale
    assert torch.equal(lik.score(t, x, y, sde=sde), fresh(y))
    assert torch.equal(lik.score(t, x, y + 1.0, sde=sde), fresh(y + 1.0))


def test_a_killed_sampling_resumes_from_its_saved_chunks(tmp_path):
    """18 chains in chunks of 4, killed after the second chunk: started again, the two saved
    chunks are read back, the other three integrated, and the samples equal those of an
    uninterrupted sampling bit for bit.  Chunks of another sampling are refused."""
    cov, A, _, y, _, _ = _problem(num_obs=3)
    prior = GaussianScore(torch.zeros(D), cov.float(), VESDE(0.01, 20.0))
    lik = GaussianLinearLikelihood(A.float(), SIGMA_N)
    kw = dict(num_samples=6, steps=20, corrector_steps=1, final_steps=3, seed=7,
              chunk_size=4, device="cpu")
    whole = sample_posterior(prior, lik, y.float(), **kw)
    ckpt = tmp_path / "chains"

    class Killed(Exception):
        pass

    def kill_after_two(line):
        if line.startswith("chains 8/"):
            raise Killed

    with pytest.raises(Killed):
        sample_posterior(prior, lik, y.float(), checkpoint=ckpt, log=kill_after_two, **kw)
    assert len(list(ckpt.iterdir())) == 2
    lines = []
    again = sample_posterior(prior, lik, y.float(), checkpoint=ckpt, log=lines.append, **kw)
    assert torch.equal(again, whole)
    assert [line.endswith("read back from the checkpoint") for line in lines] == \
        [True, True, False, False, False]
    assert lines[-1].startswith("chains 18/18: ")
    with pytest.raises(ConfigError, match="differs in seed"):
        sample_posterior(prior, lik, y.float(), checkpoint=ckpt, **{**kw, "seed": 8})
    with pytest.raises(ConfigError, match="differs in y"):
        sample_posterior(prior, lik, y.float() + 0.1, checkpoint=ckpt, **kw)
    other = GaussianLinearLikelihood(A.float(), 2 * SIGMA_N)
    with pytest.raises(ConfigError, match="differs in likelihood"):
        sample_posterior(prior, other, y.float(), checkpoint=ckpt, **kw)


def test_bad_sampler_input_is_refused():
    cov, A, _, y, _, _ = _problem(num_obs=2)
    prior = GaussianScore(torch.zeros(D), cov.float(), VPSDE())
    lik = GaussianLinearLikelihood(A.float(), SIGMA_N)
    with pytest.raises(ShapeError, match="y must have shape"):
        sample_posterior(prior, lik, y[:, :5].float(), num_samples=2, device="cpu")
    with pytest.raises(ConfigError, match="num_samples"):
        sample_posterior(prior, lik, y.float(), num_samples=0, device="cpu")
    with pytest.raises(ShapeError, match="noise"):
        GaussianLinearLikelihood(A.float(), torch.ones(3))
