"""The sbibm tasks on another device (``pytest --device cuda``) against the CPU."""

from __future__ import annotations

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.random import fold

TASKS = ["gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "two_moons", "slcp",
         "slcp_distractors", "bernoulli_glm", "bernoulli_glm_raw", "sir", "lotka_volterra"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", TASKS)
def test_device_rows_match_cpu_rows(name, device):
    if device.type == "cpu":
        pytest.skip("compares another device with the CPU: run with --device cuda")
    cpu, dev = load_simulator(name, device="cpu"), load_simulator(name, device=device)
    theta = cpu.prior.sample((256,), generator=torch.Generator().manual_seed(0))
    keys = fold(torch.tensor(4), torch.arange(256))
    x_cpu = cpu.simulate(theta, keys=keys)
    x_dev = dev.simulate(theta.to(device), keys=keys.to(device)).cpu()
    assert x_dev.shape == x_cpu.shape
    if name in ("sir", "bernoulli_glm", "bernoulli_glm_raw"):
        # counts: the same random integers; a probability that differs in its last bit
        # between devices can move a count only when a uniform falls within ~1e-16 of it
        assert (x_dev == x_cpu).float().mean() > 0.999
    else:
        assert torch.allclose(x_dev, x_cpu, rtol=1e-4, atol=1e-5)
    if cpu.has_observation:
        assert dev.observation(1).device.type == device.type
    if cpu.has_reference_posterior:
        ref = dev.reference_posterior(dev.observation(1), 100,
                                      generator=torch.Generator(device=device).manual_seed(0))
        assert ref.device.type == device.type and dev.prior.within_support(ref).all()
