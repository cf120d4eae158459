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


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster of two worker processes, shared by a module's tests."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as c:
        yield c
