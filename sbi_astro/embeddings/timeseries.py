"""A 1-D convolutional summary network for multichannel time series.

The input ``(*B, C, T)`` (``C`` channels, e.g. log central density, dispersion and core
radius; ``T`` uniformly spaced times) goes through strided 1-D convolutions (a learned,
translation-equivariant filter bank: oscillation shapes and periods are local patterns),
global average and max pooling over time (so that the summary does not depend on the
phase of an oscillation), and a small MLP head.

Example:
    >>> import torch
    >>> net = TimeSeriesEmbedding(in_channels=3, length=64, out_features=8)
    >>> net(torch.zeros(5, 3, 64)).shape
    torch.Size([5, 8])
    >>> net(torch.zeros(2, 4, 3, 64)).shape
    torch.Size([2, 4, 8])
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ShapeError
from .registry import register


@register("timeseries")
class TimeSeriesEmbedding(nn.Module):
    """1-D CNN over time with global pooling: ``(*B, C, T) -> (*B, out_features)``.

    Args:
        in_channels: number of channels ``C``.
        length: number of time samples ``T``.
        out_features: size of the summary.
        channels: widths of the convolution blocks (each halves the time resolution).
        kernel_size: odd convolution kernel size.
        standardize: subtract each channel's time mean and divide by its standard deviation
            (computed per series) and append both as features; helps when levels and
            fluctuations carry separate information.
    """

    def __init__(self, in_channels: int, length: int, out_features: int = 16,
                 channels: list[int] | tuple[int, ...] = (32, 64, 64), kernel_size: int = 5,
                 standardize: bool = True):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels, self.length, self.standardize = in_channels, length, standardize
        layers: list[nn.Module] = []
        width = in_channels
        for c in channels:
            layers += [nn.Conv1d(width, c, kernel_size, stride=2, padding=kernel_size // 2),
                       nn.GELU()]
            width = c
        self.conv = nn.Sequential(*layers)
        extra = 2 * in_channels if standardize else 0
        self.head = nn.Sequential(nn.Linear(2 * width + extra, 64), nn.GELU(),
                                  nn.Linear(64, out_features))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or tuple(x.shape[-2:]) != (self.in_channels, self.length):
            raise ShapeError(f"timeseries embedding expects (..., {self.in_channels}, "
                             f"{self.length}), got {tuple(x.shape)}")
        batch = x.shape[:-2]
        h = x.reshape(-1, self.in_channels, self.length)
        feats = []
        if self.standardize:
            mean = h.mean(-1, keepdim=True)
            std = h.std(-1, keepdim=True) + 1e-6
            h = (h - mean) / std
            feats += [mean[..., 0], torch.log(std[..., 0])]
        h = self.conv(h)
        feats += [h.mean(-1), h.amax(-1)]
        out = self.head(torch.cat(feats, -1))
        return out.reshape(*batch, -1)
