"""Batches streamed from a simulation store: training on stores larger than memory.

:class:`StoreBatches` reads a store's rows chunk by chunk, never the whole file:

* **held out by range**: the last ``ceil(validation_fraction * N)`` of the first ``N`` rows
  validate, the rows before them train (rows are counter-seeded, so a range is as random as
  any subset);
* **shuffled**: each epoch visits the training chunks in a new order, seeded by
  ``(seed, epoch)``, reads them in blocks of about ``block_bytes`` and shuffles the rows
  within a block (the same batches whatever the machine);
* **bounded memory**: at most three blocks in memory (the one trained on, the next one,
  the one being read), whatever the size of the store;
* **prefetched**: a thread reads (and checks) the next block while the network trains on
  the current one, so the training loop does not wait on the disk;
* **checked**: every chunk's rows are checked against their checksum the first time they
  are read; rows with non-finite values or parameters outside the prior are dropped (and
  counted, as :func:`~sbi_astro.inference.data.check_theta_x` does in memory).

Example:
    >>> import tempfile, pathlib
    >>> from sbi_astro.campaign import run_campaign
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "gl.h5"
    >>> run_campaign(path, "gaussian_linear", num_simulations=1000, chunk_size=100,
    ...              device="cpu", progress=False).close()
    >>> data = StoreBatches(path, batch_size=128, validation_fraction=0.1, seed=0)
    >>> data.num_train, data.num_validation
    (900, 100)
    >>> sum(len(t) for t, x in data.epoch(0)), sum(len(t) for t, x in data.validation())
    (900, 100)
"""

from __future__ import annotations

import math
import queue
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from .errors import ShapeError, StoreError
from .priors import Prior
from .store import SimulationStore, damaged_message

#: rows are read in blocks of about this many bytes (up to three blocks are in memory: the
#: one trained on, the next one, the one being read)
BLOCK_BYTES = 16 * 2**20
#: :func:`~sbi_astro.inference.training.train_from_store` streams a training set larger than
#: this fraction of the memory available (in memory, training holds the rows, a float32
#: copy and sbi's batches: about three times their size)
STREAM_FRACTION = 0.25


def memory_available() -> int:
    """Bytes this process may still use: physical memory, or what is left under the
    address-space limit (``RLIMIT_AS``) when one is set and lower."""
    import os
    import resource

    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return total
    return min(total, soft - _address_space())


def _address_space() -> int:
    """Bytes of address space this process maps now (Linux; 0 where unknown)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def fits_in_memory(nbytes: int) -> bool:
    """Whether a training set of ``nbytes`` is trained on in memory (else streamed)."""
    return nbytes <= STREAM_FRACTION * memory_available()


def row_bytes(meta: Any) -> int:
    """Bytes of one stored row (theta and x) of a store with metadata ``meta``."""
    return np.dtype(meta.dtype).itemsize * (len(meta.param_names) + int(
        np.prod(meta.event_shape, dtype=np.int64)))


class StoreBatches:
    """Shuffled training batches and validation batches of a store, read as needed.

    Args:
        path: the store (complete up to ``num_rows``).
        batch_size: rows per batch.
        validation_fraction: the fraction of rows, at the end of the range, that validate.
        seed: seeds the chunk order and the row shuffles of every epoch.
        num_rows: use the first ``num_rows`` rows (default: all).
        block_bytes: bytes read per block (memory: about twice this, plus one batch;
            default :data:`BLOCK_BYTES`).
        prior: rows whose parameters lie outside it are dropped (with their count).
        device: where batches go.
    """

    def __init__(self, path: str | Path, *, batch_size: int, validation_fraction: float,
                 seed: int, num_rows: int | None = None, block_bytes: int | None = None,
                 prior: Prior | None = None, device: str | torch.device = "cpu"):
        self.path = Path(path)
        with SimulationStore.open(self.path) as store:
            meta = store.metadata
            n = meta.num_simulations if num_rows is None else int(num_rows)
            if not 1 <= n <= meta.num_simulations:
                raise StoreError(f"num_rows must be 1..{meta.num_simulations}, got {n}")
            last = (n - 1) // meta.chunk_size
            missing = sorted(set(range(last + 1)) - set(store.completed_chunks()))
            if missing:
                raise StoreError(f"{self.path}: chunk(s) {missing[:5]} of the first {n} rows "
                                 "are not committed (campaign incomplete); re-run the "
                                 "campaign to finish it")
        self.metadata = meta
        self.num_rows = n
        self.num_validation = max(1, math.ceil(validation_fraction * n))
        self.num_train = n - self.num_validation
        if self.num_train < batch_size:
            raise ShapeError(f"{self.num_train} training rows are fewer than one batch "
                             f"({batch_size}); use more simulations or a smaller batch_size")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.prior = prior
        self.device = torch.device(device)
        block = BLOCK_BYTES if block_bytes is None else int(block_bytes)
        self.block_rows = max(self.batch_size, block // row_bytes(meta))
        self.dropped = 0  # rows dropped (non-finite or outside the prior) in the last pass
        self.wait_seconds = 0.0  # time the consumer waited for the disk, all passes
        self._checked: set[int] = set()
        self._width = int(np.prod(meta.event_shape, dtype=np.int64))

    # -- row ranges ---------------------------------------------------------------------
    def _pieces(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """``(chunk, a, b)``: the rows ``[a, b)`` of each chunk inside ``[start, stop)``."""
        c = self.metadata.chunk_size
        return [(k, max(start, k * c), min(stop, (k + 1) * c))
                for k in range(start // c, (stop - 1) // c + 1)]

    def _blocks(self, pieces: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
        blocks, current, rows = [], [], 0
        for piece in pieces:
            current.append(piece)
            rows += piece[2] - piece[1]
            if rows >= self.block_rows:
                blocks.append(current)
                current, rows = [], 0
        return blocks + ([current] if current else [])

    # -- reading ------------------------------------------------------------------------
    def _read(self, f: h5py.File, block: list[tuple[int, int, int]]
              ) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``block`` read into one pair of arrays (no other copy), each chunk
        checked once against its checksum."""
        rows = sum(b - a for _, a, b in block)
        meta = self.metadata
        theta = np.empty((rows, len(meta.param_names)), dtype=meta.dtype)
        x = np.empty((rows, *meta.event_shape), dtype=meta.dtype)
        pos = 0
        for k, a, b in block:
            f["theta"].read_direct(theta, np.s_[a:b], np.s_[pos: pos + b - a])
            f["x"].read_direct(x, np.s_[a:b], np.s_[pos: pos + b - a])
            if k not in self._checked:
                lo, hi = k * meta.chunk_size, min((k + 1) * meta.chunk_size,
                                                  meta.num_simulations)
                th_k, x_k = ((theta[pos: pos + b - a], x[pos: pos + b - a]) if (a, b) == (lo, hi)
                             else (f["theta"][lo:hi], f["x"][lo:hi]))  # a cut chunk: whole
                if _crc(th_k, x_k) != int(f["chunk_crc32"][k]):
                    with SimulationStore.open(self.path) as store:
                        raise StoreError(damaged_message(self.path, [k], store))
                self._checked.add(k)
            pos += b - a
        return theta, x

    def _kept(self, theta: Tensor, x: Tensor) -> Tensor:
        """Indices of the usable rows (finite, inside the prior); counts the others."""
        ok = torch.isfinite(theta).all(1)
        for i in range(0, len(x), 1024):  # in slices: no full-size temporary
            ok[i: i + 1024] &= torch.isfinite(x[i: i + 1024].reshape(-1, self._width)).all(1)
        if self.prior is not None:
            ok &= self.prior.within_support(theta) | ~ok
        self.dropped += int((~ok).sum())
        return torch.nonzero(ok).squeeze(1)

    def _stream(self, blocks: list[list[tuple[int, int, int]]], rng: np.random.Generator | None
                ) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of ``blocks`` (rows shuffled within each block when ``rng``); a thread
        reads and checks the next block while this one is trained on."""
        q: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def prepare(f: h5py.File, block: list[tuple[int, int, int]]) -> tuple[Tensor, ...]:
            theta, x = (torch.from_numpy(a) for a in self._read(f, block))
            index = self._kept(theta, x)
            if rng is not None:
                index = index[torch.from_numpy(rng.permutation(len(index)))]
            return theta, x, index

        def put(item: Any) -> bool:
            """Hands ``item`` over unless the consumer has stopped (every put waits with a
            timeout: a consumer that stops early never leaves this thread blocked)."""
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def reader() -> None:
            try:
                with h5py.File(self.path, "r") as f:
                    for block in blocks:
                        if not put(prepare(f, block)):
                            return
                put(None)
            except BaseException as err:  # handed to the consumer, raised there
                put(err)

        thread = threading.Thread(target=reader, name="sbi-astro-prefetch", daemon=True)
        self.dropped = 0
        thread.start()
        try:
            yield from self._batches(q)
        finally:
            stop.set()
            thread.join()

    def _batches(self, q: queue.Queue) -> Iterator[tuple[Tensor, Tensor]]:
        """Batches of ``batch_size`` rows from the blocks ``q`` hands over (a block's last
        rows are topped up from the next block's)."""
        carry: tuple[Tensor, Tensor] | None = None
        size = self.batch_size
        while True:
            t0 = time.perf_counter()
            item = q.get()
            self.wait_seconds += time.perf_counter() - t0
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            theta, x, index = item
            start = 0
            if carry is not None:  # the short tail of the previous block, topped up
                start = min(size - len(carry[0]), len(index))
                top = index[:start]
                carry = torch.cat((carry[0], theta[top])), torch.cat((carry[1], x[top]))
                if len(carry[0]) < size:
                    continue
                yield self._to(*carry)
                carry = None
            full = start + (len(index) - start) // size * size
            for i in range(start, full, size):
                rows = index[i: i + size]
                yield self._to(theta[rows], x[rows])
            if full < len(index):
                rows = index[full:]
                carry = theta[rows], x[rows]
        if carry is not None and len(carry[0]) > 1:  # (a lone last row waits an epoch:
            yield self._to(*carry)                   # NRE contrasts at least two)

    def _to(self, theta: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        return (theta.to(self.device, torch.float32), x.to(self.device, torch.float32))

    # -- public -------------------------------------------------------------------------
    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Training batches ``(theta (B, D), x (B, *E))`` of ``epoch``: chunks in a seeded
        order, rows shuffled within each block."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        pieces = self._pieces(0, self.num_train)
        order = rng.permutation(len(pieces))
        return self._stream(self._blocks([pieces[i] for i in order]), rng)

    def validation(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Validation batches, in row order."""
        return self._stream(self._blocks(self._pieces(self.num_train, self.num_rows)), None)

    def sample(self, num_rows: int) -> tuple[Tensor, Tensor]:
        """About ``num_rows`` training rows spread over the whole range (every chunk that
        holds one): what builds the network's standardisation layers."""
        step = max(1, self.num_train // max(1, num_rows))
        rows = np.arange(0, self.num_train, step)[:num_rows]
        with h5py.File(self.path, "r") as f:
            theta, x = f["theta"][rows], f["x"][rows]
        theta, x = torch.from_numpy(theta), torch.from_numpy(x)
        rows = self._kept(theta, x)
        return self._to(theta[rows], x[rows])


def _crc(theta: np.ndarray, x: np.ndarray) -> int:
    """:func:`~sbi_astro.store_format.crc` without copying the rows (same value)."""
    return zlib.crc32(np.ascontiguousarray(x).data,
                      zlib.crc32(np.ascontiguousarray(theta).data)) & 0xFFFFFFFF
