"""High-dimensional calibration (sbi_astro.diagnostics.images) on posteriors with known
answers: the exact posterior of a per-pixel Gaussian (prior N(0, 1), noise N(0, 1), posterior
N(y / 2, 1 / 2)), the same too narrow and shifted, and the reduced chi^2 of known residuals."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro.diagnostics.images import NORMAL_WITHIN, image_calibration
from sbi_astro.errors import ConfigError, ShapeError
from sbi_astro.report import image_calibration_section
from sbi_astro.report.html import section_html

N, SIDE, S = 200, 8, 300  # 200 images of 8 x 8 = 12,800 pixels, 300 samples each


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.randn(N, SIDE, SIDE, generator=g)
    data = truth + torch.randn(N, SIDE, SIDE, generator=g)
    noise = torch.randn(S, N, SIDE, SIDE, generator=g)
    return truth, data, noise


def test_exact_posterior_is_calibrated_in_every_number():
    truth, data, noise = _problem()
    res = image_calibration(data / 2 + math.sqrt(0.5) * noise, truth, seed=0)
    # 12,800 independent z-scores: standard errors 0.009 (mean), 0.006 (std), 0.004
    # (fraction within 1), 0.003 (interval coverage); the tolerances are 5 of them
    assert abs(res.z_mean) < 0.05 and abs(res.z_std - 1) < 0.03
    assert abs(res.within[1] - NORMAL_WITHIN[1]) < 0.02
    assert abs(res.within[2] - NORMAL_WITHIN[2]) < 0.01
    assert abs(res.interval90_coverage - res.interval90_expected) < 0.015
    assert res.tarp.ks_pvalue > 0.01 and abs(res.tarp.atc) < 0.05
    assert res.reduced_chi2 is None and res.examples["truth"].shape == (4, SIDE, SIDE)


def test_too_narrow_and_shifted_posteriors_are_seen():
    truth, data, noise = _problem(1)
    narrow = image_calibration(data / 2 + 0.5 * math.sqrt(0.5) * noise, truth, seed=0)
    assert abs(narrow.z_std - 2.0) < 0.1  # half the width: z twice as wide
    assert narrow.tarp.ks_pvalue < 1e-6 and narrow.tarp.atc < -0.15
    assert narrow.within[1] < 0.45
    shifted = image_calibration(data / 2 + 0.5 * math.sqrt(0.5) + math.sqrt(0.5) * noise,
                                truth, seed=0)
    assert abs(shifted.z_mean + 0.5) < 0.05 and abs(shifted.z_std - 1) < 0.05


def test_reduced_chi2_of_known_residuals():
    g = torch.Generator().manual_seed(2)
    truth = torch.rand(N, 16, 16, generator=g)
    sigma = 0.05 + 0.2 * torch.rand(16, 16, generator=g)  # a noise map
    data = truth + sigma * torch.randn(N, 16, 16, generator=g)
    samples = truth + 0.01 * torch.randn(20, N, 16, 16, generator=g)
    good = image_calibration(samples, truth, data=data, model=truth, noise_sigma=sigma)
    # each image's chi^2 / 256 has mean 1 and sd sqrt(2 / 256) = 0.088; over 200 images
    # the mean has sd 0.006
    assert abs(float(good.reduced_chi2.mean()) - 1) < 0.03
    assert float(good.reduced_chi2.std()) == pytest.approx(math.sqrt(2 / 256), rel=0.2)
    off = image_calibration(samples, truth, data=data, model=truth + sigma, noise_sigma=sigma)
    assert abs(float(off.reduced_chi2.mean()) - 2) < 0.05  # a 1-sigma offset adds 1


def test_section_renders_tarp_histogram_and_maps():
    truth, data, noise = _problem(3)
    res = image_calibration(data / 2 + math.sqrt(0.5) * noise, truth, data=data,
                            model=data / 2, noise_sigma=1.0, num_examples=2)
    sec = image_calibration_section(res, title="Source pixels")
    page = section_html(sec)
    assert page.startswith("<h2>Source pixels</h2>") and page.count("<img") == 3
    assert sec.metrics["num_pixels"] == SIDE * SIDE and "reduced_chi2_mean" in sec.metrics
    assert "0.683 if calibrated" in sec.text


def test_bad_shapes_and_incomplete_chi2_inputs_are_refused():
    truth, data, noise = _problem(4)
    with pytest.raises(ShapeError, match="samples must be"):
        image_calibration(noise, truth[:, :4])
    with pytest.raises(ConfigError, match="data, model and noise_sigma together"):
        image_calibration(noise, truth, data=data, model=data)
    with pytest.raises(ConfigError, match="low < high"):
        image_calibration(noise, truth, bounds=(1.0, -1.0))
