"""``slcp`` and ``slcp_distractors``: sbibm's simple-likelihood, complex-posterior task.

Prior ``theta ~ U(-3, 3)^5``.  With ``m = (theta_1, theta_2)``, ``s1 = theta_3^2``,
``s2 = theta_4^2``, ``rho = tanh(theta_5)``, the data are 4 independent draws from the
bivariate normal ``N(m, S)``, ``S = [[s1^2, rho s1 s2], [rho s1 s2, s2^2]] + 1e-6 I``,
flattened to ``x = (x_1, y_1, x_2, y_2, ..., y_4)`` (8 numbers).  The posterior has four
symmetric modes (the signs of ``theta_3`` and ``theta_4``).

``slcp_distractors`` appends 92 "distractor" numbers drawn from a fixed mixture of 20
multivariate Student-t distributions (2 degrees of freedom, in 92 dimensions) that does not
depend on ``theta``, and permutes the 100 numbers with sbibm's fixed permutation.  The
mixture is sbibm's: locations ``15 z``, scale factors ``3 (tril(Z) + diag(exp(z')))``
drawn from numpy's ``RandomState(42)`` in sbibm's order (regenerated here; equal to the
contents of sbibm's pickled ``gmm.torch`` within 4e-15, an ulp of numpy's ``exp``; the
permutation comes from the same stream and is stored in ``data/slcp.npz``).  Both tasks
share sbibm's reference posterior samples.

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("slcp_distractors", device="cpu")
    >>> x = sim.simulate(sim.true_parameters(1), generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape)
    (100,)

References:
    Papamakarios, Sterratt & Murray (2019), "Sequential neural likelihood", AISTATS;
    Lueckmann et al. (2021), "Benchmarking simulation-based inference", AISTATS (sbibm tasks
    ``slcp``, ``slcp_distractors``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor

from sbi_astro.priors import Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import Simulator

from ._priors import matvec
from .reference import SbibmReference, load_task_data

BOUND = 3.0
NUM_DRAWS = 4
EPS = 1e-6
NOISE_DIM, NOISE_COMPONENTS, NOISE_DF = 92, 20, 2.0


def _cholesky(theta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Entries ``(l00, l10, l11)`` of the Cholesky factor of ``S`` for ``theta (N, 5)``."""
    s1, s2 = theta[:, 2] ** 2, theta[:, 3] ** 2
    rho = torch.tanh(theta[:, 4])
    l00 = torch.sqrt(s1 * s1 + EPS)
    l10 = rho * s1 * s2 / l00
    l11 = torch.sqrt(s2 * s2 + EPS - l10 * l10)
    return l00, l10, l11


def slcp_data(theta: Tensor, z: Tensor) -> Tensor:
    """The 8 SLCP numbers from ``theta (N, 5)`` and standard normals ``z (N, 4, 2)``."""
    l00, l10, l11 = (c[:, None] for c in _cholesky(theta))
    xa = theta[:, None, 0] + l00 * z[..., 0]
    xb = theta[:, None, 1] + l10 * z[..., 0] + l11 * z[..., 1]
    return torch.stack([xa, xb], dim=-1).reshape(theta.shape[0], 2 * NUM_DRAWS)


def slcp_log_likelihood(theta: Tensor, x: Tensor) -> Tensor:
    """``sum_j log N(x_j; m, S)`` for ``theta (N, 5)``, ``x (N, 8)`` -> ``(N,)``."""
    l00, l10, l11 = (c[:, None] for c in _cholesky(theta))
    pts = x.reshape(x.shape[0], NUM_DRAWS, 2)
    ra = (pts[..., 0] - theta[:, None, 0]) / l00
    rb = (pts[..., 1] - theta[:, None, 1] - l10 * ra) / l11
    log_det = torch.log(l00) + torch.log(l11)  # (N, 1)
    return (-0.5 * (ra * ra + rb * rb) - log_det - math.log(2 * math.pi)).sum(-1)


@functools.lru_cache(maxsize=1)
def distractor_mixture() -> tuple[Tensor, Tensor]:
    """sbibm's distractor mixture: locations ``(20, 92)`` and scale factors ``(20, 92, 92)``.

    Regenerated from numpy's ``RandomState(42)`` in the order of sbibm's
    ``SLCP._generate_noise_dist_parameters`` (float64, on the CPU).
    """
    rs = np.random.RandomState(42)
    loc = np.array([15 * rs.normal(size=NOISE_DIM) for _ in range(NOISE_COMPONENTS)])
    tril = [np.tril(rs.normal(size=(NOISE_DIM, NOISE_DIM)))
            + np.diag(np.exp(rs.normal(size=NOISE_DIM))) for _ in range(NOISE_COMPONENTS)]
    return torch.from_numpy(loc), torch.from_numpy(3 * np.array(tril))


class SLCP(SbibmReference, Simulator):
    """SLCP: 5 parameters, 4 bivariate normal draws whose covariance depends on theta."""

    name = "slcp"
    sbibm_data = "slcp"

    def build_prior(self) -> Prior:
        return Prior([Uniform(f"theta_{i + 1}", -BOUND, BOUND) for i in range(5)])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (2 * NUM_DRAWS,)

    def _expected(self, theta: Tensor) -> Tensor:
        return theta[:, :2].repeat(1, NUM_DRAWS).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        z = rng.normal((NUM_DRAWS, 2), dtype=torch.float64)
        return slcp_data(theta.to(torch.float64), z).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return slcp_log_likelihood(theta.to(torch.float64), x.to(torch.float64)).to(theta.dtype)


class SLCPDistractors(SLCP):
    """SLCP with 92 theta-independent Student-t mixture distractors, permuted (100 numbers)."""

    name = "slcp_distractors"
    sbibm_observation_key = "observations_distractors"

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (2 * NUM_DRAWS + NOISE_DIM,)

    def _permutation(self, device: torch.device) -> Tensor:
        perm = torch.from_numpy(load_task_data("slcp")["permutation"].astype(np.int64))
        return perm.to(device)

    def _noise(self, rng: RowRandom) -> Tensor:
        loc, tril = distractor_mixture()
        comp = torch.floor(rng.uniform((), dtype=torch.float64) * NOISE_COMPONENTS).long()
        w = -torch.log(rng.uniform((), dtype=torch.float64))  # chi2(2) / 2 ~ Exp(1)
        z = rng.normal((NOISE_DIM,), dtype=torch.float64)
        out = torch.empty_like(z)
        comp = comp.clamp_max(NOISE_COMPONENTS - 1).cpu()
        for c in torch.unique(comp).tolist():
            rows = (comp == c).nonzero().squeeze(1).to(z.device)
            lc, tc = loc[c].to(z.device), tril[c].to(z.device)
            for start in range(0, rows.numel(), 512):  # bounded (512, 92, 92) temporaries
                r = rows[start:start + 512]
                draw = lc + matvec(tc, z[r]) / torch.sqrt(w[r] * (2.0 / NOISE_DF))[:, None]
                out[r] = draw
        return out

    def _expected(self, theta: Tensor) -> Tensor:
        loc, _ = distractor_mixture()
        noise_mean = loc.mean(0).to(theta.device, torch.float64).expand(theta.shape[0], -1)
        full = torch.cat([theta[:, :2].to(torch.float64).repeat(1, NUM_DRAWS), noise_mean], -1)
        return full[:, self._permutation(theta.device)].to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        z = rng.normal((NUM_DRAWS, 2), dtype=torch.float64)
        data = slcp_data(theta.to(torch.float64), z)
        full = torch.cat([data, self._noise(rng)], dim=-1)
        return full[:, self._permutation(theta.device)].to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        perm = self._permutation(x.device)
        full = torch.empty_like(x, dtype=torch.float64)
        full[:, perm] = x.to(torch.float64)  # undo the permutation
        ll = slcp_log_likelihood(theta.to(torch.float64), full[:, :2 * NUM_DRAWS])
        return (ll + _mixture_t_log_pdf(full[:, 2 * NUM_DRAWS:])).to(theta.dtype)


def _mixture_t_log_pdf(v: Tensor) -> Tensor:
    """Log-density of the distractor mixture at ``v (N, 92)`` -> ``(N,)``."""
    loc, tril = distractor_mixture()
    d, nu = NOISE_DIM, NOISE_DF
    const = (math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - 0.5 * d * math.log(nu * math.pi))
    comps = []
    for c in range(NOISE_COMPONENTS):
        tc = tril[c].to(v.device)
        r = torch.linalg.solve_triangular(tc, (v - loc[c].to(v.device)).T, upper=False).T
        log_det = torch.log(torch.diagonal(tc).abs()).sum()
        comps.append(const - log_det - 0.5 * (nu + d) * torch.log1p((r * r).sum(-1) / nu))
    return torch.logsumexp(torch.stack(comps, -1), -1) - math.log(NOISE_COMPONENTS)
