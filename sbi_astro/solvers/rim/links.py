"""Link functions: the space a RIM works in, ``z = link(signal)``.

A positive signal (a photon spectrum, a convergence map) is estimated through ``z = log s``
so that every step keeps it positive and the errors are relative; other signals use the
identity.  Maps ``(..., C, H, W)`` may have one link per channel, e.g. ``("identity", "log")``
for a source's surface brightness and a lens's convergence estimated together.

Example:
    >>> import torch
    >>> s = torch.tensor([1e-6, 1.0, 3.0])
    >>> bool(torch.allclose(to_signal("log", to_link("log", s)), s))
    True
    >>> maps = torch.tensor([[[-1.0]], [[1.0]]])  # (C=2, 1, 1): a source and a convergence
    >>> to_link(("identity", "log"), maps).flatten().tolist()
    [-1.0, 0.0]
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError, OutOfSupportError, ShapeError

Link = str | tuple[str, ...]


def _per_channel(link: tuple[str, ...], x: Tensor, fn) -> Tensor:  # noqa: ANN001
    """``fn(link[c], x[..., c, :, :])`` for every channel ``c`` of maps ``(..., C, H, W)``."""
    if x.dim() < 3 or x.shape[-3] != len(link):
        raise ShapeError(f"{len(link)} per-channel links {link} need maps (..., {len(link)}, "
                         f"H, W), got shape {tuple(x.shape)}")
    return torch.stack([fn(name, x[..., c, :, :]) for c, name in enumerate(link)], dim=-3)


def to_link(link: Link, signal: Tensor) -> Tensor:
    """``z = link(signal)``, same shape; ``link`` a name or one name per map channel.

    Raises:
        OutOfSupportError: ``link == "log"`` and a value is not positive.
    """
    if isinstance(link, tuple):
        return _per_channel(link, signal, to_link)
    if link == "identity":
        return signal
    if link == "log":
        if not bool((signal > 0).all()):
            raise OutOfSupportError("the log link needs a positive signal, but some values are "
                                    "<= 0; clamp them (e.g. signal.clamp_min(1e-30)) or use "
                                    "link='identity'")
        return torch.log(signal)
    raise ConfigError(f"unknown link {link!r}; use 'identity' or 'log'")


def to_signal(link: Link, z: Tensor) -> Tensor:
    """The signal of a link-space value ``z`` (the inverse of :func:`to_link`)."""
    if isinstance(link, tuple):
        return _per_channel(link, z, to_signal)
    if link == "identity":
        return z
    if link == "log":
        return torch.exp(z)
    raise ConfigError(f"unknown link {link!r}; use 'identity' or 'log'")
