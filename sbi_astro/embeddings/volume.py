"""A 3-D convolutional summary network for boxes and lightcones (21cmPIE-Net style).

The first layer is strided along the line of sight (the last axis), compressing the long
redshift axis of a lightcone before the isotropic convolution blocks, as in 21cmPIE-Net
(Neutsch et al. 2022, arXiv:2201.07587); the rest is ``conv -> GELU -> max-pool`` blocks,
global average pooling and a small fully connected head.

``augment=True`` makes the network see, at each training step, every box in a random one of
its transverse symmetries: a periodic shift along each transverse axis and one of the eight
rotations / reflections of the transverse plane (the line of sight is left alone).  For
periodic, statistically homogeneous and isotropic boxes (coeval boxes, and lightcones cut
from them, as ``cm21`` makes) these are exact symmetries of ``p(x | theta)``: the training
target is unchanged while the network can no longer memorise where structures sit, which is
what makes a CNN trained on a few thousand boxes overconfident.  Evaluation (``eval()``
mode: validation, sampling, ``log_prob``) sees the box as it is.

Example:
    >>> import torch
    >>> from sbi_astro.embeddings import build_embedding
    >>> from sbi_astro.simulator import EmbeddingSpec
    >>> net = build_embedding(EmbeddingSpec("conv3d", {"in_shape": [16, 16, 64],
    ...                                                "out_features": 8, "los_stride": 4}))
    >>> net(torch.zeros(2, 3, 16, 16, 64)).shape
    torch.Size([2, 3, 8])
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError
from .registry import register


@register("conv3d")
class Conv3dEmbedding(nn.Module):
    """Maps ``x (*B, *in_shape)`` to ``(*B, out_features)``.

    Args:
        in_shape: ``[X, Y, L]`` (one channel, line of sight last) or ``[C, X, Y, L]``
            (e.g. ``C`` coeval boxes stacked as channels).
        out_features: size of the summary.
        channels: output channels of the first (strided) layer and of each later block.
        los_stride: stride (and kernel length) of the first layer along the last axis.
        hidden: width of the hidden layer of the head.
        augment: in training mode, apply a random transverse symmetry to each box (module
            docstring); needs periodic transverse axes.  Draws from torch's global
            generator, which :func:`sbi_astro.inference.train` seeds inside ``fork_rng``.
    """

    def __init__(self, in_shape: list[int], out_features: int = 16,
                 channels: list[int] | tuple[int, ...] = (16, 32, 64), los_stride: int = 1,
                 hidden: int = 64, augment: bool = False):
        super().__init__()
        self.augment = bool(augment)
        self.in_shape = tuple(int(s) for s in in_shape)
        if len(self.in_shape) not in (3, 4):
            raise ConfigError(f"conv3d embedding needs in_shape [X, Y, L] or [C, X, Y, L], "
                              f"got {list(in_shape)}")
        if not channels or los_stride < 1:
            raise ConfigError("conv3d embedding needs at least one channel count and "
                              "los_stride >= 1")
        c_in = 1 if len(self.in_shape) == 3 else self.in_shape[0]
        spatial = list(self.in_shape[-3:])
        if spatial[-1] < los_stride:
            raise ConfigError(f"los_stride={los_stride} exceeds the line-of-sight length "
                              f"{spatial[-1]}")
        layers: list[nn.Module] = [
            nn.Conv3d(c_in, channels[0], kernel_size=(3, 3, los_stride),
                      stride=(1, 1, los_stride), padding=(1, 1, 0)),
            nn.GELU(),
        ]
        spatial[-1] //= los_stride
        width = channels[0]
        for ch in channels[1:]:
            layers += [nn.Conv3d(width, ch, kernel_size=3, padding=1), nn.GELU()]
            pool = tuple(2 if s >= 2 else 1 for s in spatial)
            layers.append(nn.MaxPool3d(pool))
            spatial = [s // p for s, p in zip(spatial, pool, strict=True)]
            width = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.GELU(),
                                  nn.Linear(hidden, out_features))

    def forward(self, x: Tensor) -> Tensor:
        ev = len(self.in_shape)
        if tuple(x.shape[x.dim() - ev:]) != self.in_shape:
            raise ShapeError(f"conv3d embedding expects (..., {', '.join(map(str, self.in_shape))})"
                             f", got {tuple(x.shape)}")
        batch = x.shape[: x.dim() - ev]
        flat = x.reshape(math.prod(batch), *self.in_shape)
        if ev == 3:
            flat = flat[:, None]
        if self.augment and self.training:
            flat = random_transverse_symmetry(flat)
        h = self.features(flat)
        h = torch.flatten(nn.functional.adaptive_avg_pool3d(h, 1), 1)
        out = self.head(h)
        return out.reshape(*batch, -1)


def random_transverse_symmetry(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each box of ``x (N, C, X, Y, L)`` shifted periodically by a random number of cells
    along ``X`` and ``Y``, reflected along each with probability 1/2 and, if ``X == Y``,
    transposed in ``(X, Y)`` with probability 1/2: a uniform draw from the transverse
    symmetries of a periodic box (one gather, no copy per box).

    Example:
        >>> x = torch.arange(2 * 4 * 4 * 3.0).reshape(2, 1, 4, 4, 3)
        >>> y = random_transverse_symmetry(x, torch.Generator().manual_seed(0))
        >>> bool(torch.equal(y.sum((2, 3)), x.sum((2, 3))))   # each LOS slice keeps its cells
        True
    """
    n, _, nx, ny, _ = x.shape
    dev = x.device
    shift = torch.randint(0, max(nx, ny), (n, 2), generator=generator, device=dev)
    sign = 1 - 2 * torch.randint(0, 2, (n, 2), generator=generator, device=dev)
    i = (sign[:, :1] * torch.arange(nx, device=dev) + shift[:, :1]) % nx  # (N, X)
    j = (sign[:, 1:] * torch.arange(ny, device=dev) + shift[:, 1:]) % ny  # (N, Y)
    rows = torch.arange(n, device=dev)[:, None, None]
    out = x.permute(0, 2, 3, 1, 4)[rows, i[:, :, None], j[:, None, :]]  # (N, X, Y, C, L)
    if nx == ny:
        swap = torch.randint(0, 2, (n,), generator=generator, device=dev).bool()
        out = torch.where(swap[:, None, None, None, None], out.transpose(1, 2), out)
    return out.permute(0, 3, 1, 2, 4)
