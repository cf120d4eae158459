"""The recurrent update networks of a RIM: a GRU for 1-D signals, a ConvGRU U-Net for maps.

Both map ``(inputs, hidden) -> (update, hidden)`` where ``inputs`` stacks the standardised
estimate and the processed likelihood gradient, and ``update`` is the step added to the
link-space estimate.

Example:
    >>> import torch
    >>> net = GRUUpdate(in_features=9, out_features=4, hidden=8)
    >>> dz, h = net(torch.zeros(2, 9), net.initial_state(2, torch.zeros(0)))
    >>> tuple(dz.shape), tuple(h[0].shape)
    ((2, 4), (2, 8))
    >>> unet = ConvGRUUNet(in_channels=5, out_channels=2, hidden=4)
    >>> dz, h = unet(torch.zeros(3, 5, 8, 8), unet.initial_state(3, torch.zeros(3, 5, 8, 8)))
    >>> tuple(dz.shape), tuple(h[1].shape)
    ((3, 2, 8, 8), (3, 8, 4, 4))

References:
    Putzky & Welling (2017), "Recurrent Inference Machines for Solving Inverse Problems",
    arXiv:1706.04008.  Morningstar et al. (2019), ApJ 883, 14 (the ConvGRU U-Net for lensing).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]


class GRUUpdate(nn.Module):
    """Dense encoder, two stacked GRU cells, dense decoder: ``(B, in) -> (B, out)``.

    Args:
        in_features: size of the stacked input (estimate, gradient and extras).
        out_features: size of the signal.
        hidden: size of each GRU state.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.encode = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh())
        self.gru1 = nn.GRUCell(hidden, hidden)
        self.gru2 = nn.GRUCell(hidden, hidden)
        self.decode = nn.Linear(hidden, out_features)

    def initial_state(self, batch: int, like: Tensor) -> State:
        zeros = like.new_zeros(batch, self.hidden)
        return zeros, zeros

    def forward(self, inputs: Tensor, state: State) -> tuple[Tensor, State]:
        h1 = self.gru1(self.encode(inputs), state[0])
        h2 = self.gru2(h1, state[1])
        return self.decode(h2), (h1, h2)


class ConvGRUCell(nn.Module):
    """A convolutional GRU cell: ``(B, in, H, W), (B, hidden, H, W) -> (B, hidden, H, W)``."""

    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, kernel_size, padding=pad)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        r, u = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        c = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return (1.0 - u) * h + u * c


class ConvGRUUNet(nn.Module):
    """A two-level U-Net with a ConvGRU at each level, for ``(B, C, H, W)`` maps.

    Full resolution: conv -> ConvGRU(hidden); half resolution (stride-2 conv): ConvGRU
    (2 hidden); the half-resolution state is upsampled (transposed conv), joined to the
    full-resolution one and decoded to the update ``(B, out_channels, H, W)``.

    Args:
        in_channels: planes of the stacked input.
        out_channels: planes of the signal.
        hidden: channels of the full-resolution state.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int):
        super().__init__()
        h = hidden
        self.hidden = h
        self.encode = nn.Sequential(nn.Conv2d(in_channels, h, 3, padding=1), nn.Tanh())
        self.gru1 = ConvGRUCell(h, h)
        self.down = nn.Sequential(nn.Conv2d(h, 2 * h, 3, stride=2, padding=1), nn.Tanh())
        self.gru2 = ConvGRUCell(2 * h, 2 * h)
        self.up = nn.ConvTranspose2d(2 * h, h, 4, stride=2, padding=1)
        self.decode = nn.Sequential(nn.Conv2d(2 * h, h, 3, padding=1), nn.Tanh(),
                                    nn.Conv2d(h, out_channels, 3, padding=1))

    def initial_state(self, batch: int, like: Tensor) -> State:
        height, width = like.shape[-2:]
        return (like.new_zeros(batch, self.hidden, height, width),
                like.new_zeros(batch, 2 * self.hidden, height // 2, width // 2))

    def forward(self, inputs: Tensor, state: State) -> tuple[Tensor, State]:
        h1 = self.gru1(self.encode(inputs), state[0])
        h2 = self.gru2(self.down(h1), state[1])
        out = self.decode(torch.cat([h1, torch.tanh(self.up(h2))], 1))
        return out, (h1, h2)
