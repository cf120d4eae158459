"""One torch thread for the solver tests (restored afterwards).

Their networks and batches are small, where a second thread only adds synchronisation: on
a loaded 2-core machine the score-model training test took 62 s with two threads and 7 s
with one.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_torch_thread):
    """Every test here on one torch thread (see tests/conftest.py)."""
