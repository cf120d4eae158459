"""The calibration report: exact posterior is "calibrated", an overconfident one is not."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.errors import ShapeError
from sbi_astro.analysis import Section
from sbi_astro.pipeline.calibration import CalibrationResult, calibrate
from sbi_astro.report.figures import figure

ROOT = Path(__file__).resolve().parents[1]


class ReferencePosterior:
    """Fake estimator from the exact gaussian_linear posterior, optionally rescaled.

    ``sample`` goes through ``simulator.reference_posterior`` (the exact sampler) and
    shrinks the spread around the exact posterior mean by ``scale``.
    """

    def __init__(self, sim, scale: float = 1.0, with_log_prob: bool = True):
        self.sim, self.scale = sim, scale
        if not with_log_prob:
            self.log_prob = None

    def sample(self, num_samples, x):
        draws = self.sim.reference_posterior(x, num_samples,
                                             generator=torch.Generator().manual_seed(11))
        mean, _ = self.sim.posterior_mean_std(x)
        return mean + self.scale * (draws - mean)

    def log_prob(self, theta, x):
        mean, std = self.sim.posterior_mean_std(x)
        sd = self.scale * std
        return (-0.5 * ((theta - mean) / sd) ** 2).sum(-1) - theta.shape[-1] * torch.log(sd)


@pytest.fixture(scope="module")
def sim():
    return load_simulator("gaussian_linear", device="cpu", dim=3)


@pytest.fixture(scope="module")
def exact_report(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("exact")
    return calibrate(ReferencePosterior(sim), sim, out, n_test=200, num_samples=500, seed=0,
                     provenance={"run_dir": "runs/test", "simulator": "gaussian_linear"})


def test_exact_posterior_is_calibrated_and_report_is_self_contained(exact_report):
    res = exact_report
    assert isinstance(res, CalibrationResult)
    assert res.verdict == "calibrated"
    assert res.report_path.name == "report.html" and res.metrics_path.name == "metrics.json"
    html = res.report_path.read_text(encoding="utf-8")
    # self-contained: no external resources, figures inline as base64 PNG
    assert not re.search(r'(src|href)="(https?:)?//', html)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 6  # TARP, coverage, SBC, recovery, corner, PPC
    for img in images:
        assert base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "CALIBRATED" in html.upper() and "gaussian_linear" in html
    metrics = json.loads(res.metrics_path.read_text())
    assert metrics["verdict"]["label"] == "calibrated"
    prov = metrics["provenance"]
    assert prov["simulator"]["name"] == "gaussian_linear"
    assert prov["simulator"]["options"] == {"dim": 3}
    assert prov["n_test"] == 200 and prov["seed"] == 0 and prov["run"]["run_dir"] == "runs/test"
    assert prov["packages"]["torch"].startswith("2.13")
    assert len(metrics["parameters"]) == 3
    assert metrics["coverage"] is not None
    # the PPC of a well-specified model covers at least its nominal 90% (PPCs are
    # conservative: the predictive adds posterior width to the noise)
    assert metrics["key_numbers"]["PPC 90% interval coverage"] >= 0.9
    k = metrics["ppc"]["num_draws"]
    assert metrics["key_numbers"]["PPC 90% interval, K-draw reference"] == pytest.approx(
        0.9 * (k - 1) / (k + 1))


def test_parameter_recovery_matches_the_analytic_gaussian_linear_values(exact_report):
    # gaussian_linear: theta ~ N(0, 0.1 I), x ~ N(theta, 0.1 I) -> the exact posterior has
    # std sqrt(0.05) and its mean explains R^2 = 1 - 0.05 / 0.1 = 0.5 of the prior variance
    # (200 test simulations: the sample R^2 has a standard error of about 0.06)
    for p in exact_report.metrics["parameters"]:
        assert p["r2"] == pytest.approx(0.5, abs=0.15)
        assert p["posterior_std_median"] == pytest.approx(0.05 ** 0.5, rel=0.03)
    assert "Parameter recovery" in exact_report.report_path.read_text(encoding="utf-8")


def test_extra_sections_are_rendered_and_saved(sim, tmp_path):
    fig, axes = figure()
    axes[0, 0].plot([0, 1], [0, 1])
    sec = Section(title="My analysis", text="First <paragraph>.\n\nSecond one.",
                  figures=[(fig, "a line")], metrics={"answer": 42.0},
                  table=[{"name": "a", "value": 1.5}, {"name": "b", "value": None}])
    res = calibrate(ReferencePosterior(sim), sim, tmp_path, n_test=20, num_samples=50, seed=0,
                    sections=[sec])
    page = res.report_path.read_text(encoding="utf-8")
    assert "<h2>My analysis</h2>" in page and "First &lt;paragraph&gt;." in page
    assert "<td>1.5</td>" in page and "<td>-</td>" in page
    assert page.index("My analysis") < page.index("<h2>Provenance</h2>")
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 7
    assert res.metrics["sections"] == {"My analysis": {"answer": 42.0}}


def test_overconfident_posterior_is_flagged(sim, tmp_path):
    res = calibrate(ReferencePosterior(sim, scale=0.5, with_log_prob=False), sim, tmp_path,
                    n_test=200, num_samples=500, seed=0)
    assert res.verdict == "overconfident"
    assert res.metrics["coverage"] is None  # no log_prob: no HPD coverage, still a verdict
    assert res.metrics["tarp"]["atc"] < 0


def test_calibrate_is_reproducible(sim, tmp_path, exact_report):
    again = calibrate(ReferencePosterior(sim), sim, tmp_path, n_test=200, num_samples=500,
                      seed=0, provenance={"run_dir": "runs/test"})
    assert again.metrics["tarp"]["ecp"] == exact_report.metrics["tarp"]["ecp"]
    assert again.metrics["key_numbers"] == exact_report.metrics["key_numbers"]


def test_wrong_sample_shape_is_explained(sim, tmp_path):
    class Bad:
        def sample(self, num_samples, x):
            return torch.zeros(x.shape[0], num_samples, 3)

    with pytest.raises(ShapeError, match=r"must return \(S, N, D\)"):
        calibrate(Bad(), sim, tmp_path, n_test=20, num_samples=30)


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    spec = importlib.util.spec_from_file_location("render_report",
                                                  ROOT / "docs" / "render_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    png = mod.main(str(tmp_path))
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # a blank page compresses to a few kB; the rendered figures make it hundreds of kB
    assert len(data) > 100_000


def test_posteriors_taking_a_generator_are_sampled_reproducibly(sim, tmp_path):
    class Seeded(ReferencePosterior):
        def sample(self, num_samples, x, *, generator=None):
            draws = self.sim.reference_posterior(x, num_samples, generator=generator)
            return draws

    a = calibrate(Seeded(sim), sim, tmp_path / "a", n_test=30, num_samples=100, seed=4)
    b = calibrate(Seeded(sim), sim, tmp_path / "b", n_test=30, num_samples=100, seed=4)
    assert a.metrics["tarp"]["ecp"] == b.metrics["tarp"]["ecp"]
    c = calibrate(Seeded(sim), sim, tmp_path / "c", n_test=30, num_samples=100, seed=5)
    assert c.metrics["tarp"]["ecp"] != a.metrics["tarp"]["ecp"]
