"""Summary (embedding) networks, looked up by name from an :class:`EmbeddingSpec`.

Each module defines one family and registers it with :func:`register`; a trained run stores
the spec (name + JSON kwargs) so that the network is rebuilt exactly when loading.

Example:
    >>> import torch
    >>> from sbi_astro.simulator import EmbeddingSpec
    >>> net = build_embedding(EmbeddingSpec("mlp", {"in_shape": [10], "out_features": 4}))
    >>> net(torch.zeros(3, 10)).shape
    torch.Size([3, 4])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..errors import ConfigError
from ..simulator import EmbeddingSpec

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering an embedding family under ``name``."""

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        _REGISTRY[name] = cls
        return cls

    return deco


def available_embeddings() -> list[str]:
    return sorted(_REGISTRY)


def build_embedding(spec: EmbeddingSpec | dict[str, Any] | None) -> nn.Module:
    """Instantiates the network described by ``spec`` (``None``: identity)."""
    if spec is None:
        return nn.Identity()
    if isinstance(spec, dict):
        spec = EmbeddingSpec(spec["kind"], spec.get("kwargs", {}))
    if spec.kind not in _REGISTRY:
        raise ConfigError(f"unknown embedding {spec.kind!r}; available: {available_embeddings()}")
    try:
        return _REGISTRY[spec.kind](**dict(spec.kwargs))
    except TypeError as err:
        raise ConfigError(f"invalid arguments for embedding {spec.kind!r}: {err}") from err


# Families register themselves on import.
from . import mlp  # noqa: E402,F401
from . import spectrum  # noqa: E402,F401
from . import volume  # noqa: E402,F401
from . import timeseries  # noqa: E402,F401
from . import image  # noqa: E402,F401
