"""The HDF5 simulation store: round trip, commit semantics, foreign and corrupted files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from sbi_astro.errors import DataFormatError, ShapeError, StoreError
from sbi_astro.store import SimulationStore, StoreMetadata


def _meta(n=10, chunk=4, ev=(3,)):
    return StoreMetadata(simulator="demo", options={"a": 1}, seed=3, num_simulations=n,
                         chunk_size=chunk, param_names=["p", "q"], param_units=["", "keV"],
                         event_shape=list(ev), prior=[])


def test_roundtrip_and_commit_order(tmp_path):
    path = tmp_path / "s.h5"
    with SimulationStore.create(path, _meta()) as store:
        assert store.num_chunks == 3 and store.chunk_bounds(2) == (8, 10)
        store.write_chunk(2, torch.ones(2, 2), torch.full((2, 3), 2.0))
        store.write_chunk(0, torch.zeros(4, 2), torch.zeros(4, 3))
        assert store.completed_chunks() == [0, 2] and store.num_completed == 6
        with pytest.raises(StoreError, match="incomplete"):
            store.load()
        theta, x = store.load(allow_incomplete=True)
        assert theta.shape == (6, 2) and torch.equal(x[4:], torch.full((2, 3), 2.0))
        store.write_chunk(1, torch.arange(8.0).reshape(4, 2), torch.ones(4, 3))
        assert store.is_complete and store.verify() == []
    with SimulationStore.open(path) as store:
        theta, x = store.load()
        assert torch.equal(theta[4:8], torch.arange(8.0).reshape(4, 2))
        assert store.metadata.param_units == ["", "keV"]


def test_wrong_chunk_shape_rejected(tmp_path):
    with SimulationStore.create(tmp_path / "s.h5", _meta()) as store:
        with pytest.raises(ShapeError, match="chunk 0"):
            store.write_chunk(0, torch.zeros(3, 2), torch.zeros(3, 3))
        assert store.completed_chunks() == []


def test_existing_file_not_overwritten(tmp_path):
    path = tmp_path / "s.h5"
    SimulationStore.create(path, _meta()).close()
    with pytest.raises(StoreError, match="already exists"):
        SimulationStore.create(path, _meta())


def test_foreign_and_corrupted_files(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(DataFormatError, match="not a readable HDF5"):
        SimulationStore.open(junk)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(DataFormatError, match="not an sbi-astro simulation store"):
        SimulationStore.open(foreign)
    # truncate a valid store: the superblock survives but the data do not
    good = tmp_path / "good.h5"
    with SimulationStore.create(good, _meta(n=2000, chunk=500, ev=(50,))) as store:
        store.write_chunk(0, torch.zeros(500, 2), torch.zeros(500, 50))
    raw = good.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DataFormatError):
        with SimulationStore.open(tmp_path / "trunc.h5") as s:
            s.load(allow_incomplete=True)


def test_a_store_open_for_writing_elsewhere_is_reported_as_locked(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "s.h5"
    with SimulationStore.create(path, _meta()) as store:
        store.write_chunk(0, torch.zeros(4, 2), torch.zeros(4, 3))
    # another process holds the store open for writing, as a running campaign does
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, h5py; f = h5py.File(sys.argv[1], 'r+'); "
         "print('open', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="locked by another process"):
            SimulationStore.open(path)
    finally:
        holder.communicate("")
    with SimulationStore.open(path) as store:  # untouched, and readable once released
        assert store.completed_chunks() == [0]


def test_checksum_detects_bit_flips(tmp_path):
    path = tmp_path / "s.h5"
    with SimulationStore.create(path, _meta()) as store:
        for c in range(3):
            a, b = store.chunk_bounds(c)
            store.write_chunk(c, torch.randn(b - a, 2), torch.randn(b - a, 3))
    with h5py.File(path, "r+") as f:
        f["x"][5, 1] = 123.0
    with SimulationStore.open(path) as store:
        assert store.verify() == [1]
