"""Named priors: densities, inverse-CDF sampling, support checks, serialisation."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro import ConfigError, LogUniform, Normal, OutOfSupportError, Prior, Uniform
from sbi_astro.errors import NonFiniteError, ShapeError
from sbi_astro.random import RowRandom, fold


@pytest.fixture
def prior():
    return Prior([Uniform("kT", 0.5, 10.0, unit="keV"), LogUniform("norm", 1e-3, 1e1),
                  Normal("z", 0.1, 0.02)])


def test_log_prob_values(prior):
    theta = torch.tensor([[1.0, 0.1, 0.1]], dtype=torch.float64)
    expected = (-math.log(9.5) - math.log(0.1) - math.log(math.log(1e4))
                - math.log(0.02) - 0.5 * math.log(2 * math.pi))
    assert prior.log_prob(theta).item() == pytest.approx(expected, rel=1e-6)
    assert prior.log_prob(torch.tensor([[20.0, 0.1, 0.1]])).item() == -math.inf


def test_samples_follow_the_marginals(prior):
    s = prior.sample((20_000,), generator=torch.Generator().manual_seed(0)).double()
    # uniform mean 5.25, sd 9.5/sqrt(12); 4 standard errors
    assert abs(s[:, 0].mean() - 5.25) < 4 * 9.5 / math.sqrt(12 * 20_000)
    # log-uniform: log10 is uniform on [-3, 1]
    assert abs(torch.log10(s[:, 1]).mean() + 1.0) < 4 * 4 / math.sqrt(12 * 20_000)
    assert abs(s[:, 2].std() - 0.02) < 0.001
    keyed = prior.sample_rows(RowRandom(fold(torch.tensor(1), torch.arange(5))))
    assert keyed.shape == (5, 3) and prior.within_support(keyed).all()


def test_check_messages(prior):
    with pytest.raises(OutOfSupportError, match=r"'kT' = 12 \[keV\] \(row 1\)"):
        prior.check(torch.tensor([[1.0, 0.1, 0.0], [12.0, 0.1, 0.0]]))
    with pytest.raises(NonFiniteError, match="'norm'"):
        prior.check(torch.tensor([1.0, float("nan"), 0.0]))
    with pytest.raises(ShapeError, match=r"\(\.\.\., 3\)"):
        prior.check(torch.zeros(4, 2))


def test_roundtrip_and_support(prior):
    again = Prior.from_dict(prior.to_dict())
    assert again.names == prior.names and again.units == prior.units
    assert torch.equal(again.low, prior.low)
    bounded = Prior([Uniform("a", 0, 1), Uniform("b", -1, 1)])
    assert bounded.support.check(torch.tensor([0.5, 0.0])).item()
    assert not bounded.support.check(torch.tensor([1.5, 0.0])).item()
    assert bounded.bounded and not prior.bounded  # prior has an unbounded Normal


def test_invalid_definitions():
    with pytest.raises(ConfigError):
        Uniform("a", 1.0, 0.0)
    with pytest.raises(ConfigError):
        LogUniform("a", 0.0, 1.0)
    with pytest.raises(ConfigError, match="unique"):
        Prior([Uniform("a", 0, 1), Uniform("a", 0, 1)])
