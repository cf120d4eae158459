"""Campaigns on Dask: the store is bit for bit the local runner's, and faults lose nothing.

One local cluster of 2 worker processes is shared by the module (``scheduler=`` joins it);
``workers=2`` starts its own once.  The simulators' rows depend only on (seed, row), so
every comparison is exact (``np.array_equal`` / file bytes), not a tolerance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest
import yaml
from _dask_helpers import FaultyGaussian, one_worker_killed

from sbi_astro.campaign import run_campaign, simulate_rows
from sbi_astro.cli import main
from sbi_astro.errors import ChunkError, ConfigError
from sbi_astro.executor import ClusterSpec
from sbi_astro.pipeline.study import Study

TESTS = Path(__file__).resolve().parent


def _arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][...] for k in ("theta", "x", "chunk_crc32", "chunk_done")}


def _same_rows(a, b) -> None:
    """The rows, checksums and commit flags of two stores are identical, bit for bit."""
    ra, rb = _arrays(a), _arrays(b)
    for k in ra:
        assert ra[k].dtype == rb[k].dtype and ra[k].tobytes() == rb[k].tobytes(), k


def _same_store(a, b) -> None:
    """...and so is the metadata: the stores differ at most in HDF5's object timestamps."""
    _same_rows(a, b)
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert dict(fa.attrs) == dict(fb.attrs)


def test_default_path_does_not_import_dask(tmp_path):
    code = ("import sys; from sbi_astro.campaign import run_campaign; "
            f"run_campaign({str(tmp_path / 's.h5')!r}, 'gaussian_linear', num_simulations=20, "
            "chunk_size=10, device='cpu', progress=False).close(); "
            "print(sorted(m for m in ('dask', 'distributed', 'dask_jobqueue') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_local_cluster_store_is_the_local_runners_bit_for_bit(tmp_path):
    kw = dict(num_simulations=700, seed=9, chunk_size=100, device="cpu", progress=False)
    run_campaign(tmp_path / "local.h5", "gaussian_linear", **kw).close()
    run_campaign(tmp_path / "dask.h5", "gaussian_linear", workers=2, **kw).close()
    _same_store(tmp_path / "local.h5", tmp_path / "dask.h5")


@pytest.mark.parametrize("name, n, chunk", [("lensing_sie", 8, 4), ("two_moons", 300, 40)])
def test_joined_cluster_gives_the_same_rows(cluster, tmp_path, name, n, chunk):
    kw = dict(num_simulations=n, seed=3, chunk_size=chunk, device="cpu", progress=False)
    run_campaign(tmp_path / "local.h5", name, **kw).close()
    run_campaign(tmp_path / "dask.h5", name, scheduler=cluster.scheduler_address, **kw).close()
    _same_store(tmp_path / "local.h5", tmp_path / "dask.h5")


def test_scheduler_file_and_cli(cluster, tmp_path, capsys):
    sched = tmp_path / "scheduler.json"
    # what `dask scheduler --scheduler-file` writes (the client reads only the address)
    sched.write_text(json.dumps({"type": "Scheduler", "address": cluster.scheduler_address}))
    argv = ["simulate", "gaussian_linear", "-n", "300", "--chunk-size", "50", "--seed", "2",
            "--device", "cpu"]
    assert main([*argv, "-o", str(tmp_path / "local.h5"), "--no-progress"]) == 0
    assert main([*argv, "-o", str(tmp_path / "file.h5"), "--scheduler", str(sched)]) == 0
    err = capsys.readouterr().err
    assert "Dask dashboard:" in err
    assert "6/6 chunks, 2 workers" in err  # the bar: chunks done and the workers alive
    _same_store(tmp_path / "local.h5", tmp_path / "file.h5")


@pytest.mark.parametrize("flags, words", [
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not workers and scheduler"),
    (["--jobs", "3"], "add --cluster slurm"),
    (["--cluster", "slurm"], "--cluster-config"),
    (["--scheduler", "no-such-file"], "neither an existing scheduler file"),
    (["--jobs", "0"], "--jobs must be >= 1"),
])
def test_bad_cluster_flags_exit_2_before_simulating(tmp_path, capsys, flags, words):
    out = tmp_path / "s.h5"
    code = main(["simulate", "gaussian_linear", "-n", "10", "-o", str(out), "--device", "cpu",
                 "--no-progress", *flags])
    assert code == 2
    assert words in capsys.readouterr().err
    # refused before the store was created
    assert not out.exists()


def test_worker_killed_mid_campaign_store_complete_and_identical(cluster, tmp_path):
    sim = FaultyGaussian(device="cpu", delay=0.25)
    kw = dict(num_simulations=16 * 20, seed=5, chunk_size=20, progress=False)
    # 0.9 s in, each worker is inside one of its 0.25 s chunks
    with one_worker_killed(cluster.scheduler_address) as victim:
        run_campaign(tmp_path / "dask.h5", sim, scheduler=cluster.scheduler_address,
                     **kw).close()
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == "zombie"
    run_campaign(tmp_path / "local.h5", FaultyGaussian(device="cpu"), **kw).close()
    _same_rows(tmp_path / "local.h5", tmp_path / "dask.h5")
    assert _arrays(tmp_path / "dask.h5")["chunk_done"].all()


def test_simulator_raising_on_one_chunk_names_it_and_keeps_the_others(cluster, tmp_path):
    seed, chunk, n = 11, 25, 250
    # the threshold between the largest and second-largest chunk maximum of theta_0:
    # exactly one chunk fails
    maxima = [simulate_rows(FaultyGaussian(device="cpu"), seed, a, a + chunk)[0][:, 0].max()
              for a in range(0, n, chunk)]
    order = np.argsort(maxima)
    bad = int(order[-1])
    threshold = float((maxima[order[-1]] + maxima[order[-2]]) / 2)
    sim = FaultyGaussian(device="cpu", fail_above=threshold)
    path = tmp_path / "s.h5"
    with pytest.raises(ChunkError) as info:
        run_campaign(path, sim, num_simulations=n, seed=seed, chunk_size=chunk,
                     scheduler=cluster.scheduler_address, progress=False)
    msg = str(info.value)
    lo, hi = bad * chunk, bad * chunk + chunk - 1
    assert f"chunk {bad} (rows {lo}-{hi};" in msg and "theta_0 in [" in msg
    assert f"{maxima[bad]:.4g}]" in msg  # the chunk's largest theta_0 is its range's top
    assert "ValueError: theta_0 above" in msg and "9 other chunk(s) are committed" in msg
    done = _arrays(path)["chunk_done"]
    assert done.sum() == 9 and not done[bad]
    # the committed rows are the local runner's
    run_campaign(tmp_path / "ref.h5", FaultyGaussian(device="cpu"), num_simulations=n,
                 seed=seed, chunk_size=chunk, progress=False).close()
    ref = _arrays(tmp_path / "ref.h5")
    got = _arrays(path)
    keep = np.repeat(done.astype(bool), chunk)
    assert np.array_equal(got["x"][keep], ref["x"][keep])


def test_client_killed_then_rerun_resumes(cluster, tmp_path):
    path = tmp_path / "s.h5"
    kw = "num_simulations=480, seed=8, chunk_size=20"
    code = (f"from _dask_helpers import FaultyGaussian; from sbi_astro.campaign import "
            f"run_campaign; run_campaign({str(path)!r}, FaultyGaussian(device='cpu', "
            f"delay=0.1), {kw}, scheduler={cluster.scheduler_address!r}, progress=False)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 60
    done = 0
    while proc.poll() is None and done < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            with h5py.File(path, "r", locking=False) as f:
                done = int(f["chunk_done"][...].sum())
        except (OSError, KeyError):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with h5py.File(path, "r", locking=False) as f:
        partial = int(f["chunk_done"][...].sum())
    assert 4 <= partial < 24, partial
    # the lock of the killed client is stale: the rerun takes over and resumes
    store = run_campaign(path, FaultyGaussian(device="cpu", delay=0.1), num_simulations=480,
                         seed=8, chunk_size=20, scheduler=cluster.scheduler_address,
                         progress=False)
    assert store.is_complete
    store.close()
    run_campaign(tmp_path / "ref.h5", FaultyGaussian(device="cpu"), num_simulations=480,
                 seed=8, chunk_size=20, progress=False).close()
    _same_rows(path, tmp_path / "ref.h5")


def test_study_cluster_section():
    base = {"simulator": {"name": "gaussian_linear", "device": "cpu"}}
    study = Study.from_dict({**base, "cluster": {"workers": 3}})
    assert study.cluster == ClusterSpec(workers=3)
    assert Study.from_dict(base).cluster is None
    with pytest.raises(ConfigError, match="unknown key.*'nodes'"):
        Study.from_dict({**base, "cluster": {"nodes": 3}})
    with pytest.raises(ConfigError, match="not both"):
        Study.from_dict({**base, "simulate": {"workers": 2}, "cluster": {"workers": 3}})
    with pytest.raises(ConfigError, match="cluster: cluster kind must be one of"):
        Study.from_dict({**base, "cluster": {"kind": "lsf"}})


def test_study_cluster_files_are_relative_to_the_yaml(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "hpc.yaml").write_text("slurm: {cores: 4, memory: 8GB}\n")
    (project / "sched.json").write_text("{}")
    base = {"simulator": {"name": "gaussian_linear", "device": "cpu"}}
    (project / "a.yaml").write_text(yaml.safe_dump(
        {**base, "cluster": {"kind": "slurm", "jobs": 2, "config": "hpc.yaml"}}))
    (project / "b.yaml").write_text(yaml.safe_dump(
        {**base, "cluster": {"scheduler": "sched.json"}}))
    (project / "c.yaml").write_text(yaml.safe_dump(
        {**base, "cluster": {"scheduler": "tcp://10.0.0.1:8786"}}))
    monkeypatch.chdir(tmp_path)  # elsewhere: the files follow the YAML
    assert Study.from_yaml(project / "a.yaml").cluster.config == str(project / "hpc.yaml")
    assert Study.from_yaml(project / "b.yaml").cluster.scheduler == str(project / "sched.json")
    assert Study.from_yaml(project / "c.yaml").cluster.scheduler == "tcp://10.0.0.1:8786"
