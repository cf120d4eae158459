"""Ensembles of NPE flows: the equal-weight mixture of ``K`` independently trained posteriors.

``TrainingConfig(ensemble=K)`` trains ``K`` NPE flows on the same simulations, member ``k``
with seed ``seed + k`` (its own initialisation, batch order and validation split), and
combines them as the mixture ``q(theta | x) = (1/K) sum_k q_k(theta | x)``.  A mixture is
at least as wide as its members where they disagree, so ensembles counter the typical
overconfidence of a single NPE trained on a limited budget (Hermans et al. 2022); training
costs ``K`` times one member.

A run directory of an ensemble is an ordinary one: its weights file is the state dict of the
members as an ``nn.ModuleList`` (keys ``"0.*"``, ``"1.*"``, ...), ``run.json`` records
``ensemble: K`` in the training config.

References:
    Lakshminarayanan, Pritzel & Blundell (2017), NeurIPS (deep ensembles).
    Hermans, Delaunoy, Rozet, Wehenkel, Begy & Louppe (2022), TMLR, "A trust crisis in
    simulation-based inference? Your posterior approximations can be unfaithful".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor, nn

from ..simulator import Simulator
from .config import TrainingConfig
from .estimator import TrainedEstimator
from .npe import NPEEstimator


class NPEEnsemble(TrainedEstimator):
    """Equal-weight mixture of ``K`` trained NPE flows (``self.net`` is their ModuleList).

    Example:
        >>> import torch
        >>> from sbi_astro import load_simulator
        >>> from sbi_astro.inference import TrainingConfig, train
        >>> sim = load_simulator("two_moons", device="cpu")
        >>> theta, x = sim.sample_joint(400, generator=torch.Generator().manual_seed(1))
        >>> est = train(theta, x, sim, TrainingConfig(max_epochs=2, ensemble=2, device="cpu"))
        >>> len(est.members), est.sample(50, x[:3]).shape, est.log_prob(theta[None, :3], x[:3]).shape
        (2, torch.Size([50, 3, 2]), torch.Size([1, 3]))
    """

    method = "npe"

    def __init__(self, net: nn.ModuleList, simulator: Simulator, config: TrainingConfig,
                 embedding_spec: dict | None, metadata: dict[str, Any]):
        super().__init__(net, simulator, config, embedding_spec, metadata)
        self.members = [
            NPEEstimator(m, simulator, member_config(config, k), embedding_spec, metadata)
            for k, m in enumerate(net)]

    @torch.no_grad()
    def sample(self, num_samples: int, x: Tensor, *, generator: torch.Generator | None = None
               ) -> Tensor:
        """Posterior samples ``(S, *B, D)``: each sample's member is drawn uniformly (with
        ``generator``), then the sample from that member's flow (inside the prior)."""
        draws = torch.stack([m.sample(num_samples, x, generator=generator)
                             for m in self.members])  # (K, S, *B, D)
        k = len(self.members)
        pick = torch.randint(0, k, draws.shape[1:-1], generator=generator)
        pick = pick.to(draws.device)[None, ..., None].expand(1, *draws.shape[1:])
        return torch.gather(draws, 0, pick)[0]

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """``log (1/K) sum_k q_k(theta | x)``, ``(S, *B)``; ``-inf`` outside the prior."""
        lp = torch.stack([m.log_prob(theta, x) for m in self.members])
        return torch.logsumexp(lp, 0) - math.log(len(self.members))


def mixture(estimators: list[TrainedEstimator], config: TrainingConfig,
            **metadata: Any) -> NPEEnsemble:
    """The equal-weight mixture of trained NPE estimators (an :class:`NPEEnsemble` among them
    contributes each of its members), with ``config.ensemble`` set to the number of flows.

    ``run.json`` gets the last estimator's metadata, ``metadata``, and a ``training`` entry
    with every estimator's summary and their totals (so that a mixture reads like one run).
    """
    flows = [f for e in estimators
             for f in (e.net if isinstance(e, NPEEnsemble) else [e.net])]
    training = [e.metadata["training"] for e in estimators]
    last = estimators[-1]
    meta = {**last.metadata, **metadata, "training": {
        "members": training, "epochs": sum(t["epochs"] for t in training),
        "seconds": sum(t["seconds"] for t in training)}}
    return NPEEnsemble(nn.ModuleList(flows), last.simulator,
                       dataclasses.replace(config, ensemble=len(flows)), last.embedding_spec, meta)


def member_config(config: TrainingConfig, k: int) -> TrainingConfig:
    """The training config of member ``k`` of an ensemble: seed ``seed + k``, no ensemble."""
    return dataclasses.replace(config, seed=config.seed + k, ensemble=1)
