"""`sbi-astro run` on a RIM study (solver: rim): a plugin's inverse problem, a RIM trained
on it, held-out signals against the problem's peers, fine-tuning and the report; the
inverse-problem protocol of the built-in problems; bad studies exit 2 before any work, and
a trained RIM is never replaced by a study with other settings."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from sbi_astro.cli import main
from sbi_astro.errors import PluginError
from sbi_astro.inverse_problems import REQUIRED, get_inverse_problem, list_inverse_problems
from sbi_astro.random import RowRandom, fold, key_from_seed

SMALL_LENS = {"num_pix": 32, "pixel_scale": 0.16, "kappa_num_pix": 16, "source_num_pix": 16,
              "source_pixel_scale": 0.08, "map_steps": 60}
STUDY = {
    "name": "tiny-lensing-rim", "solver": "rim",
    "problem": {"name": "lensing_maps", "options": SMALL_LENS},
    "rim": {"steps": 3, "hidden": 4, "scale": "channel", "members": 2},
    "training": {"num_signals": 64, "seed": 0, "epochs": 1, "batch_size": 16, "lr": 0.002},
    "test": {"num_signals": 8, "seed": 1, "num_tune": 3, "tune_seed": 3, "bootstrap": 2,
             "num_calibrate": 4,
             "fine_tune": {"num": 2, "iterations": 3}},
    "device": "cpu",
}


def test_rim_study_runs_end_to_end_reuses_its_rim_and_keeps_it(tmp_path, capsys,
                                                               one_torch_thread):
    pytest.importorskip("galsim")
    path = tmp_path / "s.yaml"
    out_dir = tmp_path / "out"
    study = {**STUDY, "test": {**STUDY["test"], "polish": True}, "output": str(out_dir)}
    path.write_text(yaml.safe_dump(study))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "training RIM 1 of 2 on 64 signals of 'lensing_maps'" in out
    assert "training RIM 2 of 2" in out
    m = json.loads((out_dir / "report" / "metrics.json").read_text())
    g = m["groups"]["all"]
    assert g["signals"] == 8
    # the truth fits its own data at the noise level: 8 x 1,024 Gaussian pixels give a
    # reduced chi^2 of 1 with standard deviation ~0.016, so 0.1 is > 6 sigma
    assert g["truth_misfit"] == pytest.approx(1.0, abs=0.1)
    for solver in ("rim", "regularised-map"):
        assert {f"{solver}_misfit", f"{solver}_source", f"{solver}_log_kappa"} <= set(g)
    # sigma: the bootstrap's, the 2 members' spread, and both in quadrature, so the total
    # covers at least as many values as either part
    w = {k: g[f"rim_truth_within_1_sigma_{k}"] for k in ("bootstrap", "ensemble", "total")}
    assert 0.0 <= w["bootstrap"] <= 1.0 and 0.0 < w["ensemble"] < 1.0
    assert w["total"] >= max(w["bootstrap"], w["ensemble"])
    # calibrated: the total sigma times a factor fitted on 4 images of their own
    assert g["rim_truth_within_1_sigma_calibrated"] >= 0.0
    assert all(v["sigma_calibration_scale"] > 0 for v in m["groups"].values())
    assert {"rim_misfit", "rim-member-1_misfit"} <= set(g)
    # polished: each image at most one standard deviation of chi^2 above 1 (sqrt(2 / 1,024)),
    # or at its last step; the untrained RIM's answer is far above that
    assert g["rim_misfit"] > 2.0 and g["rim-polished_misfit"] < g["rim_misfit"] / 2
    ft = m["fine_tuning"]
    assert len(ft["signals"]) == 2 and all(0 <= i <= 3 for i in ft["iterations"])
    # the fine-tuned signals are the two the RIM fitted worst
    assert m["observed"] is None  # the lensing problem ships no observation
    page = (out_dir / "report" / "report.html").read_text()
    assert "Reconstruction accuracy" in page and page.count("<img") == 1
    # a re-run reuses the machine, bit for bit; the training checkpoints
    # (tests/solvers/test_rim.py) are gone once the machines are saved
    assert (out_dir / "rim-2" / "rim.json").exists()
    assert not list(out_dir.glob("*-checkpoint"))
    weights = sorted((out_dir / "rim").glob("weights-*.pt"))
    before = weights[0].read_bytes()
    assert main(["run", str(path)]) == 0
    assert "reusing 2 trained RIM(s)" in capsys.readouterr().out
    assert json.loads((out_dir / "report" / "metrics.json").read_text())["groups"]["all"][
        "rim_misfit"] == g["rim_misfit"]
    # other training settings: refused with exit 2, the trained machine kept as it was
    path.write_text(yaml.safe_dump({**study, "training": {**STUDY["training"], "epochs": 2}}))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "holds a RIM trained with other settings" in err and "Traceback" not in err
    assert sorted((out_dir / "rim").glob("weights-*.pt")) == weights
    assert weights[0].read_bytes() == before


@pytest.mark.parametrize("change, words", [
    ({"rim": {"steps": 3, "layers": 2}}, "unknown key(s) ['layers']"),
    ({"problem": {"name": "lensing_mapz"}}, "lensing_mapz"),
    ({"problem": {"name": "lensing_maps", "options": {"warp": 2}}},
     "inverse problem 'lensing_maps': unknown or missing options ['warp']"),
    ({"solver": "rimm"}, "'solver' must be 'score' (a score-prior study) or 'rim'"),
    ({"rim": {"steps": 0}}, "RIMConfig.steps must be an integer >= 1"),
    ({"test": {"num_signals": 8, "seed": 0}}, "must differ"),
    ({"test": {"num_signals": 8, "bootstrap": 1}}, "'test.bootstrap' must be 0"),
    ({"training": {"num_signals": 20, "batch_size": 16}}, "at least twice"),
    ({"test": {"fine_tune": {"lr": -1}}}, "'test.fine_tune.lr' must be a positive number"),
    ({"rim": {"members": 0}}, "'rim.members' must be a positive integer"),
    ({"test": {"fine_tune": {"penalty": -1}}}, "'test.fine_tune.penalty' must be a number"),
    ({"problem": {"name": "lensing_maps", "options": {**SMALL_LENS, "kappa_num_pix": 8}}},
     "kappa_num_pix (8) must equal source_num_pix (16)"),
    ({"test": {"num_signals": 8, "polish": "yes"}}, "'test.polish' must be true or false"),
    ({"test": {"num_signals": 8, "num_calibrate": 4, "calibrate_seed": 1}},
     "test.calibrate_seed must differ"),
    ({"test": {"num_signals": 8, "num_calibrate": -1}}, "'test.num_calibrate' must be an"),
])
def test_bad_rim_studies_exit_2_before_any_work(tmp_path, capsys, change, words):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **change, "output": str(tmp_path / "out")}))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_polish_on_a_problem_without_one_exits_2_before_any_work(tmp_path, capsys,
                                                                 monkeypatch):
    from simulators.lensing.inverse import LensingMaps

    monkeypatch.delattr(LensingMaps, "polish")  # a problem whose plugin has no polish step
    path = tmp_path / "s.yaml"
    study = {**STUDY, "test": {**STUDY["test"], "polish": True}, "output": str(tmp_path / "o")}
    path.write_text(yaml.safe_dump(study))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "problem 'lensing_maps' has no polish step; set test.polish: false" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, options", [
    ("lensing_maps", SMALL_LENS),
    ("xray_deconvolution", {"observation": "chandra_dgtau", "ml_steps": 5}),
])
def test_built_in_problems_follow_the_protocol(name, options):
    if name == "lensing_maps":
        pytest.importorskip("galsim")
    assert name in list_inverse_problems()
    problem = get_inverse_problem(name, **options)
    assert all(hasattr(problem, attr) for attr in REQUIRED)
    a = problem.sample_signals(6, seed=5)
    assert tuple(a.shape) == (6, *problem.signal_shape)
    assert torch.equal(a, problem.sample_signals(6, seed=5))  # seeded
    assert not torch.equal(a, problem.sample_signals(6, seed=6))
    keys = fold(key_from_seed(7), torch.arange(6))
    data = problem.observe(a, RowRandom(keys))
    # row i's noise depends on its own stream only
    assert torch.equal(problem.observe(a[2:4], RowRandom(keys[2:4])), data[2:4])
    ll = problem.log_likelihood(a, data)
    assert ll.shape == (6,) and bool(torch.isfinite(ll).all())
    # the truth fits its data: C-stat (few counts: below 1) or chi^2 per value near 1
    assert float(problem.misfit(a, data).mean()) < 1.3
    errors = problem.errors(a, a)
    assert all(float(e.abs().max()) < 1e-6 for e in errors.values())
    labels, names = problem.groups(a)
    assert labels.shape == (6,) and int(labels.max()) < len(names)


def test_a_problem_missing_part_of_the_protocol_is_a_plugin_error(monkeypatch):
    import sbi_astro.inverse_problems as ip

    monkeypatch.setattr(ip, "inverse_problem_factory", lambda name: (lambda: object()))
    with pytest.raises(PluginError, match="lacks"):
        ip.get_inverse_problem("anything")


def test_the_real_3c273_spectrum_has_a_maximum_likelihood_reference(one_torch_thread):
    """The reference beside the RIM's reconstruction of the shipped 3C 273 counts is the
    better of the fitted absorbed power law and 1-T plasma: for this quasar the power law,
    photon index ~2 (measured 1.96, C-stat 1.122 per channel; the benchmark study's own fit
    gave 1.97 and 1.122), a better fit than the prior's central power law."""
    problem = get_inverse_problem("xray_deconvolution", observation="chandra_3c273")
    label, ref = problem.observed_reference()
    assert label.startswith("maximum-likelihood powerlaw")
    index = float(label.split("photon_index ")[1].split(",")[0])
    assert 1.8 < index < 2.1
    counts = problem.observed()
    cstat = float(problem.misfit(ref, counts)[0])
    assert cstat == pytest.approx(1.122, abs=0.02)
    sim = problem.sims["powerlaw"]
    centre = (sim.prior.low + sim.prior.high)[None] / 2
    width = torch.as_tensor(problem.edges[1:] - problem.edges[:-1])
    central = (sim.photon_flux(centre) / width).clamp_min(problem.floor).float()
    assert cstat < float(problem.misfit(central, counts)[0])


def test_calibration_scale_is_the_one_sigma_quantile_of_the_errors_over_sigma():
    """Errors N(0, s_g^2) against a sigma of 1 in group g: the factor is s_g.  The 68.27 %
    quantile of |N(0, 1)| is 1; from 20,000 values its standard error is ~0.0085, so 0.03
    is > 3.5 standard errors; an empty group takes the factor of all values."""
    from scipy.optimize import brentq
    from scipy.special import erf

    from sbi_astro.pipeline.rim_study import _calibration_scales
    gen = torch.Generator().manual_seed(0)
    truth = torch.exp(torch.randn(400, 2, 5, 5, generator=gen))
    labels = torch.arange(400) % 2
    s = torch.tensor([0.5, 2.0])[labels].reshape(-1, 1, 1, 1)
    est = truth.clone()
    est[:, 0] += s[:, 0] * torch.randn(400, 5, 5, generator=gen)  # identity channel
    est[:, 1] = truth[:, 1] * torch.exp(s[:, 0] * torch.randn(400, 5, 5, generator=gen))
    scales = _calibration_scales(("identity", "log"), est, truth, torch.ones_like(truth),
                                 labels, 3)
    assert scales.shape == (4,) and float(scales[3]) == float(scales[2])  # last: all values
    assert scales[:2].tolist() == pytest.approx([0.5, 2.0], rel=0.03)
    # the empty group: the quantile of the equal mixture, q with
    # (erf(q / (0.5 sqrt 2)) + erf(q / (2 sqrt 2))) / 2 = 0.6827
    mixture = brentq(lambda q: (erf(q / 0.5 / 2**0.5) + erf(q / 2.0 / 2**0.5)) / 2 - 0.6827,
                     0.1, 10.0)
    assert float(scales[2]) == pytest.approx(mixture, rel=0.03)
