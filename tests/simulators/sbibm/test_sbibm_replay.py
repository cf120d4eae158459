"""Our model code regenerates sbibm's stored observations from sbibm's seeds.

sbibm drew each observation as ``torch.manual_seed(seed)``, a prior draw, then the
simulator, all from torch's global generator.  Replaying that stream here (the same torch
calls sbibm's pyro distributions make) and feeding the random numbers through *our* model
functions must give back sbibm's true parameters and observations: an exact test of the
definitions (priors, noise models, data layout, ODE solutions), not of their statistics.
SIR is the exception: torch's binomial sampler has changed since sbibm drew its data, so
its observations are tested for goodness of fit instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import MultivariateNormal

from sbi_astro import load_simulator
from simulators.sbibm.lotka_volterra import populations
from simulators.sbibm.reference import load_task_data
from simulators.sbibm.sir import infected_fraction
from simulators.sbibm.slcp import slcp_data


def _gaussian_linear():
    prec = torch.inverse(0.1 * torch.eye(10))  # sbibm: precision = inverse(prior_scale I)
    theta = MultivariateNormal(torch.zeros(10), precision_matrix=prec).sample((1,))[0]
    return theta, theta + math.sqrt(0.1) * torch.randn(10)


def _gaussian_linear_uniform():
    theta = -1.0 + 2.0 * torch.rand(1, 10)[0]
    return theta, theta + math.sqrt(0.1) * torch.randn(10)


def _gaussian_mixture():
    theta = -10.0 + 20.0 * torch.rand(1, 2)[0]
    # torch.multinomial of sbibm's time (torch 1.x) inverted one float64 uniform: component
    # 1 (standard deviation 0.1) when u >= 0.5.  Today's multinomial draws differently.
    narrow = float(torch.rand(1, dtype=torch.float64)) >= 0.5
    return theta, theta + (0.1 if narrow else 1.0) * torch.randn(2)


def _two_moons():
    theta = -1.0 + 2.0 * torch.rand(1, 2)
    a = -math.pi / 2 + math.pi * torch.rand(1, 1)
    r = torch.normal(torch.full((1, 1), 0.1), torch.full((1, 1), 0.01))
    p = torch.cat([torch.cos(a) * r + 0.25, torch.sin(a) * r], dim=1)
    return theta[0], (p + load_simulator("two_moons", device="cpu")._shift(theta))[0]


def _slcp():
    theta = -3.0 + 6.0 * torch.rand(1, 5)
    z = torch.randn(1, 4, 2)
    return theta[0], slcp_data(theta.double(), z.double())[0].float()


def _lotka_volterra():
    loc, scale = torch.tensor([-0.125, -3.0, -0.125, -3.0]), torch.full((1, 4), 0.5)
    theta = torch.exp(torch.normal(loc.expand(1, 4), scale))
    u = populations(theta.double()).float()  # sbibm kept float32 trajectories
    return theta[0], torch.exp(torch.normal(torch.log(u.clamp(1e-10, 1e4)),
                                            torch.full((1, 20), 0.1)))[0]


# task: (replay, tolerance on theta, tolerance on x).  Tolerances: true parameters are
# printed with 8 digits in sbibm's CSVs (<= 1e-8 off); x agrees to float32 rounding of our
# float64 formulas (SLCP's 2x2 Cholesky in float32 by sbibm: ~1e-6 relative); Lotka-Volterra
# to the Julia solver's tolerance 1e-8 propagated through float32 (measured 8.7e-7 relative).
REPLAYS = {
    "gaussian_linear": (_gaussian_linear, 1e-7, 1e-6),
    "gaussian_linear_uniform": (_gaussian_linear_uniform, 1e-7, 1e-6),
    "gaussian_mixture": (_gaussian_mixture, 1e-7, 1e-5),
    "two_moons": (_two_moons, 1e-7, 1e-6),
    "slcp": (_slcp, 1e-7, 2e-5),
    "lotka_volterra": (_lotka_volterra, 1e-7, 2e-6),
}


@pytest.mark.parametrize("name", sorted(REPLAYS))
def test_replay_regenerates_sbibm_observations(name):
    replay, tol_theta, tol_x = REPLAYS[name]
    data = load_task_data(name)
    state = torch.get_rng_state()
    try:
        for n in range(10):
            torch.manual_seed(int(data["observation_seeds"][n]))
            theta, x = replay()
            obs = torch.from_numpy(data["observations"][n])
            assert torch.allclose(theta, torch.from_numpy(data["true_parameters"][n]),
                                  rtol=0, atol=tol_theta)
            scale = obs.abs() if name == "lotka_volterra" else 1.0
            assert ((x - obs).abs() / scale).max() < tol_x, (name, n + 1)
    finally:
        torch.set_rng_state(state)


def test_replay_bernoulli_glm_spike_trains_bit_for_bit():
    sim = load_simulator("bernoulli_glm", device="cpu")
    data = load_task_data("bernoulli_glm")
    precision = torch.linalg.inv(sim.prior.covariance).float()
    state = torch.get_rng_state()
    try:
        for n in range(10):
            torch.manual_seed(int(data["observation_seeds"][n]))
            theta = MultivariateNormal(torch.zeros(10), precision_matrix=precision).sample((1,))
            # our float64 prior covariance vs sbibm's float32 precision: ~1e-5 differences
            assert torch.allclose(theta[0], torch.from_numpy(data["true_parameters"][n]),
                                  atol=2e-5)
            y = (torch.rand(100) < sim.spike_probability(theta.double())[0].float()).float()
            assert torch.equal(y, torch.from_numpy(data["observations_raw"][n]).float())
    finally:
        torch.set_rng_state(state)


def _sir_chi2(theta_scale: torch.Tensor) -> tuple[float, int]:
    data = load_task_data("sir")
    theta = torch.from_numpy(data["true_parameters"]).double() * theta_scale
    p = infected_fraction(theta)  # (10, 10)
    mean, var = 1000 * p, 1000 * p * (1 - p)
    obs = torch.from_numpy(data["observations"]).double()
    use = var >= 1.0  # days where the binomial is not degenerate
    chi2 = (((obs - mean) ** 2 / var)[use]).sum()
    return float(chi2), int(use.sum())


def test_sir_observations_fit_the_ode_at_their_true_parameters():
    chi2, dof = _sir_chi2(torch.ones(2))
    # sum of squared standardised binomial residuals over the non-degenerate days of all 10
    # observations (~60): chi-square with `dof` degrees of freedom; reject below p = 0.001
    assert dof >= 40
    assert stats.chi2.sf(chi2, dof) > 1e-3, (chi2, dof)
    # negative control: a 5 % faster recovery rate shifts the epidemic far outside the noise
    bad, dof = _sir_chi2(torch.tensor([1.0, 1.05], dtype=torch.float64))
    assert stats.chi2.sf(bad, dof) < 1e-6, (bad, dof)


def test_lotka_volterra_noise_free_trajectories_within_noise_of_observations():
    data = load_task_data("lotka_volterra")
    theta = torch.from_numpy(data["true_parameters"]).double()
    z = (np.log(data["observations"]) - torch.log(populations(theta)).numpy()) / 0.1
    # 200 standard normal residuals: mean within 4 standard errors, variance by chi-square
    assert abs(z.mean()) < 4 / math.sqrt(z.size)
    p = stats.chi2.sf((z**2).sum(), z.size)  # too large or too small a spread both fail
    assert 1e-3 < p < 1 - 1e-3
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
