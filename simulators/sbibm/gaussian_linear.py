"""``gaussian_linear``: the sbibm Gaussian linear task, with its exact posterior.

Prior ``theta ~ N(0, 0.1 I_D)``; likelihood ``x | theta ~ N(theta, 0.1 I_D)`` (variances,
not standard deviations), ``D = 10`` by default.  The posterior is conjugate:
``theta | x ~ N(x / 2, 0.05 I_D)``.

sbibm's 10 observations, true parameters and reference samples (``D = 10``) come with the
task (``simulators/sbibm/reference.py``).

References:
    Lueckmann et al. (2021), "Benchmarking simulation-based inference", AISTATS (sbibm).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from sbi_astro.priors import Normal, Prior
from sbi_astro.random import RowRandom
from sbi_astro.simulator import Simulator
from .reference import SbibmReference

PRIOR_VARIANCE = 0.1
NOISE_VARIANCE = 0.1


@dataclasses.dataclass(frozen=True)
class GaussianLinearOptions:
    """Attributes:
    dim: number of parameters (and data dimensions).
    """

    dim: int = 10

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim must be >= 1, got {self.dim}")


class GaussianLinear(SbibmReference, Simulator):
    """Gaussian linear task: ``x = theta + noise``, conjugate Gaussian posterior.

    With the default ``dim = 10`` it carries sbibm's 10 observations and reference samples
    (``observation(i)``, ``reference_samples(i)``, ``observed()``).
    """

    name = "gaussian_linear"
    Options = GaussianLinearOptions
    sbibm_data = "gaussian_linear"

    def _sbibm_unavailable(self) -> str | None:
        if self.options.dim != 10:
            return (f"sbibm's gaussian_linear observations are 10-dimensional; this simulator "
                    f"has dim={self.options.dim}: use dim=10")
        return None

    def build_prior(self) -> Prior:
        scale = math.sqrt(PRIOR_VARIANCE)
        return Prior([Normal(f"theta_{i}", 0.0, scale) for i in range(self.options.dim)])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.options.dim,)

    def _expected(self, theta: Tensor) -> Tensor:
        return theta.to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        noise = rng.normal((self.options.dim,), dtype=theta.dtype)
        return (theta + math.sqrt(NOISE_VARIANCE) * noise).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r = x - theta
        d = self.options.dim
        return -0.5 * (r * r).sum(-1) / NOISE_VARIANCE - 0.5 * d * math.log(
            2 * math.pi * NOISE_VARIANCE)

    def posterior_mean_std(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Exact posterior mean ``(*B, D)`` and standard deviation (scalar) given ``x``."""
        precision = 1.0 / PRIOR_VARIANCE + 1.0 / NOISE_VARIANCE
        mean = (x / NOISE_VARIANCE) / precision
        return mean, torch.tensor(math.sqrt(1.0 / precision))

    def _reference_posterior(self, x: Tensor, num_samples: int, rng: RowRandom) -> Tensor:
        mean, std = self.posterior_mean_std(x)
        z = rng.normal((num_samples, self.options.dim), dtype=x.dtype)  # (N, S, D)
        return (mean[:, None, :] + std.to(x) * z).transpose(0, 1)
