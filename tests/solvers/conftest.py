"""One torch thread for the solver tests (restored afterwards).

Their networks and batches are small, where a second thread only adds synchronisation: on
a loaded 2-core machine the score-model training test took 62 s with two threads and 7 s
with one.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
