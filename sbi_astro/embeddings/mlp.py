"""A fully connected summary network for small vector observations."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .registry import register


@register("mlp")
class MLPEmbedding(nn.Module):
    """Flattens ``x (*B, *in_shape)`` and maps it to ``(*B, out_features)``.

    Args:
        in_shape: event shape of one observation.
        out_features: size of the summary.
        hidden: widths of the hidden layers.
    """

    def __init__(self, in_shape: list[int], out_features: int = 32,
                 hidden: list[int] | tuple[int, ...] = (128, 128)):
        super().__init__()
        self.in_shape = tuple(in_shape)
        layers: list[nn.Module] = []
        width = math.prod(self.in_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.GELU()]
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[: x.dim() - len(self.in_shape)]
        out = self.net(x.reshape(-1, math.prod(self.in_shape)))
        return out.reshape(*batch, -1) if batch else out.reshape(-1)

