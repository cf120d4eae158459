"""The on-disk simulation store: an HDF5 file that survives ``kill -9``.

Layout (HDF5, via h5py):

* ``/theta`` ``(N, D)`` and ``/x`` ``(N, *event_shape)``, chunked, **allocated in full when
  the file is created** (HDF5 "early" allocation), so that writing rows later is a pure
  raw-data write that never touches HDF5's own metadata;
* ``/chunk_done`` ``(C,)`` uint8 and ``/chunk_crc32`` ``(C,)`` uint32, one entry per
  campaign chunk of ``chunk_size`` rows;
* attributes: format marker and version, simulator name and options, prior, seed,
  package versions, parameter names and units, event shape.

Crash safety: the file is created under a temporary name and published only once
complete, exclusively (:func:`~sbi_astro.atomic.publish_exclusive`: of two processes
creating the same store exactly one succeeds).  A process that writes a store holds the
advisory lock ``STORE.h5.lock`` (:class:`~sbi_astro.atomic.ExclusiveLock`), so a second
writer is refused with a message naming the first.  A chunk is committed by (1) writing its
rows and checksum, (2) flushing and ``fsync``-ing, (3) setting ``chunk_done[c] = 1`` (a
one-byte write), (4) flushing and ``fsync``-ing again.  A process killed at any moment
therefore leaves every chunk either committed with its exact rows or not committed at all;
rows of uncommitted chunks are never returned, and a resumed campaign rewrites them.

Integrity: every committed chunk carries the CRC-32 of its rows, and the metadata the
SHA-256 of its JSON text (format version 2).  :meth:`SimulationStore.load` checks every
chunk it returns and :meth:`SimulationStore.open` checks the metadata, so damaged rows
(bit rot, a stray write) or relabelled metadata are refused, never used;
:meth:`SimulationStore.verify` lists damaged chunks and :meth:`SimulationStore.mark_pending`
lets a campaign re-simulate them from their seeds (``sbi-astro verify --repair``).

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

from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor

from .atomic import ExclusiveLock, publish_exclusive, remove_stale_temporaries, temporary_name
from .errors import DataFormatError, ShapeError, StoreError
from .store_format import (
    StoreMetadata,
    crc,
    first_line,
    fsync,
    read_metadata,
    write_empty,
)

class SimulationStore:
    """Handle to an open store file.  Use :meth:`create` or :meth:`open`.

    Rows are read back only from committed chunks, each checked against its checksum
    (:meth:`load`).  A store opened for writing holds ``STORE.h5.lock`` until closed.
    """

    def __init__(self, path: Path, file: h5py.File, metadata: StoreMetadata,
                 lock: ExclusiveLock | None = None):
        self.path = Path(path)
        self._file = file
        self.metadata = metadata
        self._lock = lock
        self._verified: set[int] = set()  # chunks checked since opening (rows unchanged)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, metadata: StoreMetadata) -> SimulationStore:
        """Creates a new store file and opens it for writing.

        The file is written under a temporary name and published exclusively: when two
        processes create the same store at once, exactly one succeeds.

        Raises:
            StoreError: ``path`` already exists, or another process is creating it.
        """
        path = Path(path)
        if metadata.num_simulations < 1 or metadata.chunk_size < 1:
            raise StoreError("num_simulations and chunk_size must be positive")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = ExclusiveLock(path, "campaign").acquire()
        try:
            if path.exists():
                raise StoreError(f"{path} already exists; open it to resume, or choose another "
                                 "path")
            remove_stale_temporaries(path)
            tmp = temporary_name(path)
            try:
                write_empty(tmp, metadata)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            publish_exclusive(tmp, path, what="store")
            return cls._open(path, "r+", lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> SimulationStore:
        """Opens an existing store (``mode="r+"`` to write: takes the store's lock).

        Raises:
            FileNotFoundError: no such file.
            StoreError: another process is writing the store.
            DataFormatError: not an HDF5 file, corrupted, not an sbi-astro store, or
                metadata that does not match its checksum.
        """
        path = Path(path)
        if mode not in ("r", "r+"):
            raise StoreError(f"mode must be 'r' or 'r+', got {mode!r}")
        if not path.exists():
            raise FileNotFoundError(f"simulation store {path} does not exist")
        if path.is_dir():
            raise DataFormatError(f"{path} is a directory, not a simulation store; give the "
                                  ".h5 file written by `sbi-astro simulate`")
        lock = ExclusiveLock(path, "campaign").acquire() if mode == "r+" else None
        try:
            return cls._open(path, mode, lock)
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @classmethod
    def _open(cls, path: Path, mode: str, lock: ExclusiveLock | None) -> SimulationStore:
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
                f"{path} is not a readable HDF5 file (corrupted, truncated or of another "
                f"format: {first_line(err)}); re-run the campaign into a new file"
            ) from err
        try:
            meta = read_metadata(f, path)
        except BaseException:
            f.close()
            raise
        return cls(path, f, meta, lock)

    def close(self) -> None:
        if self._file.id.valid:
            self._file.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

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

    def _check_writable(self) -> None:
        if self._file.mode != "r+":
            raise StoreError(f"{self.path} is open read-only")

    def write_chunk(self, chunk: int, theta: Tensor | np.ndarray, x: Tensor | np.ndarray) -> None:
        """Writes and commits the rows of ``chunk`` (see the module docstring)."""
        self._check_writable()
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
        f["chunk_crc32"][chunk] = crc(th, xx)
        fsync(f)
        f["chunk_done"][chunk] = 1
        fsync(f)
        self._verified.add(chunk)

    def stored_checksum(self, chunk: int) -> int:
        """The CRC-32 recorded when ``chunk`` was committed."""
        self.chunk_bounds(chunk)
        return int(self._file["chunk_crc32"][chunk])

    def mark_pending(self, chunks: list[int]) -> None:
        """Un-commits ``chunks`` (their rows are then re-simulated by a campaign); the
        recorded checksums are kept, so a repair can show it restored the original rows."""
        self._check_writable()
        for c in chunks:
            self.chunk_bounds(c)
            self._file["chunk_done"][c] = 0
            self._verified.discard(c)
        fsync(self._file)

    # -- reading ------------------------------------------------------------------------
    def load(self, *, device: torch.device | str = "cpu", allow_incomplete: bool = False,
             num_rows: int | None = None) -> tuple[Tensor, Tensor]:
        """Committed rows as ``(theta (M, D), x (M, *event_shape))``, in row order, each
        chunk checked against its checksum.

        Args:
            device: where the tensors go.
            allow_incomplete: return the committed rows of an unfinished campaign.
            num_rows: only the first ``num_rows`` rows (all committed).

        Raises:
            StoreError: the campaign is incomplete and ``allow_incomplete`` is false, or a
                chunk's rows do not match their checksum (the message names the chunks).
        """
        done = self._done()
        n = self.metadata.num_simulations if num_rows is None else int(num_rows)
        if not 1 <= n <= self.metadata.num_simulations:
            raise StoreError(f"num_rows must be 1..{self.metadata.num_simulations}, got {n}")
        last = (n - 1) // self.metadata.chunk_size
        if not done[: last + 1].all() and not allow_incomplete:
            raise StoreError(
                f"{self.path} holds {self.num_completed} of {self.metadata.num_simulations} "
                "simulations (campaign incomplete); re-run the same `sbi-astro simulate` "
                "command to resume it, or pass allow_incomplete=True"
            )
        chunks = [int(c) for c in np.flatnonzero(done[: last + 1])]
        if len(chunks) == last + 1:
            theta, x = self._file["theta"][:n], self._file["x"][:n]
            spans = [(c, *self.chunk_bounds(c)) for c in chunks]
        else:
            rows = np.concatenate([np.arange(*self.chunk_bounds(c)) for c in chunks])
            rows = rows[rows < n]
            theta, x = self._file["theta"][rows], self._file["x"][rows]
            spans, pos = [], 0
            for c in chunks:
                a, b = self.chunk_bounds(c)
                spans.append((c, pos, pos + b - a))
                pos += b - a
        self._check_spans(spans, theta, x, n)
        return torch.from_numpy(theta).to(device), torch.from_numpy(x).to(device)

    def _check_spans(self, spans: list[tuple[int, int, int]], theta: np.ndarray,
                     x: np.ndarray, n: int) -> None:
        stored = self._file["chunk_crc32"][...]
        bad = []
        for c, a, b in spans:
            if c in self._verified or b > len(theta):
                continue  # checked already, or a chunk cut by num_rows (checked on its own)
            if crc(theta[a:b], x[a:b]) != int(stored[c]):
                bad.append(c)
            else:
                self._verified.add(c)
        cut = [c for c, a, b in spans if b > len(theta) and c not in self._verified]
        bad += [c for c in cut if c in self.verify(chunks=[c])]
        if bad:
            raise StoreError(damaged_message(self.path, bad, self))

    def verify(self, chunks: list[int] | None = None) -> list[int]:
        """Recomputes the checksums of committed chunks (all, or ``chunks``); returns the
        chunks whose rows do not match."""
        bad = []
        stored = self._file["chunk_crc32"][...]
        todo = self.completed_chunks() if chunks is None else chunks
        for c in todo:
            a, b = self.chunk_bounds(c)
            if crc(self._file["theta"][a:b], self._file["x"][a:b]) != int(stored[c]):
                bad.append(c)
            else:
                self._verified.add(c)
        return bad

    def __repr__(self) -> str:
        m = self.metadata
        return (f"SimulationStore({str(self.path)!r}, simulator={m.simulator!r}, "
                f"{self.num_completed}/{m.num_simulations} rows)")


def damaged_message(path: Path, chunks: list[int], store: SimulationStore) -> str:
    """The error text for damaged chunks: which, where, and how to repair them."""
    shown = ", ".join(f"{c} (rows {a}-{b - 1})" for c, (a, b) in
                      ((c, store.chunk_bounds(c)) for c in chunks[:5]))
    more = f" and {len(chunks) - 5} more" if len(chunks) > 5 else ""
    return (f"{path}: chunk(s) {shown}{more} do not match their checksums (the file was "
            f"damaged after they were written); their rows were not used. Run `sbi-astro "
            f"verify {path} --repair` to re-simulate them from their seeds")
