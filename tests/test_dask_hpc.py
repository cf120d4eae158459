"""Batch-system clusters: the job scripts dask-jobqueue would submit, and the same code path
run with local jobs (``--cluster local``)."""

from __future__ import annotations

import sys

import h5py
import pytest

from sbi_astro.campaign import run_campaign
from sbi_astro.cli import main
from sbi_astro.errors import ConfigError
from sbi_astro.hpc import job_script, read_settings

CONFIG = """
slurm:
  cores: 4
  memory: 8GB
  walltime: "01:30:00"
  queue: short
  account: astro42
  job_script_prologue: ["module load python/3.11", "source ~/sbi/.venv/bin/activate"]
  job_extra_directives: ["--constraint=cpu"]
pbs:
  cores: 6
  memory: 12GB
  processes: 3
  walltime: "02:00:00"
  queue: workq
  resource_spec: "select=1:ncpus=6:mem=12GB"
local:
  cores: 1
  memory: 1GB
"""


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "hpc.yaml"
    path.write_text(CONFIG)
    return path


def test_slurm_job_script(config):
    lines = job_script("slurm", config).splitlines()
    for directive in ("#SBATCH -J sbi-astro", "#SBATCH -p short", "#SBATCH -A astro42",
                      "#SBATCH -n 1", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
                      "#SBATCH -t 01:30:00", "#SBATCH --constraint=cpu",
                      "module load python/3.11", "source ~/sbi/.venv/bin/activate"):
        assert directive in lines, directive
    (cmd,) = [ln for ln in lines if "distributed.cli.dask_worker" in ln]
    words = cmd.split()
    assert words[0] == sys.executable and words[3].startswith("tcp://")
    # one single-threaded worker per core, the job's memory shared among them: 8e9 B / 4
    assert words[words.index("--nworkers") + 1] == "4"
    assert words[words.index("--nthreads") + 1] == "1"
    assert words[words.index("--memory-limit") + 1] == "1.86GiB"
    assert "--nanny" in words
    # the directives come before the first command
    assert max(i for i, ln in enumerate(lines) if ln.startswith("#SBATCH")) < lines.index(cmd)


def test_pbs_job_script(config):
    script = job_script("pbs", config)
    for directive in ("#PBS -N sbi-astro", "#PBS -q workq",
                      "#PBS -l select=1:ncpus=6:mem=12GB", "#PBS -l walltime=02:00:00"):
        assert directive in script.splitlines(), directive
    assert "--nworkers 3 " in script and "--nthreads 2 " in script  # 6 cores / 3 processes
    assert "--memory-limit 3.73GiB" in script  # 12e9 B / 3


@pytest.mark.parametrize("text, words", [
    ("slurm: {cores: 4, memory: 8GB, nodes: 2}", "unknown slurm setting(s) ['nodes']"),
    ("slurm: {memory: 8GB}", "needs 'cores'"),
    ("slurm: {cores: 0, memory: 8GB}", "cores must be a positive integer"),
    ("pbs: {cores: 4, memory: 8GB}", "no 'slurm:' section"),
    ("slurm: [1, 2", "not a valid YAML file"),
    ("slurm: !!python/object/apply:os.system ['true']", "not a valid YAML file"),  # safe_load
])
def test_bad_settings_are_refused(tmp_path, text, words):
    path = tmp_path / "hpc.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        read_settings("slurm", path)
    assert words in str(info.value)


def test_missing_settings_file_exits_2_before_the_store(tmp_path, capsys):
    out = tmp_path / "s.h5"
    code = main(["simulate", "gaussian_linear", "-n", "10", "-o", str(out), "--device", "cpu",
                 "--cluster", "slurm", "--cluster-config", str(tmp_path / "none.yaml")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_local_jobs_run_the_batch_code_path(config, tmp_path, capsys):
    """``--cluster local`` submits the job script above as local processes."""
    argv = ["simulate", "two_moons", "-n", "400", "--chunk-size", "50", "--seed", "6",
            "--device", "cpu", "--no-progress"]
    assert main([*argv, "-o", str(tmp_path / "jobs.h5"), "--cluster", "local", "--jobs", "1",
                 "--cluster-config", str(config)]) == 0
    run_campaign(tmp_path / "ref.h5", "two_moons", num_simulations=400, seed=6,
                 chunk_size=50, device="cpu", progress=False).close()
    with h5py.File(tmp_path / "jobs.h5", "r") as a, h5py.File(tmp_path / "ref.h5", "r") as b:
        for k in ("theta", "x", "chunk_crc32", "chunk_done"):
            assert a[k][...].tobytes() == b[k][...].tobytes(), k
        assert dict(a.attrs) == dict(b.attrs)
