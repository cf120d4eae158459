"""Store integrity benchmark: what checking every chunk costs next to reading it.

``SimulationStore.load()`` reads the rows and checks each chunk's CRC-32; the peer is the
same read without the check (plain ``h5py`` slicing of ``/theta`` and ``/x``), measured in
the same run on the same file.  The page cache is warm in both (the file was just
written), which makes the read as fast as it gets and the ratio a worst case.

    python -m benchmarks.bench_store [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py

from benchmarks._common import main_for, timeit
from sbi_astro.campaign import run_campaign
from sbi_astro.store import SimulationStore


def _raw_read(path: Path) -> None:
    with h5py.File(path, "r") as f:
        f["theta"][...]
        f["x"][...]


def _checked_read(path: Path) -> None:
    with SimulationStore.open(path) as store:
        store.load()


def _verify(path: Path) -> None:
    with SimulationStore.open(path) as store:
        assert store.verify() == []


def run(quick: bool = False) -> list[dict]:
    rows = []
    sizes = [(256, 20_000)] if quick else [(256, 20_000), (4096, 50_000)]
    for dim, n in sizes:
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "s.h5"
            t0 = time.perf_counter()
            run_campaign(path, "gaussian_linear", num_simulations=n, seed=0,
                         chunk_size=1000, options={"dim": dim}, device="cpu",
                         progress=False).close()
            write = time.perf_counter() - t0
            mb = path.stat().st_size / 2**20
            raw = timeit(lambda p=path: _raw_read(p), repeat=3)
            checked = timeit(lambda p=path: _checked_read(p), repeat=3)
            verify = timeit(lambda p=path: _verify(p), repeat=3)
        rows.append({"case": f"gaussian_linear dim={dim}", "MB": mb, "campaign_s": write,
                     "read_s (h5py, unchecked)": raw, "load_s (checked)": checked,
                     "check_overhead": checked / raw - 1.0, "verify_s": verify})
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
