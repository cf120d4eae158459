"""Calibration on the executor: the held-out simulations and the posterior predictive
re-simulations of ``calibrate`` (and of studies and ``sbi-astro calibrate``) run as tasks on
a Dask cluster and give the numbers of a local calibration, bit for bit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from _dask_helpers import FaultyGaussian, one_worker_killed

from sbi_astro import load_simulator
from sbi_astro.cli import main
from sbi_astro.errors import ChunkError
from sbi_astro.executor import ClusterSpec, RowSimulations
from sbi_astro.pipeline.calibration import calibrate
from sbi_astro.rows import simulate_rows


class Exact:
    """The exact posterior of gaussian_linear, sampled reproducibly."""

    def __init__(self, sim):
        self.sim = sim

    def sample(self, num_samples, x):
        return self.sim.reference_posterior(x, num_samples,
                                            generator=torch.Generator().manual_seed(1))


def _numbers(metrics: dict) -> dict:
    """metrics.json without what legitimately differs between runs (times, provenance)."""
    return {k: v for k, v in metrics.items() if k not in ("timings", "provenance")}


def test_calibration_on_a_cluster_equals_the_local_one(cluster, tmp_path):
    sim = load_simulator("gaussian_linear", device="cpu", dim=3)
    kw = dict(n_test=60, num_samples=200, seed=4, ppc_observations=12, ppc_draws=30,
              chunk_size=7)
    here = calibrate(Exact(sim), sim, tmp_path / "here", **kw)
    spec = ClusterSpec(scheduler=cluster.scheduler_address)
    there = calibrate(Exact(sim), sim, tmp_path / "there", cluster=spec, **kw)
    assert _numbers(there.metrics) == _numbers(here.metrics)
    assert here.metrics["provenance"]["simulated_on"] == "this process"
    assert there.metrics["provenance"]["simulated_on"] == spec.describe()
    # the held-out set is rows 0..n-1 of the seed, as a campaign's, whatever the chunking
    with RowSimulations(sim, spec, chunk_size=11) as rows:
        theta, x = rows.joint(4, 60)
    t_ref, x_ref = simulate_rows(sim, 4, 0, 60)
    assert torch.equal(theta, t_ref) and torch.equal(x, x_ref)


def test_resimulations_of_a_real_plugin_on_a_cluster_are_the_local_ones(cluster):
    sim = load_simulator("xray_powerlaw", device="cpu")
    theta = sim.prior.sample((40,), generator=torch.Generator().manual_seed(0))
    with RowSimulations(sim, chunk_size=16) as rows:
        here = rows.given(theta, seed=9)
    with RowSimulations(sim, ClusterSpec(scheduler=cluster.scheduler_address),
                        chunk_size=16) as rows:
        there = rows.given(theta, seed=9)
    assert there.dtype == here.dtype and torch.equal(there, here)
    assert here.shape == (40, *sim.event_shape) and here.sum() > 0


def test_rows_do_not_depend_on_the_chunk_size():
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    with RowSimulations(sim, chunk_size=3) as small, RowSimulations(sim, chunk_size=50) as big:
        assert all(torch.equal(a, b) for a, b in zip(small.joint(2, 20), big.joint(2, 20),
                                                     strict=True))
        theta = torch.zeros(200, 2)
        x_small, x_big = small.given(theta, 5), big.given(theta, 5)
    assert torch.equal(x_small, x_big)
    # zero parameters: the data are the noise, of variance 0.1 (gaussian_linear); the
    # sample std of 400 values has a standard error of 0.011: 3.5 of them allowed
    assert abs(x_small.std().item() - 0.1 ** 0.5) < 0.04


def test_a_failing_chunk_is_named_with_its_rows(cluster):
    seed, n, chunk = 3, 40, 10
    theta = simulate_rows(FaultyGaussian(device="cpu"), seed, 0, n)[0]
    top = int(theta[:, 0].argmax())
    second = theta[:, 0].sort(descending=True).values[1]
    threshold = float((theta[top, 0] + second) / 2)
    sim = FaultyGaussian(device="cpu", fail_above=threshold)  # only row `top` fails
    with RowSimulations(sim, ClusterSpec(scheduler=cluster.scheduler_address),
                        chunk_size=chunk) as rows, pytest.raises(ChunkError) as info:
        rows.joint(seed, n)
    a = top // chunk * chunk
    msg = str(info.value)
    assert f"failed on rows {a}-{a + chunk - 1} of seed {seed}" in msg
    assert "ValueError: theta_0 above" in msg and "theta_0 in [" in msg


def test_a_worker_killed_during_calibration_simulations_loses_nothing(cluster):
    sim = FaultyGaussian(device="cpu", delay=0.25)
    # 16 chunks of 0.25 s on 2 workers: ~2 s; one worker dies 0.9 s in
    with one_worker_killed(cluster.scheduler_address), \
            RowSimulations(sim, ClusterSpec(scheduler=cluster.scheduler_address),
                           chunk_size=5) as rows:
        theta, x = rows.joint(8, 80)
    t_ref, x_ref = simulate_rows(FaultyGaussian(device="cpu"), 8, 0, 80)
    assert torch.equal(theta, t_ref) and torch.equal(x, x_ref)


def test_cli_calibrate_and_a_study_on_a_cluster(cluster, tmp_path, capsys):
    address = cluster.scheduler_address
    study = {"name": "cal-on-cluster",
             "simulator": {"name": "gaussian_linear", "options": {"dim": 2}, "device": "cpu"},
             "simulate": {"num_simulations": 400, "seed": 1, "chunk_size": 200},
             "train": {"method": "npe", "flow": "maf", "hidden_features": 16,
                       "max_epochs": 3, "seed": 0},
             "calibrate": {"n_test": 30, "num_samples": 100, "seed": 2,
                           "ppc_observations": 5, "ppc_draws": 20},
             "cluster": {"scheduler": address},
             "output": str(tmp_path / "study")}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    assert main(["run", str(tmp_path / "s.yaml")]) == 0
    report = json.loads((tmp_path / "study" / "report" / "metrics.json").read_text())
    assert report["provenance"]["simulated_on"] == f"the Dask cluster at {address}"

    run = str(tmp_path / "study" / "run")
    common = ["calibrate", run, "--n-test", "30", "--num-samples", "100", "--seed", "2"]
    assert main([*common, "-o", str(tmp_path / "here")]) == 0
    assert main([*common, "--scheduler", address, "-o", str(tmp_path / "there")]) == 0
    capsys.readouterr()
    here, there = (json.loads((tmp_path / d / "metrics.json").read_text())
                   for d in ("here", "there"))
    assert _numbers(there) == _numbers(here)
    # the study's report is the same calibration (same run, seed and sizes, 50 PPC draws
    # against 5: the PPC differs, the rest is equal)
    assert here["tarp"] == report["tarp"] and here["sbc"] == report["sbc"]
    assert np.isfinite(here["key_numbers"]["TARP ATC"])


def test_cli_calibrate_refuses_bad_cluster_flags_before_loading(tmp_path, capsys):
    code = main(["calibrate", str(tmp_path / "no-such-run"), "--jobs", "3", "-o",
                 str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "--jobs and --cluster-config apply to a batch-system cluster" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()
