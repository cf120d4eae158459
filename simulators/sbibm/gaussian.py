"""``gaussian_linear_uniform`` and ``gaussian_mixture``: sbibm's Gaussian tasks with box priors.

``gaussian_linear_uniform``: prior ``U(-1, 1)^10``, ``x | theta ~ N(theta, 0.1 I)``
(covariance 0.1: sbibm's ``simulator_scale`` enters as a variance).  The posterior is
``N(x, 0.1 I)`` truncated to the box, a product of one-dimensional truncated normals.

``gaussian_mixture``: prior ``U(-10, 10)^2``, ``x | theta ~ 0.5 N(theta, I) + 0.5 N(theta,
0.01 I)`` (standard deviations 1 and 0.1).  The posterior is the same mixture centred on
``x``, truncated to the box: component ``c`` has weight proportional to its mass inside the
box, then each coordinate is a truncated normal.

Both reference samplers are exact (inverse CDF on counter-based uniforms, no rejection).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("gaussian_mixture", device="cpu")
    >>> x_o = sim.observation(1)
    >>> ref = sim.reference_posterior(x_o, 1000, generator=torch.Generator().manual_seed(0))
    >>> tuple(ref.shape)
    (1000, 2)

References:
    Lueckmann et al. (2021), "Benchmarking simulation-based inference", AISTATS (sbibm tasks
    ``gaussian_linear_uniform``, ``gaussian_mixture``); Sisson, Fan & Tanaka (2007), PNAS
    104, 1760 (the mixture task).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_astro.priors import Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import Simulator

from ._sampling import truncated_normal
from .reference import SbibmReference

GLU_DIM, GLU_BOUND, GLU_NOISE_VAR = 10, 1.0, 0.1
GM_DIM, GM_BOUND = 2, 10.0
GM_SCALES = (1.0, 0.1)  # standard deviations of the two components, weights 1/2 each


def _normal_log_pdf(r: Tensor, std: float) -> Tensor:
    """Sum over the last dimension of ``log N(r; 0, std^2)``."""
    return (-0.5 * (r / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


class GaussianLinearUniform(SbibmReference, Simulator):
    """``x = theta + N(0, 0.1 I)``, ``theta ~ U(-1, 1)^10``."""

    name = "gaussian_linear_uniform"
    sbibm_data = "gaussian_linear_uniform"

    def build_prior(self) -> Prior:
        return Prior([Uniform(f"theta_{i + 1}", -GLU_BOUND, GLU_BOUND) for i in range(GLU_DIM)])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (GLU_DIM,)

    def _expected(self, theta: Tensor) -> Tensor:
        return theta.to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        z = rng.normal((GLU_DIM,), dtype=torch.float64)
        return (theta.to(torch.float64) + math.sqrt(GLU_NOISE_VAR) * z).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        return _normal_log_pdf(x - theta, math.sqrt(GLU_NOISE_VAR))

    def _reference_posterior(self, x: Tensor, num_samples: int, rng: RowRandom) -> Tensor:
        u = rng.uniform((num_samples, GLU_DIM), dtype=torch.float64)  # (N, S, D)
        theta = truncated_normal(u, x.to(torch.float64)[:, None, :], math.sqrt(GLU_NOISE_VAR),
                                 -GLU_BOUND, GLU_BOUND)
        return theta.transpose(0, 1).to(self.dtype)


class GaussianMixture(SbibmReference, Simulator):
    """``x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I)``, ``theta ~ U(-10, 10)^2``."""

    name = "gaussian_mixture"
    sbibm_data = "gaussian_mixture"

    def build_prior(self) -> Prior:
        return Prior([Uniform(f"theta_{i + 1}", -GM_BOUND, GM_BOUND) for i in range(GM_DIM)])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (GM_DIM,)

    def _expected(self, theta: Tensor) -> Tensor:
        return theta.to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        narrow = rng.uniform((), dtype=torch.float64) < 0.5  # (N,)
        z = rng.normal((GM_DIM,), dtype=torch.float64)
        scale = torch.where(narrow, GM_SCALES[1], GM_SCALES[0])[:, None]
        return (theta.to(torch.float64) + scale * z).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r = x - theta
        comps = torch.stack([_normal_log_pdf(r, s) for s in GM_SCALES], dim=-1)
        return torch.logsumexp(comps, dim=-1) - math.log(2.0)

    def _reference_posterior(self, x: Tensor, num_samples: int, rng: RowRandom) -> Tensor:
        xd = x.to(torch.float64)  # (N, 2)
        # weight of each component: 1/2 times its probability mass inside the box
        log_mass = []
        for s in GM_SCALES:
            a, b = (-GM_BOUND - xd) / s, (GM_BOUND - xd) / s
            mass = torch.special.ndtr(b) - torch.special.ndtr(a)
            log_mass.append(torch.log(mass.clamp_min(1e-300)).sum(-1))
        p_narrow = torch.softmax(torch.stack(log_mass, -1), -1)[:, 1]  # (N,)
        narrow = rng.uniform((num_samples,), dtype=torch.float64) < p_narrow[:, None]  # (N, S)
        u = rng.uniform((num_samples, GM_DIM), dtype=torch.float64)
        mean = xd[:, None, :]
        wide_draw = truncated_normal(u, mean, GM_SCALES[0], -GM_BOUND, GM_BOUND)
        narrow_draw = truncated_normal(u, mean, GM_SCALES[1], -GM_BOUND, GM_BOUND)
        theta = torch.where(narrow[..., None], narrow_draw, wide_draw)
        return theta.transpose(0, 1).to(self.dtype)
