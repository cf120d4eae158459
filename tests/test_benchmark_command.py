"""`sbi-astro benchmark`: cells scored by C2ST against reference samples, written once and
resumed, a table beside sbibm's published numbers; bad arguments exit 2 before any work."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sbi_astro.cli import main
from sbi_astro.pipeline.benchmark import (
    Cell,
    budget_tables,
    published,
    run_cell,
    summary_table,
)


def test_a_cell_scores_against_the_reference_and_is_resumed(tmp_path):
    cell = Cell("gaussian_linear", "npe", 500)
    # a small coupling MAF, pinned: the test is of the harness, not of the defaults
    overrides = {"max_epochs": 30, "hidden_features": 32, "coupling": True}
    first: list[str] = []
    rec = run_cell(cell, tmp_path, num_observations=1, num_samples=500,
                   train_overrides=overrides, log=first.append)
    # progress while it works: the training set, every epoch, then the scoring
    assert "  gaussian_linear_npe_500: training on 500 simulations" in first
    epochs = [line for line in first if line.lstrip().startswith("epoch ")]
    assert 1 <= len(epochs) <= 30 and "validation loss" in epochs[0]
    assert any("sampling and scoring 1 x 500 posterior samples" in line for line in first)
    # gaussian_linear (10-D Gaussian posterior) from 500 simulations: NPE gets close but
    # a C2ST classifier still tells it apart (sbibm's published NPE at 10^3: 0.695)
    assert 0.5 <= rec["c2st_mean"] < 0.9
    # and sbibm's own classifier, on the same samples (measured: 0.880 strict, 0.860 sbibm's)
    assert 0.5 <= rec["c2st_sbibm_mean"] < 0.9 and len(rec["c2st_sbibm"]) == 1
    assert rec["published_c2st"] is None  # sbibm ran 10^3, 10^4, 10^5 only
    # the configuration as asked and as trained (10 Normal marginals: "auto" is a MAF)
    assert rec["config"]["flow"] == "auto" and rec["config"]["resolved"]["flow"] == "maf"
    # MMD of a near miss: small and positive (two exact samples give |MMD^2| < 0.01)
    assert 0.0 < rec["mmd_mean"] < 0.5 and rec["tarp_tests"] == 100
    assert published("gaussian_linear", "npe", 1000) == 0.6945  # main_paper.csv, 10 obs
    path = tmp_path / "cells" / "gaussian_linear_npe_500.json"
    assert json.loads(path.read_text())["c2st"] == rec["c2st"]
    before = path.stat().st_mtime_ns
    again = run_cell(cell, tmp_path, num_observations=1, num_samples=500,
                     train_overrides=overrides, log=lambda s: None)
    assert again == rec and path.stat().st_mtime_ns == before  # read back, not re-run
    path.write_text('{"cell": ')  # a damaged record is not trusted: the cell runs again
    logs = []
    third = run_cell(cell, tmp_path, num_observations=1, num_samples=500,
                     train_overrides=overrides, sbibm_c2st=False, log=logs.append)
    assert third["c2st"] == rec["c2st"]  # same seeds, same store: the same scores
    assert json.loads(path.read_text())["c2st"] == rec["c2st"]
    # ... from the estimator saved when it was trained: scored again, not trained again
    assert any("estimator read back" in line for line in logs)
    assert third["train_s"] == rec["train_s"]
    # damaged weights are not trusted: trained again (same seeds: the same scores)
    path.unlink()
    weights = next((tmp_path / "models" / cell.name).glob("*.pt"))
    weights.write_bytes(weights.read_bytes()[:100])
    logs.clear()
    fourth = run_cell(cell, tmp_path, num_observations=1, num_samples=500,
                      train_overrides=overrides, sbibm_c2st=False, log=logs.append)
    assert any("training again" in line for line in logs)
    assert fourth["c2st"] == rec["c2st"] and fourth["train_s"] != rec["train_s"]


def test_the_table_marks_the_best_method_and_shows_sbibm():
    recs = [{"cell": {"task": "two_moons", "method": m, "budget": 10_000}, "c2st_mean": c,
             "published_c2st": published("two_moons", m, 10_000), "train_s": 1.0,
             "sample_s": 0.5, "mmd_mean": 0.01, "tarp_atc": -0.02, "tarp_ks_pvalue": 0.4}
            for m, c in [("npe", 0.55), ("nle", 0.61)]]
    table = summary_table(recs)
    # cells without sbibm's classifier: ranked by the strict one
    assert "| two_moons | 10,000 | NPE | n/a | 0.606 | **0.550** | 0.0100 | -0.020 (0.4) |" \
        in table
    assert "| two_moons | 10,000 | NLE | n/a | 0.713 | 0.610 |" in table
    # with it, sbibm's classifier ranks them (the one comparable with sbibm's numbers)
    recs[0]["c2st_sbibm_mean"], recs[1]["c2st_sbibm_mean"] = 0.58, 0.54
    table = summary_table(recs)
    assert "| two_moons | 10,000 | NPE | 0.580 | 0.606 | 0.550 |" in table
    assert "| two_moons | 10,000 | NLE | **0.540** | 0.713 | 0.610 |" in table
    # the same cells as a task x method table per budget: strict C2ST (sbibm's), the mark
    # by sbibm's classifier, sbibm's published NPE / NLE / NRE
    compact = budget_tables(recs + [{**recs[0], "cell": {**recs[0]["cell"], "method": "npse"},
                                     "c2st_mean": 0.5}])
    assert compact.startswith("**10,000 simulations**\n\n| task | NPE | NLE | NPSE (sbi 0.27) |")
    row = ("| two_moons | 0.550 (0.580) | **0.610 (0.540)** | 0.500 (0.580) | "
           "0.606 / 0.713 / 0.761 |")
    assert row in compact  # sbi's NPSE (a peer) is never marked, even when lower


@pytest.mark.parametrize("argv, needle", [
    (["--tasks", "nope"], "unknown task 'nope'"),
    (["--methods", "abc"], "unknown method 'abc'"),
    (["--budgets", "10"], "budgets must be integers >= 100"),
    (["--c2st-jobs", "0"], "--c2st-jobs must be at least 1"),
    (["--suite", "huge"], "invalid choice"),
    (["--tasks", "lensing_pixelated"],
     "task 'lensing_pixelated' has no reference posterior samples"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, argv, needle):
    out = tmp_path / "b"
    try:
        code = main(["benchmark", "-o", str(out), *argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err and not out.exists()


def test_cells_on_a_dask_cluster_equal_the_local_ones(tmp_path, cluster):
    """Two cells of one task and budget (one shared store) run at once on 2 workers; their
    records equal those of the same cells run here on one torch thread."""
    import torch

    from sbi_astro.executor import ClusterSpec
    from sbi_astro.pipeline.benchmark import run_benchmark

    kw = dict(tasks=["gaussian_linear"], methods=["npe", "nre"], budgets=[300],
              num_observations=1, num_samples=100, log=lambda s: None,
              train_overrides={"max_epochs": 3, "hidden_features": 16,
                               "mcmc_method": "ensemble"})
    there = run_benchmark(tmp_path / "there",
                          cluster=ClusterSpec(scheduler=cluster.scheduler_address), **kw)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = run_benchmark(tmp_path / "here", **kw)
    finally:
        torch.set_num_threads(threads)
    assert [r["cell"]["method"] for r in there] == ["npe", "nre"]
    assert [r["c2st"] for r in there] == [r["c2st"] for r in here]
    assert (tmp_path / "there" / "results.md").exists()


def test_tarp_per_cell_passes_the_exact_posterior_and_fails_a_narrow_one():

    from sbi_astro import load_simulator
    from sbi_astro.pipeline.benchmark import _tarp_on_held_out

    sim = load_simulator("gaussian_linear", device="cpu")

    class Posterior:
        def __init__(self, width):
            self.width = width

        def sample(self, n, x, generator):
            exact = sim.reference_posterior(x, n, generator=generator)
            return exact.mean(0) + self.width * (exact - exact.mean(0))

    good = _tarp_on_held_out(Posterior(1.0), sim, 200, 300, seed=0)
    assert good["tarp_ks_pvalue"] > 0.01 and abs(good["tarp_atc"]) < 0.05
    narrow = _tarp_on_held_out(Posterior(0.5), sim, 200, 300, seed=0)
    assert narrow["tarp_ks_pvalue"] < 1e-4 and narrow["tarp_atc"] < -0.1


def test_sbi_flow_matching_is_a_peer_row(tmp_path):
    """sbi 0.27's FMPE with its defaults through the same harness (a few epochs here)."""
    cell = Cell("two_moons", "fmpe", 500)
    rec = run_cell(cell, tmp_path, num_observations=1, num_samples=300,
                   train_overrides={"max_epochs": 5}, tarp_tests=30, tarp_samples=100,
                   sbibm_c2st=False, log=lambda s: None)
    assert rec["config"]["sbi"] == "0.27 defaults" and rec["published_c2st"] is None
    # five epochs from 500 simulations: far from the reference (measured C2ST 0.967, MMD
    # 0.109), which both metrics must see
    assert rec["c2st_mean"] > 0.8 and rec["mmd_mean"] > 0.02 and rec["tarp_tests"] == 30
    recs = [rec, {**rec, "cell": {**rec["cell"], "method": "npe"}, "c2st_mean": 0.9}]
    table = summary_table(recs)
    assert "| FMPE (sbi 0.27, max_epochs=5) |" in table and "**0.900**" in table  # ours is marked


def test_the_report_page_draws_c2st_against_budget_with_sbibm_curves(tmp_path):
    from sbi_astro.pipeline.benchmark import published_curves, write_pages

    recs = [{"cell": {"task": "two_moons", "method": "npe", "budget": b}, "c2st_mean": c,
             "published_c2st": published("two_moons", "npe", b), "train_s": 1.0,
             "sample_s": 0.5, "mmd_mean": 0.01, "tarp_atc": -0.02, "tarp_ks_pvalue": 0.4}
            for b, c in [(1000, 0.7), (10_000, 0.58)]]
    curves = published_curves(recs)
    assert [b for b, _ in curves[("two_moons", "npe")]] == [1000, 10_000, 100_000]
    assert curves[("two_moons", "npe")][1][1] == published("two_moons", "npe", 10_000)
    report, metrics = write_pages(recs, tmp_path, "quick")
    page = report.read_text()
    assert page.count("<img") == 1 and "C2ST against simulation budget" in page
    assert json.loads(metrics.read_text())["cells"][1]["c2st_mean"] == 0.58


def test_sbi_npe_is_a_peer_row_with_its_defaults(tmp_path):
    """sbi 0.27's NPE (MAF, its default) through the same harness: a peer row, never best."""
    cell = Cell("two_moons", "sbi-npe", 500)
    rec = run_cell(cell, tmp_path, num_observations=1, num_samples=300,
                   train_overrides={"max_epochs": 5}, tarp_tests=30, tarp_samples=100,
                   sbibm_c2st=False, log=lambda s: None)
    assert rec["config"] == {"method": "sbi-npe", "sbi": "0.27 defaults", "max_epochs": 5}
    # five epochs of a MAF on 500 simulations: far from two_moons' crescents
    assert rec["c2st_mean"] > 0.8 and rec["train_s"] > 0
    worse = rec["c2st_mean"] + 0.01  # ours, worse than the peer, is still the one marked
    table = summary_table([rec, {**rec, "cell": {**rec["cell"], "method": "npe"},
                                 "c2st_mean": worse}])
    # a row trained with options beyond the defaults is named by them
    assert f"| NPE (sbi 0.27, max_epochs=5) | n/a | n/a | {rec['c2st_mean']:.3f} |" in table
    assert f"**{worse:.3f}**" in table


def test_training_options_name_the_rows_and_guard_the_folder(tmp_path, capsys):
    """`--set` trains every cell with options beyond the defaults; the record keeps them and
    the row is named by them.  A folder's cell is read back only for the same options: for
    others the run stops (exit 2) before any work, and the stored cell is kept as it was."""
    out = tmp_path / "b"
    argv = ["benchmark", "--suite", "quick", "--tasks", "gaussian_linear", "--budgets", "300",
            "--no-sbibm-c2st", "-o", str(out)]
    assert main([*argv, "--set", "max_epochs=2", "--set", "hidden_features=16"]) == 0
    path = out / "cells" / "gaussian_linear_npe_300.json"
    record = json.loads(path.read_text())
    assert record["train_overrides"] == {"hidden_features": 16, "max_epochs": 2}
    assert "| NPE (hidden_features=16, max_epochs=2) |" in (out / "results.md").read_text()
    before, text = path.stat().st_mtime_ns, path.read_text()
    capsys.readouterr()
    assert main([*argv, "--set", "max_epochs=3", "--set", "hidden_features=16"]) == 2
    err = capsys.readouterr().err
    assert "trained with options {'hidden_features': 16, 'max_epochs': 2}" in err
    assert "another folder (-o)" in err and "Traceback" not in err
    assert main(argv) == 2  # the defaults are other options too
    assert path.read_text() == text and path.stat().st_mtime_ns == before
    # the same options: read back, nothing re-run
    assert main([*argv, "--set", "hidden_features=16", "--set", "max_epochs=2"]) == 0
    assert path.stat().st_mtime_ns == before


@pytest.mark.parametrize("options, needle", [
    (["--set", "nope=1"], "unknown training option(s) ['nope']"),
    (["--set", "seed=3"], "the benchmark sets ['seed'] itself"),
    (["--set", "max_epochs"], "--set expects KEY=VALUE"),
    (["--methods", "sbi-npe", "--set", "ensemble=2"], "take max_epochs alone"),
    (["--methods", "npe", "nle", "--set", "ensemble=2"], "ensemble applies to NPE only"),
    (["--collect", "x", "--tasks", "two_moons"], "--collect runs nothing, so --tasks"),
    (["--collect", "x", "--suite", "full", "--workers", "2"],
     "--collect runs nothing, so --suite and --workers would do nothing"),
    (["--collect", "x", "--device", "cpu", "--no-sbibm-c2st"],
     "so --device and --no-sbibm-c2st would"),
])
def test_bad_training_options_exit_2_before_any_work(tmp_path, capsys, options, needle):
    out = tmp_path / "b"
    code = main(["benchmark", "--tasks", "gaussian_linear", "--budgets", "300", "-o", str(out),
                 *options] if "--collect" not in options else
                ["benchmark", "-o", str(out), *options])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err and not out.exists()


def _record(task: str, budget: int, c2st: float, overrides: dict | None = None) -> dict:
    return {"cell": {"task": task, "method": "npe", "budget": budget}, "c2st": [c2st],
            "c2st_mean": c2st, "mmd": [0.01], "mmd_mean": 0.01,
            "published_c2st": published(task, "npe", budget), "train_s": 1.0,
            "sample_s": 0.5, "tarp_atc": -0.02, "tarp_ks_pvalue": 0.4,
            **({"train_overrides": overrides} if overrides else {})}


def test_collect_draws_the_cells_of_several_folders_in_one_table(tmp_path, capsys):
    """`--collect`: cells run in several folders (other budgets, other options) in one
    table and figure, running nothing; an ambiguous, damaged or unlisted cell exits 2."""
    for folder, rec in [("a", _record("two_moons", 10_000, 0.55)),
                        ("b", _record("two_moons", 100_000, 0.52)),
                        ("c", _record("two_moons", 100_000, 0.51, {"ensemble": 2}))]:
        c = rec["cell"]
        path = tmp_path / folder / "cells" / f"{c['task']}_npe_{c['budget']}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(rec))
    out = tmp_path / "all"
    folders = [str(tmp_path / f) for f in "abc"]
    assert main(["benchmark", "--collect", *folders, "-o", str(out)]) == 0
    table = (out / "results.md").read_text()
    assert "| two_moons | 10,000 | NPE | n/a | 0.606 | **0.550** |" in table
    assert "| two_moons | 100,000 | NPE | n/a | 0.542 | 0.520 |" in table
    assert "| two_moons | 100,000 | NPE (ensemble=2) | n/a | 0.542 | **0.510** |" in table
    cells = json.loads((out / "metrics.json").read_text())["cells"]
    assert sorted(r["c2st_mean"] for r in cells) == [0.51, 0.52, 0.55]
    assert (out / "report.html").read_text().count("<img") == 1
    assert not (out / "cells").exists()  # pages only: the cells stay where they ran
    capsys.readouterr()
    # the same cell with the same options in two folders: say which by listing one
    (tmp_path / "d" / "cells").mkdir(parents=True)
    (tmp_path / "d" / "cells" / "two_moons_npe_10000.json").write_text(
        json.dumps(_record("two_moons", 10_000, 0.56)))
    assert main(["benchmark", "--collect", *folders, str(tmp_path / "d"), "-o",
                 str(tmp_path / "x")]) == 2
    assert "is in both" in capsys.readouterr().err
    # a damaged record: named, never guessed at
    (tmp_path / "d" / "cells" / "two_moons_npe_10000.json").write_text('{"cell": ')
    assert main(["benchmark", "--collect", str(tmp_path / "d"), "-o",
                 str(tmp_path / "x")]) == 2
    assert "is not a finished cell record" in capsys.readouterr().err
    # an output folder with cells of its own, not listed: its pages would hide them
    assert main(["benchmark", "--collect", folders[0], "-o", folders[1]]) == 2
    assert "holds benchmark cells of its own" in capsys.readouterr().err
    assert not (tmp_path / "b" / "results.md").exists() and not (tmp_path / "x").exists()


def test_the_figure_draws_a_line_per_training_option_with_one_legend():
    from sbi_astro.pipeline.benchmark import method_label, published_curves
    from sbi_astro.report.figures import plot_benchmark

    recs = [_record("two_moons", 10_000, 0.55), _record("two_moons", 100_000, 0.52),
            _record("two_moons", 100_000, 0.51, {"ensemble": 2}),
            _record("sir", 100_000, 0.56, {"ensemble": 2})]
    fig = plot_benchmark(recs, published_curves(recs), label=method_label)
    sir, moons = fig.axes[0].get_lines(), fig.axes[1].get_lines()  # panels by task name
    names = {line.get_label(): line for line in moons}
    plain, ens = names["NPE (strict classifier)"], names["NPE (ensemble=2) (strict classifier)"]
    assert list(plain.get_ydata()) == [0.55, 0.52] and list(ens.get_ydata()) == [0.51]
    assert plain.get_marker() != ens.get_marker()
    # the variant keeps its marker in a panel without the plain line: one legend serves all
    sir_ens = next(x for x in sir if x.get_label() == "NPE (ensemble=2) (strict classifier)")
    assert sir_ens.get_marker() == ens.get_marker()
    assert len(fig.legends) == 1 and fig.axes[0].get_legend() is None


def test_nle_on_an_image_task_is_refused_by_name_and_left_out_of_the_suite(
        tmp_path, capsys, monkeypatch):
    """NLE models the density of x, a vector: asked for on `lensing_sie` (64 x 64 images) it
    exits 2 before any work; the astro suite runs that task's other methods without it."""
    out = tmp_path / "b"
    assert main(["benchmark", "--tasks", "lensing_sie", "--methods", "nle", "-o",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert "NLE learns the density of x" in err and "(64, 64)" in err and "nre" in err
    assert "Traceback" not in err and not out.exists()
    assert main(["benchmark", "--tasks", "lensing_sie", "--methods", "npe", "fmpe", "-o",
                 str(out)]) == 2  # sbi's defaults have no embedding for the images
    err = capsys.readouterr().err
    assert "fmpe row runs with sbi's defaults, which take x as a vector" in err
    assert not out.exists()
    from sbi_astro.pipeline import benchmark

    ran = []

    def scored(cell, out_dir, **kwargs):  # the harness, not the training, is under test
        ran.append(cell.name)
        return {**_record(cell.task, cell.budget, 0.9), "cell": dataclasses.asdict(cell)}

    monkeypatch.setattr(benchmark, "run_cell", scored)
    benchmark.run_benchmark(out, suite="astro", tasks=["lensing_sie"], budgets=[1000],
                            log=print)
    assert ran == ["lensing_sie_npe_1000", "lensing_sie_npe-is_1000", "lensing_sie_nre_1000"]
    assert "lensing_sie: the suite's nle cells are left out" in capsys.readouterr().out


def test_npe_is_needs_a_task_with_a_likelihood(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["benchmark", "--tasks", "two_moons", "--methods", "npe-is", "-o",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert "task 'two_moons' has no tractable likelihood" in err and not out.exists()
