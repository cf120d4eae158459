"""Your own spectrum: the X-ray simulators built from OGIP files given by path.

The shipped observations are presets of the same mechanism, so the same files passed by
path must give bit-for-bit the same simulator; a hand-made PHA with BACKSCAL and AREASCAL
different from 1 and its own grouping checks XSPEC's conventions against a hand computation.
"""

from __future__ import annotations

import shutil

import h5py
import json
import numpy as np
import pytest
import torch
from astropy.io import fits

from sbi_astro.cli import main
from sbi_astro.errors import DataFormatError
from sbi_astro.registry import load_simulator
from simulators.xray.observations import OBSERVATIONS, build_response, data_path, read_observation
from simulators.xray.ogip import read_arf, read_rmf


def _copy_preset(name, dest):
    """The shipped files of observation ``name`` copied into ``dest``; the PHA's path."""
    folder = data_path(OBSERVATIONS[name]).parent
    for f in folder.iterdir():
        if f.name != "PROVENANCE.md":
            shutil.copy(f, dest / f.name)
    return dest / data_path(OBSERVATIONS[name]).name


@pytest.mark.parametrize("simulator, preset", [("xray_powerlaw", "chandra_3c273"),
                                               ("xray_thermal", "chandra_dgtau")])
def test_shipped_files_by_path_are_bit_for_bit_the_preset(tmp_path, simulator, preset):
    named = load_simulator(simulator, observation=preset)
    pha = _copy_preset(preset, tmp_path)
    own = load_simulator(simulator, pha=str(pha),
                         log10_norm_range=list(named.options_dict()["log10_norm_range"] or
                                               named._norm_range()))
    assert torch.equal(own.observed(), named.observed())
    assert torch.equal(own.prior.low, named.prior.low) and torch.equal(own.prior.high,
                                                                      named.prior.high)
    theta = named.prior.sample((64,))
    assert torch.equal(own.simulate(theta, generator=torch.Generator().manual_seed(5)),
                       named.simulate(theta, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(own.expected(theta), named.expected(theta))
    x = named.observed().expand(64, -1)
    assert torch.equal(own.log_likelihood(theta, x), named.log_likelihood(theta, x))
    files = own.data_files()
    assert files["pha"]["path"] == str(pha) and len(files["pha"]["sha256"]) == 64
    assert {r["sha256"] for r in files.values()} == \
        {r["sha256"] for r in named.data_files().values()}


def test_the_norm_prior_of_your_own_spectrum_is_centred_on_its_net_counts(tmp_path):
    pha = _copy_preset("chandra_3c273", tmp_path)
    own = load_simulator("xray_powerlaw", pha=str(pha))
    centre = own.data_norm_center()
    lo, hi = own._norm_range()
    assert (lo, hi) == pytest.approx((centre - 1.5, centre + 1.5))
    theta = own.prior.mean.clone()[None]
    names = own.prior.names
    theta[0, names.index("log10_norm")] = centre
    net = own.response.observed.sum() - own.response.background.sum()
    # rel 1e-6: the prior centres are float32 parameters
    assert float(own.source_counts(theta.double()).sum()) == pytest.approx(float(net), rel=1e-6)
    # the shipped preset's hand-set range holds this data-derived centre
    plo, phi = load_simulator("xray_powerlaw")._norm_range()
    assert plo < centre < phi


def test_a_missing_keyword_file_names_the_keyword_and_the_fix(tmp_path, capsys):
    pha = tmp_path / "3c273.pi.gz"
    shutil.copy(data_path("chandra_3c273/3c273.pi.gz"), pha)
    with pytest.raises(DataFormatError, match=r"RESPFILE names '3c273.rmf'.*rmf=PATH"):
        load_simulator("xray_powerlaw", pha=str(pha))
    shutil.copy(data_path("chandra_3c273/3c273.rmf.gz"), tmp_path)
    with pytest.raises(DataFormatError, match=r"ANCRFILE names '3c273.arf'.*arf=PATH"):
        load_simulator("xray_powerlaw", pha=str(pha))
    out = tmp_path / "sims.h5"
    code = main(["simulate", "xray_powerlaw", "--option", f"pha={pha}", "-n", "10", "-o",
                 str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "ANCRFILE" in err and "Traceback" not in err and not out.exists()


def test_a_store_of_your_own_spectrum_records_its_files(tmp_path, capsys):
    pha = _copy_preset("chandra_3c273", tmp_path)
    out = tmp_path / "sims.h5"
    assert main(["simulate", "xray_powerlaw", "--option", f"pha={pha}", "-n", "20", "-o",
                 str(out), "--chunk-size", "10"]) == 0
    with h5py.File(out) as f:
        meta = json.loads(f.attrs["metadata"])
    assert meta["options"]["pha"] == str(pha)
    assert set(meta["data_files"]) == {"pha", "arf", "rmf", "background"}
    assert meta["data_files"]["background"]["path"] == str(tmp_path / "3c273_bg.pi.gz")


def _write_scaled(src, dest, **header):
    """A copy of the PHA ``src`` with header keywords changed, all QUALITY 0 and a GROUPING
    of 1, 2 and 3 channels in turn."""
    with fits.open(src) as hdul:
        hdu = hdul["SPECTRUM"]
        for k, v in header.items():
            hdu.header[k] = v
        n = len(hdu.data)
        if "QUALITY" in hdu.columns.names:
            hdu.data["QUALITY"][:] = 0
        if "GROUPING" in hdu.columns.names:
            sizes = np.resize([1, 2, 3], n)
            grp, i = np.full(n, -1, dtype=np.int16), 0
            for s in sizes:
                if i >= n:
                    break
                grp[i] = 1
                i += s
            hdu.data["GROUPING"][:] = grp
        hdul.writeto(dest)
    return dest


def test_xspec_backscal_areascal_and_grouping_match_a_hand_computation(tmp_path):
    d = data_path("chandra_3c273")
    src = _write_scaled(d / "3c273.pi.gz", tmp_path / "src.pi", BACKSCAL=0.3, AREASCAL=0.8,
                        EXPOSURE=1000.0, BACKFILE="bkg.pi")
    _write_scaled(d / "3c273_bg.pi.gz", tmp_path / "bkg.pi", BACKSCAL=2.0, AREASCAL=0.9,
                  EXPOSURE=4000.0)
    for f in ("3c273.arf.gz", "3c273.rmf.gz"):
        shutil.copy(d / f, tmp_path / f)
    obs = read_observation(src)
    resp = build_response(obs, energy_range=(0.0, 1e4), grouping="file")

    # by hand: groups from the GROUPING column, counts = t * AREASCAL * sum_c sum_e F A R
    with fits.open(src) as h:
        grouping, counts = h[1].data["GROUPING"].astype(int), h[1].data["COUNTS"].astype(float)
    with fits.open(tmp_path / "bkg.pi") as h:
        bkg_counts = h[1].data["COUNTS"].astype(float)
    group_of = np.cumsum(grouping == 1) - 1
    rmf = read_rmf(tmp_path / "3c273.rmf.gz").matrix.toarray()
    area = read_arf(tmp_path / "3c273.arf.gz").specresp
    flux = np.random.default_rng(0).uniform(0.0, 1e-3, rmf.shape[0])
    per_channel = 1000.0 * 0.8 * ((flux * area) @ rmf)
    hand = np.bincount(group_of, weights=per_channel)
    hand_bkg = np.bincount(group_of, weights=bkg_counts) * (1000.0 * 0.3 * 0.8) / \
        (4000.0 * 2.0 * 0.9)
    hand_obs = np.bincount(group_of, weights=counts)
    assert resp.num_groups == group_of[-1] + 1
    np.testing.assert_allclose(flux @ resp.fold_matrix, hand, rtol=1e-9, atol=0)
    np.testing.assert_allclose(resp.background, hand_bkg, rtol=1e-9, atol=0)
    np.testing.assert_array_equal(resp.observed, hand_obs)

    # and the simulator built from these files predicts exactly that background
    sim = load_simulator("xray_powerlaw", pha=str(src), energy_range=[0.0, 1e4])
    theta = sim.prior.sample((3,))
    total = sim._mean_counts(theta)  # float64; expected() returns it as float32
    np.testing.assert_allclose((total - sim.source_counts(theta)).numpy(),
                               np.broadcast_to(hand_bkg, (3, hand_bkg.size)), rtol=1e-9,
                               atol=1e-12)
