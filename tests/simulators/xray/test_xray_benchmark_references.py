"""The X-ray benchmark tasks' cached references (simulators/xray/benchmark_references.py):
the stored observations are what the simulator gives today, the chains were converged, the
samples agree with an independent chain, and another set-up is refused."""

from __future__ import annotations

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.benchmark_references import (
    BENCHMARK_SEED,
    ESS_MIN,
    NUM_OBSERVATIONS,
    RHAT_MAX,
)
from sbi_astro.diagnostics.c2st import c2st
from sbi_astro.errors import ConfigError, NotAvailableError
from sbi_astro.reference_mcmc import EmceeSettings, emcee_posterior
from sbi_astro.rows import simulate_rows

TASKS = ["xray_powerlaw", "xray_thermal"]


@pytest.mark.parametrize("name", TASKS)
def test_stored_observations_are_todays_simulations(name):
    """Observation i is its row of the benchmark campaign, bit for bit (a changed simulator
    would leave stale references: this fails then), and its parameters are stored; the
    rows are the first ones whose chain converged (skipped rows are recorded)."""
    sim = load_simulator(name, device="cpu")
    rows = [int(sim.reference_diagnostics(i)["row"]) for i in range(1, NUM_OBSERVATIONS + 1)]
    skipped = [int(r) for r in _data(sim)["skipped_rows"]]
    assert sorted(rows + skipped) == list(range(NUM_OBSERVATIONS + len(skipped)))
    theta, x = simulate_rows(sim, BENCHMARK_SEED, 0, NUM_OBSERVATIONS + len(skipped))
    for i, row in enumerate(rows):
        assert torch.equal(sim.reference_observation(i + 1), x[row].to(sim.dtype))
        torch.testing.assert_close(sim.reference_parameters(i + 1), theta[row].to(sim.dtype))
    # skipped rows failed the convergence test
    assert all(h >= RHAT_MAX for h in _data(sim)["skipped_split_rhat"])


def _data(sim):
    from sbi_astro.benchmark_references import _load, reference_path

    return _load(reference_path(sim))


@pytest.mark.parametrize("name", TASKS)
def test_reference_chains_were_converged(name):
    """Every chain: split-R-hat < 1.01 over its 128 half-chains, >= 10,000 effective
    samples (walkers x length / tau), at least 160 autocorrelation times long; 10,000
    samples inside the prior's support."""
    sim = load_simulator(name, device="cpu")
    for i in range(1, NUM_OBSERVATIONS + 1):
        d = sim.reference_diagnostics(i)
        assert d["split_rhat"] < RHAT_MAX and d["ess"] >= ESS_MIN, (i, d)
        assert d["chain_over_tau"] >= 160, (i, d)
        s = sim.reference_samples(i)
        assert s.shape == (10_000, sim.dim)
        assert torch.isfinite(sim.prior.log_prob(s)).all()


def test_the_astro_suite_is_the_tasks_that_declare_it():
    from sbi_astro.pipeline.benchmark import suite_tasks

    assert suite_tasks("astro") == ["lensing_sie", *TASKS]


@pytest.mark.parametrize("name", TASKS)
def test_references_agree_with_an_independent_chain(name):
    """A fresh emcee chain (32 walkers, other seed) on observation 3 and the stored samples
    cannot be told apart: C2ST on 2,000 vs 2,000 samples below 0.55 (two samples of one
    distribution give 0.5 +- ~0.015)."""
    sim = load_simulator(name, device="cpu")
    x = sim.reference_observation(3)
    fresh, diag = emcee_posterior(sim._log_posterior_fn(x), sim.prior, 2000, 12345,
                                  EmceeSettings(walkers=32, burn=1000, thin=1, min_tau=50))
    score = c2st(fresh.float(), sim.reference_samples(3, 2000).float(), seed=0)
    assert score < 0.55, (score, diag)


def test_references_refuse_another_setup_bad_numbers_and_damaged_files(tmp_path):
    from sbi_astro.benchmark_references import _load
    from sbi_astro.errors import DataFormatError

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(DataFormatError, match="not a readable references file"):
        _load(bad)
    sim = load_simulator("xray_powerlaw", device="cpu", nH_max=2.0)
    with pytest.raises(NotAvailableError, match=r"nH_max=2.0 \(references: 1.0\)"):
        sim.reference_samples(1)
    sim = load_simulator("xray_powerlaw", device="cpu")
    with pytest.raises(ConfigError, match="integer in 1..10"):
        sim.reference_observation(11)
    with pytest.raises(ConfigError, match="num_samples must be in 1..10000"):
        sim.reference_samples(1, 20_000)


def test_a_build_keeps_converged_rows_skips_the_others_and_resumes(tmp_path):
    """build_references on the power law with short chains: rows that pass the (loosened)
    convergence test become observations in row order, a row that fails is skipped and
    recorded, each finished row is kept so that a re-run reuses it, and too few converged
    rows is an error, not a file."""
    from sbi_astro.benchmark_references import _load, build_references

    sim = load_simulator("xray_powerlaw", device="cpu")
    fast = EmceeSettings(walkers=16, burn=100, thin=1, min_tau=5, max_steps=1000)
    lines = []
    path = build_references(sim, tmp_path / "p.npz", num_observations=2, settings=fast,
                            num_samples=200, rhat_max=1.5, ess_min=50, log=lines.append)
    data = _load(path)
    theta, x = simulate_rows(sim, BENCHMARK_SEED, 0, 2)
    assert list(data["rows"]) == [0, 1] and len(data["skipped_rows"]) == 0
    assert torch.equal(torch.as_tensor(data["observations"]), x.cpu())
    assert data["samples"].shape == (2, 200, 3) and not (tmp_path / "p.npz.rows").exists()
    # nothing converges under an impossible test: an error naming the count, rows kept
    with pytest.raises(NotAvailableError, match="only 0 of the first 2 rows"):
        build_references(sim, tmp_path / "q.npz", num_observations=1, settings=fast,
                         num_samples=200, max_rows=2, rhat_max=1.0, log=lines.append)
    assert not (tmp_path / "q.npz").exists()
    assert sorted(f.name for f in (tmp_path / "q.npz.rows").iterdir()) == ["row-0.npz",
                                                                          "row-1.npz"]
    assert sum("skipped" in line for line in lines) == 2
    # a re-run with a looser test reuses the kept rows (still skipped) and goes on to row 2
    path = build_references(sim, tmp_path / "q.npz", num_observations=1, settings=fast,
                            num_samples=200, max_rows=3, rhat_max=1.5, ess_min=50,
                            log=lines.append)
    data = _load(path)
    assert list(data["rows"]) == [2] and list(data["skipped_rows"]) == [0, 1]


def test_the_rebuild_command_refuses_bad_input_before_any_chain(tmp_path, capsys):
    """Exit 2 and one message, no chain run, nothing replaced: too few observations, and an
    existing file without --overwrite (the shipped references take hours to rebuild), and
    a folder given as the output."""
    from sbi_astro.benchmark_references import main

    with pytest.raises(SystemExit) as err:
        main(["xray_powerlaw", "--observations", "0"])
    assert err.value.code == 2 and "--observations must be at least 1" in capsys.readouterr().err
    kept = tmp_path / "refs.npz"
    kept.write_bytes(b"earlier build")
    with pytest.raises(SystemExit) as err:
        main(["xray_powerlaw", "--output", str(kept)])
    assert err.value.code == 2 and "pass --overwrite" in capsys.readouterr().err
    assert kept.read_bytes() == b"earlier build"
    with pytest.raises(SystemExit) as err:
        main(["xray_powerlaw", "--output", str(tmp_path)])
    assert err.value.code == 2 and "is a folder" in capsys.readouterr().err
    shipped = _data(load_simulator("xray_powerlaw", device="cpu"))
    with pytest.raises(SystemExit) as err:  # the shipped file, by default
        main(["xray_powerlaw"])
    assert err.value.code == 2 and shipped["samples"].shape[0] == NUM_OBSERVATIONS
