"""Batch-system clusters (SLURM, PBS) for campaigns, through dask-jobqueue.

Settings come from a YAML file (read with ``yaml.safe_load``) with one section per batch
system; each section holds keyword arguments of dask-jobqueue's cluster of that kind::

    slurm:
      cores: 32                 # cores per job (required)
      memory: 64GB              # memory per job (required)
      processes: 32             # worker processes per job (default: cores, one task each)
      walltime: "04:00:00"
      queue: compute
      account: astro123
      job_script_prologue: ["module load python/3.11", "source ~/sbi/.venv/bin/activate"]
      local_directory: $TMPDIR  # worker spill space on the node
    pbs:
      cores: 24
      memory: 96GB
      resource_spec: "select=1:ncpus=24:mem=96GB"

Each job runs ``processes`` Dask workers with one thread each (one chunk at a time, torch on
one thread: simulators scale over processes).  ``kind="local"`` runs the very same job
scripts as local processes (dask-jobqueue's ``LocalCluster``): the code path of a batch
system, without one.  Unknown keys are refused before anything is submitted.

Example:
    >>> import pathlib, tempfile
    >>> cfg = pathlib.Path(tempfile.mkdtemp()) / "hpc.yaml"
    >>> _ = cfg.write_text("slurm: {cores: 4, memory: 8GB, walltime: '01:00:00', queue: short}")
    >>> script = job_script("slurm", cfg)
    >>> "#SBATCH -p short" in script and "--nworkers 4" in script and "--nthreads 1" in script
    True
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

#: keyword arguments of dask-jobqueue that sbi-astro sets itself, or that belong to it
_RESERVED = {"self", "scheduler", "name", "config_name", "base_class_kwargs", "kwargs",
             "extra", "env_extra", "job_extra", "header_skip", "worker_command", "nanny",
             "security", "protocol", "job_cls", "loop", "asynchronous", "n_workers",
             "job_kwargs", "scheduler_cls", "silence_logs", "shared_temp_directory",
             "dashboard_address"}  # the dashboard goes in scheduler_options


def _cluster_class(kind: str) -> type:
    if kind == "slurm":
        from dask_jobqueue import SLURMCluster

        return SLURMCluster
    if kind == "pbs":
        from dask_jobqueue import PBSCluster

        return PBSCluster
    if kind == "local":
        from dask_jobqueue.local import LocalCluster

        return LocalCluster
    raise ConfigError(f"cluster kind must be slurm, pbs or local, got {kind!r}")


def allowed_settings(kind: str) -> set[str]:
    """The settings a ``kind`` section may hold (dask-jobqueue's own keyword arguments)."""
    from dask_jobqueue.core import Job, JobQueueCluster

    cls = _cluster_class(kind)
    names: set[str] = set()
    for fn in (cls.job_cls.__init__, Job.__init__, JobQueueCluster.__init__):
        names |= set(inspect.signature(fn).parameters)
    return names - _RESERVED


def read_settings(kind: str, path: str | Path | None) -> dict[str, Any]:
    """The checked ``kind`` section of the settings file ``path`` (defaults filled in).

    Raises:
        ConfigError: missing file, not YAML, no ``kind`` section, an unknown key, or no
            ``cores`` / ``memory``.
    """
    if path is None:
        raise ConfigError(f"a {kind} cluster needs its settings: give --cluster-config "
                          f"FILE.yaml with a '{kind}:' section holding at least cores and "
                          "memory (see docs/scale_out.md)")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"cluster settings file {path} does not exist (or is a folder)")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not a valid YAML file: {' '.join(str(err).split())}"
                          ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get(kind), dict):
        raise ConfigError(f"{path} has no '{kind}:' section (a mapping of dask-jobqueue "
                          "settings such as cores, memory, walltime, queue, account)")
    settings = dict(doc[kind])
    unknown = sorted(set(settings) - allowed_settings(kind))
    if unknown:
        raise ConfigError(f"{path}: unknown {kind} setting(s) {unknown}; allowed: "
                          f"{sorted(allowed_settings(kind))}")
    for key in ("cores", "memory"):
        if key not in settings:
            raise ConfigError(f"{path}: the '{kind}' section needs '{key}' (per job), e.g. "
                              "cores: 32 and memory: 64GB")
    cores = settings["cores"]
    if not isinstance(cores, int) or isinstance(cores, bool) or cores < 1:
        raise ConfigError(f"{path}: {kind}.cores must be a positive integer, got {cores!r}")
    settings.setdefault("processes", cores)  # one single-threaded worker per core
    settings.setdefault("job_name", "sbi-astro")
    options = settings.setdefault("scheduler_options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: {kind}.scheduler_options must be a mapping, got "
                          f"{options!r}")
    options.setdefault("dashboard_address", ":0")  # any free port (several campaigns)
    return settings


def jobqueue_cluster(kind: str, path: str | Path | None) -> Any:
    """A dask-jobqueue cluster of ``kind`` with the settings of ``path`` (no job submitted
    until it is scaled)."""
    settings = read_settings(kind, path)
    return _cluster_class(kind)(**settings)


def job_script(kind: str, path: str | Path | None) -> str:
    """The job script a ``kind`` cluster with the settings of ``path`` would submit."""
    cluster = jobqueue_cluster(kind, path)
    try:
        return cluster.job_script()
    finally:
        cluster.close()
