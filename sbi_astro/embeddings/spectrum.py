"""A 1-D convolutional summary network for binned spectra (counts per channel)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .registry import register


@register("conv1d")
class Conv1dEmbedding(nn.Module):
    """Convolutions over channels, then a small MLP: ``(*B, C)`` -> ``(*B, out_features)``.

    Each block is ``Conv1d(kernel_size, padding='same') -> GELU -> MaxPool1d(2)`` (the pool
    is skipped once fewer than 2 channels remain), so the receptive field grows while the
    length halves; the result is flattened into an MLP.  Counts spectra span orders of
    magnitude, so ``asinh=True`` feeds ``asinh(x)`` to the network (logarithmic for large
    values, linear near 0, defined for the negative values of a standardised input).

    Args:
        in_shape: ``[C]`` (channels) or ``[K, C]`` (K spectra of C channels each, e.g.
            source and background, as input planes).
        out_features: size of the summary.
        channels: output planes of the convolution blocks.
        kernel_size: odd kernel width.
        hidden: width of the final hidden layer.
        asinh: apply ``asinh`` first.

    Example:
        >>> net = Conv1dEmbedding([100], out_features=8)
        >>> net(torch.zeros(2, 3, 100)).shape
        torch.Size([2, 3, 8])
    """

    def __init__(self, in_shape: list[int], out_features: int = 32,
                 channels: list[int] | tuple[int, ...] = (16, 32, 32), kernel_size: int = 5,
                 hidden: int = 128, asinh: bool = True):
        super().__init__()
        self.in_shape = tuple(in_shape)
        if len(self.in_shape) not in (1, 2) or kernel_size % 2 == 0:
            raise ConfigError("conv1d embedding needs in_shape [C] or [K, C] and an odd "
                             f"kernel_size; got {in_shape}, {kernel_size}")
        planes = 1 if len(self.in_shape) == 1 else self.in_shape[0]
        length = self.in_shape[-1]
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv1d(planes, ch, kernel_size, padding=kernel_size // 2), nn.GELU()]
            if length >= 2:
                layers.append(nn.MaxPool1d(2))
                length //= 2
            planes = ch
        self.conv = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(planes * length, hidden), nn.GELU(),
                                  nn.Linear(hidden, out_features))
        self.asinh = asinh

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[: x.dim() - len(self.in_shape)]
        flat = x.reshape(-1, *self.in_shape)
        if len(self.in_shape) == 1:
            flat = flat[:, None, :]
        if self.asinh:
            flat = torch.asinh(flat)
        out = self.head(self.conv(flat))
        return out.reshape(*batch, -1) if batch else out.reshape(-1)

