"""The store's file format: its metadata, its layout, and the checksums that guard both.

Layout (HDF5, via h5py): ``/theta`` ``(N, D)`` and ``/x`` ``(N, *event_shape)``, chunked
and allocated in full when the file is created (HDF5 "early" allocation, so that writing
rows later never touches HDF5's own metadata); ``/chunk_done`` ``(C,)`` uint8 and
``/chunk_crc32`` ``(C,)`` uint32, one per campaign chunk; attributes ``format``,
``format_version``, ``metadata`` (the JSON of :class:`StoreMetadata`) and
``metadata_sha256`` (its checksum, version 2).

Example:
    >>> meta = StoreMetadata(simulator="demo", options={}, seed=0, num_simulations=5,
    ...                      chunk_size=2, param_names=["a"], param_units=[""],
    ...                      event_shape=[3], prior=[])
    >>> meta.num_chunks, len(metadata_checksum("{}"))
    (3, 64)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import DataFormatError

FORMAT = "sbi-astro-simulation-store"
FORMAT_VERSION = 2
#: Versions this sbi-astro reads: 1 (no metadata checksum; read with a warning) and 2.
READABLE_VERSIONS = (1, 2)
_MAX_CHUNK_BYTES = 4 * 2**20


@dataclasses.dataclass(frozen=True)
class StoreMetadata:
    """What a store holds and how it was produced (all JSON-serialisable).

    Attributes:
        simulator: registered simulator name.
        options: simulator options.
        seed: campaign seed (row ``i`` uses keys derived from ``(seed, i)``).
        num_simulations: number of rows ``N``.
        chunk_size: rows per campaign chunk.
        param_names, param_units: one per parameter.
        event_shape: shape of one ``x``.
        prior: the prior's ``to_dict()``.
        dtype: numpy dtype name of ``theta`` and ``x``.
        versions: package versions at creation.
    """

    simulator: str
    options: dict[str, Any]
    seed: int
    num_simulations: int
    chunk_size: int
    param_names: list[str]
    param_units: list[str]
    event_shape: list[int]
    prior: list[dict[str, Any]]
    dtype: str = "float32"
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    prior_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    data_files: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def num_chunks(self) -> int:
        return -(-self.num_simulations // self.chunk_size)

    def campaign_identity(self) -> dict[str, Any]:
        """The fields that must match for a campaign to resume into this store."""
        return {"simulator": self.simulator, "options": self.options, "seed": self.seed,
                "num_simulations": self.num_simulations, "chunk_size": self.chunk_size,
                "event_shape": list(self.event_shape), "dtype": self.dtype,
                "prior": self.prior}


def fsync(f: h5py.File) -> None:
    """Flushes HDF5's buffers and ``fsync`` s the file."""
    f.flush()
    try:
        fd = f.id.get_vfd_handle()
    except (AttributeError, ValueError, RuntimeError):  # pragma: no cover - non-sec2 drivers
        return
    if isinstance(fd, int):
        os.fsync(fd)


def crc(theta: np.ndarray, x: np.ndarray) -> int:
    """CRC-32 of a chunk's ``theta`` bytes, then its ``x`` bytes."""
    # zlib reads the arrays' buffers in place (no copy through ``tobytes``: 4x faster)
    return zlib.crc32(np.ascontiguousarray(x),
                      zlib.crc32(np.ascontiguousarray(theta))) & 0xFFFFFFFF


def create_early(f: h5py.File, name: str, shape: tuple[int, ...], dtype: np.dtype,
                  chunks: tuple[int, ...] | None) -> None:
    """A dataset whose storage is allocated at creation (no later metadata writes)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if chunks is not None:
        dcpl.set_chunk(chunks)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    space = h5py.h5s.create_simple(shape, shape)
    h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)


def first_line(err: BaseException) -> str:
    """The first line of an error's message (HDF5's run over many lines)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def metadata_checksum(text: str) -> str:
    """SHA-256 (hex) of a store's metadata JSON text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_empty(tmp: Path, metadata: StoreMetadata) -> None:
    """Writes an empty store (every dataset allocated, no chunk committed) to ``tmp``."""
    n, ev = metadata.num_simulations, tuple(metadata.event_shape)
    d = len(metadata.param_names)
    dtype = np.dtype(metadata.dtype)
    row_bytes = max(1, int(np.prod(ev, dtype=np.int64)) * dtype.itemsize)
    rows = int(max(1, min(metadata.chunk_size, n, _MAX_CHUNK_BYTES // row_bytes)))
    text = json.dumps(dataclasses.asdict(metadata))
    with h5py.File(tmp, "w", libver="earliest") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["metadata"] = text
        f.attrs["metadata_sha256"] = metadata_checksum(text)
        create_early(f, "theta", (n, d), dtype, (rows, d))
        create_early(f, "x", (n, *ev), dtype, (rows, *ev))
        create_early(f, "chunk_done", (metadata.num_chunks,), np.dtype(np.uint8), None)
        create_early(f, "chunk_crc32", (metadata.num_chunks,), np.dtype(np.uint32), None)
        fsync(f)


def read_metadata(f: h5py.File, path: Path) -> StoreMetadata:
    """The checked metadata of an open store file."""
    try:
        if f.attrs.get("format") != FORMAT:
            raise DataFormatError(f"{path} is an HDF5 file but not an sbi-astro simulation "
                                  "store (no 'format' marker); create stores with "
                                  "`sbi-astro simulate`")
        version = int(f.attrs.get("format_version", -1))
        if version not in READABLE_VERSIONS:
            raise DataFormatError(f"{path} has store format version {version}; this "
                                  f"sbi-astro reads versions {READABLE_VERSIONS}")
        text = f.attrs["metadata"]
        if version >= 2:
            if metadata_checksum(text) != f.attrs.get("metadata_sha256"):
                raise DataFormatError(
                    f"{path}: the store's metadata (simulator, options, seed, prior...) does "
                    "not match the checksum written with it: it was changed after the "
                    "simulations were made, so they cannot be trusted to be what it says. "
                    "Re-run the campaign into a new file")
        else:
            warnings.warn(f"{path} is a version-1 store: its metadata has no checksum and "
                          "cannot be checked against relabelling", UserWarning, stacklevel=4)
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise TypeError("metadata is not a JSON object")
        meta = StoreMetadata(**doc)
        for name in ("theta", "x", "chunk_done", "chunk_crc32"):
            if name not in f:
                raise DataFormatError(f"{path} lacks the dataset '/{name}'; the file is "
                                      "damaged")
        if f["theta"].shape != (meta.num_simulations, len(meta.param_names)) or \
                f["x"].shape != (meta.num_simulations, *meta.event_shape) or \
                f["chunk_done"].shape != (meta.num_chunks,):
            raise DataFormatError(f"{path}: dataset shapes disagree with its metadata")
    except DataFormatError:
        raise
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise DataFormatError(f"{path}: unreadable store metadata ({first_line(err)}); the "
                              "file is damaged or not an sbi-astro store") from err
    return meta
