"""The conv1d summary network for spectra."""

from __future__ import annotations

import pytest
import torch

from sbi_astro.embeddings import build_embedding
from sbi_astro.errors import ConfigError
from sbi_astro.simulator import EmbeddingSpec


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
@pytest.mark.parametrize("in_shape", [[444], [2, 40], [1]])
def test_shapes(batch, in_shape):
    torch.manual_seed(0)
    net = build_embedding(EmbeddingSpec("conv1d", {"in_shape": in_shape, "out_features": 7}))
    x = torch.rand(*batch, *in_shape) * 50
    out = net(x)
    assert out.shape == (*batch, 7)
    assert torch.isfinite(out).all()


def test_rows_are_independent_and_gradients_flow():
    torch.manual_seed(0)
    net = build_embedding(EmbeddingSpec("conv1d", {"in_shape": [99]}))
    x = torch.rand(4, 99, requires_grad=True)
    out = net(x)
    torch.testing.assert_close(out[1], net(x[1:2])[0])  # no mixing across the batch
    out[0].sum().backward()
    assert x.grad[0].abs().sum() > 0 and x.grad[1:].abs().sum() == 0


def test_bad_arguments():
    with pytest.raises(ConfigError, match="odd kernel_size"):
        build_embedding(EmbeddingSpec("conv1d", {"in_shape": [10], "kernel_size": 4}))
