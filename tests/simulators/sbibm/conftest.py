"""One torch thread for the sbibm task tests (restored afterwards).

Their tensors are small (batches of a few thousand rows, C2ST networks of 2 x 2,000
points), where a second thread only adds synchronisation; on a loaded 2-core machine that
overhead made the C2ST tests 15x slower (44 s instead of 3 s).
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
