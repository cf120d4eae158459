"""Your own lens image: the lensing simulators built from a FITS image, PSF, noise map and
mask.  A synthetic image written to FITS with the equivalent PSF and noise map must give the
same simulator bit for bit; the mask, the noise map and every bad file are checked."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from astropy.io import fits

from sbi_astro.cli import main
from sbi_astro.errors import ConfigError, DataFormatError
from sbi_astro.registry import load_simulator
from simulators.lensing import _physics as ph
from simulators.lensing.data import read_psf

SCALE = 0.08  # arcsec per pixel of the synthetic cutouts
N = 32


def _header(n, scale=SCALE, exptime=1000.0):
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 150.0, 2.0
    h["CRPIX1"], h["CRPIX2"] = (n + 1) / 2, (n + 1) / 2
    h["CDELT1"], h["CDELT2"] = -scale / 3600.0, scale / 3600.0
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    if exptime is not None:
        h["EXPTIME"] = exptime
    return h


def _write(path, data, header=None):
    fits.PrimaryHDU(np.asarray(data), header=header).writeto(path)
    return str(path)


@pytest.fixture(scope="module")
def lens_files(tmp_path_factory):
    """A lensing_sie image with its Gaussian PSF and a constant noise map, written to FITS."""
    folder = tmp_path_factory.mktemp("lens")
    sim = load_simulator("lensing_sie", device="cpu", num_pix=N)
    theta = sim.prior.sample((1,), generator=torch.Generator().manual_seed(4))
    image = sim.simulate(theta, generator=torch.Generator().manual_seed(5))[0].numpy()
    return {"image": _write(folder / "lens.fits", image, _header(N)),
            "psf": _write(folder / "psf.fits", ph.gaussian_psf_kernel(0.1, SCALE).numpy()),
            "noise_map": _write(folder / "sigma.fits", np.full((N, N), 0.01)),
            "folder": folder, "array": image}


@pytest.mark.parametrize("noise", ["poisson", "gaussian"])
def test_files_give_bit_for_bit_the_equivalent_options(lens_files, noise):
    named = load_simulator("lensing_sie", device="cpu", num_pix=N, noise=noise)
    own = load_simulator("lensing_sie", device="cpu", noise=noise, image=lens_files["image"],
                         psf=lens_files["psf"], noise_map=lens_files["noise_map"])
    assert (own.options.num_pix, own.options.pixel_scale, own.options.exposure_time) == \
        (N, SCALE, 1000.0)
    assert torch.equal(own.psf_kernel, named.psf_kernel)
    theta = named.prior.sample((20,), generator=torch.Generator().manual_seed(1))
    x_own = own.simulate(theta, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x_own, named.simulate(theta, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(own.log_likelihood(theta, x_own), named.log_likelihood(theta, x_own))
    assert torch.equal(own.observed(), torch.from_numpy(lens_files["array"]))
    assert set(own.data_files()) == {"image", "psf", "noise_map"}


def test_the_mask_removes_pixels_from_the_data_the_simulations_and_the_likelihood(lens_files):
    mask = np.ones((N, N))
    mask[:, :5] = 0.0
    path = _write(lens_files["folder"] / "mask.fits", mask)
    own = load_simulator("lensing_sie", device="cpu", image=lens_files["image"],
                         psf=lens_files["psf"], noise_map=lens_files["noise_map"], mask=path)
    plain = load_simulator("lensing_sie", device="cpu", num_pix=N)
    theta = plain.prior.sample((3,), generator=torch.Generator().manual_seed(6))
    x = own.simulate(theta, generator=torch.Generator().manual_seed(7))
    assert torch.all(x[:, :, :5] == 0) and torch.all(own.observed()[:, :5] == 0)
    # by hand: the Gaussian log density of the used pixels only
    mu = plain.expected(theta).double()
    var = 0.01 ** 2 + mu.clamp_min(0) / 1000.0
    dens = -0.5 * ((x.double() - mu) ** 2 / var + torch.log(2 * math.pi * var))
    want = dens[:, :, 5:].sum(dim=(-2, -1))
    torch.testing.assert_close(own.log_likelihood(theta, x).double(), want, rtol=1e-5, atol=1e-3)


def test_a_noise_map_sets_the_per_pixel_noise(lens_files):
    sigma = np.full((N, N), 0.01)
    sigma[:, N // 2:] = 0.05  # a noisier right half
    path = _write(lens_files["folder"] / "sigma2.fits", sigma)
    sim = load_simulator("lensing_sie", device="cpu", noise="gaussian",
                         image=lens_files["image"], psf=lens_files["psf"], noise_map=path)
    theta = sim.prior.sample((1,), generator=torch.Generator().manual_seed(8)).expand(4000, -1)
    x = sim.simulate(theta, generator=torch.Generator().manual_seed(9)).double()
    mu = sim.expected(theta[:1]).double()[0]
    want = torch.sqrt(torch.from_numpy(sigma) ** 2 + mu.clamp_min(0) / 1000.0)
    # the sample std of n = 4,000 normal draws has relative standard error 1/sqrt(2 n):
    # over 1,024 pixels its mean error is within 4 standard errors of 0 and the worst pixel
    # within 4.5 (a false alarm has probability < 0.01 for each)
    se = 1.0 / math.sqrt(2 * 4000)
    rel = x.std(dim=0) / want - 1
    assert abs(float(rel.mean())) < 4 * se / math.sqrt(N * N)
    assert float(rel.abs().max()) < 4.5 * se
    assert float(rel.std()) == pytest.approx(se, rel=0.1)


def test_a_cutout_around_the_lens_and_a_supersampled_psf(tmp_path):
    big = np.random.default_rng(0).normal(0.0, 0.01, (80, 90))
    path = _write(tmp_path / "big.fits", big, _header(80))
    sim = load_simulator("lensing_sie", device="cpu", image=path, center=[150.0, 2.0],
                         cutout_pix=33)
    # CRPIX (40.5, 40.5) is 1-based: pixel index 39.5 on each axis; a 33-pixel cutout
    # centred there spans 23.5 ... 55.5, which astropy's Cutout2D rounds to 23 ... 55
    assert sim.options.num_pix == 33
    np.testing.assert_array_equal(sim.observed().double().numpy(),
                                  big[23:56, 23:56].astype(np.float32))
    assert sim.options.background_rms == pytest.approx(0.01, rel=0.15)
    fine = np.random.default_rng(1).uniform(0.0, 1.0, (15, 15))
    kernel = read_psf(_write(tmp_path / "fine.fits", fine), supersampling=3)
    by_hand = np.array([[fine[3 * i:3 * i + 3, 3 * j:3 * j + 3].sum() for j in range(5)]
                        for i in range(5)])
    np.testing.assert_allclose(kernel, by_hand / by_hand.sum(), rtol=1e-12)


def _bad_files(folder, lens):
    """(name, options, error class, words the message must hold)"""
    even = _write(folder / "even.fits", np.ones((4, 4)))
    neg = _write(folder / "neg.fits", -ph.gaussian_psf_kernel(0.1, SCALE).numpy())
    nowcs = _write(folder / "nowcs.fits", lens["array"], fits.Header({"EXPTIME": 10.0}))
    zero = np.full((N, N), 0.01)
    zero[3, 4] = 0.0
    nan = np.full((N, N), 0.01)
    nan[0, 0] = np.nan
    return [
        ("psf even", {"psf": even}, DataFormatError, ["even.fits", "odd"]),
        ("psf negative", {"psf": neg}, DataFormatError, ["neg.fits", "positive sum"]),
        ("no wcs", {"image": nowcs}, DataFormatError, ["nowcs.fits", "pixel_scale"]),
        ("noise zero", {"image": lens["image"], "noise_map": _write(
            folder / "zero.fits", zero)}, DataFormatError, ["zero.fits", "x=4, y=3"]),
        ("noise nan", {"image": lens["image"], "noise_map": _write(
            folder / "nan.fits", nan)}, DataFormatError, ["nan.fits", "NaN"]),
        ("mask empty", {"image": lens["image"], "mask": _write(
            folder / "empty.fits", np.zeros((N, N)))}, DataFormatError, ["empty.fits", "every"]),
        ("shape", {"image": lens["image"], "noise_map": _write(
            folder / "small.fits", np.ones((N - 2, N - 2)))}, DataFormatError,
         ["small.fits", "same pixels"]),
        ("no exptime", {"image": _write(folder / "noexp.fits", lens["array"],
                                        _header(N, exptime=None))},
         DataFormatError, ["noexp.fits", "EXPTIME", "exposure_time"]),
        ("two psfs", {"psf": lens["psf"], "psf_fwhm": 0.2}, ConfigError, ["psf_fwhm", "psf"]),
        ("mask alone", {"mask": lens["noise_map"]}, ConfigError, ["image=PATH"]),
    ]


def test_bad_files_are_named_in_one_message_with_exit_2(lens_files, tmp_path, capsys):
    for label, options, cls, words in _bad_files(tmp_path, lens_files):
        with pytest.raises(cls) as err:
            load_simulator("lensing_sie", device="cpu", **options)
        for w in words:
            assert w in str(err.value), (label, str(err.value))
        argv = ["simulate", "lensing_sie", "-n", "4", "-o", str(tmp_path / "x.h5")]
        for k, v in options.items():
            argv += ["--option", f"{k}={v}"]
        code = main(argv)
        captured = capsys.readouterr().err
        assert code == 2 and words[0] in captured and "Traceback" not in captured, label
        assert not (tmp_path / "x.h5").exists()
