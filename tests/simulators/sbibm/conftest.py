"""One torch thread for the sbibm task tests (restored afterwards).

Their tensors are small (batches of a few thousand rows, C2ST networks of 2 x 2,000
points), where a second thread only adds synchronisation; on a loaded 2-core machine that
overhead made the C2ST tests 15x slower (44 s instead of 3 s).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (see tests/conftest.py)."""
