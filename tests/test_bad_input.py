"""The bad-input table: every user error is one message with exit status 2, no traceback.

Each case runs against one workspace (a store, a trained run, a report, and a collection of
bad files) and asserts that the CLI exits with 2, prints no traceback, names the offending
value in its message, and leaves every file of the workspace byte-identical (and creates
none).  API cases assert an :class:`~sbi_astro.errors.SbiAstroError` (never another type)
whose message names the offending value.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.campaign import run_campaign
from sbi_astro.cli import main
from sbi_astro.errors import SbiAstroError
from sbi_astro.inference import TrainingConfig, load_run, train, weights_path
from sbi_astro.store import SimulationStore

SEED_2_63 = str(2**63)


def _write_run_variants(ws: Path, run: Path) -> None:
    """Damaged copies of a good run directory."""
    doc = json.loads((run / "run.json").read_text())
    variants = {
        "run_list": lambda d: (d / "run.json").write_text("[1, 2]"),
        "run_notjson": lambda d: (d / "run.json").write_text("{nope"),
        "run_nokey": lambda d: (d / "run.json").write_text(
            json.dumps({k: v for k, v in doc.items() if k != "method"})),
        "run_strhidden": lambda d: (d / "run.json").write_text(json.dumps(
            {**doc, "config": {**doc["config"], "hidden_features": "64"}})),
        "run_badsim": lambda d: (d / "run.json").write_text(json.dumps(
            {**doc, "simulator": {"name": "no_such_sim", "options": {}}})),
        "run_zeroweights": lambda d: weights_path(d).write_bytes(b""),
        "run_noweights": lambda d: weights_path(d).unlink(),
        "run_pathweights": lambda d: (d / "run.json").write_text(json.dumps(
            {**doc, "weights": {"file": "../../etc/passwd", "sha256": "0" * 64}})),
    }
    for name, damage in variants.items():
        shutil.copytree(run, ws / name)
        damage(ws / name)
    # format-1 runs (weights in estimator.pt, no checksum): zero-byte and foreign pickles
    legacy_doc = {k: v for k, v in doc.items() if k != "weights"}
    for name, payload in (("legacy_zero", b""),
                          ("legacy_pickle", pickle.dumps({"weights": object.__name__}))):
        d = ws / name
        d.mkdir()
        (d / "run.json").write_text(json.dumps(legacy_doc))
        (d / "estimator.pt").write_bytes(payload)
    # the weights of another architecture under a correct checksum
    d = ws / "run_otherarch"
    shutil.copytree(run, d)
    other = {k: v[:1].clone() for k, v in torch.load(weights_path(d), weights_only=True).items()}
    import io

    buf = io.BytesIO()
    torch.save(other, buf)
    weights_path(d).write_bytes(buf.getvalue())
    w = json.loads((d / "run.json").read_text())
    w["weights"]["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (d / "run.json").write_text(json.dumps(w))


def _write_bad_observations(ws: Path) -> None:
    np.save(ws / "obs_str.npy", np.array(["a", "b"]))
    np.save(ws / "obs_empty.npy", np.zeros((0, 2), dtype=np.float32))
    np.save(ws / "obs_complex.npy", np.array([1 + 2j, 0.5j]))
    np.save(ws / "obs_object.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    np.save(ws / "obs_bool.npy", np.array([True, False]))
    np.save(ws / "obs_shape.npy", np.zeros(3, dtype=np.float32))
    (ws / "obs_text.npy").write_text("0.1 0.2\n")
    (ws / "obs_dict.json").write_text('{"x": [0.1, 0.2]}')
    (ws / "obs_strings.json").write_text('["a", 0.2]')
    (ws / "obs_bools.json").write_text("[true, 0.2]")
    (ws / "obs_ragged.json").write_text("[[0.1, 0.2], [0.3]]")
    (ws / "obs_emptylist.json").write_text("[]")
    (ws / "obs_nan.json").write_text("[NaN, 0.2]")
    (ws / "obs_inf.csv").write_text("inf,0.2\n")
    (ws / "obs_words.csv").write_text("a,b\n")
    (ws / "obs_null.json").write_text("null")
    (ws / "obs_binary.txt").write_bytes(b"\xff\xfe\x00\x01")
    (ws / "obs_dir").mkdir()
    np.save(ws / "obs_good.npy", np.array([0.1, -0.2], dtype=np.float32))


def _write_studies(ws: Path) -> None:
    base = "simulator: {name: gaussian_linear, options: {dim: 2}}\n"
    studies = {
        "s_invalid.yaml": "simulator: [unclosed\n",
        "s_list.yaml": "- 1\n- 2\n",
        "s_unknownkey.yaml": base + "colour: blue\n",
        "s_noname.yaml": "simulator: {options: {dim: 2}}\n",
        "s_unknownsim.yaml": "simulator: {name: no_such_sim}\noutput: s_unknownsim_out\n",
        "s_optlist.yaml": "simulator: {name: gaussian_linear, options: [1, 2]}\n",
        "s_badopt.yaml": "simulator: {name: gaussian_linear, options: {dim: -4}}\n"
                         "output: s_badopt_out\n",
        "s_ten.yaml": base + "train: {max_epochs: ten}\n",
        "s_float_epochs.yaml": base + "train: {max_epochs: 2.5}\n",
        "s_negsims.yaml": base + "simulate: {num_simulations: -5}\n",
        "s_negseed.yaml": base + "simulate: {seed: -1}\n",
        "s_bigseed.yaml": base + f"simulate: {{seed: {2**64}}}\n",
        "s_ntest.yaml": base + "calibrate: {n_test: abc}\n",
        "s_initfrom.yaml": base + "train: {init_from: no_such_run}\n",
        "s_finetune.yaml": base + "fine_tune: {learning_rate: 1.0e-4}\n",
        "s_analysis.yaml": base + "analyses: [{kind: no_such_analysis}]\n",
        "s_output.yaml": base + "output: [1, 2]\n",
        "s_section.yaml": base + "simulate: abc\n",
        "s_python.yaml": base + "name: !!python/object/apply:os.system ['echo hi']\n",
        "s_method.yaml": base + "train: {method: abc}\n",
        # NLE models the density of x: a 64 x 64 image is refused before simulating
        "s_nle_image.yaml": "simulator: {name: lensing_sie}\ntrain: {method: nle}\n"
                            "output: s_nle_image_out\n",
        "s_trainlist.yaml": base + "train: [npe]\n",
        "s_snapshot.yaml": base + "snapshot_ensemble: 7\n",
        # valid: used only with an output path that must be refused
        "s_valid.yaml": base + "simulate: {num_simulations: 100}\noutput: s_valid_out\n",
    }
    for name, text in studies.items():
        (ws / name).write_text(text)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The workspace every case runs in (never changed by a case)."""
    ws = tmp_path_factory.mktemp("bad-input")
    store = run_campaign(ws / "gl.h5", "gaussian_linear", num_simulations=600, seed=3,
                         chunk_size=200, options={"dim": 2}, device="cpu", progress=False)
    theta, x = store.load()
    store.close()
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    est = train(theta, x, sim, TrainingConfig(max_epochs=2, hidden_features=16,
                                              num_transforms=2, device="cpu"))
    est.save(ws / "run")
    _write_run_variants(ws, ws / "run")
    (ws / "report").mkdir()
    (ws / "report" / "report.html").write_text("<html>an earlier report</html>")
    (ws / "report" / "metrics.json").write_text("{}")
    (ws / "notes.txt").write_text("not a store\n")
    (ws / "samples.npy").write_bytes(b"earlier samples")
    with h5py.File(ws / "foreign.h5", "w") as f:
        f["data"] = np.arange(3)
    (ws / "emptydir").mkdir()
    inc = SimulationStore.create(ws / "incomplete.h5", SimulationStore.open(ws / "gl.h5")
                                 .metadata)
    inc.close()
    _write_bad_observations(ws)
    _write_studies(ws)
    return ws


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


# (id, argv, text the message must contain: the offending value)
CLI_CASES = [
    # simulate
    ("sim-unknown", ["simulate", "nope", "-n", "10", "-o", "new.h5"], "nope"),
    ("sim-opt-type", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                      "--option", "dim=abc"], "'abc'"),
    ("sim-opt-unknown", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                         "--option", "bogus=1"], "bogus"),
    ("sim-opt-noeq", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                      "--option", "dim"], "'dim'"),
    ("sim-opt-value", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                       "--option", "dim=0"], "dim"),
    ("sim-n-zero", ["simulate", "gaussian_linear", "-n", "0", "-o", "new.h5"], "got 0"),
    ("sim-n-neg", ["simulate", "gaussian_linear", "-n", "-5", "-o", "new.h5"], "-5"),
    ("sim-n-text", ["simulate", "gaussian_linear", "-n", "abc", "-o", "new.h5"], "'abc'"),
    ("sim-seed-neg", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                      "--seed", "-1"], "'-1'"),
    ("sim-seed-2^63", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                       "--seed", SEED_2_63], SEED_2_63),
    ("sim-seed-huge", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                       "--seed", "1" + "0" * 30], "1" + "0" * 30),
    ("sim-seed-float", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                        "--seed", "1.5"], "'1.5'"),
    ("sim-chunk-zero", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                        "--chunk-size", "0"], "--chunk-size"),
    ("sim-workers-zero", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                          "--workers", "0"], "--workers"),
    ("sim-out-empty", ["simulate", "gaussian_linear", "-n", "10", "-o", ""], "empty"),
    ("sim-out-dir", ["simulate", "gaussian_linear", "-n", "10", "-o", "emptydir"],
     "emptydir is a folder"),
    ("sim-out-other", ["simulate", "gaussian_linear", "-n", "10", "-o", "gl.h5",
                       "--option", "dim=2"], "different campaign"),
    ("sim-out-text", ["simulate", "gaussian_linear", "-n", "10", "-o", "notes.txt"],
     "notes.txt"),
    ("sim-out-under-file", ["simulate", "gaussian_linear", "-n", "10", "-o",
                            "notes.txt/new.h5"], "notes.txt is a file"),
    ("sim-device", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                    "--device", "tpu9"], "tpu9"),
    ("sim-prior-yaml", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                        "--prior", "theta_0={kind: [normal"], "--prior theta_0"),
    ("sim-prior-param", ["simulate", "gaussian_linear", "-n", "10", "-o", "new.h5",
                         "--prior", "nH={kind: uniform, lower: 0, upper: 1}"], "['nH']"),
    ("sim-prior-kind", ["simulate", "two_moons", "-n", "10", "-o", "new.h5",
                        "--prior", "theta_1={kind: cauchy}"], "'cauchy'"),
    ("sim-prior-support", ["simulate", "two_moons", "-n", "10", "-o", "new.h5",
                           "--prior", "theta_1={kind: normal, loc: 0, scale: 1}"],
     "physical support"),
    # train
    ("train-missing", ["train", "none.h5", "-o", "newrun"], "none.h5"),
    ("train-store-dir", ["train", "emptydir", "-o", "newrun"], "emptydir"),
    ("train-store-text", ["train", "notes.txt", "-o", "newrun"], "notes.txt"),
    ("train-store-foreign", ["train", "foreign.h5", "-o", "newrun"], "foreign.h5"),
    ("train-incomplete", ["train", "incomplete.h5", "-o", "newrun"], "incomplete"),
    ("train-method", ["train", "gl.h5", "--method", "abc", "-o", "newrun"], "'abc'"),
    ("train-epochs-text", ["train", "gl.h5", "-o", "newrun", "--set", "max_epochs=abc"],
     "'abc'"),
    ("train-epochs-float", ["train", "gl.h5", "-o", "newrun", "--set", "max_epochs=1.5"],
     "1.5"),
    ("train-epochs-zero", ["train", "gl.h5", "-o", "newrun", "--set", "max_epochs=0"],
     "max_epochs"),
    ("train-hidden-neg", ["train", "gl.h5", "-o", "newrun", "--set", "hidden_features=-3"],
     "-3"),
    ("train-lr-neg", ["train", "gl.h5", "-o", "newrun", "--set", "learning_rate=-1"],
     "learning_rate"),
    ("train-lr-nan", ["train", "gl.h5", "-o", "newrun", "--set", "learning_rate=.nan"],
     "learning_rate"),
    ("train-set-unknown", ["train", "gl.h5", "-o", "newrun", "--set", "bogus=1"], "bogus"),
    ("train-set-noeq", ["train", "gl.h5", "-o", "newrun", "--set", "max_epochs"],
     "'max_epochs'"),
    ("train-set-yaml", ["train", "gl.h5", "-o", "newrun", "--set", "max_epochs=[1"],
     "--set max_epochs"),
    ("train-flow", ["train", "gl.h5", "-o", "newrun", "--set", "flow=xyz"], "'xyz'"),
    ("train-valfrac", ["train", "gl.h5", "-o", "newrun", "--set", "validation_fraction=0.9"],
     "0.9"),
    ("train-embedding", ["train", "gl.h5", "-o", "newrun", "--set", "embedding=banana"],
     "embedding"),
    ("train-initfrom", ["train", "gl.h5", "-o", "newrun", "--set", "init_from=nowhere"],
     "nowhere"),
    ("train-logit-nle", ["train", "gl.h5", "--method", "nle", "-o", "newrun", "--set",
                         "theta_transform=logit"], "theta_transform"),
    ("train-ensemble-nre", ["train", "gl.h5", "--method", "nre", "-o", "newrun", "--set",
                            "ensemble=2"], "ensemble"),
    ("train-coupling", ["train", "gl.h5", "-o", "newrun", "--set", "coupling=maybe"],
     "'maybe'"),
    ("train-seed-neg", ["train", "gl.h5", "-o", "newrun", "--seed", "-3"], "'-3'"),
    ("train-set-seed-big", ["train", "gl.h5", "-o", "newrun", "--set", f"seed={2**64}"],
     str(2**64)),
    ("train-out-exists", ["train", "gl.h5", "-o", "run"], "--overwrite"),
    ("train-out-file", ["train", "gl.h5", "-o", "notes.txt"], "notes.txt is a file"),
    ("train-out-empty", ["train", "gl.h5", "-o", ""], "empty"),
    ("train-out-under-file", ["train", "gl.h5", "-o", "notes.txt/run"],
     "notes.txt is a file"),
    ("train-device", ["train", "gl.h5", "-o", "newrun", "--device", "cuda:banana"],
     "cuda:banana"),
    # sample: run directories
    ("sample-run-missing", ["sample", "norun", "--observation", "obs_good.npy", "-o",
                            "s.npy"], "norun"),
    ("sample-run-file", ["sample", "notes.txt", "--observation", "obs_good.npy", "-o",
                         "s.npy"], "notes.txt"),
    ("sample-run-empty", ["sample", "emptydir", "--observation", "obs_good.npy", "-o",
                          "s.npy"], "emptydir"),
    ("sample-run-notjson", ["sample", "run_notjson", "--observation", "obs_good.npy", "-o",
                            "s.npy"], "not valid JSON"),
    ("sample-run-list", ["sample", "run_list", "--observation", "obs_good.npy", "-o",
                         "s.npy"], "not an sbi-astro run description"),
    ("sample-run-nokey", ["sample", "run_nokey", "--observation", "obs_good.npy", "-o",
                          "s.npy"], "'method'"),
    ("sample-run-strhidden", ["sample", "run_strhidden", "--observation", "obs_good.npy",
                              "-o", "s.npy"], "'64'"),
    ("sample-run-badsim", ["sample", "run_badsim", "--observation", "obs_good.npy", "-o",
                           "s.npy"], "no_such_sim"),
    ("sample-run-zeroweights", ["sample", "run_zeroweights", "--observation", "obs_good.npy",
                                "-o", "s.npy"], "not a valid sbi-astro weights file"),
    ("sample-run-noweights", ["sample", "run_noweights", "--observation", "obs_good.npy",
                              "-o", "s.npy"], "missing"),
    ("sample-run-pathweights", ["sample", "run_pathweights", "--observation",
                                "obs_good.npy", "-o", "s.npy"], "'weights'"),
    ("sample-legacy-zero", ["sample", "legacy_zero", "--observation", "obs_good.npy", "-o",
                            "s.npy"], "not a valid sbi-astro weights file"),
    ("sample-legacy-pickle", ["sample", "legacy_pickle", "--observation", "obs_good.npy",
                              "-o", "s.npy"], "not a valid sbi-astro weights file"),
    ("sample-run-otherarch", ["sample", "run_otherarch", "--observation", "obs_good.npy",
                              "-o", "s.npy"], "do not match the architecture"),
    # sample: observations
    ("obs-missing", ["sample", "run", "--observation", "none.npy", "-o", "s.npy"], "none.npy"),
    ("obs-str", ["sample", "run", "--observation", "obs_str.npy", "-o", "s.npy"], "<U1"),
    ("obs-empty", ["sample", "run", "--observation", "obs_empty.npy", "-o", "s.npy"],
     "(0, 2)"),
    ("obs-complex", ["sample", "run", "--observation", "obs_complex.npy", "-o", "s.npy"],
     "complex"),
    ("obs-object", ["sample", "run", "--observation", "obs_object.npy", "-o", "s.npy"],
     "Python objects"),
    ("obs-bool", ["sample", "run", "--observation", "obs_bool.npy", "-o", "s.npy"], "bool"),
    ("obs-shape", ["sample", "run", "--observation", "obs_shape.npy", "-o", "s.npy"],
     "(3,)"),
    ("obs-text-npy", ["sample", "run", "--observation", "obs_text.npy", "-o", "s.npy"],
     "not a NumPy .npy file"),
    ("obs-dict", ["sample", "run", "--observation", "obs_dict.json", "-o", "s.npy"],
     "JSON object"),
    ("obs-strings", ["sample", "run", "--observation", "obs_strings.json", "-o", "s.npy"],
     "'a'"),
    ("obs-bools", ["sample", "run", "--observation", "obs_bools.json", "-o", "s.npy"],
     "True"),
    ("obs-ragged", ["sample", "run", "--observation", "obs_ragged.json", "-o", "s.npy"],
     "equal lengths"),
    ("obs-emptylist", ["sample", "run", "--observation", "obs_emptylist.json", "-o",
                       "s.npy"], "(0,)"),
    ("obs-nan", ["sample", "run", "--observation", "obs_nan.json", "-o", "s.npy"], "NaN"),
    ("obs-inf", ["sample", "run", "--observation", "obs_inf.csv", "-o", "s.npy"], "infinite"),
    ("obs-words", ["sample", "run", "--observation", "obs_words.csv", "-o", "s.npy"],
     "obs_words.csv"),
    ("obs-null", ["sample", "run", "--observation", "obs_null.json", "-o", "s.npy"], "null"),
    ("obs-binary", ["sample", "run", "--observation", "obs_binary.txt", "-o", "s.npy"],
     "obs_binary.txt"),
    ("obs-dir", ["sample", "run", "--observation", "obs_dir", "-o", "s.npy"], "obs_dir"),
    ("sample-out-exists", ["sample", "run", "--observation", "obs_good.npy", "-o",
                           "samples.npy"], "--overwrite"),
    ("sample-out-dir", ["sample", "run", "--observation", "obs_good.npy", "-o", "emptydir",
                        "--overwrite"], "emptydir is a folder"),
    ("sample-out-empty", ["sample", "run", "--observation", "obs_good.npy", "-o", ""],
     "empty"),
    ("sample-n-zero", ["sample", "run", "--observation", "obs_good.npy", "-o", "s.npy",
                       "-n", "0"], "got 0"),
    ("sample-seed-neg", ["sample", "run", "--observation", "obs_good.npy", "-o", "s.npy",
                         "--seed", "-1"], "'-1'"),
    # calibrate
    ("cal-out-file", ["calibrate", "run", "-o", "notes.txt"], "notes.txt is a file"),
    ("cal-out-exists", ["calibrate", "run", "-o", "report"], "--overwrite"),
    ("cal-out-empty", ["calibrate", "run", "-o", ""], "empty"),
    ("cal-ntest", ["calibrate", "run", "-o", "newreport", "--n-test", "5"], "5"),
    ("cal-nsamples", ["calibrate", "run", "-o", "newreport", "--num-samples", "0"], "got 0"),
    ("cal-run-missing", ["calibrate", "norun", "-o", "newreport"], "norun"),
    ("cal-run-damaged", ["calibrate", "run_zeroweights", "-o", "newreport"],
     "not a valid sbi-astro weights file"),
    # verify
    ("verify-missing", ["verify", "none.h5"], "none.h5"),
    ("verify-foreign", ["verify", "foreign.h5"], "foreign.h5"),
    ("verify-text", ["verify", "notes.txt"], "notes.txt"),
    # studies
    ("run-missing", ["run", "none.yaml"], "none.yaml"),
    ("run-invalid-yaml", ["run", "s_invalid.yaml"], "not valid YAML"),
    ("run-list", ["run", "s_list.yaml"], "list"),
    ("run-unknown-key", ["run", "s_unknownkey.yaml"], "colour"),
    ("run-no-name", ["run", "s_noname.yaml"], "simulator.name"),
    ("run-unknown-sim", ["run", "s_unknownsim.yaml"], "no_such_sim"),
    ("run-options-list", ["run", "s_optlist.yaml"], "[1, 2]"),
    ("run-bad-option", ["run", "s_badopt.yaml"], "-4"),
    ("run-epochs-ten", ["run", "s_ten.yaml"], "'ten'"),
    ("run-epochs-float", ["run", "s_float_epochs.yaml"], "2.5"),
    ("run-neg-sims", ["run", "s_negsims.yaml"], "-5"),
    ("run-neg-seed", ["run", "s_negseed.yaml"], "-1"),
    ("run-big-seed", ["run", "s_bigseed.yaml"], str(2**64)),
    ("run-ntest-text", ["run", "s_ntest.yaml"], "'abc'"),
    ("run-initfrom", ["run", "s_initfrom.yaml"], "no_such_run"),
    ("run-finetune", ["run", "s_finetune.yaml"], "fine_tune"),
    ("run-analysis", ["run", "s_analysis.yaml"], "no_such_analysis"),
    ("run-output", ["run", "s_output.yaml"], "[1, 2]"),
    ("run-section", ["run", "s_section.yaml"], "'simulate'"),
    ("run-python-tag", ["run", "s_python.yaml"], "not valid YAML"),
    ("run-method", ["run", "s_method.yaml"], "'abc'"),
    ("run-nle-image", ["run", "s_nle_image.yaml"], "NLE learns the density of x"),
    ("run-train-list", ["run", "s_trainlist.yaml"], "'train'"),
    ("run-snapshot", ["run", "s_snapshot.yaml"], "7"),
    ("run-out-empty", ["run", "s_valid.yaml", "-o", ""], "empty"),
    ("run-out-file", ["run", "s_valid.yaml", "-o", "notes.txt"], "notes.txt is a file"),
    ("run-binary", ["run", "obs_binary.txt"], "not a text file"),
    ("run-dir", ["run", "emptydir"], "emptydir is a folder"),
    ("demo-out-file", ["demo", "-o", "notes.txt"], "notes.txt is a file"),
    ("demo-out-empty", ["demo", "-o", ""], "empty"),
    ("cmd-unknown", ["frobnicate"], "'frobnicate'"),
]


@pytest.mark.parametrize("argv, needle", [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(ws, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(ws)
    before = _snapshot(ws)
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1, err  # one message
    assert "weights_only=False" not in err and "allow_pickle=True" not in err
    assert _snapshot(ws) == before  # nothing changed, nothing created


def test_read_only_output_is_refused_before_training(ws, monkeypatch, capsys, tmp_path):
    """An output folder that cannot be written is refused before anything is trained."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    target = ro / "run"
    if os.access(ro, os.W_OK):  # root ignores permission bits: use a read-only file system
        target = Path("/sys/sbi-astro-test-run")
        if os.access("/sys", os.W_OK) and not _unwritable("/sys"):
            pytest.skip("no unwritable folder available to this user")
    monkeypatch.chdir(ws)
    called = []
    monkeypatch.setattr("sbi_astro.pipeline.training.train", lambda *a, **k: called.append(1))
    code = main(["train", "gl.h5", "-o", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write to" in err and not called


def _unwritable(folder: str) -> bool:
    try:
        fd = os.open(os.path.join(folder, ".probe"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except OSError:
        return True
    os.close(fd)
    os.unlink(os.path.join(folder, ".probe"))
    return False


# -- the Python API ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def est(ws):
    return load_run(ws / "run", device="cpu")


def _api_cases():
    sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    x = torch.zeros(2)
    return [
        ("sample-neg", lambda e, ws: e.sample(-1, x), "-1"),
        ("sample-zero", lambda e, ws: e.sample(0, x), "0"),
        ("sample-float", lambda e, ws: e.sample(1.5, x), "1.5"),
        ("sample-none", lambda e, ws: e.sample(5, None), "x is None"),
        ("sample-empty", lambda e, ws: e.sample(5, torch.zeros(0, 2)), "(0, 2)"),
        ("sample-shape", lambda e, ws: e.sample(5, torch.zeros(3)), "(3,)"),
        ("sample-nan", lambda e, ws: e.sample(5, torch.tensor([float("nan"), 0.0])), "NaN"),
        ("sample-strings", lambda e, ws: e.sample(5, np.array(["a", "b"])), "<U1"),
        ("logprob-none", lambda e, ws: e.log_prob(torch.zeros(1, 2), None), "x is None"),
        ("train-strings", lambda e, ws: train(np.array([["a", "b"]] * 20), np.zeros((20, 2)),
                                              sim), "theta"),
        ("train-theta-shape", lambda e, ws: train(np.zeros((20, 3)), np.zeros((20, 2)), sim),
         "(20, 3)"),
        ("train-x-shape", lambda e, ws: train(np.zeros((20, 2)), np.zeros((19, 2)), sim),
         "(19, 2)"),
        ("train-complex", lambda e, ws: train(torch.zeros(20, 2, dtype=torch.complex64),
                                              torch.zeros(20, 2), sim), "complex"),
        ("train-too-few", lambda e, ws: train(np.full((20, 2), np.nan), np.zeros((20, 2)), sim),
         "fewer than 10"),
        ("train-nle-image", lambda e, ws: train(
            np.zeros((20, 12)), np.zeros((20, 64, 64)), load_simulator("lensing_sie"),
            TrainingConfig(method="nle")), "shape (64, 64)"),
        ("config-epochs", lambda e, ws: TrainingConfig(max_epochs="abc"), "'abc'"),
        ("config-seed", lambda e, ws: TrainingConfig(seed=-1), "-1"),
        ("campaign-seed", lambda e, ws: run_campaign(ws / "api.h5", sim, num_simulations=10,
                                                     seed=-1, progress=False), "-1"),
        ("campaign-path", lambda e, ws: run_campaign("", sim, num_simulations=10,
                                                     progress=False), "empty"),
        ("store-dir", lambda e, ws: SimulationStore.open(ws / "emptydir"), "emptydir"),
        ("load-run-file", lambda e, ws: load_run(ws / "notes.txt"), "notes.txt"),
        ("simulate-nan", lambda e, ws: sim.simulate(torch.tensor([float("nan"), 0.0])), "theta_0"),
        ("unknown-sim", lambda e, ws: load_simulator("no_such_sim"), "no_such_sim"),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize("call, needle", [c[1:] for c in API_CASES],
                         ids=[c[0] for c in API_CASES])
def test_api_bad_input(ws, est, call, needle):
    before = _snapshot(ws)
    with pytest.raises((SbiAstroError, FileNotFoundError)) as info:
        call(est, ws)
    assert needle in str(info.value)
    assert _snapshot(ws) == before


def test_train_accepts_numpy_and_counts_theta_outside_the_prior():
    """Arrays are accepted; parameters outside the prior are dropped with a counted warning."""
    sim = load_simulator("two_moons", device="cpu")
    theta, x = sim.sample_joint(300, generator=torch.Generator().manual_seed(0))
    theta, x = theta.numpy().copy(), x.numpy()
    theta[:7, 0] = 3.0  # outside U(-1, 1)
    with pytest.warns(RuntimeWarning, match="dropping 7 of 300 simulations whose parameters "
                      "lie outside the prior"):
        est = train(theta, x, sim, TrainingConfig(max_epochs=1, hidden_features=8,
                                                  num_transforms=1, device="cpu"))
    assert est.metadata["num_simulations"] == 293
