"""No silent loss: racing campaigns, bit rot, relabelled metadata, kills while replacing a run.

Child processes come from a fork server that has imported sbi-astro once (each child starts
in milliseconds, and none inherits a running thread pool).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing as mp
import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from sbi_astro.campaign import run_campaign
from sbi_astro.cli import main
from sbi_astro.errors import DataFormatError, StoreError
from sbi_astro.inference import load_run
from sbi_astro.inference import weights_path
from sbi_astro.store import SimulationStore


@pytest.fixture(scope="module")
def ctx():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["sbi_astro.cli", "sbi_astro.campaign", "sbi_astro.inference",
                                "tests.test_reliability"])
    return ctx


def _cli_child(argv: list[str], barrier, queue) -> None:
    """Runs ``sbi-astro argv`` after the barrier; reports (exit code, stderr)."""
    err = io.StringIO()
    barrier.wait()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    queue.put((argv, code, err.getvalue()))


def _datasets(path: Path) -> dict[str, str]:
    with h5py.File(path, "r") as f:
        return {k: hashlib.sha256(f[k][...].tobytes()).hexdigest()
                for k in ("theta", "x", "chunk_done", "chunk_crc32")}


@pytest.mark.parametrize("dim, num, chunk", [(2, 2000, 500), (1000, 2000, 500)],
                         ids=["small", "large"])
def test_racing_campaigns_exactly_one_wins(ctx, tmp_path, dim, num, chunk):
    """Two processes released together create the same store, 20 times: one succeeds, the
    other exits 2 naming the holder (or the other campaign), and the store is exactly the
    winner's uninterrupted campaign."""
    common = ["simulate", "gaussian_linear", "--option", f"dim={dim}", "-n", str(num),
              "--chunk-size", str(chunk), "--device", "cpu", "--no-progress"]
    reference = {}
    for seed in (1, 2):
        ref = tmp_path / f"ref{seed}.h5"
        assert main([*common, "-o", str(ref), "--seed", str(seed)]) == 0
        reference[seed] = _datasets(ref)
    for rep in range(20):
        path = tmp_path / f"race{rep}.h5"
        barrier, queue = ctx.Barrier(2), ctx.SimpleQueue()
        procs = [ctx.Process(target=_cli_child, args=([*common, "-o", str(path), "--seed",
                                                       str(seed)], barrier, queue))
                 for seed in (1, 2)]
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join(timeout=60)
        codes = sorted(code for _, code, _ in results)
        assert codes == [0, 2], results
        (winner,) = [argv for argv, code, _ in results if code == 0]
        (loser_err,) = [err for _, code, err in results if code == 2]
        assert "Traceback" not in loser_err
        assert any(s in loser_err for s in ("in use by another campaign (pid",
                                            "belongs to a different campaign",
                                            "created by another process")), loser_err
        assert _datasets(path) == reference[int(winner[-1])]
        assert not list(tmp_path.glob(f"race{rep}.h5.*"))  # no temporaries, no lock left


def _flip_byte_in_chunk(path: Path, chunk_row: int, dataset: str = "x") -> None:
    """Overwrites one byte of the stored rows of the HDF5 chunk holding ``chunk_row``."""
    with h5py.File(path, "r") as f:
        dset = f[dataset]
        info = dset.id.get_chunk_info_by_coord((chunk_row,) + (0,) * (dset.ndim - 1))
    with open(path, "r+b") as f:
        f.seek(info.byte_offset + 17)
        b = f.read(1)
        f.seek(info.byte_offset + 17)
        f.write(bytes([b[0] ^ 0x5A]))


def test_bit_rot_is_refused_listed_and_repaired_bit_for_bit(tmp_path, capsys):
    path = tmp_path / "s.h5"
    run_campaign(path, "gaussian_linear", num_simulations=1000, seed=4, chunk_size=100,
                 options={"dim": 3}, device="cpu", progress=False).close()
    pristine = path.read_bytes()
    _flip_byte_in_chunk(path, 400)
    damaged = path.read_bytes()
    assert damaged != pristine

    # training refuses, naming the chunk; nothing is written
    code = main(["train", str(path), "-o", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "chunk(s) 4 (rows 400-499)" in err and "--repair" in err
    assert not (tmp_path / "run").exists()
    # so does resuming the campaign
    with pytest.raises(StoreError, match="chunk"):
        run_campaign(path, "gaussian_linear", num_simulations=1000, seed=4, chunk_size=100,
                     options={"dim": 3}, device="cpu", progress=False)
    assert path.read_bytes() == damaged
    # verify lists it, and changes nothing
    code = main(["verify", str(path)])
    out = capsys.readouterr()
    assert code == 1 and "damaged: chunk 4 (rows 400-499)" in out.out
    assert path.read_bytes() == damaged
    # repair re-simulates it from its seed: the file is the pristine one again, byte for byte
    code = main(["verify", str(path), "--repair", "--no-progress", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0 and "repaired: chunk 4" in out.out and "bit for bit" in out.out
    assert path.read_bytes() == pristine
    with SimulationStore.open(path) as store:
        assert store.verify() == []
        theta, x = store.load()
    assert theta.shape == (1000, 3)


def test_relabelled_metadata_is_refused(tmp_path, capsys):
    """A two_moons store relabelled ``gaussian_linear dim=2`` is not used."""
    path = tmp_path / "tm.h5"
    run_campaign(path, "two_moons", num_simulations=200, seed=1, chunk_size=100,
                 device="cpu", progress=False).close()
    with h5py.File(path, "r+") as f:
        meta = json.loads(f.attrs["metadata"])
        meta.update(simulator="gaussian_linear", options={"dim": 2})
        f.attrs["metadata"] = json.dumps(meta)
    before = path.read_bytes()
    with pytest.raises(DataFormatError, match="does not match the checksum"):
        SimulationStore.open(path)
    code = main(["train", str(path), "-o", str(tmp_path / "run"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "changed after the simulations were made" in err
    assert path.read_bytes() == before


# -- kills while `train --overwrite` replaces a run ------------------------------------------
_HOOKED = ("replace", "rename", "link", "unlink", "fsync")


def _train_killed_at(step: int, argv: list[str], run_dir: str, queue) -> None:
    """Runs ``sbi-astro train`` and dies (``os._exit``: no cleanup, like ``kill -9``) just
    before the ``step``-th file-system change inside ``run_dir``; a write is cut in half."""
    import pathlib

    count = [0]

    def due(path) -> bool:
        if not str(os.fspath(path)).startswith(run_dir):
            return False
        count[0] += 1
        return count[0] == step

    for name in _HOOKED:
        real = getattr(os, name)

        def hooked(*args, _real=real, **kwargs):
            if args and not isinstance(args[0], int) and due(args[0]):
                queue.put(("killed", step))
                os._exit(137)
            return _real(*args, **kwargs)

        setattr(os, name, hooked)
    real_write = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if due(self):
            with open(self, "wb") as f:
                f.write(data[: len(data) // 2])
            queue.put(("killed", step))
            os._exit(137)
        return real_write(self, data)

    pathlib.Path.write_bytes = write_bytes
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    queue.put(("done", code))
    sys.stdout.flush()


def test_kill_at_every_step_of_train_overwrite(ctx, tmp_path):
    store = tmp_path / "s.h5"
    run_campaign(store, "gaussian_linear", num_simulations=600, seed=2, chunk_size=300,
                 options={"dim": 2}, device="cpu", progress=False).close()
    run_dir = tmp_path / "run"
    base = ["train", str(store), "-o", str(run_dir), "--device", "cpu", "--set",
            "max_epochs=1", "--set", "num_transforms=1"]
    assert main([*base, "--set", "hidden_features=8", "--seed", "1"]) == 0
    old_sha = hashlib.sha256(weights_path(run_dir).read_bytes()).hexdigest()
    pristine = tmp_path / "pristine"
    shutil.copytree(run_dir, pristine)
    new_argv = [*base, "--set", "hidden_features=16", "--seed", "2", "--overwrite"]
    outcomes = []
    for step in range(1, 40):
        shutil.rmtree(run_dir)
        shutil.copytree(pristine, run_dir)
        queue = ctx.SimpleQueue()
        p = ctx.Process(target=_train_killed_at, args=(step, new_argv, str(run_dir), queue))
        p.start()
        kind, value = queue.get()
        p.join(timeout=60)
        est = load_run(run_dir, device="cpu")  # old or new, never a mix: always loads
        sha = hashlib.sha256(weights_path(run_dir).read_bytes()).hexdigest()
        hidden = est.config.hidden_features
        assert (sha == old_sha and hidden == 8) or (sha != old_sha and hidden == 16)
        outcomes.append(hidden)
        if kind == "done":
            assert value == 0
            break
    else:
        pytest.fail("train --overwrite never completed")
    # the kills covered several steps, the run switched exactly once, and a completed
    # replacement leaves one weights file
    assert len(outcomes) >= 6
    switch = outcomes.index(16)
    assert set(outcomes[:switch]) == {8} and set(outcomes[switch:]) == {16}
    assert len([f for f in run_dir.iterdir() if f.suffix == ".pt"]) == 1
    assert torch.equal(torch.tensor(est.sample(5, torch.zeros(2)).shape), torch.tensor([5, 2]))
    assert np.isfinite(est.sample(5, torch.zeros(2)).numpy()).all()


def _dead_pid() -> int:
    import subprocess

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_killed_processes_are_removed(tmp_path):
    """A store temporary left by a killed campaign is removed by the next one; a live
    process's temporary is left alone."""
    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f"s.h5.tmp{dead}").write_bytes(b"half a store")
    (tmp_path / f"s.h5.tmp{alive}").write_bytes(b"someone else's")
    (tmp_path / "s.h5.tmp-notes").write_bytes(b"not ours")
    run_campaign(tmp_path / "s.h5", "two_moons", num_simulations=10, seed=0, chunk_size=10,
                 device="cpu", progress=False).close()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["s.h5", f"s.h5.tmp{alive}", "s.h5.tmp-notes"])


def test_one_epoch_is_one_epoch_and_interrupts_say_what_was_kept(tmp_path, capsys,
                                                                 monkeypatch):
    store = tmp_path / "s.h5"
    run_campaign(store, "gaussian_linear", num_simulations=300, seed=2, chunk_size=300,
                 options={"dim": 2}, device="cpu", progress=False).close()
    assert main(["train", str(store), "-o", str(tmp_path / "run"), "--device", "cpu",
                 "--set", "max_epochs=1", "--set", "hidden_features=8"]) == 0
    doc = json.loads((tmp_path / "run" / "run.json").read_text())
    assert doc["metadata"]["training"]["epochs"] == 1
    assert len(doc["metadata"]["training"]["validation_loss"]) == 1
    capsys.readouterr()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("sbi_astro.pipeline.training.train", interrupt)
    monkeypatch.setattr("sbi_astro.pipeline.training.train_from_store", interrupt)
    code = main(["train", str(store), "-o", str(tmp_path / "run2"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 130 and "nothing was written" in err and "chunks" not in err
    assert not (tmp_path / "run2").exists()


def test_calibrate_replaces_a_report_only_with_overwrite(tmp_path, capsys):
    store = tmp_path / "s.h5"
    run_campaign(store, "gaussian_linear", num_simulations=300, seed=2, chunk_size=300,
                 options={"dim": 2}, device="cpu", progress=False).close()
    assert main(["train", str(store), "-o", str(tmp_path / "run"), "--device", "cpu",
                 "--set", "max_epochs=2", "--set", "hidden_features=8"]) == 0
    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text('{"an": "earlier report"}')
    argv = ["calibrate", str(tmp_path / "run"), "-o", str(report), "--n-test", "20",
            "--num-samples", "50", "--device", "cpu"]
    assert main(argv) == 2
    assert (report / "metrics.json").read_text() == '{"an": "earlier report"}'
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((report / "metrics.json").read_text())["n_test"] == 20
    assert sorted(p.name for p in report.iterdir()) == ["metrics.json", "report.html"]
