"""``sbi_astro.poisson_cpu``: the compiled CPU sampler draws the torch sampler's counts."""

from __future__ import annotations

import pytest
import torch

from sbi_astro import poisson_cpu
from sbi_astro.random import RowRandom, fold

pytestmark = pytest.mark.skipif(not poisson_cpu.available(), reason="needs numba")


def _both(keys: torch.Tensor, rate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(compiled, torch) counts from the same stream of the same rows."""
    compiled = RowRandom(keys).poisson(rate)
    stream = fold(keys, 0)  # the key of a RowRandom's first stream
    return compiled, RowRandom(keys)._poisson_torch(stream, rate)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_counts_equal_torch_counts(dtype):
    # 256 rows x 4,096 rates log-uniform over 1e-5..8e3: both branches (inversion below 10,
    # 47 % of the rates; PTRS above), including PTRS's rejections and its log test
    g = torch.Generator().manual_seed(5)
    rate = torch.exp(torch.empty(256, 4096, dtype=torch.float64).uniform_(-11.5, 9.0,
                                                                           generator=g))
    rate = rate.to(dtype)
    rate[0, :3] = 0.0
    compiled, reference = _both(fold(torch.tensor(11), torch.arange(256)), rate)
    assert compiled.dtype == dtype and compiled.shape == rate.shape
    assert torch.equal(compiled, reference)
    assert float(compiled[0, :3].abs().sum()) == 0.0


def test_compiled_counts_do_not_depend_on_the_batch_or_threads():
    keys = fold(torch.tensor(3), torch.arange(40))
    rate = torch.linspace(0.0, 300.0, 40 * 50).reshape(40, 50)
    full = RowRandom(keys).poisson(rate)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        part = RowRandom(keys[7:19]).poisson(rate[7:19])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(full[7:19], part)


def test_compiled_counts_of_a_3d_rate_are_those_of_its_flat_rows():
    keys = fold(torch.tensor(8), torch.arange(5))
    rate = torch.rand(5, 6, 7, generator=torch.Generator().manual_seed(0)) * 40
    a = RowRandom(keys).poisson(rate)
    b = RowRandom(keys).poisson(rate.reshape(5, 42))
    assert torch.equal(a.reshape(5, 42), b)
