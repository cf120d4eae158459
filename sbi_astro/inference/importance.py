"""Importance-sampled NPE: an NPE posterior corrected by the simulator's exact likelihood.

Where a simulator has a tractable likelihood (``simulator.has_likelihood``), a trained NPE
posterior ``q(theta | x)`` is a proposal for the exact posterior
``p(theta | x) ∝ p(x | theta) pi(theta)``.  :func:`importance_sample` draws ``M`` proposals
from ``q`` for each observation, weighs each by ``w = p(x | theta) pi(theta) / q(theta | x)``
(self-normalised) and resamples ``S`` of them in proportion to ``w`` (Dax et al. 2023, the
"DINGO-IS" of gravitational-wave inference).  As ``M`` grows the resampled draws follow the
exact posterior whatever the flow's error, as long as ``q`` covers it; the flow's error
shows up as a low **effective sample size** ``ESS = 1 / sum w^2`` (of ``M``), which is
returned with the samples so that a poor proposal is seen, not hidden.

Conventions:
    * ``q`` is the NPE's density restricted to the prior's support (its draws are); its
      normalisation there does not matter (the weights are self-normalised).
    * Resampling is with replacement: when ``ESS`` is below ``S`` the samples repeat some
      proposals (fewer distinct values); ask for more proposals (``proposals=``) then.
    * Seeded: the proposals come from ``generator`` first, then the resampling; the weights
      are computed ``chunk_size`` (proposal, observation) pairs at a time, which changes
      nothing but memory.

Example (a flow barely trained: the weights correct it, its ESS tells how far off it is):
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> from sbi_astro.campaign import simulate_rows
    >>> from sbi_astro.inference import TrainingConfig, train
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> est = train(*simulate_rows(sim, 0, 0, 600), sim, TrainingConfig(max_epochs=3, device="cpu"))
    >>> _, x_o = simulate_rows(sim, 1, 0, 3)
    >>> res = importance_sample(est, x_o, 200, generator=torch.Generator().manual_seed(1))
    >>> res.samples.shape, res.ess.shape, res.num_proposals
    (torch.Size([200, 3, 2]), torch.Size([3]), 2000)

Reference:
    Dax, Green, Gair, Pürrer, Wildberger, Macke, Buonanno & Schölkopf (2023), PRL 130,
    171403, "Neural importance sampling for rapid and reliable gravitational-wave
    inference".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, NonFiniteError
from .estimator import TrainedEstimator
from .mcmc import kish_ess


@dataclasses.dataclass(frozen=True)
class ImportanceSamples:
    """Resampled draws ``samples (S, *B, D)``, the effective sample size ``ess (*B,)`` of
    the ``num_proposals`` weighted proposals per observation, and ``distinct (*B,)``, how
    many different proposals the ``S`` draws hold."""

    samples: Tensor
    ess: Tensor
    distinct: Tensor
    num_proposals: int

    @property
    def efficiency(self) -> Tensor:
        """``ess / num_proposals`` per observation: 1 for a perfect proposal."""
        return self.ess / self.num_proposals


def _check(estimator: TrainedEstimator, num_samples: Any, proposals: Any, chunk_size: Any
           ) -> None:
    if estimator.method != "npe":
        raise ConfigError(f"importance sampling needs an NPE posterior as its proposal, got a "
                          f"{estimator.method.upper()} estimator; train with method: npe")
    sim = estimator.simulator
    if not sim.has_likelihood:
        raise ConfigError(f"simulator {sim.name!r} has no tractable likelihood, so its NPE "
                          "cannot be importance-sampled; use the NPE's own samples")
    for name, value in (("num_samples", num_samples), ("proposals", proposals),
                        ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


@torch.no_grad()
def importance_sample(estimator: TrainedEstimator, x: Tensor, num_samples: int, *,
                      proposals: int | None = None, generator: torch.Generator | None = None,
                      chunk_size: int = 65_536) -> ImportanceSamples:
    """Samples the exact posterior of ``x (*B, *event_shape)`` by importance-resampling
    ``proposals`` draws (default ``10 * num_samples``) of the NPE ``estimator``, weighed by
    the simulator's likelihood and prior; ``chunk_size`` (proposal, observation) pairs are
    weighed at a time (memory only).

    Raises:
        ConfigError: not an NPE, a simulator without likelihood, or a count that is not a
            positive integer.
        NonFiniteError: an observation that no proposal explains (every weight zero): the
            NPE's posterior misses where the likelihood is.
    """
    proposals = 10 * num_samples if proposals is None and isinstance(num_samples, int) \
        else proposals
    _check(estimator, num_samples, proposals, chunk_size)
    sim, prior = estimator.simulator, estimator.prior
    xb, batch = estimator._flatten_x(x, num_samples)  # (N, *E), B
    theta = estimator.sample(proposals, xb, generator=generator)  # (M, N, D)
    log_w = torch.empty(theta.shape[:2], dtype=torch.float64, device=theta.device)
    step = max(1, chunk_size // xb.shape[0])
    for start in range(0, proposals, step):
        th = theta[start:start + step]
        lq = estimator.log_prob(th, xb).double()
        ll = sim.log_likelihood(th, xb).double()
        lp = prior.log_prob(th).double()
        log_w[start:start + step] = ll + lp - lq
    log_w = torch.nan_to_num(log_w, nan=-torch.inf, posinf=-torch.inf)
    lost = torch.isneginf(log_w).all(0)
    if lost.any():
        raise NonFiniteError(
            f"no proposal explains observation(s) {lost.nonzero().flatten().tolist()} (every "
            "likelihood weight is zero): the NPE's posterior misses the data there; check the "
            "observation, or train on simulations that cover it")
    w = torch.softmax(log_w, dim=0)  # (M, N), each column sums to 1
    ess = kish_ess(log_w, dim=0)
    # on the CPU, as the generator: the same draws on every device
    idx = torch.multinomial(w.T.float().cpu(), num_samples, replacement=True,
                            generator=generator)  # (N, S)
    distinct = torch.tensor([row.unique().numel() for row in idx])
    idx = idx.to(theta.device)
    samples = theta.gather(0, idx.T[..., None].expand(-1, -1, theta.shape[-1]))  # (S, N, D)
    return ImportanceSamples(samples=samples.reshape(num_samples, *batch, theta.shape[-1]),
                             ess=ess.float().reshape(batch), distinct=distinct.reshape(batch),
                             num_proposals=proposals)


class ImportanceSampledNPE:
    """An NPE posterior that samples through :func:`importance_sample` (``proposal_factor``
    proposals per sample); ``last`` holds the latest call's :class:`ImportanceSamples`
    (its ESS).  Used by the benchmark's ``npe-is`` rows; anything that calls
    ``sample(num_samples, x, generator=...)`` can take it."""

    method = "npe-is"

    def __init__(self, estimator: TrainedEstimator, proposal_factor: int = 10):
        _check(estimator, 1, proposal_factor, 1)
        self.estimator = estimator
        self.proposal_factor = proposal_factor
        self.last: ImportanceSamples | None = None

    @property
    def device(self) -> torch.device:
        return self.estimator.device

    def sample(self, num_samples: int, x: Tensor, *, generator: torch.Generator | None = None
               ) -> Tensor:
        self.last = importance_sample(self.estimator, x, num_samples,
                                      proposals=self.proposal_factor * num_samples,
                                      generator=generator)
        return self.last.samples
