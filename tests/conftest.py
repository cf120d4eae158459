"""Shared fixtures of the test suite (options and collection: the repository's conftest.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def device(request) -> torch.device:
    """The device the tensor tests run on (``pytest --device cuda``)."""
    dev = torch.device(request.config.getoption("--device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return dev


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module, restored after: small tensors on a loaded 2-core
    machine run many times faster on one thread than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
