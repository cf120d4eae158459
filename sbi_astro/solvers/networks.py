"""Time-conditioned networks for score models: an MLP for vectors, a small U-Net for maps.

Both take ``(t, x)`` with ``t`` of shape ``(N,)`` in ``[0, 1]`` and ``x`` of shape
``(N, D)`` (MLP) or ``(N, C, H, W)`` (U-Net) and return a tensor of the shape of ``x``.
:class:`~sbi_astro.solvers.score_model.ScoreModel` divides that output by the marginal
standard deviation ``std(t)`` (the output is the negative noise estimate, as in NCSN++), so
the network's output stays of order one at every noise level.

The time enters through random Fourier features of ``t`` (:class:`FourierTime`), added to
every block (a bias per channel).  The U-Net follows the
layout of DDPM / NCSN++ (residual blocks with group normalisation and SiLU, two
resolutions below the input, skip connections), small enough to train on two CPU cores at
32 x 32 and 64 x 64; ``H`` and ``W`` must be divisible by ``2 ** (len(channels) - 1)``.

Networks are built from a JSON spec by :func:`build_network` so that saved models rebuild.

Example:
    >>> import torch
    >>> net = build_network({"kind": "unet", "in_channels": 1, "channels": [8, 16]})
    >>> net(torch.rand(2), torch.randn(2, 1, 16, 16)).shape
    torch.Size([2, 1, 16, 16])

References:
    Ho, Jain & Abbeel (2020), DDPM, arXiv:2006.11239; Song et al. (2021), NCSN++,
    arXiv:2011.13456; Tancik et al. (2020), Fourier features, arXiv:2006.10739.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError


class FourierTime(nn.Module):
    """Random Fourier features of a scalar per row: ``(N,)`` -> ``(N, dim)``.

    The frequencies are a fixed buffer (drawn from a seeded generator), so that a saved
    model rebuilds with the same features.
    """

    def __init__(self, dim: int, scale: float = 4.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freq", torch.randn(dim // 2, generator=g) * scale)

    def forward(self, s: Tensor) -> Tensor:
        arg = 2.0 * math.pi * s[:, None] * self.freq[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)


class ScoreMLP(nn.Module):
    """MLP ``(t, x) -> (N, D)`` for vectors ``x`` of shape ``(N, D)``.

    Args:
        dim: event size ``D``.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        time_dim: number of Fourier features of the time.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, time_dim: int = 32):
        super().__init__()
        self.dim = dim
        self.time = FourierTime(time_dim)
        self.inp = nn.Linear(dim, hidden)
        self.temb = nn.ModuleList(nn.Linear(time_dim, 2 * hidden) for _ in range(depth))
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ShapeError(f"ScoreMLP expects x of shape (N, {self.dim}), got {tuple(x.shape)}")
        emb = self.time(t)
        h = self.inp(x)
        for lin, temb in zip(self.layers, self.temb, strict=True):
            scale, shift = temb(emb).chunk(2, dim=-1)  # FiLM: the score is x times f(t)
            h = h + lin(self.act(h)) * (1.0 + scale) + shift
        return self.out(self.act(h))


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, time_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(time_dim, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        return (self.skip(x) + h) / math.sqrt(2.0)


class ScoreUNet(nn.Module):
    """Time-conditioned U-Net ``(t, x) -> (N, C, H, W)`` for maps ``x`` of shape ``(N, C, H, W)``.

    Args:
        in_channels: ``C``.
        channels: channels at each resolution (full, half, quarter, ...).
        time_dim: number of Fourier features of the time.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (16, 32, 64),
                 time_dim: int = 32):
        super().__init__()
        channels = tuple(channels)
        self.in_channels = in_channels
        self.factor = 2 ** (len(channels) - 1)
        self.time = FourierTime(time_dim)
        self.tmlp = nn.Sequential(nn.Linear(time_dim, 2 * time_dim), nn.SiLU(),
                                  nn.Linear(2 * time_dim, time_dim))
        self.inp = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        prev = channels[0]
        for i, ch in enumerate(channels):
            self.down.append(_ResBlock(prev, ch, time_dim))
            prev = ch
            if i < len(channels) - 1:
                self.pool.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = _ResBlock(prev, prev, time_dim)
        self.up = nn.ModuleList()
        self.unpool = nn.ModuleList()
        for ch in reversed(channels[:-1]):
            self.unpool.append(nn.ConvTranspose2d(prev, ch, 4, stride=2, padding=1))
            self.up.append(_ResBlock(2 * ch, ch, time_dim))
            prev = ch
        self.out_norm = nn.GroupNorm(_groups(prev), prev)
        self.out = nn.Conv2d(prev, in_channels, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % self.factor \
                or x.shape[3] % self.factor:
            raise ShapeError(f"ScoreUNet expects x of shape (N, {self.in_channels}, H, W) with H "
                             f"and W divisible by {self.factor}, got {tuple(x.shape)}")
        emb = self.tmlp(self.time(t))
        h = self.inp(x)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            if i < len(self.pool):
                skips.append(h)
                h = self.pool[i](h)
        h = self.mid(h, emb)
        for unpool, block in zip(self.unpool, self.up, strict=True):
            h = unpool(h)
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(self.act(self.out_norm(h)))


def build_network(spec: dict[str, Any]) -> nn.Module:
    """The network of a JSON spec: ``{"kind": "mlp", "dim": D, ...}`` or
    ``{"kind": "unet", "in_channels": C, "channels": [...], ...}``.

    Raises:
        ConfigError: unknown kind or arguments.
    """
    kinds = {"mlp": ScoreMLP, "unet": ScoreUNet}
    kind = spec.get("kind")
    if kind not in kinds:
        raise ConfigError(f"unknown score network kind {kind!r}; use one of {sorted(kinds)}")
    args = {k: v for k, v in spec.items() if k != "kind"}
    try:
        return kinds[kind](**args)
    except TypeError as err:
        raise ConfigError(f"bad arguments for a {kind} score network: {err}") from err
