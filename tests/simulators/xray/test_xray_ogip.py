"""OGIP readers, folding and grouping against the shipped real files."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from sbi_astro.errors import ConfigError, DataFormatError
from simulators.xray.observations import (
    OBSERVATIONS,
    build_response,
    data_path,
    load_observation,
    read_observation,
)
from simulators.xray.ogip import read_arf, read_pha, read_rmf

# Non-zero matrix elements as counted independently when the data were vetted
# (PROVENANCE.md of each folder): the sparse reader must find exactly these.
NONZEROS = {"chandra_3c273": 61834, "chandra_dgtau": 283039, "xmm_ngc7793": 929478}


def _dense_rmf_by_hand(path):
    """An independent dense RMF: walks the FITS rows with plain Python indexing."""
    with fits.open(path) as hdul:
        hdu = hdul["MATRIX"]
        first = int(hdu.header[f"TLMIN{hdu.columns.names.index('F_CHAN') + 1}"])
        nchan = int(hdu.header["DETCHANS"])
        d = hdu.data
        out = np.zeros((len(d), nchan))
        for i in range(len(d)):
            fc = np.atleast_1d(d["F_CHAN"][i])
            nc = np.atleast_1d(d["N_CHAN"][i])
            m = np.asarray(d["MATRIX"][i], dtype=float)
            k = 0
            for g in range(int(d["N_GRP"][i])):
                out[i, fc[g] - first: fc[g] - first + nc[g]] = m[k: k + nc[g]]
                k += nc[g]
    return out


@pytest.mark.parametrize("name", sorted(OBSERVATIONS))
def test_rmf_nonzeros_and_row_sums(name):
    rmf = load_observation(name).rmf
    assert rmf.matrix.nnz == NONZEROS[name]
    # RMF rows are redistribution probabilities: they sum to 1 up to the LO_THRES truncation
    # (<= 3e-4 in these files, measured), so 1e-3 is a safe, still meaningful bound.
    np.testing.assert_allclose(np.asarray(rmf.matrix.sum(1)).ravel(), 1.0, atol=1e-3)


def test_first_channel_from_tlmin():
    assert load_observation("xmm_ngc7793").rmf.first_channel == 0
    assert load_observation("xmm_ngc7793").spectrum.channel[0] == 0
    assert load_observation("chandra_dgtau").rmf.first_channel == 1


@pytest.mark.parametrize("name", sorted(OBSERVATIONS))
def test_flat_spectrum_folds_to_area_per_channel(name):
    """Folding F_e = 1 photon/cm^2/s per bin gives sum_e A_e R[e, c] x exposure per channel."""
    obs = load_observation(name)
    resp = build_response(obs, energy_range=(0.0, 100.0), grouping="none")
    folded = np.ones(resp.fold_matrix.shape[0]) @ resp.fold_matrix / resp.exposure
    dense = _dense_rmf_by_hand(obs.rmf.path)
    expect = (obs.arf.specresp[:, None] * dense).sum(0)
    kept = resp.group_matrix.sum(1) > 0
    # Same float32 file values summed in another order: agreement to 1e-9 relative.
    np.testing.assert_allclose(folded, expect[kept], rtol=1e-9, atol=1e-9 * expect.max())
    # And the total is the summed effective area, since RMF rows sum to 1 (to 1e-3); XMM
    # flags 1116 channels bad (QUALITY != 0), which are dropped, so the check needs all.
    if kept.all():
        assert folded.sum() == pytest.approx(obs.arf.specresp.sum(), rel=1e-3)
    else:
        assert name == "xmm_ngc7793" and kept.sum() == 4096 - 1116


def test_grouping_conserves_counts():
    obs = load_observation("chandra_3c273")
    spec = obs.spectrum
    wide = build_response(obs, energy_range=(0.0, 100.0), grouping="file")
    in_kept = wide.group_matrix.sum(1) > 0
    assert wide.observed.sum() == spec.counts[in_kept].sum()
    # The file's own GRP_DATA column holds the grouped counts: compare group by group.
    with fits.open(spec.path) as hdul:
        d = hdul["SPECTRUM"].data
        starts = d["GROUPING"] == 1
        grp_data = d["GRP_DATA"][starts]
        first_chan = d["CHANNEL"][starts]
    kept_first = spec.channel[np.argmax(wide.group_matrix, axis=0)]
    ref = dict(zip(first_chan.tolist(), grp_data.tolist(), strict=True))
    np.testing.assert_array_equal(wide.observed, [ref[c] for c in kept_first])
    # min:N grouping over the whole band conserves every count and reaches N per group.
    dg = load_observation("chandra_dgtau")
    g = build_response(dg, energy_range=(0.0, 100.0), grouping="min:20")
    assert g.observed.sum() == dg.spectrum.counts.sum() == 389
    assert (g.observed[:-1] >= 20).all()


def test_background_from_second_spectrum_extension():
    obs = load_observation("chandra_dgtau")
    assert obs.background is not None and obs.background.kind == "BKG"
    assert obs.background.counts.sum() == 77
    assert obs.background.backscal == pytest.approx(6.85e-6, rel=1e-3)
    resp = build_response(obs, energy_range=(0.0, 100.0), grouping="none")
    ratio = obs.spectrum.backscal / obs.background.backscal  # same exposure in a pha3 file
    assert resp.background.sum() == pytest.approx(77 * ratio, rel=1e-9)


def test_energy_filter_keeps_channels_inside_range():
    resp = build_response(load_observation("chandra_dgtau"), energy_range=(0.5, 7.0),
                          grouping="none")
    assert resp.group_e_lo.min() >= 0.5 and resp.group_e_hi.max() <= 7.0
    assert resp.observed.sum() == 380  # PROVENANCE: 380 of 389 counts in 0.5-7 keV


def test_exposure_override_scales_fold_and_background():
    obs = load_observation("chandra_3c273")
    a = build_response(obs)
    b = build_response(obs, exposure=2 * obs.spectrum.exposure)
    np.testing.assert_allclose(b.fold_matrix, 2 * a.fold_matrix)
    np.testing.assert_allclose(b.background, 2 * a.background)


def test_mismatched_arf_grid_is_a_data_format_error():
    with pytest.raises(DataFormatError, match="different energy grids"):
        read_observation(data_path(OBSERVATIONS["chandra_3c273"]),
                         arf=data_path("chandra_dgtau/acisf04487_001N022_r0009_arf3.fits.gz"))


def test_mismatched_channels_is_a_data_format_error():
    with pytest.raises(DataFormatError, match="channels"):
        read_observation(data_path(OBSERVATIONS["chandra_3c273"]),
                         rmf=data_path("xmm_ngc7793/PN.rmf.gz"),
                         arf=data_path("xmm_ngc7793/PN.arf.gz"))


def test_foreign_and_missing_files(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        read_pha(tmp_path / "nope.pi")
    path = tmp_path / "table.fits"
    fits.BinTableHDU.from_columns([fits.Column("A", "E", array=np.ones(3))],
                                  name="EVENTS").writeto(path)
    with pytest.raises(DataFormatError, match="SPECTRUM"):
        read_pha(path)
    with pytest.raises(DataFormatError, match="SPECRESP"):
        read_arf(path)
    with pytest.raises(DataFormatError, match="MATRIX"):
        read_rmf(path)


def test_rate_spectrum_and_specresp_matrix(tmp_path):
    cols = [fits.Column("CHANNEL", "J", array=np.arange(1, 5)),
            fits.Column("RATE", "E", array=np.array([0.5, 1.0, 0.0, 2.0]))]
    hdu = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    hdu.header["EXPOSURE"] = 10.0
    hdu.header["TLMIN1"] = 1
    hdu.writeto(tmp_path / "rate.pha")
    spec = read_pha(tmp_path / "rate.pha")
    np.testing.assert_allclose(spec.counts, [5.0, 10.0, 0.0, 20.0])
    with fits.open(data_path("chandra_3c273/3c273.rmf.gz")) as hdul:
        hdul["MATRIX"].name = "SPECRESP MATRIX"
        hdul.writeto(tmp_path / "x.rsp")
    rsp = read_rmf(tmp_path / "x.rsp")
    assert rsp.includes_area and rsp.matrix.nnz == NONZEROS["chandra_3c273"]


def test_bad_options():
    obs = load_observation("chandra_3c273")
    with pytest.raises(ConfigError, match="energy_range"):
        build_response(obs, energy_range=(7.0, 0.5))
    with pytest.raises(ConfigError, match="grouping"):
        build_response(obs, grouping="optimal")
    with pytest.raises(ConfigError, match="no channel group"):
        build_response(obs, energy_range=(50.0, 60.0))


def _spectrum_file(path, column, values):
    cols = [fits.Column(name="CHANNEL", format="J", array=np.arange(1, len(values) + 1)),
            fits.Column(name=column, format="E", array=np.asarray(values, dtype=np.float32))]
    hdu = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    hdu.header["EXPOSURE"] = 100.0
    hdu.header["TLMIN1"] = 1
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    return path


def test_negative_counts_and_non_finite_rates_are_refused(tmp_path):
    with pytest.raises(DataFormatError, match=r"COUNTS holds 1 negative value.*channel 3"):
        read_pha(_spectrum_file(tmp_path / "neg.pi", "COUNTS", [1, 2, -4, 0]))
    with pytest.raises(DataFormatError, match=r"RATE holds 1 NaN or infinite.*channel 2"):
        read_pha(_spectrum_file(tmp_path / "nan.pi", "RATE", [0.1, np.nan, 0.2]))
    assert read_pha(_spectrum_file(tmp_path / "ok.pi", "RATE", [0.1, 0.0])).counts.tolist() \
        == pytest.approx([10.0, 0.0])


@pytest.mark.parametrize("fraction", [0.2, 0.7, 0.995])
def test_a_truncated_gzip_response_is_reported_as_truncated(tmp_path, fraction):
    data = data_path("chandra_3c273/3c273.rmf.gz").read_bytes()
    cut = tmp_path / "cut.rmf.gz"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(DataFormatError, match="truncated file"):
        read_rmf(cut)
    raw = tmp_path / "cut.rmf"
    import gzip

    full = gzip.decompress(data)
    raw.write_bytes(full[: int(len(full) * fraction)])
    with pytest.raises(DataFormatError, match="truncated"):
        read_rmf(raw)
