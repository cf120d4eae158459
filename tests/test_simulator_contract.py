"""One contract test over every registered simulator (the house style's contract), on the
device the suite is given (``pytest --device cuda``)."""

from __future__ import annotations

import pytest
import torch

from sbi_astro import OutOfSupportError, list_simulators, load_simulator
from sbi_astro.errors import NonFiniteError, NotAvailableError, ShapeError

NAMES = list_simulators()


@pytest.fixture(scope="module", params=NAMES)
def sim(request):
    dev = torch.device(request.config.getoption("--device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return load_simulator(request.param, device=dev)


def test_builtin_validation_tasks_are_registered():
    assert {"gaussian_linear", "two_moons"} <= set(NAMES)


def test_prior_shapes_and_support(sim):
    theta = sim.prior.sample((7,), generator=torch.Generator().manual_seed(0))
    assert theta.shape == (7, sim.dim) and theta.device == sim.device
    assert sim.prior.within_support(theta).all()
    assert torch.isfinite(sim.prior.log_prob(theta)).all()
    assert len(sim.param_names) == len(sim.param_units) == sim.dim


def test_default_theta_transform_is_concrete(sim):
    """What NPE's ``theta_transform="auto"`` resolves to must be a transform a run can save."""
    from sbi_astro.inference.config import CONCRETE_THETA_TRANSFORMS

    assert sim.default_theta_transform in CONCRETE_THETA_TRANSFORMS


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_simulate_shapes_finite(sim, batch):
    theta = sim.prior.sample(batch, generator=torch.Generator().manual_seed(1))
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(2))
    assert x.shape == (*batch, *sim.event_shape) and x.device == sim.device
    assert torch.isfinite(x).all()


def test_same_seed_same_output_across_batch_sizes(sim):
    theta = sim.prior.sample((6,), generator=torch.Generator().manual_seed(3))
    full = sim.simulate(theta, generator=torch.Generator().manual_seed(4))
    head = sim.simulate(theta[:2], generator=torch.Generator().manual_seed(4))
    assert torch.equal(full[:2], head)
    again = sim.simulate(theta, generator=torch.Generator().manual_seed(4))
    assert torch.equal(full, again)
    other = sim.simulate(theta, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(full, other)


def test_keys_make_rows_independent_of_chunking(sim):
    from sbi_astro.random import fold

    theta = sim.prior.sample((6,), generator=torch.Generator().manual_seed(6))
    keys = fold(torch.tensor(11, device=sim.device), torch.arange(6, device=sim.device))
    whole = sim.simulate(theta, keys=keys)
    parts = torch.cat([sim.simulate(theta[:4], keys=keys[:4]),
                       sim.simulate(theta[4:], keys=keys[4:])])
    assert torch.allclose(whole, parts, rtol=1e-6, atol=0)


def test_out_of_support_and_nan_rejected(sim):
    theta = sim.prior.sample((2,), generator=torch.Generator().manual_seed(7))
    finite_high = torch.isfinite(sim.prior.high)
    if finite_high.any():
        bad = theta.clone()
        i = int(finite_high.nonzero()[0])
        bad[1, i] = sim.prior.high[i] + 1.0
        with pytest.raises(OutOfSupportError, match=sim.param_names[i]):
            sim.simulate(bad)
    nan = theta.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        sim.simulate(nan)
    with pytest.raises(ShapeError):
        sim.simulate(theta[..., :-1] if sim.dim > 1 else theta[..., :0])


def test_gradients_through_expected(sim):
    theta = sim.prior.sample((3,), generator=torch.Generator().manual_seed(8))
    theta = theta.clone().requires_grad_(True)
    try:
        mu = sim.expected(theta)
    except NotAvailableError:
        pytest.skip(f"{sim.name} has no expected()")
    mu.sum().backward()
    assert theta.grad is not None and torch.isfinite(theta.grad).all()


def test_describe_is_json(sim):
    import json

    json.dumps(sim.describe())
