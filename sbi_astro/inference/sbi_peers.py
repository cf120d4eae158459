"""sbi's own estimators, run with sbi's defaults as the peers of our benchmarks.

Example:
    >>> callable(sbi_peer) and callable(direct_posterior)
    True
    >>> VECTOR_FIELD_METHODS, PEER_METHODS
    (('fmpe', 'npse'), ('sbi-npe', 'fmpe', 'npse'))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .sbi_adapter import NullTracker, _quiet, trainer

#: sbi 0.27's vector-field posteriors: flow matching (FMPE) and score estimation (NPSE)
VECTOR_FIELD_METHODS = ("fmpe", "npse")
#: sbi 0.27's estimators as benchmark rows: its NPE (MAF, its default), FMPE and NPSE
PEER_METHODS = ("sbi-npe", *VECTOR_FIELD_METHODS)


def direct_posterior(net: nn.Module, prior: Any, device: torch.device):
    """sbi's own ``DirectPosterior`` around a trained NPE network (for comparisons)."""
    inference = trainer("npe", prior, "maf", device)
    with _quiet():
        return inference.build_posterior(net, prior=prior)


def _train_with_defaults(cls: Any, prior: Any, theta: Tensor, x: Tensor, device: torch.device,
                         max_epochs: int) -> tuple[Any, float]:
    """An sbi trainer ``cls`` with its defaults, quiet: its posterior and training seconds."""
    import time

    with _quiet(stdout=True):
        inference = cls(prior=prior, device=str(device), tracker=NullTracker(),
                        show_progress_bars=False)
        t0 = time.perf_counter()
        inference.append_simulations(theta, x).train(max_num_epochs=max_epochs)
        seconds = time.perf_counter() - t0
        return inference.build_posterior(), seconds


class PeerPosterior:
    """An sbi posterior behind the project's ``sample(num_samples, x, generator)``: sbi
    draws from torch's global generator, which is seeded here from ``generator``."""

    def __init__(self, posterior: Any):
        self.posterior = posterior

    def sample(self, num_samples: int, x: Tensor, generator: torch.Generator | None = None
               ) -> Tensor:
        if generator is not None:
            torch.manual_seed(int(torch.randint(2**31 - 1, (), generator=generator)))
        with _quiet():
            return self.posterior.sample_batched((num_samples,), x=x,
                                                 show_progress_bars=False)


def sbi_peer(method: str, prior: Any, theta: Tensor, x: Tensor, device: torch.device,
             max_epochs: int = 2**31 - 1, seed: int = 0) -> tuple[PeerPosterior, float]:
    """One of sbi 0.27's estimators (``PEER_METHODS``: NPE, FMPE or NPSE) with all its
    defaults; returns the posterior and the training seconds."""
    from sbi.inference import FMPE, NPE, NPSE

    classes = {"sbi-npe": NPE, "fmpe": FMPE, "npse": NPSE}
    if method not in classes:
        raise ValueError(f"method must be one of {PEER_METHODS}, got {method!r}")
    torch.manual_seed(seed)  # sbi initialises and shuffles from the global generator
    posterior, seconds = _train_with_defaults(classes[method], prior, theta, x, device,
                                              max_epochs)
    return PeerPosterior(posterior), seconds
