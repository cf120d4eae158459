"""Campaign chunks as Dask tasks: a local cluster, an existing one, or a batch system's.

A campaign chunk is a pure function of ``(simulator, options, prior, seed, rows)``
(:func:`sbi_astro.rows.simulate_rows`), so it can run on any worker.  Here each pending
chunk is one ``dask.distributed`` task; this process (the *client*) is the store's single
writer and commits finished chunks in completion order, each with its checksum, exactly as
the local runner does: the store is bit for bit the one the local runner writes for the same
seed, chunk size and simulator.

* ``ClusterSpec(workers=N)``: a ``LocalCluster`` of ``N`` worker processes, each with
  ``threads`` torch threads (default 1: processes, not threads, scale the simulators);
* ``ClusterSpec(scheduler="tcp://host:8786")`` or a scheduler file: joins a running cluster;
* ``ClusterSpec(kind="slurm", jobs=4, config="hpc.yaml")``: a dask-jobqueue cluster
  (:mod:`sbi_astro.hpc`).

Faults: a worker that dies mid-chunk (killed, out of memory, a lost node) loses only its
task, which the scheduler re-runs on another worker (``distributed.scheduler.allowed-failures``
times, then :class:`~sbi_astro.errors.ChunkError`); a simulator that raises on a chunk is not
retried (its rows are deterministic, so it would raise again): the other chunks are still
committed and a :class:`~sbi_astro.errors.ChunkError` then names the chunk, its rows and the
range of its parameters.  A killed client loses nothing committed: re-running resumes.

At most a few chunks per worker thread are in flight, so the client's and the workers'
memory stay bounded however long the campaign.  Dask is imported only here, and this module
only when a campaign asks for a cluster.

Example:
    >>> spec = ClusterSpec(workers=2)
    >>> spec.distributed, spec.describe()
    (True, 'a local Dask cluster of 2 worker processes x 1 torch thread')
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .errors import ChunkError, ConfigError
from .random import RowRandom, fold
from .rows import row_keys, simulate_given, simulate_rows
from .simulator import Simulator
from .store import SimulationStore

#: cluster kinds of dask-jobqueue this package knows (``local`` runs the same jobs as
#: local processes: the code path of a batch system, without one)
KINDS = ("slurm", "pbs", "local")
#: tasks in flight per worker thread (the client commits while the next ones run)
IN_FLIGHT_PER_THREAD = 2


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """Where a campaign's chunks run (validated when built).

    Args:
        workers: worker processes of a local cluster (1 and nothing else: no cluster).
        threads: torch threads per task (each worker process runs one task at a time).
        scheduler: address (``tcp://host:port``) or scheduler-file path of a running cluster.
        kind: ``"slurm"``, ``"pbs"`` or ``"local"``: a dask-jobqueue cluster.
        jobs: batch jobs to submit (with ``kind``).
        config: YAML file of the dask-jobqueue settings (with ``kind``, see :mod:`.hpc`).
    """

    workers: int = 1
    threads: int = 1
    scheduler: str | None = None
    kind: str | None = None
    jobs: int = 1
    config: str | None = None

    def __post_init__(self) -> None:
        for name in ("workers", "threads", "jobs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"cluster {name} must be a positive integer, got {value!r}")
        if self.kind is not None and self.kind not in KINDS:
            raise ConfigError(f"cluster kind must be one of {', '.join(KINDS)}, got "
                              f"{self.kind!r}")
        chosen = [n for n, on in (("workers", self.workers > 1),
                                  ("scheduler", self.scheduler is not None),
                                  ("cluster", self.kind is not None)) if on]
        if len(chosen) > 1:
            raise ConfigError(f"give one of --workers, --scheduler and --cluster, not "
                              f"{' and '.join(chosen)}")
        if self.kind is None and (self.config is not None or self.jobs != 1):
            raise ConfigError("--jobs and --cluster-config apply to a batch-system cluster; "
                              "add --cluster slurm (or pbs)")
        if self.scheduler is not None:
            target = str(self.scheduler).strip()
            if not Path(target).is_file() and ":" not in target:
                raise ConfigError(f"scheduler {target!r} is neither an existing scheduler "
                                  "file nor an address such as tcp://HOST:8786")

    def check(self) -> None:
        """Checks what can be checked before a campaign starts (the batch settings file)."""
        if self.kind is not None:
            from .hpc import read_settings

            read_settings(self.kind, self.config)

    @property
    def distributed(self) -> bool:
        """Whether chunks run on a Dask cluster (else in this process)."""
        return self.workers > 1 or self.scheduler is not None or self.kind is not None

    def describe(self) -> str:
        if self.scheduler is not None:
            return f"the Dask cluster at {self.scheduler}"
        if self.kind is not None:
            return f"a dask-jobqueue {self.kind} cluster of {self.jobs} job(s)"
        plural = "s" if self.threads > 1 else ""
        return (f"a local Dask cluster of {self.workers} worker processes x {self.threads} "
                f"torch thread{plural}")


@contextmanager
def open_client(spec: ClusterSpec) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster ``spec`` describes (closed on exit; a cluster
    started here is shut down with it)."""
    from distributed import Client, LocalCluster

    if spec.scheduler is not None:
        target = str(spec.scheduler).strip()
        is_file = Path(target).is_file()
        try:
            client = (Client(scheduler_file=target, timeout="30s") if is_file else
                      Client(target, timeout="30s"))
        except OSError as err:
            raise ConfigError(f"cannot reach the Dask scheduler {target} ({err}); start it "
                              "(`dask scheduler`) or check the address") from None
        with client:
            yield client
        return
    if spec.kind is not None:
        from .hpc import jobqueue_cluster

        cluster = jobqueue_cluster(spec.kind, spec.config)
        cluster.scale(jobs=spec.jobs)
    else:
        # one task per process; each task runs torch on spec.threads threads
        cluster = LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
    with cluster, Client(cluster) as client:
        yield client


def simulator_ref(sim: Simulator) -> dict[str, Any]:
    """What a worker needs to rebuild ``sim``: its class (importable), options and prior.

    Raises:
        ConfigError: the class is defined in ``__main__`` (workers cannot import it).
    """
    cls = type(sim)
    if cls.__module__ == "__main__":
        raise ConfigError(f"the simulator class {cls.__qualname__} is defined in __main__, "
                          "which Dask workers cannot import; move it to a module (or "
                          "register it as a plugin)")
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "options": sim.options_dict(),
            "prior": dict(sim.prior_overrides), "dtype": str(sim.dtype)}


_WORKER_SIMULATORS: dict[str, Simulator] = {}


def _worker_simulator(ref: dict[str, Any], device: str | None) -> Simulator:
    key = json.dumps([ref, device], sort_keys=True)
    if key not in _WORKER_SIMULATORS:
        module, _, name = ref["class"].partition(":")
        cls: Any = importlib.import_module(module)
        for part in name.split("."):
            cls = getattr(cls, part)
        dtype = getattr(torch, ref["dtype"].removeprefix("torch."))
        _WORKER_SIMULATORS[key] = cls(device=device, dtype=dtype, prior=ref["prior"] or None,
                                      **ref["options"])
    return _WORKER_SIMULATORS[key]


def simulate_chunk(ref: dict[str, Any], device: str | None, threads: int, seed: int,
                   start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """The task: rows ``[start, stop)`` of the campaign, as numpy arrays (runs on a worker)."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    _heap_allocations()
    theta, x = simulate_rows(_worker_simulator(ref, device), seed, start, stop)
    return theta.cpu().numpy(), x.cpu().numpy()


def simulate_given_chunk(ref: dict[str, Any], device: str | None, threads: int,
                         theta: np.ndarray, seed: int, start: int) -> np.ndarray:
    """The task: simulations of the given ``theta`` as rows ``[start, start + len(theta))``
    of ``seed`` (:func:`~sbi_astro.rows.simulate_given`; runs on a worker)."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    _heap_allocations()
    sim = _worker_simulator(ref, device)
    x = simulate_given(sim, torch.from_numpy(theta).to(sim.device), seed, start)
    return x.cpu().numpy()


_ALLOCATOR_TUNED = False


def _heap_allocations() -> None:
    """Large allocations from the heap again, in a worker started by Dask's nanny.

    The nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes
    glibc's mmap threshold at 128 KiB: every large tensor is then a fresh ``mmap``, faulted
    in and zeroed page by page, and an image simulator ran 2.6 times slower (measured:
    1.18 s against 0.45 s per 128-row chunk).  Here the thresholds are set to the values
    glibc's own dynamic threshold grows to (32 MiB for mmap, twice that for trimming).
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    _ALLOCATOR_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to undo
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def chunk_error(store: SimulationStore, sim: Simulator, seed: int, chunk: int,
                err: BaseException, committed: int) -> ChunkError:
    """The error of a chunk whose task failed: the chunk, its rows and parameter ranges."""
    a, b = store.chunk_bounds(chunk)
    theta = sim.prior.sample_rows(RowRandom(fold(row_keys(seed, a, b, sim.device), 0)))
    return ChunkError(f"{sim.name} failed on chunk {chunk} (rows {a}-{b - 1}; "
                      f"{_ranges(sim, theta)}): {_why(err)}. {committed} other chunk(s) are "
                      f"committed in {store.path}; fix the simulator and re-run the same "
                      "command to resume")


def _ranges(sim: Simulator, theta: Tensor) -> str:
    """Each parameter's range over the rows ``theta (M, D)``, for error messages."""
    return ", ".join(f"{n} in [{lo:.4g}, {hi:.4g}]" for n, lo, hi in zip(
        sim.param_names, theta.min(0).values.tolist(), theta.max(0).values.tolist(),
        strict=True))


def _why(err: BaseException) -> str:
    """A failed task's error in one line (a task that killed its workers says so)."""
    why = " ".join(f"{type(err).__name__}: {err}".split())[:400]
    if type(err).__name__ == "KilledWorker":
        why = (f"it killed the workers that ran it ({why}): out of memory? try a smaller "
               "--chunk-size or more memory per worker")
    return why


def run_chunks(client: Any, store: SimulationStore, sim: Simulator, seed: int,
               commit: Callable[[int, np.ndarray, np.ndarray], None], *, threads: int = 1,
               status: Callable[[str], None] = lambda s: None) -> None:
    """Runs the store's pending chunks as tasks on ``client``'s cluster and commits each
    (``commit(chunk, theta, x)``) as it finishes; ``status`` gets the cluster's state.

    Args:
        threads: torch threads per task (one task runs per worker thread).

    Raises:
        ChunkError: a chunk failed (after every other chunk was committed).
    """
    from distributed import wait

    ref, device = simulator_ref(sim), _task_device(sim)
    token = uuid.uuid4().hex[:12]  # keys unique to this run, even on a shared scheduler
    todo = list(reversed(store.pending_chunks()))  # pop() from the end: lowest chunks first
    running: dict[Any, int] = {}
    failures: list[tuple[int, BaseException]] = []
    committed = 0
    while todo or running:
        # refilled every second: workers that join (batch jobs starting) get work at once
        limit = IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
        while todo and len(running) < limit:
            c = todo.pop()
            running[client.submit(simulate_chunk, ref, device, threads, seed,
                                  *store.chunk_bounds(c), key=f"sbi-astro-chunk-{c}-{token}",
                                  pure=False)] = c
        try:
            finished = wait(list(running), timeout=1.0, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            finished = set()
        for fut in sorted(finished, key=running.get):
            c = running.pop(fut)
            try:
                # blocks while a result lost with its worker is being recomputed
                theta, x = _result(fut)
            except Exception as err:  # noqa: BLE001 - the task's own error, reported
                failures.append((c, err))
            else:
                commit(c, theta, x)
                committed += 1
            fut.release()
        status(f"{len(client.nthreads())} workers")
    if failures:
        c, err = min(failures, key=lambda f: f[0])
        raise chunk_error(store, sim, seed, c, err, committed) from None


def _result(fut: Any) -> Any:
    """The future's result; its task's exception, or a RuntimeError if it was cancelled
    (a future whose worker died after it finished is recomputed: this waits for it)."""
    if fut.cancelled():
        raise RuntimeError("the task was cancelled (the scheduler went away?)")
    return fut.result()


def dashboard_line(client: Any) -> str:
    """Where the cluster's dashboard is, or why there is none."""
    services = client.scheduler_info(n_workers=0).get("services", {})
    if "dashboard" not in services:
        return "Dask dashboard: not available (install bokeh>=3.1 to get one)"
    return f"Dask dashboard: {client.dashboard_link}"


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class RowSimulations:
    """Row-keyed simulations in chunks of ``chunk_size`` rows, in this process or as tasks on
    a Dask cluster: the held-out simulations and posterior predictive re-simulations of a
    calibration.  Each chunk is the same pure function of its rows wherever it runs, so the
    numbers are bit for bit the same on a cluster and here (for the same ``chunk_size``).

    Use it as a context manager: a cluster is started (or joined) on entry and let go on
    exit.  Without a distributed ``cluster`` Dask is never imported.  As for campaigns, a
    simulator on a GPU given only ``workers=N`` runs here (its device is the parallelism).

    Example:
        >>> from sbi_astro import load_simulator
        >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
        >>> with RowSimulations(sim, chunk_size=3) as rows:
        ...     theta, x = rows.joint(seed=7, n=5)
        ...     x_again = rows.given(theta, seed=7)
        >>> bool((x == x_again).all())  # the same rows, the same noise keys
        True
    """

    def __init__(self, simulator: Simulator, cluster: ClusterSpec | None = None, *,
                 chunk_size: int = 100, log: Callable[[str], None] | None = None) -> None:
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.simulator = simulator
        self.cluster = cluster if cluster is not None else ClusterSpec()
        self.chunk_size = chunk_size
        self._log = log
        self._client: Any = None
        self._stack = ExitStack()
        #: where the chunks run, in words (for provenance)
        self.where = "this process"

    def __enter__(self) -> RowSimulations:
        spec, sim = self.cluster, self.simulator
        if spec.distributed and (sim.device.type == "cpu" or spec.workers == 1):
            spec.check()
            self._client = self._stack.enter_context(open_client(spec))
            self.where = spec.describe()
            if self._log is not None:
                self._log(f"simulating on {spec.describe()}; {dashboard_line(self._client)}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._client = None
        self._stack.close()

    def joint(self, seed: int, n: int) -> tuple[Tensor, Tensor]:
        """Rows ``[0, n)`` of ``seed``: ``theta (n, D)`` from the prior and ``x (n, *E)``,
        on the simulator's device."""
        sim = self.simulator
        bounds = self._bounds(n)
        if self._client is None:
            parts = [simulate_rows(sim, seed, a, b) for a, b in bounds]
        else:
            ref, device = simulator_ref(sim), _task_device(sim)
            out = self._gather(simulate_chunk, [(ref, device, self.cluster.threads, seed, a, b)
                                                for a, b in bounds], seed, bounds,
                               lambda a, b: sim.prior.sample_rows(
                                   RowRandom(fold(row_keys(seed, a, b, sim.device), 0))))
            parts = [(torch.from_numpy(t).to(sim.device), torch.from_numpy(x).to(sim.device))
                     for t, x in out]
        return torch.cat([t for t, _ in parts]), torch.cat([x for _, x in parts])

    def given(self, theta: Tensor, seed: int) -> Tensor:
        """Simulations ``x (M, *E)`` of the given ``theta (M, D)``, row ``i`` keyed by
        ``(seed, i)``, on ``theta``'s device."""
        bounds = self._bounds(theta.shape[0])
        if self._client is None:
            parts = [simulate_given(self.simulator, theta[a:b], seed, a) for a, b in bounds]
        else:
            sim = self.simulator
            ref, device = simulator_ref(sim), _task_device(sim)
            host = theta.detach().cpu().numpy()
            out = self._gather(simulate_given_chunk,
                               [(ref, device, self.cluster.threads, host[a:b], seed, a)
                                for a, b in bounds], seed, bounds, lambda a, b: theta[a:b])
            parts = [torch.from_numpy(x).to(theta.device) for x in out]
        return torch.cat(parts)

    def _bounds(self, n: int) -> list[tuple[int, int]]:
        return [(a, min(a + self.chunk_size, n)) for a in range(0, n, self.chunk_size)]

    def _gather(self, fn: Callable[..., Any], calls: list[tuple[Any, ...]], seed: int,
                bounds: list[tuple[int, int]], theta_of: Callable[[int, int], Tensor]
                ) -> list[Any]:
        """Runs ``fn(*call)`` for every call (rows ``bounds``) as tasks; the results in order.

        Raises:
            ChunkError: a task failed (after the scheduler's retries of lost workers).
        """
        from distributed import wait

        token = uuid.uuid4().hex[:12]
        futures = [self._client.submit(fn, *call, key=f"sbi-astro-rows-{k}-{token}", pure=False)
                   for k, call in enumerate(calls)]
        wait(futures)
        results = []
        for fut, (a, b) in zip(futures, bounds, strict=True):
            try:
                results.append(_result(fut))
            except Exception as err:  # noqa: BLE001 - the task's own error, reported
                sim = self.simulator
                raise ChunkError(f"{sim.name} failed on rows {a}-{b - 1} of seed {seed} "
                                 f"({_ranges(sim, theta_of(a, b))}): {_why(err)}; "
                                 "fix the simulator and run again") from None
        return results


def _task_device(sim: Simulator) -> str | None:
    """The device a worker builds its simulator on: ``cpu``, or its own default."""
    return str(sim.device) if sim.device.type == "cpu" else None
