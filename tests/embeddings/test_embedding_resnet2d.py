"""The ``resnet2d`` image summary network."""

from __future__ import annotations

import pytest
import torch

from sbi_astro.embeddings import build_embedding
from sbi_astro.errors import ConfigError, ShapeError


def _net(**kw):
    torch.manual_seed(0)
    return build_embedding({"kind": "resnet2d", "kwargs": {"in_shape": [24, 24], **kw}})


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_shapes(batch):
    net = _net(out_features=10)
    assert net(torch.randn(*batch, 24, 24)).shape == (*batch, 10)


def test_rows_are_independent_of_their_batch():
    # GroupNorm, not BatchNorm: a row's summary is the same alone or in a batch.
    net = _net()
    x = torch.randn(5, 24, 24)
    torch.testing.assert_close(net(x)[1:2], net(x[1:2]), rtol=1e-5, atol=1e-6)


def test_channels_input_and_errors():
    net = build_embedding({"kind": "resnet2d", "kwargs": {"in_shape": [2, 16, 16],
                                                          "channels": [8, 16]}})
    assert net(torch.randn(4, 2, 16, 16)).shape == (4, 64)
    with pytest.raises(ShapeError):
        net(torch.randn(4, 16, 16))
    with pytest.raises(ConfigError):
        build_embedding({"kind": "resnet2d", "kwargs": {"in_shape": [16]}})


@pytest.mark.slow  # ~10 s idle, 35 s on a loaded 2-core machine
def test_learns_a_simple_summary():
    """It can regress the position of a blob (what a lens-image summary must do)."""
    g = torch.Generator().manual_seed(0)
    n = 128
    pos = torch.rand(n, 2, generator=g) * 2 - 1
    c = torch.linspace(-1.2, 1.2, 12)
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    img = torch.exp(-((xx - pos[:, :1, None]) ** 2 + (yy - pos[:, 1:, None]) ** 2) / 0.1)
    torch.manual_seed(0)
    net = build_embedding({"kind": "resnet2d", "kwargs": {"in_shape": [12, 12],
                                                          "out_features": 2,
                                                          "channels": [8, 8]}})
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(100):
        opt.zero_grad()
        loss = (net(img) - pos).square().mean()
        loss.backward()
        opt.step()
    # the variance of pos is 1/3; a working CNN gets far below it within 100 steps.
    assert float(loss) < 0.02


def test_strided_stem_and_coordinate_channels():
    net = _net(stem_stride=2, coords=True, channels=[8, 16])
    x = torch.randn(3, 24, 24)
    assert net(x).shape == (3, 64)
    torch.testing.assert_close(net(x)[1:2], net(x[1:2]), rtol=1e-5, atol=1e-6)
    # the x, y, r channels, centred on the image centre
    gx, gy, gr = net.grid
    torch.testing.assert_close(gx, -gx.flip(-1))
    torch.testing.assert_close(gy, gx.T)
    torch.testing.assert_close(gr, torch.hypot(gx, gy))
    # with coordinates, pooling no longer hides where a feature sits: a blob moved from
    # the centre to a corner changes the summary (it would not, up to edge effects,
    # without them; the shift is whole pixels, so the blob's shape is the same)
    blob = torch.zeros(24, 24)
    blob[11:13, 11:13] = 1.0
    moved = torch.roll(blob, (6, 6), dims=(0, 1))
    assert float((net(blob) - net(moved)).abs().max()) > 1e-3
    with pytest.raises(ConfigError, match="stem_stride"):
        _net(stem_stride=0)
