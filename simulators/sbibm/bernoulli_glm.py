"""``bernoulli_glm`` and ``bernoulli_glm_raw``: sbibm's spiking-neuron GLM.

A neuron sees 100 time bins of a fixed white-noise stimulus ``I`` (sbibm's, seed 42; in
``data/bernoulli_glm.npz``).  With the design matrix ``X (100, 10)``, ``X[t, 0] = 1`` and
``X[t, 1 + j] = I[t - j]`` for ``t >= j`` (else 0), it spikes in bin ``t`` with probability
``sigmoid((X theta)_t)``: ``theta_1`` is an offset, ``theta_2..10`` a temporal filter.

Prior: ``N(0, B^-1)`` with precision ``B = diag(0.5, F^T F)``, ``F = D^2 + diag(sqrt(j / 9))``
(``D`` the first-difference matrix, ``j = 0..8``): a smoothness prior on the filter, and
variance 2 on the offset.

``bernoulli_glm`` observes the sufficient statistics ``X^T y``: the spike count and the 9
spike-triggered sums ``sum_t y_t I[t - l]`` (sbibm computes them as a padded
convolution); ``bernoulli_glm_raw`` observes the 100 binary bins ``y`` and has the exact
Bernoulli likelihood.  Both share sbibm's reference posterior samples (Polya-Gamma Gibbs
sampling in sbibm).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("bernoulli_glm", device="cpu")
    >>> raw = load_simulator("bernoulli_glm_raw", device="cpu").observation(1)
    >>> torch.allclose(sim.summarize(raw), sim.observation(1), atol=1e-4)
    True

References:
    Lueckmann et al. (2017), "Flexible statistical inference for mechanistic models of
    neural dynamics", NeurIPS; Lueckmann et al. (2021), "Benchmarking simulation-based
    inference", AISTATS (sbibm tasks ``bernoulli_glm``, ``bernoulli_glm_raw``).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor
from torch.nn.functional import logsigmoid

from sbi_astro.priors import Prior
from sbi_astro.random import RowRandom
from sbi_astro.simulator import Simulator

from ._priors import GaussianPrior, matvec
from .reference import SbibmReference, load_task_data

NUM_BINS, NUM_PARAMS = 100, 10


def prior_covariance() -> Tensor:
    """``B^-1 (10, 10)`` float64: the prior covariance of (offset, filter)."""
    m = NUM_PARAMS - 1
    d = torch.eye(m, dtype=torch.float64) - torch.diag(torch.ones(m - 1, dtype=torch.float64), -1)
    f = d @ d + torch.diag(torch.sqrt(torch.arange(m, dtype=torch.float64) / m))
    precision = torch.zeros(NUM_PARAMS, NUM_PARAMS, dtype=torch.float64)
    precision[0, 0] = 0.5
    precision[1:, 1:] = f.T @ f
    return torch.linalg.inv(precision)


@functools.lru_cache(maxsize=1)
def design_matrix() -> Tensor:
    """``X (100, 10)`` float64 from sbibm's stimulus."""
    stim = torch.from_numpy(load_task_data("bernoulli_glm")["stimulus"]).to(torch.float64)
    x = torch.zeros(NUM_BINS, NUM_PARAMS, dtype=torch.float64)
    x[:, 0] = 1.0
    for j in range(NUM_PARAMS - 1):
        x[j:, 1 + j] = stim[:NUM_BINS - j]
    return x


class BernoulliGLM(SbibmReference, Simulator):
    """Bernoulli GLM observed through its 10 sufficient statistics."""

    name = "bernoulli_glm"
    sbibm_data = "bernoulli_glm"

    def build_prior(self) -> Prior:
        names = ["offset"] + [f"filter_{j + 1}" for j in range(NUM_PARAMS - 1)]
        return GaussianPrior(names, torch.zeros(NUM_PARAMS), prior_covariance(),
                             description="correlated Gaussian smoothness prior (sbibm)")

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (NUM_PARAMS,)

    def _design(self, like: Tensor) -> Tensor:
        return self.constant("design", design_matrix(), like)

    def spike_probability(self, theta: Tensor) -> Tensor:
        """``sigmoid(X theta)``: ``(N, 10)`` -> ``(N, 100)`` in float64."""
        th = theta.to(torch.float64)
        return torch.sigmoid(matvec(self._design(th), th))

    def summarize(self, spikes: Tensor) -> Tensor:
        """``X^T y``: spike trains ``(*B, 100)`` -> statistics ``(*B, 10)`` in ``self.dtype``."""
        y = spikes.to(torch.float64)
        return matvec(self._design(y).T, y).to(self.dtype)

    def _spikes(self, theta: Tensor, rng: RowRandom) -> Tensor:
        u = rng.uniform((NUM_BINS,), dtype=torch.float64)
        return (u < self.spike_probability(theta)).to(torch.float64)

    def _expected(self, theta: Tensor) -> Tensor:
        return self.summarize(self.spike_probability(theta))

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        return self.summarize(self._spikes(theta, rng))


class BernoulliGLMRaw(BernoulliGLM):
    """Bernoulli GLM observed through its 100 binary bins (exact likelihood)."""

    name = "bernoulli_glm_raw"
    sbibm_observation_key = "observations_raw"

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (NUM_BINS,)

    def _expected(self, theta: Tensor) -> Tensor:
        return self.spike_probability(theta).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        return self._spikes(theta, rng).to(self.dtype)

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        th = theta.to(torch.float64)
        psi = matvec(self._design(th), th)
        y = x.to(torch.float64)
        binary = ((y == 0) | (y == 1)).all(-1)
        ll = (y * logsigmoid(psi) + (1.0 - y) * logsigmoid(-psi)).sum(-1)
        return torch.where(binary, ll, -torch.inf).to(theta.dtype)
