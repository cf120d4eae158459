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
from .registry import register


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

    A 3x3 stem (stride ``stem_stride``), then one stage per entry of ``channels`` (the
    first at the stem's resolution, each later one halving it), ``blocks`` residual blocks
    per stage, global average and max pooling, and a linear head.

    Global pooling makes the summary blind to where a feature sits in the image.  With
    ``coords=True`` the stem also sees three fixed channels, ``x``, ``y`` and ``r`` (pixel
    offsets from the image centre, in units of half the image side; "CoordConv"), so
    that sizes measured from the centre (e.g. the Einstein radius of a lens centred in
    the cutout) stay available after pooling.

    Args:
        in_shape: event shape, ``[H, W]`` or ``[C, H, W]``.
        out_features: size of the summary.
        channels: widths of the stages.
        blocks: residual blocks per stage.
        stem_stride: stride of the stem convolution: 2 runs every stage at half the
            resolution, about 4x cheaper (for images sampled finer than their features).
        coords: append the ``x, y, r`` coordinate channels to the input.

    References:
        Liu et al. (2018), "An intriguing failing of convolutional neural networks and the
        CoordConv solution", NeurIPS.
    """

    def __init__(self, in_shape: list[int], out_features: int = 64,
                 channels: list[int] | tuple[int, ...] = (16, 32, 64, 64), blocks: int = 1,
                 stem_stride: int = 1, coords: bool = False):
        super().__init__()
        self.in_shape = tuple(int(v) for v in in_shape)
        if len(self.in_shape) not in (2, 3):
            raise ConfigError(f"resnet2d needs in_shape [H, W] or [C, H, W], got {in_shape}")
        if not channels or blocks < 1:
            raise ConfigError("resnet2d needs at least one stage and one block per stage")
        if int(stem_stride) < 1:
            raise ConfigError(f"resnet2d stem_stride must be >= 1, got {stem_stride}")
        c_in = 1 if len(self.in_shape) == 2 else self.in_shape[0]
        self.coords = bool(coords)
        if self.coords:
            h, w = self.in_shape[-2:]
            y = (torch.arange(h, dtype=torch.float32) - (h - 1) / 2) / (h / 2)
            x = (torch.arange(w, dtype=torch.float32) - (w - 1) / 2) / (w / 2)
            yy, xx = torch.meshgrid(y, x, indexing="ij")
            self.register_buffer("grid", torch.stack([xx, yy, torch.hypot(xx, yy)]))
            c_in += 3
        layers: list[nn.Module] = [nn.Conv2d(c_in, channels[0], 3, int(stem_stride), 1)]
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
        if self.coords:
            grid = self.grid.to(flat.dtype).expand(flat.shape[0], -1, -1, -1)
            flat = torch.cat([flat, grid], dim=1)
        h = self.features(flat)
        pooled = nn.functional.adaptive_avg_pool2d(h, 1).flatten(1)
        peak = nn.functional.adaptive_max_pool2d(h, 1).flatten(1)
        out = self.head(torch.cat([pooled, peak], dim=-1))
        return out.reshape(*batch, -1)

