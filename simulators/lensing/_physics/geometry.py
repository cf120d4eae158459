"""Parameter broadcasting and ellipse geometry shared by the lens and light profiles
(conventions in :mod:`simulators.lensing._physics`).

Example:
    >>> import torch
    >>> q, cos, sin = ellipse_angles(torch.tensor(0.2), torch.tensor(0.0))
    >>> round(float(q), 4), float(cos), float(sin)  # q = (1 - 0.2) / (1 + 0.2), phi = 0
    (0.6667, 1.0, 0.0)
    >>> tuple(bcast(torch.ones(5), torch.ones(3, 3)).shape)
    (5, 1, 1)
"""

from __future__ import annotations

import torch
from torch import Tensor

_E_TINY = 1e-24  # |e|^2 below which a profile is treated as exactly round


def bcast(p: Tensor, like: Tensor, event_dims: int = 2) -> Tensor:
    """Reshapes parameters ``(N,)`` to ``(N, 1, ..., 1)`` with ``event_dims`` trailing ones."""
    return p.reshape(*p.shape, *([1] * event_dims)).to(like.dtype)


def shift(x: Tensor, c: Tensor | float) -> Tensor:
    """``x - c``, skipping the (allocating) subtraction of a literal zero."""
    return x if isinstance(c, (int, float)) and c == 0 else x - c


def ellipse_angles(e1: Tensor, e2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Axis ratio and major-axis direction from ``(e1, e2)``.

    Returns ``(q, cos phi, sin phi)``.  At exactly ``e1 = e2 = 0`` the angle is set to 0 with
    finite (zero) gradients instead of the 0/0 of ``atan2``.
    """
    c2 = e1 * e1 + e2 * e2
    small = c2 < _E_TINY
    c = torch.where(small, torch.zeros_like(c2), torch.sqrt(torch.where(small, 1.0, c2)))
    q = (1.0 - c) / (1.0 + c)
    phi = 0.5 * torch.atan2(torch.where(small, torch.zeros_like(e2), e2),
                            torch.where(small, torch.ones_like(e1), e1))
    return q, torch.cos(phi), torch.sin(phi)


def rotate_in(x: Tensor, y: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates in the frame of the major axis (counter-clockwise angle ``phi``)."""
    return cos * x + sin * y, -sin * x + cos * y


def rotate_out(ax: Tensor, ay: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """Vectors from the frame of the major axis back to the image frame."""
    return cos * ax - sin * ay, sin * ax + cos * ay
