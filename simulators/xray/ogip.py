"""Reading OGIP spectra and responses (PHA type I, ARF, RMF, EBOUNDS) with astropy.

The readers return plain numpy containers; nothing here touches torch.  Every check that a
file is usable (extension present, columns present, grids consistent) raises
:class:`~sbi_astro.errors.DataFormatError` with the file name and the fix.

Conventions (OGIP/92-007 for PHA, CAL/GEN/92-002 for ARF/RMF):

* PHA: extension ``SPECTRUM``; ``CHANNEL`` numbers start at the column's ``TLMIN`` (1 for
  Chandra ACIS, 0 for XMM EPIC); counts from ``COUNTS`` or ``RATE * EXPOSURE``; optional
  ``GROUPING`` (+1 starts a group, -1 continues it) and ``QUALITY`` (0 good); ``EXPOSURE``
  [s], ``BACKSCAL`` and ``AREASCAL`` keywords (or same-named columns).  A file may hold the
  background as a second ``SPECTRUM`` extension with ``HDUCLAS2 = 'BKG'`` (Chandra Source
  Catalog "pha3"), in which case ``BACKFILE`` names the file itself.
* ARF: extension ``SPECRESP`` with ``ENERG_LO``, ``ENERG_HI`` [keV] and ``SPECRESP`` [cm^2].
* RMF: extension ``MATRIX`` or ``SPECRESP MATRIX``; row ``i`` spreads over the channels
  ``F_CHAN[g] .. F_CHAN[g] + N_CHAN[g] - 1`` of each of its ``N_GRP`` groups, the values taken
  consecutively from ``MATRIX``; the first channel number is the ``TLMIN`` of ``F_CHAN``.
  ``EBOUNDS`` gives nominal channel energies (used for filtering only).

Example:
    >>> from simulators.xray.ogip import read_pha
    >>> from simulators.xray.observations import data_path
    >>> pha = read_pha(data_path("chandra_3c273/3c273.pi.gz"))
    >>> int(pha.counts.sum()), int(pha.channel[0]), pha.grouping is not None
    (736, 1, True)
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import warnings
import zlib
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from sbi_astro.errors import DataFormatError


@dataclasses.dataclass(frozen=True)
class PHASpectrum:
    """One PHA type I spectrum.

    Attributes:
        path: file it was read from.
        channel: channel numbers ``(C,)`` (int).
        counts: counts per channel ``(C,)`` (float; ``RATE * EXPOSURE`` for rate files).
        exposure: exposure time [s].
        backscal: region-area scaling, scalar or ``(C,)``.
        areascal: area scaling, scalar or ``(C,)``.
        grouping: ``(C,)`` OGIP grouping flags or ``None``.
        quality: ``(C,)`` quality flags (0 = good) or ``None``.
        respfile, ancrfile, backfile: companion file names (``None`` when 'none'/absent).
        kind: ``HDUCLAS2`` ('TOTAL', 'NET', 'BKG' or '').
    """

    path: str
    channel: np.ndarray
    counts: np.ndarray
    exposure: float
    backscal: float | np.ndarray
    areascal: float | np.ndarray
    grouping: np.ndarray | None
    quality: np.ndarray | None
    respfile: str | None
    ancrfile: str | None
    backfile: str | None
    kind: str


@dataclasses.dataclass(frozen=True)
class ARF:
    """Ancillary response: area ``specresp (E,)`` [cm^2] on ``[energ_lo, energ_hi]`` [keV]."""

    path: str
    energ_lo: np.ndarray
    energ_hi: np.ndarray
    specresp: np.ndarray


@dataclasses.dataclass(frozen=True)
class RMF:
    """Redistribution matrix.

    Attributes:
        path: file it was read from.
        energ_lo, energ_hi: input energy bins ``(E,)`` [keV].
        matrix: sparse CSR ``(E, C)``: probability that a photon of bin ``e`` lands in channel
            ``c`` (times the area [cm^2] when ``includes_area``).
        first_channel: channel number of column 0 (``TLMIN`` of ``F_CHAN``).
        e_min, e_max: nominal channel energies ``(C,)`` [keV] from ``EBOUNDS``.
        includes_area: ``True`` for a ``SPECRESP MATRIX`` / ``HDUCLAS3 = 'FULL'`` (an RSP).
    """

    path: str
    energ_lo: np.ndarray
    energ_hi: np.ndarray
    matrix: sp.csr_matrix
    first_channel: int
    e_min: np.ndarray
    e_max: np.ndarray
    includes_area: bool

    @property
    def num_channels(self) -> int:
        return self.matrix.shape[1]


_FITS_BLOCK = 2880


def _read_bytes(path: Path) -> bytes:
    """The file's FITS bytes, gunzipped; a truncated file is reported as truncated."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip, whatever the suffix
        try:
            data = gzip.decompress(data)
        except EOFError:
            raise DataFormatError(f"{path}: truncated file (the gzip stream ends before its "
                                  "end marker); download or copy it again") from None
        except (OSError, zlib.error) as err:
            raise DataFormatError(f"{path}: damaged gzip file ({err}); download or copy it "
                                  "again") from None
    if data[:6] != b"SIMPLE":
        raise DataFormatError(f"{path}: not a FITS file (no SIMPLE card at the start); expected "
                              "an OGIP PHA, ARF or RMF")
    if len(data) % _FITS_BLOCK:
        raise DataFormatError(f"{path}: truncated file ({len(data)} bytes, not a whole number "
                              f"of {_FITS_BLOCK}-byte FITS blocks); download or copy it again")
    return data


def _open(path: str | Path) -> fits.HDUList:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: file not found; check the path (OGIP file names in "
                              "RESPFILE/ANCRFILE/BACKFILE are relative to the PHA file)")
    if path.is_dir():
        raise DataFormatError(f"{path} is a folder; give the FITS file")
    data = _read_bytes(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            hdul = fits.open(io.BytesIO(data), memmap=False)
            hdul.readall()
        return hdul
    except (OSError, ValueError, AstropyUserWarning) as err:
        raise DataFormatError(f"{path}: not a readable FITS file ({err}); download or copy it "
                              "again") from None


def _column(hdu: fits.BinTableHDU, name: str, path: Path) -> np.ndarray:
    names = [n.upper() for n in hdu.columns.names]
    if name.upper() not in names:
        raise DataFormatError(f"{path}[{hdu.name}]: column {name!r} is missing (found "
                              f"{hdu.columns.names}); is this an OGIP file of the right type?")
    return hdu.data[name]


def _tlmin(hdu: fits.BinTableHDU, name: str, default: int) -> int:
    names = [n.upper() for n in hdu.columns.names]
    idx = names.index(name.upper()) + 1
    return int(hdu.header.get(f"TLMIN{idx}", default))


def _scalar_or_column(hdu: fits.BinTableHDU, name: str, default: float | None,
                      path: Path) -> float | np.ndarray:
    names = [n.upper() for n in hdu.columns.names]
    if name in names:
        return np.asarray(hdu.data[name], dtype=float)
    if name in hdu.header:
        return float(hdu.header[name])
    if default is None:
        raise DataFormatError(f"{path}[{hdu.name}]: keyword {name} is missing; an OGIP PHA file "
                              f"must state it (OGIP/92-007)")
    return default


def _companion(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in ("", "none", "n/a") else text


def _spectrum_hdus(hdul: fits.HDUList) -> list[fits.BinTableHDU]:
    out = []
    for hdu in hdul[1:]:
        if not isinstance(hdu, fits.BinTableHDU):
            continue
        if hdu.name == "SPECTRUM" or str(hdu.header.get("HDUCLAS1", "")).upper() == "SPECTRUM":
            out.append(hdu)
    return out


def read_pha(path: str | Path, *, kind: str | None = None) -> PHASpectrum:
    """Reads a PHA type I spectrum.

    Args:
        path: PHA file (optionally gzip-compressed).
        kind: which ``SPECTRUM`` extension to read by ``HDUCLAS2`` (``"BKG"`` for the
            background stored next to the source); ``None`` takes the first one that is not
            a background, or the only one.

    Raises:
        DataFormatError: no ``SPECTRUM`` extension, a type II file, missing columns/keywords.
    """
    path = Path(path)
    with _open(path) as hdul:
        hdus = _spectrum_hdus(hdul)
        if not hdus:
            raise DataFormatError(f"{path}: no SPECTRUM extension; expected an OGIP PHA file")
        if kind is None:
            non_bkg = [h for h in hdus if str(h.header.get("HDUCLAS2", "")).upper() != "BKG"]
            hdu = (non_bkg or hdus)[0]
        else:
            match = [h for h in hdus if str(h.header.get("HDUCLAS2", "")).upper() == kind.upper()]
            if not match:
                raise DataFormatError(f"{path}: no SPECTRUM extension with HDUCLAS2={kind!r}")
            hdu = match[0]
        if str(hdu.header.get("HDUCLAS4", "")).upper() == "TYPE:II":
            raise DataFormatError(f"{path}: PHA type II (several spectra per file) is not "
                                  "supported; split it into type I files first")
        channel = np.asarray(_column(hdu, "CHANNEL", path), dtype=np.int64)
        names = [n.upper() for n in hdu.columns.names]
        exposure = float(_scalar_or_column(hdu, "EXPOSURE", None, path))
        if "COUNTS" in names:
            counts = np.asarray(hdu.data["COUNTS"], dtype=float)
        elif "RATE" in names:
            counts = np.asarray(hdu.data["RATE"], dtype=float) * exposure
        else:
            raise DataFormatError(f"{path}[SPECTRUM]: neither COUNTS nor RATE column; not an "
                                  "OGIP PHA spectrum")
        if counts.ndim != 1:
            raise DataFormatError(f"{path}: COUNTS is not one value per row (PHA type II?)")
        column = "COUNTS" if "COUNTS" in names else "RATE"
        if not np.all(np.isfinite(counts)):
            bad = np.flatnonzero(~np.isfinite(counts))
            raise DataFormatError(f"{path}[SPECTRUM]: {column} holds {bad.size} NaN or infinite "
                                  f"value(s) (first at channel {int(channel[bad[0]])}); "
                                  "a spectrum's counts must be finite: fix or regenerate the file")
        if np.any(counts < 0):
            bad = np.flatnonzero(counts < 0)
            raise DataFormatError(f"{path}[SPECTRUM]: {column} holds {bad.size} negative "
                                  f"value(s) (first {counts[bad[0]]:g} at channel "
                                  f"{int(channel[bad[0]])}); counts cannot be negative (is this "
                                  "a background-subtracted spectrum? give the total spectrum "
                                  "and its background file instead)")
        grouping = np.asarray(hdu.data["GROUPING"], dtype=np.int64) if "GROUPING" in names else None
        quality = np.asarray(hdu.data["QUALITY"], dtype=np.int64) if "QUALITY" in names else None
        if exposure <= 0:
            raise DataFormatError(f"{path}: EXPOSURE = {exposure} s; must be positive")
        first = _tlmin(hdu, "CHANNEL", int(channel.min()) if channel.size else 1)
        if channel.size and channel[0] != first:
            raise DataFormatError(f"{path}: first CHANNEL is {channel[0]} but TLMIN is {first}; "
                                  "rows must list every channel from TLMIN upwards")
        return PHASpectrum(
            path=str(path), channel=channel, counts=counts, exposure=exposure,
            backscal=_scalar_or_column(hdu, "BACKSCAL", 1.0, path),
            areascal=_scalar_or_column(hdu, "AREASCAL", 1.0, path),
            grouping=grouping, quality=quality,
            respfile=_companion(hdu.header.get("RESPFILE")),
            ancrfile=_companion(hdu.header.get("ANCRFILE")),
            backfile=_companion(hdu.header.get("BACKFILE")),
            kind=str(hdu.header.get("HDUCLAS2", "")).upper(),
        )


def read_arf(path: str | Path) -> ARF:
    """Reads an ARF (``SPECRESP`` extension)."""
    path = Path(path)
    with _open(path) as hdul:
        if "SPECRESP" not in hdul:
            raise DataFormatError(f"{path}: no SPECRESP extension; expected an OGIP ARF")
        hdu = hdul["SPECRESP"]
        lo = np.asarray(_column(hdu, "ENERG_LO", path), dtype=float)
        hi = np.asarray(_column(hdu, "ENERG_HI", path), dtype=float)
        area = np.asarray(_column(hdu, "SPECRESP", path), dtype=float)
    if np.any(hi <= lo) or np.any(area < 0) or not np.all(np.isfinite(area)):
        raise DataFormatError(f"{path}: ARF has empty energy bins or negative/non-finite area")
    return ARF(str(path), lo, hi, area)


def _rows(value: object, n_rows: int) -> list[np.ndarray]:
    """A column as a list of 1-D arrays (handles scalars, fixed and variable length)."""
    arr = value
    if isinstance(arr, np.ndarray) and arr.dtype != object and arr.ndim == 1:
        return [np.atleast_1d(v) for v in arr]
    return [np.atleast_1d(np.asarray(arr[i])) for i in range(n_rows)]


def read_rmf(path: str | Path) -> RMF:
    """Reads an RMF (``MATRIX`` or ``SPECRESP MATRIX`` + ``EBOUNDS``) into a sparse matrix."""
    path = Path(path)
    with _open(path) as hdul:
        ext = next((n for n in ("MATRIX", "SPECRESP MATRIX") if n in hdul), None)
        if ext is None:
            raise DataFormatError(f"{path}: no MATRIX or SPECRESP MATRIX extension; expected an "
                                  "OGIP RMF")
        hdu = hdul[ext]
        if "EBOUNDS" not in hdul:
            raise DataFormatError(f"{path}: no EBOUNDS extension; the RMF must carry one")
        eb = hdul["EBOUNDS"]
        lo = np.asarray(_column(hdu, "ENERG_LO", path), dtype=float)
        hi = np.asarray(_column(hdu, "ENERG_HI", path), dtype=float)
        n_rows = lo.size
        n_grp = np.asarray(_column(hdu, "N_GRP", path), dtype=np.int64)
        f_chan = _rows(_column(hdu, "F_CHAN", path), n_rows)
        n_chan = _rows(_column(hdu, "N_CHAN", path), n_rows)
        values = _rows(_column(hdu, "MATRIX", path), n_rows)
        first = _tlmin(hdu, "F_CHAN", 1)
        detchans = int(hdu.header.get("DETCHANS", eb.data.shape[0]))
        e_min = np.asarray(_column(eb, "E_MIN", path), dtype=float)
        e_max = np.asarray(_column(eb, "E_MAX", path), dtype=float)
        ext_full = ext == "SPECRESP MATRIX" or str(hdu.header.get("HDUCLAS3", "")).upper() == "FULL"
    if e_min.size != detchans:
        raise DataFormatError(f"{path}: EBOUNDS has {e_min.size} channels but DETCHANS = "
                              f"{detchans}; the RMF is inconsistent")
    rows, cols, data = [], [], []
    for i in range(n_rows):
        pos = 0
        vals = values[i].astype(float)
        for g in range(int(n_grp[i])):
            start = int(f_chan[i][g]) - first
            n = int(n_chan[i][g])
            if n <= 0:
                continue
            if start < 0 or start + n > detchans or pos + n > vals.size:
                raise DataFormatError(
                    f"{path}: row {i} group {g} (F_CHAN={f_chan[i][g]}, N_CHAN={n}) runs outside "
                    f"channels {first}..{first + detchans - 1} or past its MATRIX values")
            rows.append(np.full(n, i))
            cols.append(np.arange(start, start + n))
            data.append(vals[pos:pos + n])
            pos += n
    if rows:
        r, c, d = np.concatenate(rows), np.concatenate(cols), np.concatenate(data)
    else:
        r = c = np.zeros(0, dtype=np.int64)
        d = np.zeros(0)
    matrix = sp.csr_matrix((d, (r, c)), shape=(n_rows, detchans))
    return RMF(str(path), lo, hi, matrix, first, e_min, e_max, ext_full)


def check_arf_matches_rmf(arf: ARF, rmf: RMF, *, rtol: float = 1e-5) -> None:
    """Raises :class:`DataFormatError` unless the ARF and RMF share one energy grid."""
    if arf.energ_lo.shape != rmf.energ_lo.shape or not (
        np.allclose(arf.energ_lo, rmf.energ_lo, rtol=rtol)
        and np.allclose(arf.energ_hi, rmf.energ_hi, rtol=rtol)
    ):
        raise DataFormatError(
            f"ARF {arf.path} ({arf.energ_lo.size} bins, {arf.energ_lo[0]:.4g}-"
            f"{arf.energ_hi[-1]:.4g} keV) and RMF {rmf.path} ({rmf.energ_lo.size} bins, "
            f"{rmf.energ_lo[0]:.4g}-{rmf.energ_hi[-1]:.4g} keV) have different energy grids; "
            "use the ARF made for this RMF")


def check_spectrum_matches_rmf(pha: PHASpectrum, rmf: RMF) -> None:
    """Raises :class:`DataFormatError` unless the spectrum's channels are the RMF's channels."""
    if pha.channel.size != rmf.num_channels or pha.channel[0] != rmf.first_channel:
        raise DataFormatError(
            f"spectrum {pha.path} has {pha.channel.size} channels starting at {pha.channel[0]} "
            f"but RMF {rmf.path} has {rmf.num_channels} starting at {rmf.first_channel}; use "
            "the response made for this spectrum")
