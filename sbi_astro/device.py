"""Device selection: CUDA when available, else CPU."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Returns the torch device to compute on.

    Args:
        device: ``None`` or ``"auto"`` picks CUDA if available, else CPU; any other value
            is passed to :class:`torch.device`.

    Raises:
        ConfigError: the device string is invalid, or CUDA is asked for but unavailable.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(
            f"invalid device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'"
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} was requested but CUDA is not available on this machine; "
            "use device='cpu' (or 'auto')"
        )
    return dev
