"""The ``timeseries`` embedding: shapes, registry, phase invariance, and that it can learn."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro.embeddings import build_embedding
from sbi_astro.errors import ShapeError
from sbi_astro.simulator import EmbeddingSpec


def test_shapes_and_registry():
    net = build_embedding(EmbeddingSpec("timeseries", {"in_channels": 3, "length": 40,
                                                       "out_features": 5}))
    assert net(torch.zeros(3, 40)).shape == (5,)
    assert net(torch.zeros(7, 3, 40)).shape == (7, 5)
    assert net(torch.zeros(2, 4, 3, 40)).shape == (2, 4, 5)
    with pytest.raises(ShapeError):
        net(torch.zeros(7, 2, 40))


def test_default_embedding_of_the_cluster_simulator_builds():
    from sbi_astro import load_simulator

    sim = load_simulator("cluster_gravothermal", device="cpu", n_times=32)
    net = build_embedding(sim.default_embedding())
    assert net(torch.zeros(4, *sim.event_shape)).shape == (4, 16)


def test_learns_the_period_of_a_noisy_oscillation():
    # Regress the log-period of phase-shifted noisy sines: the global pooling makes the
    # summary almost phase-invariant, so a 200 Adam steps reach a small error.
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # network initialisation (tests may seed torch; the library never does)
    n, length = 256, 64
    log_p = torch.rand(n, generator=g) * math.log(4) + math.log(6)  # periods 6-24 samples
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    t = torch.arange(length)
    x = torch.sin(2 * math.pi * t / log_p.exp()[:, None] + phase)
    x = (x + 0.1 * torch.randn(n, length, generator=g))[:, None, :]
    net = build_embedding(EmbeddingSpec("timeseries", {"in_channels": 1, "length": length,
                                                       "out_features": 1,
                                                       "channels": [16, 16, 16]}))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(200):
        opt.zero_grad()
        loss = ((net(x)[:, 0] - log_p) ** 2).mean()
        loss.backward()
        opt.step()
    # prior variance of log P is ln(4)^2 / 12 = 0.16; the fit must explain > 90 % of it
    assert loss.item() < 0.016
