"""The registry of embedding families: :func:`register` a class under a name, and
:func:`build_embedding` from a spec (name + JSON kwargs).

Example:
    >>> from torch import nn
    >>> @register("identity_for_docs")
    ... class Id(nn.Identity):
    ...     pass
    >>> type(build_embedding({"kind": "identity_for_docs"})).__name__
    'Id'
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
    """Names of the registered embedding families."""
    return sorted(_REGISTRY)


def build_embedding(spec: EmbeddingSpec | dict[str, Any] | None) -> nn.Module:
    """Instantiates the network described by ``spec`` (``None``: identity)."""
    if spec is None:
        return nn.Identity()
    if isinstance(spec, dict):
        if not isinstance(spec.get("kind"), str) or not isinstance(spec.get("kwargs", {}), dict):
            raise ConfigError(f"an embedding spec is {{kind: name, kwargs: {{...}}}}, got {spec!r}")
        spec = EmbeddingSpec(spec["kind"], spec.get("kwargs", {}))
    if spec.kind not in _REGISTRY:
        raise ConfigError(f"unknown embedding {spec.kind!r}; available: {available_embeddings()}")
    try:
        return _REGISTRY[spec.kind](**dict(spec.kwargs))
    except TypeError as err:
        raise ConfigError(f"invalid arguments for embedding {spec.kind!r}: {err}") from err
