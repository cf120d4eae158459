"""The seeded simulators of the sbibm tasks against the tasks' analytic distributions.

Each test simulates many ``x`` at one fixed ``theta`` (sbibm's true parameters of an
observation) through the plugin's counter-based streams and compares them with the
distribution that sbibm's definition implies.  Tolerances: 5 standard errors for means,
variances and proportions (a false alarm below 1e-6 per check); goodness-of-fit tests at
p > 1e-4.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from sbi_astro import load_simulator
from sbi_astro.random import fold
from simulators.sbibm.lotka_volterra import populations
from simulators.sbibm.sir import infected_fraction
from simulators.sbibm.slcp import distractor_mixture

N = 20_000
Z = 5.0


def _draws(name: str, n: int = N, obs: int = 1, seed: int = 0):
    sim = load_simulator(name, device="cpu")
    theta = sim.true_parameters(obs).double()
    x = sim.simulate(theta.float().expand(n, -1), generator=torch.Generator().manual_seed(seed))
    return sim, theta, x.double()


def _assert_mean(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> None:
    z = (x.mean(0) - mean) / torch.sqrt(var / x.shape[0])
    assert z.abs().max() < Z, z


def test_gaussian_linear_uniform_noise_is_iid_normal_variance_0_1():
    _, theta, x = _draws("gaussian_linear_uniform")
    r = x - theta
    _assert_mean(r, torch.zeros(10, dtype=torch.float64), torch.full((10,), 0.1))
    # sample variance: standard error 0.1 sqrt(2 / N)
    assert ((r.var(0) - 0.1).abs() < Z * 0.1 * math.sqrt(2 / N)).all()
    corr = torch.corrcoef(r.T) - torch.eye(10)
    assert corr.abs().max() < Z / math.sqrt(N)


def test_gaussian_mixture_half_of_the_draws_are_narrow():
    _, theta, x = _draws("gaussian_mixture")
    d2 = ((x - theta) ** 2).sum(-1)
    # P(|x - theta|^2 < 0.1) = 0.5 (1 - e^-5) + 0.5 (1 - e^-0.05) for scales 0.1 and 1
    p = 0.5 * (1 - math.exp(-5.0)) + 0.5 * (1 - math.exp(-0.05))
    frac = float((d2 < 0.1).double().mean())
    assert abs(frac - p) < Z * math.sqrt(p * (1 - p) / N)
    _assert_mean(x, theta, torch.full((2,), 0.5 * 1.0 + 0.5 * 0.01))


def test_two_moons_radius_and_angle():
    sim, theta, x = _draws("two_moons")
    p = x - sim._shift(theta[None])[0] - torch.tensor([0.25, 0.0], dtype=torch.float64)
    r, a = p.norm(dim=-1), torch.atan2(p[:, 1], p[:, 0])
    assert stats.kstest(r.numpy(), stats.norm(0.1, 0.01).cdf).pvalue > 1e-4
    assert stats.kstest(a.numpy(), stats.uniform(-math.pi / 2, math.pi).cdf).pvalue > 1e-4


def _slcp_moments(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s1, s2, rho = theta[2] ** 2, theta[3] ** 2, math.tanh(float(theta[4]))
    cov = torch.tensor([[s1**2 + 1e-6, rho * s1 * s2], [rho * s1 * s2, s2**2 + 1e-6]],
                       dtype=torch.float64)
    return theta[:2], cov


@pytest.mark.parametrize("obs", [1, 4])
def test_slcp_four_iid_bivariate_normals_with_sbibms_covariance(obs):
    _, theta, x = _draws("slcp", obs=obs)
    mean, cov = _slcp_moments(theta)
    pts = x.reshape(N, 4, 2)
    for j in range(4):
        _assert_mean(pts[:, j], mean, torch.diagonal(cov))
        emp = torch.cov(pts[:, j].T)
        # standard error of a sample covariance entry: sqrt((S_ii S_kk + S_ik^2) / N)
        se = torch.sqrt((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / N)
        assert ((emp - cov).abs() < Z * se).all(), (emp, cov)
    # draws are independent of one another
    assert abs(float(torch.corrcoef(torch.stack([pts[:, 0, 0], pts[:, 1, 0]]))[0, 1])) < Z / N**0.5


def test_slcp_distractors_informative_part_and_t_mixture_marginals():
    n = 4000
    dis, theta, x = _draws("slcp_distractors", n=n)
    slcp = load_simulator("slcp", device="cpu")
    keys = fold(torch.tensor(5), torch.arange(n))
    xd = dis.simulate(theta.float().expand(n, -1), keys=keys)
    perm = dis._permutation(torch.device("cpu"))
    full = torch.empty_like(xd)
    full[:, perm] = xd
    # the same keys give the same SLCP numbers: the distractors come from later streams
    assert torch.equal(full[:, :8], slcp.simulate(theta.float().expand(n, -1), keys=keys))
    loc, tril = distractor_mixture()
    scale = tril.norm(dim=-1)  # marginal scale of coordinate k in component c: |row k of L|
    for k in (0, 45, 91):
        def cdf(v, k=k):
            return np.mean([stats.t.cdf(v, 2.0, float(loc[c, k]), float(scale[c, k]))
                            for c in range(20)], axis=0)
        assert stats.kstest(full[:, 8 + k].double().numpy(), cdf).pvalue > 1e-4


def test_bernoulli_glm_summary_mean_and_covariance():
    sim, theta, x = _draws("bernoulli_glm")
    from simulators.sbibm.bernoulli_glm import design_matrix

    design = design_matrix()
    z = torch.sigmoid(design @ theta)
    mean = design.T @ z
    cov = design.T @ torch.diag(z * (1 - z)) @ design
    _assert_mean(x, mean, torch.diagonal(cov))
    assert (x[:, 0] == x[:, 0].round()).all()  # spike counts
    # the raw task's bins are Bernoulli(z)
    _, _, y = _draws("bernoulli_glm_raw", n=5000)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    _assert_mean(y, z, z * (1 - z))


def test_sir_counts_are_binomial_around_the_ode():
    _, theta, x = _draws("sir", n=5000, obs=4)
    p = infected_fraction(theta[None])[0]
    use = 1000 * p * (1 - p) > 1.0
    _assert_mean(x[:, use], 1000 * p[use], 1000 * p[use] * (1 - p[use]))
    # sample variance: relative standard error sqrt((2 + excess kurtosis) / N) with the
    # binomial's excess kurtosis (1 - 6 p q) / (n p q)
    npq = 1000 * p[use] * (1 - p[use])
    rel_se = torch.sqrt((2 + (1 - 6 * p[use] * (1 - p[use])) / npq) / 5000)
    assert ((x[:, use].var(0) / npq - 1).abs() < Z * rel_se).all()
    assert (x == x.round()).all() and (x >= 0).all() and (x <= 1000).all()


def test_lotka_volterra_noise_is_log_normal_0_1():
    _, theta, x = _draws("lotka_volterra", n=5000, obs=2)
    r = torch.log(x) - torch.log(populations(theta[None])[0])
    _assert_mean(r, torch.zeros(20, dtype=torch.float64), torch.full((20,), 0.01))
    assert ((r.var(0) - 0.01).abs() < Z * 0.01 * math.sqrt(2 / 5000)).all()


# ---- the ODE solutions against scipy's DOP853 at tight tolerances -------------------------

def _scipy_sir(beta: float, gamma: float) -> np.ndarray:
    n = 1e6

    def f(t, u):
        s, i, _ = u
        return [-beta * s * i / n, beta * s * i / n - gamma * i, gamma * i]

    sol = integrate.solve_ivp(f, (0, 160), [n - 1, 1, 0], method="DOP853", rtol=1e-12,
                              atol=1e-10, t_eval=np.arange(0, 154, 17.0))
    return sol.y[1] / n


def _scipy_lv(a: float, b: float, c: float, d: float) -> np.ndarray:
    def f(t, u):
        return [a * u[0] - b * u[0] * u[1], -c * u[1] + d * u[0] * u[1]]

    sol = integrate.solve_ivp(f, (0, 20), [30.0, 1.0], method="DOP853", rtol=1e-12,
                              atol=1e-14, t_eval=[2.1 * k for k in range(10)])
    return sol.y.reshape(-1)


def test_ode_solutions_match_scipy_at_the_true_parameters():
    sir_sim = load_simulator("sir", device="cpu")
    lv_sim = load_simulator("lotka_volterra", device="cpu")
    th_sir = torch.stack([sir_sim.true_parameters(i) for i in range(1, 11)]).double()
    th_lv = torch.stack([lv_sim.true_parameters(i) for i in range(1, 11)]).double()
    ours_sir, ours_lv = infected_fraction(th_sir), populations(th_lv)
    for i in range(10):
        ref = _scipy_sir(*th_sir[i].tolist())
        # absolute error on I/N below 1e-9 (1e-6 of a count out of 1000)
        assert np.abs(ours_sir[i].numpy() - ref).max() < 1e-9
        ref = _scipy_lv(*th_lv[i].tolist())
        assert (np.abs(ours_lv[i].numpy() / ref - 1)).max() < 1e-7


# ---- likelihoods against scipy ------------------------------------------------------------

def test_log_likelihoods_match_scipy():
    g = torch.Generator().manual_seed(3)
    sim = load_simulator("gaussian_linear_uniform", device="cpu", dtype=torch.float64)
    th, x = sim.true_parameters(1), sim.observation(2)
    want = stats.multivariate_normal(th.numpy(), 0.1 * np.eye(10)).logpdf(x.numpy())
    assert float(sim.log_likelihood(th, x)) == pytest.approx(want, abs=1e-9)
    sim = load_simulator("gaussian_mixture", device="cpu", dtype=torch.float64)
    th, x = sim.true_parameters(1), sim.true_parameters(1) + 0.3
    want = np.log(0.5 * stats.multivariate_normal(th.numpy(), np.eye(2)).pdf(x.numpy())
                  + 0.5 * stats.multivariate_normal(th.numpy(), 0.01 * np.eye(2)).pdf(x.numpy()))
    assert float(sim.log_likelihood(th, x)) == pytest.approx(want, abs=1e-9)
    sim = load_simulator("slcp", device="cpu", dtype=torch.float64)
    th, x = sim.true_parameters(3), sim.observation(3)
    mean, cov = _slcp_moments(th)
    want = stats.multivariate_normal(mean.numpy(), cov.numpy()).logpdf(
        x.reshape(4, 2).numpy()).sum()
    assert float(sim.log_likelihood(th, x)) == pytest.approx(want, rel=1e-9)
    sim = load_simulator("sir", device="cpu", dtype=torch.float64)
    th, x = sim.true_parameters(2), sim.observation(2)
    p = infected_fraction(th[None])[0].numpy()
    want = stats.binom(1000, p).logpmf(x.numpy()).sum()
    assert float(sim.log_likelihood(th, x)) == pytest.approx(want, rel=1e-9)
    sim = load_simulator("lotka_volterra", device="cpu", dtype=torch.float64)
    th, x = sim.true_parameters(2), sim.observation(2)
    u = populations(th[None])[0].numpy()
    want = stats.lognorm(s=0.1, scale=u).logpdf(x.numpy()).sum()
    assert float(sim.log_likelihood(th, x)) == pytest.approx(want, rel=1e-9)
    sim = load_simulator("bernoulli_glm_raw", device="cpu", dtype=torch.float64)
    th = sim.prior.sample((1,), generator=g)[0].double()
    x = sim.observation(5)
    z = sim.spike_probability(th[None])[0].numpy()
    want = stats.bernoulli(z).logpmf(x.numpy()).sum()
    assert float(sim.log_likelihood(th, x)) == pytest.approx(want, rel=1e-9)
    sim = load_simulator("slcp_distractors", device="cpu", dtype=torch.float64)
    lp = sim.log_likelihood(sim.true_parameters(1), sim.observation(1))
    lp_slcp = load_simulator("slcp", device="cpu", dtype=torch.float64).log_likelihood(
        sim.true_parameters(1), load_simulator("slcp", device="cpu").observation(1).double())
    assert torch.isfinite(lp) and lp < lp_slcp  # plus the (negative) distractor log-density


# ---- seeds: the same rows whatever the batch ---------------------------------------------

@pytest.mark.parametrize("name", ["gaussian_linear_uniform", "gaussian_mixture", "slcp",
                                  "slcp_distractors", "bernoulli_glm", "bernoulli_glm_raw",
                                  "sir", "lotka_volterra"])
def test_rows_do_not_depend_on_batch_size_or_chunking(name):
    sim = load_simulator(name, device="cpu")
    # 160 rows: long enough for torch's vectorised kernels (the contract test uses 6)
    theta = sim.prior.sample((160,), generator=torch.Generator().manual_seed(1))
    full = sim.simulate(theta, generator=torch.Generator().manual_seed(2))
    head = sim.simulate(theta[:5], generator=torch.Generator().manual_seed(2))
    assert torch.equal(full[:5], head)
    keys = fold(torch.tensor(9), torch.arange(160))
    whole = sim.simulate(theta, keys=keys)
    parts = torch.cat([sim.simulate(theta[i:i + 57], keys=keys[i:i + 57])
                       for i in range(0, 160, 57)])
    assert torch.equal(whole, parts)
