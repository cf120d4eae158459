"""The on-disk simulation store: an HDF5 file that survives ``kill -9``.

Layout (HDF5, via h5py):

* ``/theta`` ``(N, D)`` and ``/x`` ``(N, *event_shape)``, chunked, **allocated in full when
  the file is created** (HDF5 "early" allocation), so that writing rows later is a pure
  raw-data write that never touches HDF5's own metadata;
* ``/chunk_done`` ``(C,)`` uint8 and ``/chunk_crc32`` ``(C,)`` uint32, one entry per
  campaign chunk of ``chunk_size`` rows;
* attributes: format marker and version, simulator name and options, prior, seed,
  package versions, parameter names and units, event shape.

Crash safety: the file is created under a temporary name and renamed into place only
once complete.  A chunk is committed by (1) writing its rows and checksum, (2) flushing
and ``fsync``-ing, (3) setting ``chunk_done[c] = 1`` (a one-byte write), (4) flushing and
``fsync``-ing again.  A process killed at any moment therefore leaves every chunk either
committed with its exact rows or not committed at all; rows of uncommitted chunks are
never returned, and a resumed campaign rewrites them.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sims.h5"
    >>> meta = StoreMetadata(simulator="demo", options={}, seed=0, num_simulations=4,
    ...                      chunk_size=2, param_names=["a"], param_units=[""],
    ...                      event_shape=[3], prior=[])
    >>> store = SimulationStore.create(path, meta)
    >>> store.write_chunk(1, torch.ones(2, 1), torch.zeros(2, 3))
    >>> store.completed_chunks()
    [1]
    >>> store.close()
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from .errors import DataFormatError, ShapeError, StoreError

FORMAT = "sbi-astro-simulation-store"
FORMAT_VERSION = 1
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

    @property
    def num_chunks(self) -> int:
        return -(-self.num_simulations // self.chunk_size)

    def campaign_identity(self) -> dict[str, Any]:
        """The fields that must match for a campaign to resume into this store."""
        return {"simulator": self.simulator, "options": self.options, "seed": self.seed,
                "num_simulations": self.num_simulations, "chunk_size": self.chunk_size,
                "event_shape": list(self.event_shape), "dtype": self.dtype}


def _fsync(f: h5py.File) -> None:
    f.flush()
    try:
        fd = f.id.get_vfd_handle()
    except (AttributeError, ValueError, RuntimeError):  # pragma: no cover - non-sec2 drivers
        return
    if isinstance(fd, int):
        os.fsync(fd)


def _crc(theta: np.ndarray, x: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(x).tobytes(),
                      zlib.crc32(np.ascontiguousarray(theta).tobytes())) & 0xFFFFFFFF


def _create_early(f: h5py.File, name: str, shape: tuple[int, ...], dtype: np.dtype,
                  chunks: tuple[int, ...] | None) -> None:
    """A dataset whose storage is allocated at creation (no later metadata writes)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    if chunks is not None:
        dcpl.set_chunk(chunks)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    space = h5py.h5s.create_simple(shape, shape)
    h5py.h5d.create(f.id, name.encode(), h5py.h5t.py_create(np.dtype(dtype)), space, dcpl=dcpl)


class SimulationStore:
    """Handle to an open store file.  Use :meth:`create` or :meth:`open`.

    Rows are read back only from committed chunks (:meth:`load`).
    """

    def __init__(self, path: Path, file: h5py.File, metadata: StoreMetadata):
        self.path = Path(path)
        self._file = file
        self.metadata = metadata

    # -- construction -------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, metadata: StoreMetadata) -> SimulationStore:
        """Creates a new store file (atomically: temp file + rename) and opens it for writing.

        Raises:
            StoreError: ``path`` already exists.
        """
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path} already exists; open it to resume, or choose another path")
        if metadata.num_simulations < 1 or metadata.chunk_size < 1:
            raise StoreError("num_simulations and chunk_size must be positive")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        n, ev = metadata.num_simulations, tuple(metadata.event_shape)
        d = len(metadata.param_names)
        dtype = np.dtype(metadata.dtype)
        row_bytes = max(1, int(np.prod(ev, dtype=np.int64)) * dtype.itemsize)
        rows = int(max(1, min(metadata.chunk_size, n, _MAX_CHUNK_BYTES // row_bytes)))
        with h5py.File(tmp, "w", libver="earliest") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["metadata"] = json.dumps(dataclasses.asdict(metadata))
            _create_early(f, "theta", (n, d), dtype, (rows, d))
            _create_early(f, "x", (n, *ev), dtype, (rows, *ev))
            _create_early(f, "chunk_done", (metadata.num_chunks,), np.dtype(np.uint8), None)
            _create_early(f, "chunk_crc32", (metadata.num_chunks,), np.dtype(np.uint32), None)
            _fsync(f)
        os.replace(tmp, path)
        return cls.open(path, mode="r+")

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> SimulationStore:
        """Opens an existing store.

        Raises:
            FileNotFoundError: no such file.
            DataFormatError: not an HDF5 file, corrupted, or not an sbi-astro store.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"simulation store {path} does not exist")
        try:
            f = h5py.File(path, mode)
        except BlockingIOError as err:
            # HDF5's file lock: another process has the store open for writing
            raise StoreError(
                f"{path} is locked by another process that has it open for writing (a "
                "campaign still running?); wait for it to finish or stop it, then retry. "
                "The file is untouched"
            ) from err
        except OSError as err:
            raise DataFormatError(
                f"{path} is not a readable HDF5 file (corrupted or of another format: {err}); "
                "re-run the campaign into a new file"
            ) from err
        try:
            if f.attrs.get("format") != FORMAT:
                raise DataFormatError(f"{path} is an HDF5 file but not an sbi-astro simulation "
                                      "store (no 'format' marker); create stores with "
                                      "`sbi-astro simulate`")
            version = int(f.attrs.get("format_version", -1))
            if version != FORMAT_VERSION:
                raise DataFormatError(f"{path} has store format version {version}; this "
                                      f"sbi-astro reads version {FORMAT_VERSION}")
            meta = StoreMetadata(**json.loads(f.attrs["metadata"]))
            for name in ("theta", "x", "chunk_done", "chunk_crc32"):
                if name not in f:
                    raise DataFormatError(f"{path} lacks the dataset '/{name}'; the file is "
                                          "damaged")
            if f["theta"].shape != (meta.num_simulations, len(meta.param_names)) or \
                    f["x"].shape != (meta.num_simulations, *meta.event_shape):
                raise DataFormatError(f"{path}: dataset shapes disagree with its metadata")
        except (KeyError, TypeError, ValueError, OSError) as err:
            f.close()
            if isinstance(err, DataFormatError):
                raise
            raise DataFormatError(f"{path}: unreadable store metadata ({err})") from err
        except DataFormatError:
            f.close()
            raise
        return cls(path, f, meta)

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()

    def __enter__(self) -> SimulationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- chunks -------------------------------------------------------------------------
    @property
    def num_chunks(self) -> int:
        return self.metadata.num_chunks

    def chunk_bounds(self, chunk: int) -> tuple[int, int]:
        """Row range ``[start, stop)`` of campaign chunk ``chunk``."""
        if not 0 <= chunk < self.num_chunks:
            raise StoreError(f"chunk {chunk} out of range 0..{self.num_chunks - 1}")
        start = chunk * self.metadata.chunk_size
        return start, min(start + self.metadata.chunk_size, self.metadata.num_simulations)

    def _done(self) -> np.ndarray:
        return self._file["chunk_done"][...].astype(bool)

    def completed_chunks(self) -> list[int]:
        return np.flatnonzero(self._done()).tolist()

    def pending_chunks(self) -> list[int]:
        return np.flatnonzero(~self._done()).tolist()

    @property
    def num_completed(self) -> int:
        """Number of committed rows."""
        return sum(b - a for a, b in map(self.chunk_bounds, self.completed_chunks()))

    @property
    def is_complete(self) -> bool:
        return bool(self._done().all())

    def write_chunk(self, chunk: int, theta: Tensor | np.ndarray, x: Tensor | np.ndarray) -> None:
        """Writes and commits the rows of ``chunk`` (see the module docstring)."""
        if self._file.mode != "r+":
            raise StoreError(f"{self.path} is open read-only")
        start, stop = self.chunk_bounds(chunk)
        dtype = np.dtype(self.metadata.dtype)
        th = (theta.detach().cpu().numpy() if isinstance(theta, Tensor) else
              np.asarray(theta)).astype(dtype, copy=False)
        xx = (x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)).astype(
            dtype, copy=False)
        want_th = (stop - start, len(self.metadata.param_names))
        want_x = (stop - start, *self.metadata.event_shape)
        if th.shape != want_th or xx.shape != want_x:
            raise ShapeError(f"chunk {chunk} needs theta {want_th} and x {want_x}, got "
                             f"{th.shape} and {xx.shape}")
        f = self._file
        f["theta"][start:stop] = th
        f["x"][start:stop] = xx
        f["chunk_crc32"][chunk] = _crc(th, xx)
        _fsync(f)
        f["chunk_done"][chunk] = 1
        _fsync(f)

    # -- reading ------------------------------------------------------------------------
    def load(self, *, device: torch.device | str = "cpu", allow_incomplete: bool = False
             ) -> tuple[Tensor, Tensor]:
        """All committed rows as ``(theta (M, D), x (M, *event_shape))``, in row order.

        Raises:
            StoreError: the campaign is incomplete and ``allow_incomplete`` is false.
        """
        done = self._done()
        if not done.all() and not allow_incomplete:
            raise StoreError(
                f"{self.path} holds {self.num_completed} of {self.metadata.num_simulations} "
                "simulations (campaign incomplete); re-run the same `sbi-astro simulate` "
                "command to resume it, or pass allow_incomplete=True"
            )
        rows = np.zeros(self.metadata.num_simulations, dtype=bool)
        for c in np.flatnonzero(done):
            a, b = self.chunk_bounds(int(c))
            rows[a:b] = True
        if rows.all():
            theta, x = self._file["theta"][...], self._file["x"][...]
        else:
            idx = np.flatnonzero(rows)
            theta, x = self._file["theta"][idx], self._file["x"][idx]
        return torch.from_numpy(theta).to(device), torch.from_numpy(x).to(device)

    def verify(self) -> list[int]:
        """Recomputes checksums of committed chunks; returns the chunks that do not match."""
        bad = []
        crc = self._file["chunk_crc32"][...]
        for c in self.completed_chunks():
            a, b = self.chunk_bounds(c)
            if _crc(self._file["theta"][a:b], self._file["x"][a:b]) != int(crc[c]):
                bad.append(c)
        return bad

    def __repr__(self) -> str:
        m = self.metadata
        return (f"SimulationStore({str(self.path)!r}, simulator={m.simulator!r}, "
                f"{self.num_completed}/{m.num_simulations} rows)")
