"""Simulation campaigns: draw parameters from the prior, simulate, store, in resumable chunks.

Every row ``i`` of a campaign with seed ``s`` uses the row key ``fold(root(s), i)``: its
parameters come from the sub-key ``fold(row_key, 0)`` and its noise from
``fold(row_key, 1)``.  A chunk ``c`` (rows ``[c*C, (c+1)*C)``) is thus an independent unit
of work, a pure function of ``(simulator, options, seed, c, C)``: it can run in any order,
in another process or on another machine (a distributed engine such as Dask only needs
:func:`simulate_rows`), and gives the same rows.  Re-running an interrupted campaign with
the same arguments resumes it: committed chunks are checked against their checksums and
kept, the others are simulated.  :func:`repair_store` re-simulates damaged chunks from their
seeds, which restores the original rows bit for bit (the re-simulated rows are checked
against the checksums recorded when they were first written).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "gl.h5"
    >>> store = run_campaign(path, "gaussian_linear", num_simulations=1000, seed=1,
    ...                      chunk_size=250, device="cpu", progress=False)
    >>> store.num_completed
    1000
    >>> store.close()
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError, StoreError
from .provenance import package_versions
from .random import RowRandom, check_seed, fold, key_from_seed
from .registry import load_simulator
from .simulator import Simulator
from .store import SimulationStore, StoreMetadata, damaged_message


def simulator_from_spec(spec: dict[str, Any], *, device: str | torch.device | None = None
                        ) -> Simulator:
    """The simulator a :meth:`~sbi_astro.simulator.Simulator.spec` describes."""
    return load_simulator(spec["name"], device=device, prior=spec.get("prior") or None,
                          **spec.get("options", {}))


def store_simulator(store: SimulationStore, *, device: str | torch.device | None = None
                    ) -> Simulator:
    """The simulator that made ``store`` (name, options and prior from its metadata).

    Raises:
        StoreError: the installed simulator has another prior, parameters or event shape
            than the store's (its rows would be mislabelled).
    """
    meta = store.metadata
    sim = load_simulator(meta.simulator, device=device, prior=meta.prior_overrides or None,
                         **meta.options)
    if sim.prior.to_dict() != meta.prior or list(sim.event_shape) != list(meta.event_shape):
        raise StoreError(f"{store.path}: the simulator {meta.simulator!r} installed now has "
                         "another prior or event shape than the one that made this store; "
                         "train on simulations of the installed version")
    return sim


def row_keys(seed: int, start: int, stop: int, device: torch.device | str = "cpu") -> Tensor:
    """Keys of campaign rows ``[start, stop)`` for ``seed``: ``(stop - start,)`` int64."""
    root = key_from_seed(seed).to(device)
    return fold(root, torch.arange(start, stop, device=device, dtype=torch.int64))


def simulate_rows(simulator: Simulator, seed: int, start: int, stop: int
                  ) -> tuple[Tensor, Tensor]:
    """Parameters and simulations of campaign rows ``[start, stop)`` (a unit of work).

    Returns:
        ``theta (M, D)`` and ``x (M, *event_shape)`` on the simulator's device.
    """
    keys = row_keys(seed, start, stop, simulator.device)
    theta = simulator.prior.sample_rows(RowRandom(fold(keys, 0)))
    x = simulator.simulate(theta, keys=fold(keys, 1))
    return theta, x


def _metadata(sim: Simulator, num_simulations: int, seed: int, chunk_size: int
              ) -> StoreMetadata:
    return StoreMetadata(
        simulator=sim.name, options=sim.options_dict(), seed=int(seed),
        prior_overrides=dict(sim.prior_overrides), data_files=sim.data_files(),
        num_simulations=int(num_simulations), chunk_size=int(chunk_size),
        param_names=list(sim.param_names), param_units=list(sim.param_units),
        event_shape=list(sim.event_shape), prior=sim.prior.to_dict(),
        dtype=str(torch.empty((), dtype=sim.dtype).numpy().dtype), versions=package_versions(),
    )


def check_store_path(path: str | Path | None) -> Path:
    """Checks that ``path`` can hold a store (before anything is simulated).

    Raises:
        ConfigError: empty, a folder, or in a folder that cannot be written.
    """
    from .outputs import _writable_parent

    if path is None or not str(path).strip():
        raise ConfigError("the store path is empty; give a file name such as sims.h5")
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; the store is one HDF5 file, e.g. "
                          f"{path / 'simulations.h5'}")
    _writable_parent(path)
    return path


def _open_or_create(path: Path, meta: StoreMetadata, sim: Simulator) -> SimulationStore:
    try:
        return SimulationStore.create(path, meta)
    except StoreError:
        if not path.exists():
            raise
    store = SimulationStore.open(path, mode="r+")
    try:
        have, want = store.metadata.campaign_identity(), meta.campaign_identity()
        if have["simulator"] == sim.name:  # options an earlier version stored without defaults
            have["options"] = sim.canonical_options(have["options"])
        if have != want:
            diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
            details = "; ".join(f"{k}: stored {a!r}, requested {b!r}"
                                for k, (a, b) in diff.items())
            raise StoreError(
                f"{path} belongs to a different campaign ({details}). Re-run with the original "
                "arguments to resume it, or write to a new file; the existing file was not "
                "modified")
        bad = store.verify()
        if bad:
            raise StoreError(damaged_message(path, bad, store))
    except BaseException:
        store.close()
        raise
    return store


def _worker_init(spec: dict[str, Any], device: str) -> None:
    global _WORKER_SIM
    torch.set_num_threads(1)
    _WORKER_SIM = simulator_from_spec(spec, device=device)


def _worker_chunk(seed: int, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    theta, x = simulate_rows(_WORKER_SIM, seed, start, stop)
    return theta.cpu().numpy(), x.cpu().numpy()


_WORKER_SIM: Simulator | None = None


def run_campaign(path: str | Path, simulator: str | Simulator, *, num_simulations: int,
                 seed: int = 0, chunk_size: int = 1000, options: dict[str, Any] | None = None,
                 device: str | torch.device | None = None, workers: int = 1,
                 progress: bool = True) -> SimulationStore:
    """Runs (or resumes) a campaign into the store at ``path``.

    Args:
        path: HDF5 store path; created if absent, resumed if it holds the same campaign.
        simulator: a registered name (with ``options``) or a :class:`Simulator` instance.
        num_simulations: total rows.
        seed: campaign seed.
        chunk_size: rows per committed chunk (a unit of work).
        options: simulator options when ``simulator`` is a name.
        device: where to simulate (default: CUDA if available).
        workers: worker processes (CPU); results do not depend on it.
        progress: show a progress bar with the simulation rate.

    Returns:
        The open store (complete); close it when done.
    """
    if num_simulations < 1:
        raise ConfigError(f"num_simulations must be >= 1, got {num_simulations}")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    seed = check_seed(seed)
    path = check_store_path(path)
    if isinstance(simulator, str):
        sim = load_simulator(simulator, device=device, **(options or {}))
    else:
        if options:
            raise ConfigError("options apply only when the simulator is given by name")
        sim = simulator
    store = _open_or_create(path, _metadata(sim, num_simulations, seed, chunk_size), sim)
    try:
        _fill(store, sim, seed, workers, progress)
    except BaseException:
        store.close()
        raise
    return store


def _fill(store: SimulationStore, sim: Simulator, seed: int, workers: int,
          progress: bool) -> None:
    pending = store.pending_chunks()
    if not pending:
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=store.metadata.num_simulations, initial=store.num_completed,
               disable=not progress, unit="sim", desc=f"simulating {sim.name}",
               dynamic_ncols=True)
    t0, done_rows = time.perf_counter(), 0

    def commit(chunk: int, theta: Any, x: Any) -> None:
        nonlocal done_rows
        store.write_chunk(chunk, theta, x)
        n = len(theta)
        done_rows += n
        bar.update(n)
        bar.set_postfix_str(f"{done_rows / max(time.perf_counter() - t0, 1e-9):,.0f} sims/s")

    try:
        if workers == 1 or sim.device.type != "cpu":
            for c in pending:
                a, b = store.chunk_bounds(c)
                theta, x = simulate_rows(sim, seed, a, b)
                commit(c, theta, x)
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init,
                                        initargs=(sim.spec(), "cpu")) as pool:
                futures = {pool.submit(_worker_chunk, seed, *store.chunk_bounds(c)): c
                           for c in pending}
                for fut in cf.as_completed(futures):
                    commit(futures[fut], *fut.result())
    finally:
        bar.close()


def repair_store(path: str | Path, *, device: str | torch.device | None = None,
                 workers: int = 1, progress: bool = True) -> dict[int, bool]:
    """Re-simulates the chunks of a store whose rows do not match their checksums.

    Every row is a pure function of the campaign's simulator, options, seed and row index,
    so re-simulating a damaged chunk restores its original rows; that it did is checked
    against the checksum recorded when the chunk was first committed.

    Returns:
        ``{chunk: restored}`` for every damaged chunk, ``restored`` true when the new rows
        match the original checksum bit for bit (empty when nothing was damaged).

    Raises:
        StoreError: the simulator is not installed or cannot rebuild the campaign.
    """
    with SimulationStore.open(path, mode="r+") as store:
        bad = store.verify()
        if not bad:
            return {}
        meta = store.metadata
        original = {c: store.stored_checksum(c) for c in bad}
        sim = store_simulator(store, device=device)
        if list(sim.event_shape) != list(meta.event_shape) or \
                list(sim.param_names) != list(meta.param_names):
            raise StoreError(f"{path}: the installed simulator {meta.simulator!r} has other "
                             "parameters or event shape than the store; it cannot re-simulate "
                             "the damaged chunks")
        store.mark_pending(bad)
        _fill(store, sim, meta.seed, workers, progress)
        return {c: store.stored_checksum(c) == original[c] for c in bad}
