"""Summary (embedding) networks, looked up by name from an :class:`EmbeddingSpec`.

Each module defines one family and registers it with :func:`register` (:mod:`.registry`); a trained run stores
the spec (name + JSON kwargs) so that the network is rebuilt exactly when loading.

Example:
    >>> import torch
    >>> from sbi_astro.simulator import EmbeddingSpec
    >>> net = build_embedding(EmbeddingSpec("mlp", {"in_shape": [10], "out_features": 4}))
    >>> net(torch.zeros(3, 10)).shape
    torch.Size([3, 4])
"""

from __future__ import annotations

# Families register themselves on import.
from . import image, mlp, spectrum, timeseries, volume  # noqa: F401
from .registry import available_embeddings, build_embedding, register

__all__ = ["available_embeddings", "build_embedding", "register"]
