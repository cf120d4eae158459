"""The X-ray simulators plug into NPE with their default (conv1d) embedding."""

from __future__ import annotations

import pytest
import torch

from sbi_astro.inference import TrainingConfig, load_run, train
from simulators.xray.powerlaw import XrayPowerLaw


@pytest.mark.slow
def test_npe_smoke_with_default_conv1d_embedding(tmp_path):
    sim = XrayPowerLaw(device="cpu")
    assert sim.default_embedding().kind == "conv1d"
    theta, x = sim.sample_joint(300, generator=torch.Generator().manual_seed(0))
    est = train(theta, x, sim, TrainingConfig(max_epochs=2, batch_size=64, hidden_features=16,
                                               num_transforms=2, device="cpu"))
    obs = sim.observed()
    samples = est.sample(50, obs)
    assert samples.shape == (50, sim.dim) and torch.isfinite(samples).all()
    est.save(tmp_path / "run")
    again = load_run(tmp_path / "run")
    assert again.sample(5, obs).shape == (5, sim.dim)
