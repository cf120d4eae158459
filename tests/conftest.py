"""Shared fixtures: ``--device`` runs the same tests on CUDA."""

from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="device for tensor tests: cpu or cuda")


@pytest.fixture
def device(request) -> torch.device:
    dev = torch.device(request.config.getoption("--device"))
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    return dev


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
