"""Cross-checks the sbibm plugins against sbibm 1.1.0 itself (a verification script, run by hand).

sbibm pins ``sbi<0.22`` and cannot be installed next to sbi-astro, so this runs in a
throwaway environment with sbibm's Python parts (its Julia ODE solver is not needed and not
imported; the SIR and Lotka-Volterra simulators checked here are ours)::

    python -m venv /tmp/sbibm-venv
    /tmp/sbibm-venv/bin/pip install torch==2.13.0 pyro-ppl pandas scipy scikit-learn
    /tmp/sbibm-venv/bin/pip install --no-deps sbibm==1.1.0
    /tmp/sbibm-venv/bin/python simulators/sbibm/crosscheck_sbibm.py   # from the repo root

It checks, printing one line per check:

1. priors: our ``prior.log_prob`` against sbibm's ``prior_dist.log_prob`` at 1,000 draws;
2. Python simulators: 20,000 simulations at the true parameters of observations 1-3 from
   sbibm's simulator and ours; largest per-coordinate z-score of the difference of means
   (and of medians for the heavy-tailed distractors), and the C2ST between them
   (``sbi_astro.diagnostics.c2st``, 10,000 + 10,000);
3. replays: with sbibm's observation seeds, torch's random stream and *our* model code,
   regenerates the observations of Lotka-Volterra (our ODE solution, sbibm's log-normal
   draw) and the raw Bernoulli GLM spike trains (our spike probabilities); for SIR (whose
   torch binomial sampler changed since sbibm drew its data) the probability integral
   transform of each observation's log-likelihood among 2,000 of our simulations, and the
   exact posterior of our SIR model on a 120 x 120 grid against sbibm's reference samples;
4. data: sbibm's stimulus, design matrix, distractor mixture and permutation against ours.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.modules.setdefault("diffeqtorch", types.SimpleNamespace(DiffEq=None))  # Julia: never called

import pyro  # noqa: E402
import pyro.distributions as pdist  # noqa: E402
import sbibm  # noqa: E402

from sbi_astro.diagnostics.c2st import c2st  # noqa: E402
from simulators.sbibm.gaussian_linear import GaussianLinear  # noqa: E402
from simulators.sbibm.bernoulli_glm import BernoulliGLM, BernoulliGLMRaw, design_matrix  # noqa: E402
from simulators.sbibm.gaussian import GaussianLinearUniform, GaussianMixture  # noqa: E402
from simulators.sbibm.lotka_volterra import LotkaVolterra, populations  # noqa: E402
from simulators.sbibm.sir import SIR, infected_fraction  # noqa: E402
from simulators.sbibm.slcp import SLCP, SLCPDistractors, distractor_mixture  # noqa: E402
from simulators.sbibm.two_moons import TwoMoons  # noqa: E402

OURS = {"gaussian_linear": GaussianLinear, "gaussian_linear_uniform": GaussianLinearUniform,
        "gaussian_mixture": GaussianMixture, "two_moons": TwoMoons, "slcp": SLCP,
        "slcp_distractors": SLCPDistractors, "bernoulli_glm": BernoulliGLM,
        "bernoulli_glm_raw": BernoulliGLMRaw, "sir": SIR, "lotka_volterra": LotkaVolterra}
PYTHON_TASKS = [t for t in OURS if t not in ("sir", "lotka_volterra")]
N_SIM = 20_000


def _allow_sbibm_mixture() -> None:
    """Lets ``torch.load(weights_only=True)`` rebuild sbibm's pickled ``gmm.torch`` (pyro
    distribution classes only; sbibm's own SLCP-distractors simulator loads it too)."""
    from pyro.distributions import (
        Categorical,
        Chi2,
        Independent,
        MixtureSameFamily,
        MultivariateStudentT,
    )

    torch.serialization.add_safe_globals([MixtureSameFamily, Categorical, Independent,
                                          MultivariateStudentT, Chi2])


def check_priors() -> None:
    for name, cls in OURS.items():
        task, sim = sbibm.get_task(name), cls(device="cpu")
        torch.manual_seed(0)
        theta = task.get_prior()(num_samples=1000)
        ours = sim.prior.log_prob(theta.double()).double()
        theirs = task.get_prior_dist().log_prob(theta).double()
        print(f"prior     {name:24s} max |log p_ours - log p_sbibm| = "
              f"{float((ours - theirs).abs().max()):.2e}")


def check_simulators(names: list[str] | None = None) -> None:
    for name in names or PYTHON_TASKS:
        task, sim = sbibm.get_task(name), OURS[name](device="cpu")
        worst_z, c2sts = 0.0, []
        for n in (1, 2, 3):
            theta = task.get_true_parameters(n)
            torch.manual_seed(n)
            simulator = task.get_simulator()  # in chunks: sbibm's distractor mixture
            theirs = torch.cat([simulator(theta.repeat(500, 1))  # draws (B, 20, 92, 92)
                                for _ in range(N_SIM // 500)]).double()
            ours = sim.simulate(theta[0].double().expand(N_SIM, -1).float(),
                                generator=torch.Generator().manual_seed(n)).double()
            if name == "slcp_distractors":  # Student-t (2 dof): no variance, compare medians
                q_t, q_o = theirs.median(0).values, ours.median(0).values
                iqr = (theirs.quantile(0.75, 0) - theirs.quantile(0.25, 0)).clamp_min(1e-12)
                z = (q_t - q_o).abs() / (1.2533 * iqr / 1.349 * (2 / N_SIM) ** 0.5)
            else:
                se = ((theirs.var(0) + ours.var(0)) / N_SIM).sqrt().clamp_min(1e-12)
                z = (theirs.mean(0) - ours.mean(0)).abs() / se
            worst_z = max(worst_z, float(z.max()))
            x_t, x_o = theirs[:10_000].float(), ours[:10_000].float()
            if name == "slcp_distractors":  # heavy tails (2 dof): compare signed logs
                x_t, x_o = (torch.sign(v) * torch.log1p(v.abs()) for v in (x_t, x_o))
            c2sts.append(c2st(x_t, x_o, seed=n))
        print(f"simulator {name:24s} max z(mean diff) = {worst_z:.2f} over "
              f"{sim.event_shape[0]} x 3 coords; C2ST(sbibm, ours) = "
              + ", ".join(f"{c:.3f}" for c in c2sts))


def replay_lotka_volterra() -> None:
    task, worst = sbibm.get_task("lotka_volterra"), 0.0
    for n in range(1, 11):
        seed = task._get_observation_seed(n)
        np.random.seed(seed), torch.manual_seed(seed)
        theta = task.get_prior()(num_samples=1)
        us = populations(theta.double()).float()
        x = pyro.sample("data", pdist.LogNormal(torch.log(us.clamp(1e-10, 1e4)), 0.1).to_event(1))
        obs = task.get_observation(n)
        worst = max(worst, float(((x - obs).abs() / obs).max()))
    print(f"replay    lotka_volterra: 10 observations regenerated, max relative difference "
          f"{worst:.2e}")


def replay_bernoulli_glm() -> None:
    task, sim = sbibm.get_task("bernoulli_glm"), BernoulliGLM(device="cpu")
    raw_task, equal, summary_err = sbibm.get_task("bernoulli_glm_raw"), 0, 0.0
    for n in range(1, 11):
        seed = int(task._get_observation_seed(n))
        np.random.seed(seed), torch.manual_seed(seed)
        theta = task.get_prior()(num_samples=1)
        z = sim.spike_probability(theta.double())[0].float()
        y = (torch.rand(100) < z).float()
        raw = raw_task.get_observation(n)[0]
        equal += int(torch.equal(y, raw))
        summary_err = max(summary_err, float((sim.summarize(raw) - task.get_observation(n)[0])
                                             .abs().max()))
    print(f"replay    bernoulli_glm: {equal}/10 raw spike trains regenerated bit for bit; "
          f"max |X^T y - sbibm summary| = {summary_err:.2e}")


def pit_sir(num: int = 2000) -> None:
    task, sim, pits = sbibm.get_task("sir"), SIR(device="cpu"), []
    for n in range(1, 11):
        theta = task.get_true_parameters(n).double()
        obs = task.get_observation(n).double()
        x = sim.simulate(theta.expand(num, -1).float(), generator=torch.Generator().manual_seed(n))
        ll_sim = sim.log_likelihood(theta.float().expand(num, -1), x).double()
        ll_obs = float(sim.log_likelihood(theta.float(), obs.float()[0]))
        u = float(torch.rand(1, generator=torch.Generator().manual_seed(100 + n)))
        pits.append(float((ll_sim < ll_obs).double().mean() + u * (ll_sim == ll_obs).double()
                           .mean()))
    from scipy.stats import kstest

    print("replay    sir: PIT of the observations' log-likelihood among our simulations: "
          + ", ".join(f"{p:.2f}" for p in pits) + f"; KS p = {kstest(pits, 'uniform').pvalue:.2f}")
    prob = infected_fraction(task.get_true_parameters(1).double())
    print(f"          sir obs 1: 1000 I/N = {np.round(1000 * prob[0].numpy(), 1).tolist()} vs "
          f"{task.get_observation(1)[0].tolist()}")


def grid_posterior_sir(n_grid: int = 120) -> None:
    """Our exact SIR posterior on a grid (prior x binomial likelihood of our ODE) against
    sbibm's reference samples (which sbibm drew with its Julia-solved likelihood)."""
    from simulators.sbibm._sampling import binomial_log_pmf

    task, sim, worst_mean, worst_sd = sbibm.get_task("sir"), SIR(device="cpu"), 0.0, 0.0
    for n in range(1, 11):
        ref = task.get_reference_posterior_samples(n).double()
        mean, sd = _grid_moments(sim, ref, task.get_observation(n)[0].double(), n_grid,
                                 binomial_log_pmf)
        worst_mean = max(worst_mean, float(((mean - ref.mean(0)) / ref.std(0)).abs().max()))
        worst_sd = max(worst_sd, float((sd / ref.std(0) - 1).abs().max()))
    print(f"posterior sir: grid posterior of our model vs sbibm reference samples, 10 "
          f"observations: max |mean diff| {worst_mean:.3f} sd, max |sd ratio - 1| {worst_sd:.3f}")


def _grid_moments(sim, ref, obs, n_grid, log_pmf):
    lo, hi = ref.min(0).values, ref.max(0).values
    pad = 0.3 * (hi - lo)
    axes = [torch.linspace(float(lo[k] - pad[k]), float(hi[k] + pad[k]), n_grid,
                           dtype=torch.float64) for k in range(2)]
    grid = torch.stack([g.reshape(-1) for g in torch.meshgrid(*axes, indexing="ij")], -1)
    lp = sim.prior.log_prob(grid).double() + log_pmf(
        obs, 1000, infected_fraction(grid).clamp(0, 1)).sum(-1)
    w = torch.softmax(lp, 0)[:, None]
    mean = (w * grid).sum(0)
    return mean, (w * (grid - mean) ** 2).sum(0).sqrt()


def check_data() -> None:
    files = Path(sbibm.__file__).parent / "tasks"
    stim = torch.load(files / "bernoulli_glm/files/stimulus_I.pt", weights_only=True)
    x_sbibm = torch.load(files / "bernoulli_glm/files/design_matrix.pt", weights_only=True)
    regen = np.random.RandomState(42).randn(100).astype(np.float32)
    print(f"data      bernoulli_glm stimulus == RandomState(42): {np.array_equal(regen, stim)}; "
          f"max |X_ours - X_sbibm| = {float((design_matrix() - x_sbibm.double()).abs().max()):.1e}")
    gmm = torch.load(files / "slcp/files/gmm.torch", weights_only=True)
    comp = gmm.component_distribution.base_dist
    loc, tril = distractor_mixture()
    log_det = torch.diagonal(comp.scale_tril, dim1=-2, dim2=-1).abs().log().sum()
    print(f"data      slcp distractor mixture vs RandomState(42) regeneration: max |diff| loc "
          f"{float((comp.loc - loc).abs().max()):.1e}, scale_tril "
          f"{float((comp.scale_tril - tril).abs().max()):.1e}, df {comp.df.unique().tolist()}, "
          f"weights {gmm.mixture_distribution.probs.unique().tolist()}")
    print("          gmm.torch fingerprints:", [repr(float(v)) for v in (
        comp.loc.sum(), (comp.loc**2).sum(), comp.scale_tril.sum(), (comp.scale_tril**2).sum(),
        log_det, comp.loc[7, 33], comp.scale_tril[12, 80, 5], comp.scale_tril[19, 91, 91])])
    perm = torch.load(files / "slcp/files/permutation_idx.torch", weights_only=True)
    ours = SLCPDistractors(device="cpu")._permutation(torch.device("cpu"))
    print(f"data      slcp permutation equal: {torch.equal(perm, ours)}")


CHECKS = {"priors": check_priors, "data": check_data, "lotka_volterra": replay_lotka_volterra,
          "bernoulli_glm": replay_bernoulli_glm, "sir": pit_sir, "sir_grid": grid_posterior_sir,
          "simulators": check_simulators}

if __name__ == "__main__":
    torch.set_num_threads(1)
    _allow_sbibm_mixture()
    for check in sys.argv[1:] or CHECKS:  # e.g. `priors data simulators:slcp,two_moons`
        name, _, tasks = check.partition(":")
        CHECKS[name](*([tasks.split(",")] if tasks else []))
