"""``two_moons``: the sbibm two-moons task, with its exact posterior sampler.

Prior ``theta ~ U(-1, 1)^2``.  Simulator: ``a ~ U(-pi/2, pi/2)``, ``r ~ N(0.1, 0.01^2)``,
``p = (r cos a + 0.25, r sin a)``, and
``x = p + (-|theta_1 + theta_2| / sqrt 2, (-theta_1 + theta_2) / sqrt 2)``.

The map ``g(theta)`` added to ``p`` is two-to-one with unit Jacobian, so exact posterior
samples are obtained by drawing ``p`` from its distribution, inverting ``g`` at ``x - p``,
picking either branch with probability 1/2, and rejecting draws outside the prior box.

References:
    Greenberg, Nonnenmacher & Macke (2019), "Automatic posterior transformation for
    likelihood-free inference", ICML; Lueckmann et al. (2021), sbibm.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sbi_astro.priors import Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import Simulator
from .reference import SbibmReference

R_MEAN, R_STD = 0.1, 0.01


class TwoMoons(SbibmReference, Simulator):
    """Two-moons task: a crescent-shaped, bimodal posterior in two dimensions.

    Carries sbibm's 10 observations and reference samples (``observation(i)``,
    ``reference_samples(i)``, ``observed()``).
    """

    name = "two_moons"
    sbibm_data = "two_moons"

    def build_prior(self) -> Prior:
        return Prior([Uniform("theta_1", -1.0, 1.0), Uniform("theta_2", -1.0, 1.0)])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (2,)

    @staticmethod
    def _noise_point(rng: RowRandom, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        a = math.pi * (rng.uniform(shape, dtype=torch.float64) - 0.5)
        r = R_MEAN + R_STD * rng.normal(shape, dtype=torch.float64)
        return torch.stack([r * torch.cos(a) + 0.25, r * torch.sin(a)], dim=-1).to(dtype)

    def _shift(self, theta: Tensor) -> Tensor:
        s = theta[..., 0] + theta[..., 1]
        d = theta[..., 1] - theta[..., 0]
        return torch.stack([-s.abs() / math.sqrt(2.0), d / math.sqrt(2.0)], dim=-1)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        p = self._noise_point(rng, (), torch.float64)
        return (p + self._shift(theta.to(torch.float64))).to(self.dtype)

    def _reference_posterior(self, x: Tensor, num_samples: int, rng: RowRandom) -> Tensor:
        n = x.shape[0]
        xd = x.to(torch.float64)
        out = torch.zeros(n, num_samples, 2, dtype=torch.float64, device=x.device)
        filled = torch.zeros(n, dtype=torch.long, device=x.device)
        block = max(4 * num_samples, 1024)
        for _ in range(200):
            if bool((filled >= num_samples).all()):
                break
            p = self._noise_point(rng, (block,), torch.float64)  # (N, block, 2)
            q = xd[:, None, :] - p
            abs_s = -math.sqrt(2.0) * q[..., 0]
            d = math.sqrt(2.0) * q[..., 1]
            sign = torch.where(rng.uniform((block,), dtype=torch.float64) < 0.5, 1.0, -1.0)
            s = sign * abs_s
            theta = torch.stack([(s - d) / 2, (s + d) / 2], dim=-1)
            ok = (abs_s >= 0) & (theta.abs() <= 1.0).all(-1)
            for i in range(n):
                need = num_samples - int(filled[i])
                if need <= 0:
                    continue
                acc = theta[i][ok[i]][:need]
                out[i, filled[i]: filled[i] + acc.shape[0]] = acc
                filled[i] += acc.shape[0]
        else:
            raise RuntimeError("two_moons reference sampler: acceptance too low for this x")
        return out.transpose(0, 1).to(self.dtype)
