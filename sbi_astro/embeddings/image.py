"""A 2-D residual CNN summary network for images.

Example:
    >>> import torch
    >>> from sbi_astro.embeddings import build_embedding
    >>> net = build_embedding({"kind": "resnet2d", "kwargs": {"in_shape": [32, 32]}})
    >>> net(torch.zeros(5, 32, 32)).shape
    torch.Size([5, 64])

References:
    He, Zhang, Ren & Sun (2016), "Identity mappings in deep residual networks", ECCV
    (pre-activation blocks); Wu & He (2018), "Group normalization", ECCV.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError
from . import register


def _norm(channels: int) -> nn.GroupNorm:
    # GroupNorm, not BatchNorm: the summary of one image must not depend on its batch.
    return nn.GroupNorm(min(8, channels), channels)


class _Block(nn.Module):
    """Pre-activation residual block; ``stride=2`` halves the image and may widen it."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _norm(c_in), nn.GELU(), nn.Conv2d(c_in, c_out, 3, stride, 1),
            _norm(c_out), nn.GELU(), nn.Conv2d(c_out, c_out, 3, 1, 1),
        )
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out
                     else nn.Conv2d(c_in, c_out, 1, stride))

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.body(x)


@register("resnet2d")
class ResNet2dEmbedding(nn.Module):
    """Residual CNN: ``(*B, H, W)`` or ``(*B, C, H, W)`` images -> ``(*B, out_features)``.

    A 3x3 stem, then one stage per entry of ``channels`` (the first at full resolution,
    each later one halving it), ``blocks`` residual blocks per stage, global average and
    max pooling, and a linear head.

    Args:
        in_shape: event shape, ``[H, W]`` or ``[C, H, W]``.
        out_features: size of the summary.
        channels: widths of the stages.
        blocks: residual blocks per stage.
    """

    def __init__(self, in_shape: list[int], out_features: int = 64,
                 channels: list[int] | tuple[int, ...] = (16, 32, 64, 64), blocks: int = 1):
        super().__init__()
        self.in_shape = tuple(int(v) for v in in_shape)
        if len(self.in_shape) not in (2, 3):
            raise ConfigError(f"resnet2d needs in_shape [H, W] or [C, H, W], got {in_shape}")
        if not channels or blocks < 1:
            raise ConfigError("resnet2d needs at least one stage and one block per stage")
        c_in = 1 if len(self.in_shape) == 2 else self.in_shape[0]
        layers: list[nn.Module] = [nn.Conv2d(c_in, channels[0], 3, 1, 1)]
        width = channels[0]
        for i, c in enumerate(channels):
            for b in range(blocks):
                layers.append(_Block(width, c, 2 if (i > 0 and b == 0) else 1))
                width = c
        layers += [_norm(width), nn.GELU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * width, out_features)

    def forward(self, x: Tensor) -> Tensor:
        ev = len(self.in_shape)
        if x.dim() < ev or tuple(x.shape[x.dim() - ev:]) != self.in_shape:
            raise ShapeError(f"resnet2d expects inputs (..., {', '.join(map(str, self.in_shape))})"
                             f", got {tuple(x.shape)}")
        batch = x.shape[: x.dim() - ev]
        flat = x.reshape(math.prod(batch), *((1,) if ev == 2 else ()), *self.in_shape)
        h = self.features(flat)
        pooled = nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)
        peak = nn.functional.adaptive_max_pool2d(h, 1).flatten(1)
        out = self.head(torch.cat([pooled, peak], dim=-1))
        return out.reshape(*batch, -1)

