"""Campaigns: reproducible rows whatever the chunking or workers, and kill -9 then resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from sbi_astro.campaign import run_campaign, simulate_rows
from sbi_astro.errors import StoreError
from sbi_astro.registry import load_simulator


def _rows(path):
    with h5py.File(path, "r") as f:
        return f["theta"][...], f["x"][...], f["chunk_done"][...]


def test_rows_do_not_depend_on_chunk_size(tmp_path):
    a = run_campaign(tmp_path / "a.h5", "two_moons", num_simulations=500, seed=4,
                     chunk_size=100, device="cpu", progress=False)
    b = run_campaign(tmp_path / "b.h5", "two_moons", num_simulations=500, seed=4,
                     chunk_size=37, device="cpu", progress=False)
    ta, xa = a.load()
    tb, xb = b.load()
    a.close(), b.close()
    assert torch.equal(ta, tb)
    # x involves cos/sin of float64 noise: identical per row up to the last float32 ulp
    assert torch.allclose(xa, xb, rtol=1e-6, atol=1e-7)
    # and a unit of work is a pure function of (seed, rows)
    sim = load_simulator("two_moons", device="cpu")
    t2, x2 = simulate_rows(sim, 4, 100, 200)
    assert torch.equal(t2, ta[100:200]) and torch.equal(x2, xa[100:200])


def test_other_seed_other_rows_and_prior_statistics(tmp_path):
    s = run_campaign(tmp_path / "g.h5", "gaussian_linear", num_simulations=4000, seed=1,
                     chunk_size=1000, device="cpu", progress=False)
    theta, x = s.load()
    s.close()
    # prior N(0, 0.1): the sample variance of 40,000 values is within 3 standard errors
    # (se of a variance estimate = var * sqrt(2 / n) = 0.1 * 0.0071)
    assert abs(theta.var().item() - 0.1) < 3 * 0.1 * (2 / theta.numel()) ** 0.5
    # x - theta ~ N(0, 0.1)
    assert abs((x - theta).var().item() - 0.1) < 3 * 0.1 * (2 / theta.numel()) ** 0.5
    s2 = run_campaign(tmp_path / "g2.h5", "gaussian_linear", num_simulations=100, seed=2,
                      chunk_size=100, device="cpu", progress=False)
    assert not torch.equal(s2.load()[0], theta[:100])
    s2.close()


def test_workers_give_the_same_rows(tmp_path):
    a = run_campaign(tmp_path / "a.h5", "gaussian_linear", num_simulations=600, seed=9,
                     chunk_size=100, device="cpu", workers=2, progress=False)
    b = run_campaign(tmp_path / "b.h5", "gaussian_linear", num_simulations=600, seed=9,
                     chunk_size=100, device="cpu", progress=False)
    assert torch.equal(a.load()[1], b.load()[1])
    a.close(), b.close()


def test_mismatched_resume_refused_and_file_untouched(tmp_path):
    path = tmp_path / "s.h5"
    run_campaign(path, "gaussian_linear", num_simulations=200, seed=1, chunk_size=100,
                 device="cpu", progress=False).close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="seed: stored 1, requested 2"):
        run_campaign(path, "gaussian_linear", num_simulations=200, seed=2, chunk_size=100,
                     device="cpu", progress=False)
    assert path.read_bytes() == before


def _cli(path, extra=()):
    return [sys.executable, "-m", "sbi_astro.cli", "simulate", "gaussian_linear", "-n", "60000",
            "-o", str(path), "--seed", "5", "--chunk-size", "1500", "--option", "dim=200",
            "--device", "cpu", "--no-progress", *extra]


def _done_count(path):
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f["chunk_done"][...].sum())
    except (OSError, KeyError):
        return 0


def test_kill_minus_nine_and_resume_is_bit_identical(tmp_path):
    """SIGKILL the campaign mid-run several times, resume, and compare bit for bit.

    Kills land after a random number of committed chunks plus a random delay of up to a
    chunk's duration, i.e. anywhere inside the write of the following chunk.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref.h5"
    subprocess.run(_cli(ref), check=True, env=env, capture_output=True)
    path = tmp_path / "killed.h5"
    rng = np.random.default_rng(0)
    kills, seen = 0, []
    for target in (3, 11, 19, 27, 33):
        proc = subprocess.Popen(_cli(path), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _done_count(path) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.05))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            seen.append(_done_count(path))
    assert kills >= 3, "the campaign finished before the kills; make it longer"
    # every kill left a readable store with a strictly partial set of committed chunks
    assert all(0 < n < 40 for n in seen), seen
    final = subprocess.run(_cli(path), env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    t_ref, x_ref, d_ref = _rows(ref)
    t, x, d = _rows(path)
    assert d.all() and d_ref.all()
    assert np.array_equal(t, t_ref) and np.array_equal(x, x_ref)
