"""Link functions: the space a RIM works in, ``z = link(signal)``.

A positive signal (a photon spectrum, a convergence map) is estimated through ``z = log s``
so that every step keeps it positive and the errors are relative; other signals use the
identity.

Example:
    >>> import torch
    >>> s = torch.tensor([1e-6, 1.0, 3.0])
    >>> bool(torch.allclose(to_signal("log", to_link("log", s)), s))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError, OutOfSupportError


def to_link(link: str, signal: Tensor) -> Tensor:
    """``z = link(signal)``, same shape.

    Raises:
        OutOfSupportError: ``link == "log"`` and a value is not positive.
    """
    if link == "identity":
        return signal
    if link == "log":
        if not bool((signal > 0).all()):
            raise OutOfSupportError("the log link needs a positive signal, but some values are "
                                    "<= 0; clamp them (e.g. signal.clamp_min(1e-30)) or use "
                                    "link='identity'")
        return torch.log(signal)
    raise ConfigError(f"unknown link {link!r}; use 'identity' or 'log'")


def to_signal(link: str, z: Tensor) -> Tensor:
    """The signal of a link-space value ``z`` (the inverse of :func:`to_link`)."""
    if link == "identity":
        return z
    if link == "log":
        return torch.exp(z)
    raise ConfigError(f"unknown link {link!r}; use 'identity' or 'log'")
