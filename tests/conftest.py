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
