"""sbi's own estimators, run with sbi's defaults as the peers of our benchmarks.

Example:
    >>> callable(sbi_default_npe) and callable(direct_posterior)
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .sbi_adapter import NullTracker, _quiet, trainer


def direct_posterior(net: nn.Module, prior: Any, device: torch.device):
    """sbi's own ``DirectPosterior`` around a trained NPE network (for comparisons)."""
    inference = trainer("npe", prior, "maf", device)
    with _quiet():
        return inference.build_posterior(net, prior=prior)


def sbi_default_npe(prior: Any, theta: Tensor, x: Tensor, device: torch.device,
                    max_epochs: int = 2**31 - 1) -> tuple[Any, float]:
    """sbi's NPE with all its defaults (MAF); returns its DirectPosterior and seconds."""
    import time

    from sbi.inference import NPE

    with _quiet(stdout=True):
        inference = NPE(prior=prior, device=str(device), tracker=NullTracker(),
                        show_progress_bars=False)
        t0 = time.perf_counter()
        inference.append_simulations(theta, x).train(max_num_epochs=max_epochs)
        seconds = time.perf_counter() - t0
        return inference.build_posterior(), seconds
