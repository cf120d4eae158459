"""Simulation campaigns: draw parameters from the prior, simulate, store, in resumable chunks.

Every row ``i`` of a campaign with seed ``s`` uses the row key ``fold(root(s), i)``: its
parameters come from the sub-key ``fold(row_key, 0)`` and its noise from
``fold(row_key, 1)``.  A chunk ``c`` (rows ``[c*C, (c+1)*C)``) is thus an independent unit
of work, a pure function of ``(simulator, options, seed, c, C)``: it can run in any order,
in another process or on another machine, and gives the same rows: ``workers=N``,
``scheduler=`` or ``cluster=`` run the chunks as tasks on a Dask cluster
(:mod:`sbi_astro.executor`; Dask is imported only then), and the store is bit for bit the
one this process writes alone.  Re-running an interrupted campaign with
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

import time
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError, StoreError
from .executor import ClusterSpec
from .provenance import package_versions
from .random import check_seed
from .registry import load_simulator
from .rows import row_keys, simulate_rows  # noqa: F401 - the unit of work, re-exported
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


def run_campaign(path: str | Path, simulator: str | Simulator, *, num_simulations: int,
                 seed: int = 0, chunk_size: int = 1000, options: dict[str, Any] | None = None,
                 device: str | torch.device | None = None, workers: int = 1,
                 scheduler: str | None = None, cluster: ClusterSpec | None = None,
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
        workers: worker processes of a local Dask cluster (CPU; 1: simulate in this
            process, without Dask); results do not depend on it.
        scheduler: address or scheduler file of a running Dask cluster to simulate on.
        cluster: where to simulate, in full (:class:`~sbi_astro.executor.ClusterSpec`,
            e.g. a SLURM cluster); instead of ``workers`` and ``scheduler``.
        progress: show a progress bar with the simulation rate (and, on a cluster, the
            workers alive and the dashboard's address).

    Returns:
        The open store (complete); close it when done.
    """
    if num_simulations < 1:
        raise ConfigError(f"num_simulations must be >= 1, got {num_simulations}")
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if cluster is None:
        cluster = ClusterSpec(workers=workers, scheduler=scheduler)
    elif workers != 1 or scheduler is not None:
        raise ConfigError("give either cluster= or workers=/scheduler=, not both")
    cluster.check()
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
        _fill(store, sim, seed, cluster, progress)
    except BaseException:
        store.close()
        raise
    return store


def _fill(store: SimulationStore, sim: Simulator, seed: int, cluster: ClusterSpec,
          progress: bool) -> None:
    pending = store.pending_chunks()
    if not pending:
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=store.metadata.num_simulations, initial=store.num_completed,
               disable=not progress, unit="sim", desc=f"simulating {sim.name}",
               dynamic_ncols=True)
    t0, done_rows, workers = time.perf_counter(), 0, ""
    chunks = [store.num_chunks - len(pending), store.num_chunks]  # committed, total

    def postfix() -> None:
        rate = done_rows / max(time.perf_counter() - t0, 1e-9)
        cluster_state = f", {chunks[0]}/{chunks[1]} chunks, {workers}" if workers else ""
        bar.set_postfix_str(f"{rate:,.0f} sims/s{cluster_state}")

    def commit(chunk: int, theta: Any, x: Any) -> None:
        nonlocal done_rows
        store.write_chunk(chunk, theta, x)
        n = len(theta)
        done_rows += n
        chunks[0] += 1
        bar.update(n)
        postfix()

    def status(line: str) -> None:  # the cluster's state (workers alive), every second
        nonlocal workers
        if line != workers:
            workers = line
            postfix()

    try:
        # a GPU simulator given only workers=N runs here: its device is the parallelism
        if cluster.distributed and (sim.device.type == "cpu" or cluster.workers == 1):
            from . import executor  # it imports Dask only when called

            with executor.open_client(cluster) as client:
                t0 = time.perf_counter()  # the rate of the cluster, not of its start-up
                if progress:
                    executor.log(f"simulating on {cluster.describe()}; "
                                 f"{executor.dashboard_line(client)}")
                executor.run_chunks(client, store, sim, seed, commit,
                                    threads=cluster.threads, status=status)
        else:
            for c in pending:
                a, b = store.chunk_bounds(c)
                theta, x = simulate_rows(sim, seed, a, b)
                commit(c, theta, x)
    finally:
        bar.close()


def repair_store(path: str | Path, *, device: str | torch.device | None = None,
                 workers: int = 1, cluster: ClusterSpec | None = None,
                 progress: bool = True) -> dict[int, bool]:
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
        _fill(store, sim, meta.seed, cluster or ClusterSpec(workers=workers), progress)
        return {c: store.stored_checksum(c) == original[c] for c in bad}
