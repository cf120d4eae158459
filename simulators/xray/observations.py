"""Observations (shipped presets or your own OGIP files) and the folded, filtered, grouped
instrument response.

An :class:`Observation` bundles a source spectrum with its background, ARF and RMF (the
companions named by ``RESPFILE``/``ANCRFILE``/``BACKFILE``).  :func:`build_response` turns it
into an :class:`InstrumentResponse`: a dense folding matrix ``(E, G)`` from photon flux per
input energy bin [photons cm^-2 s^-1] to expected counts per output group (after quality and
energy filtering and grouping), with the exposure and area scaling folded in, plus the
observed counts and the scaled background on the same groups.

Predicted counts (OGIP convention, cf. XSPEC): ``C_g = EXPOSURE * AREASCAL *
sum_{c in g} sum_e F_e A_e R[e, c]`` plus the background ``B_g = sum_{c in g} b_c *
(EXPOSURE * BACKSCAL * AREASCAL) / (EXPOSURE_bkg * BACKSCAL_bkg * AREASCAL_bkg)``
(per channel when BACKSCAL or AREASCAL are columns).

Example:
    >>> resp = build_response(load_observation("chandra_3c273"), energy_range=(0.5, 7.0))
    >>> resp.fold_matrix.shape[0], resp.num_groups > 0
    (1090, True)
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from sbi_astro.errors import ConfigError, DataFormatError

from .ogip import (
    ARF,
    RMF,
    PHASpectrum,
    check_arf_matches_rmf,
    check_spectrum_matches_rmf,
    read_arf,
    read_pha,
    read_rmf,
)

DATA_DIR = Path(__file__).resolve().parent / "data"

#: name -> source PHA file (relative to ``data/``); companions come from its header.
OBSERVATIONS: dict[str, str] = {
    "chandra_3c273": "chandra_3c273/3c273.pi.gz",
    "chandra_dgtau": "chandra_dgtau/acisf04487_001N023_r0009_pha3.fits.gz",
    "xmm_ngc7793": "xmm_ngc7793/PN_spectrum_grp20.fits.gz",
}


def data_path(relative: str) -> Path:
    """Absolute path of a file shipped in ``simulators/xray/data``."""
    return DATA_DIR / relative


@dataclasses.dataclass(frozen=True)
class Observation:
    """A source spectrum with its background and responses."""

    name: str
    spectrum: PHASpectrum
    background: PHASpectrum | None
    arf: ARF | None
    rmf: RMF


_OPTION = {"RESPFILE": "rmf", "ANCRFILE": "arf", "BACKFILE": "background"}


def _resolve(name: str, near: Path, keyword: str) -> Path:
    """A companion file next to ``near``, accepting a gzip-compressed copy."""
    base = near.parent / name
    for cand in (base, Path(str(base) + ".gz")):
        if cand.exists():
            return cand
    if base.name.endswith(".gz") and Path(str(base)[:-3]).exists():
        return Path(str(base)[:-3])
    raise DataFormatError(f"{near}: {keyword} names {name!r}, which is not in {near.parent} "
                          f"(also tried {name}.gz); copy it there or pass the file explicitly "
                          f"({_OPTION[keyword]}=PATH)")


def read_observation(pha_path: str | Path, *, name: str | None = None,
                     rmf: str | Path | None = None, arf: str | Path | None = None,
                     background: str | Path | None = None) -> Observation:
    """Reads a PHA file and its companions (header keywords unless given explicitly).

    Raises:
        DataFormatError: a missing companion, ARF/RMF grids that differ, or channel counts
            that do not match between spectrum, background and RMF.
    """
    pha_path = Path(pha_path)
    spec = read_pha(pha_path)
    rmf_path = Path(rmf) if rmf is not None else (
        _resolve(spec.respfile, pha_path, "RESPFILE") if spec.respfile else None)
    if rmf_path is None:
        raise DataFormatError(f"{pha_path}: RESPFILE is 'none'; pass rmf= explicitly")
    the_rmf = read_rmf(rmf_path)
    arf_path = Path(arf) if arf is not None else (
        _resolve(spec.ancrfile, pha_path, "ANCRFILE") if spec.ancrfile else None)
    the_arf = read_arf(arf_path) if arf_path is not None else None
    if the_arf is not None:
        check_arf_matches_rmf(the_arf, the_rmf)
    elif not the_rmf.includes_area:
        raise DataFormatError(f"{pha_path}: no ARF and the RMF {rmf_path} is a pure REDIST "
                              "matrix; pass arf= (or use an RSP file)")
    check_spectrum_matches_rmf(spec, the_rmf)
    bkg = None
    bkg_path = Path(background) if background is not None else (
        _resolve(spec.backfile, pha_path, "BACKFILE") if spec.backfile else None)
    if bkg_path is not None:
        same = bkg_path.resolve() == pha_path.resolve() or (
            bkg_path.name.removesuffix(".gz") == pha_path.name.removesuffix(".gz"))
        bkg = read_pha(bkg_path, kind="BKG") if same else read_pha(bkg_path)
        if bkg.channel.size != spec.channel.size or bkg.channel[0] != spec.channel[0]:
            raise DataFormatError(f"background {bkg_path} has {bkg.channel.size} channels, the "
                                  f"spectrum {pha_path} {spec.channel.size}; they must match")
    return Observation(name or pha_path.stem, spec, bkg, the_arf, the_rmf)


@functools.lru_cache(maxsize=8)
def load_observation(name: str) -> Observation:
    """One of the shipped observations (parsed once per process, then cached)."""
    return ObservationFiles.preset(name).read(name)


@dataclasses.dataclass(frozen=True)
class InstrumentResponse:
    """Everything a simulator needs to turn a photon spectrum into counts.

    Attributes:
        energy_edges: input energy bin edges ``(E + 1,)`` [keV] (contiguous RMF grid).
        fold_matrix: ``(E, G)`` [cm^2 s]: counts in group ``g`` per unit photon flux
            [photons cm^-2 s^-1] in bin ``e`` (ARF x RMF x EXPOSURE x AREASCAL, grouped).
        group_matrix: ``(C, G)`` 0/1 matrix mapping detector channels to output groups.
        observed: observed counts per group ``(G,)``.
        background: expected background counts in the source region per group ``(G,)``
            (observed background scaled by ``EXPOSURE x BACKSCAL`` ratios; zeros if none).
        background_counts: raw background counts per group ``(G,)`` (for W-stat).
        background_ratio: ``(EXPOSURE x BACKSCAL)_src / (EXPOSURE x BACKSCAL)_bkg``.
        group_e_lo, group_e_hi: nominal group energy range ``(G,)`` [keV] from EBOUNDS.
        exposure: source exposure [s].
    """

    energy_edges: np.ndarray
    fold_matrix: np.ndarray
    group_matrix: np.ndarray
    observed: np.ndarray
    background: np.ndarray
    background_counts: np.ndarray
    background_ratio: float
    group_e_lo: np.ndarray
    group_e_hi: np.ndarray
    exposure: float

    @property
    def num_groups(self) -> int:
        return self.fold_matrix.shape[1]


def group_starts(spec: PHASpectrum, grouping: str) -> np.ndarray:
    """Boolean ``(C,)``: whether each channel starts a new group.

    Args:
        grouping: ``"file"`` (the PHA's ``GROUPING`` column, none if absent), ``"none"``
            (one group per channel) or ``"min:N"`` (adjacent channels merged until each group
            holds at least ``N`` observed counts, like ``grppha group min N``; the last
            group takes the remainder).
    """
    n = spec.channel.size
    if grouping == "none" or (grouping == "file" and spec.grouping is None):
        return np.ones(n, dtype=bool)
    if grouping == "file":
        starts = spec.grouping != -1
        starts[0] = True
        return starts
    if grouping.startswith("min:"):
        try:
            need = float(grouping[4:])
        except ValueError as err:
            raise ConfigError(f"grouping {grouping!r}: expected 'min:N' with a number N") from err
        starts = np.zeros(n, dtype=bool)
        acc = need
        for i, c in enumerate(spec.counts):
            if acc >= need:
                starts[i] = True
                acc = 0.0
            acc += c
        return starts
    raise ConfigError(f"unknown grouping {grouping!r}; use 'file', 'none' or 'min:N'")


def grouping_matrix(starts: np.ndarray) -> np.ndarray:
    """``(C, G)`` 0/1 matrix: channel ``c`` belongs to group ``g``."""
    gid = np.cumsum(starts) - 1
    out = np.zeros((starts.size, int(gid[-1]) + 1))
    out[np.arange(starts.size), gid] = 1.0
    return out


def build_response(obs: Observation, *, energy_range: tuple[float, float] = (0.5, 7.0),
                   grouping: str = "file", exposure: float | None = None
                   ) -> InstrumentResponse:
    """Filters and groups an observation's response.

    Channels with ``QUALITY != 0`` are dropped.  A group is kept when all its channels are
    good and its nominal energy range ``[E_MIN(first), E_MAX(last)]`` lies inside
    ``energy_range`` (XSPEC's ``ignore`` acts on whole groups in the same way).

    Args:
        obs: the observation.
        energy_range: ``(low, high)`` [keV] of the channels kept.
        grouping: see :func:`group_starts`.
        exposure: overrides the source exposure [s] (background scaling follows it).
    """
    lo, hi = energy_range
    if not lo < hi:
        raise ConfigError(f"energy_range must be (low, high) with low < high, got {energy_range}")
    spec, rmf = obs.spectrum, obs.rmf
    if not np.allclose(rmf.energ_lo[1:], rmf.energ_hi[:-1], rtol=1e-5):
        raise DataFormatError(f"{rmf.path}: energy bins are not contiguous")
    edges = np.append(rmf.energ_lo, rmf.energ_hi[-1])
    expo = float(exposure) if exposure is not None else spec.exposure
    if expo <= 0:
        raise ConfigError(f"exposure must be positive, got {expo}")
    good = np.ones(spec.channel.size, dtype=bool) if spec.quality is None else spec.quality == 0
    starts = group_starts(spec, grouping)
    gm = grouping_matrix(starts)
    gid = np.cumsum(starts) - 1
    n_groups = gm.shape[1]
    first = np.zeros(n_groups, dtype=np.int64)
    last = np.zeros(n_groups, dtype=np.int64)
    first[gid[::-1]] = np.arange(spec.channel.size)[::-1]
    last[gid] = np.arange(spec.channel.size)
    all_good = (gm * (~good)[:, None]).sum(0) == 0
    g_lo, g_hi = rmf.e_min[first], rmf.e_max[last]
    keep = all_good & (g_lo >= lo) & (g_hi <= hi)
    if not keep.any():
        raise ConfigError(f"no channel group of {obs.name!r} lies inside energy_range "
                          f"{energy_range} keV with good quality; widen the range")
    gm = gm[:, keep]
    area = obs.arf.specresp if obs.arf is not None else np.ones(edges.size - 1)
    areascal = spec.areascal if np.ndim(spec.areascal) == 0 else np.asarray(spec.areascal)
    chan_scale = expo * np.broadcast_to(areascal, (spec.channel.size,))
    fold = (rmf.matrix.multiply(area[:, None]).tocsr() @ (gm * chan_scale[:, None]))
    fold = np.asarray(fold)
    bkg_counts = np.zeros(gm.shape[1])
    bkg = np.zeros(gm.shape[1])
    ratio = 0.0
    if obs.background is not None:
        b = obs.background
        # XSPEC's convention: the background seen in the source region is the background
        # counts times (t * BACKSCAL * AREASCAL)_source / (t * BACKSCAL * AREASCAL)_background
        src = np.broadcast_to(np.asarray(spec.backscal) * np.asarray(spec.areascal),
                              (spec.channel.size,))
        other = np.broadcast_to(np.asarray(b.backscal) * np.asarray(b.areascal),
                                (spec.channel.size,))
        chan_ratio = (expo * src) / (b.exposure * other)
        bkg_counts = b.counts @ gm
        bkg = (b.counts * chan_ratio) @ gm
        ratio = float(np.mean(chan_ratio))
    return InstrumentResponse(
        energy_edges=edges, fold_matrix=fold, group_matrix=gm, observed=spec.counts @ gm,
        background=bkg, background_counts=bkg_counts, background_ratio=ratio,
        group_e_lo=g_lo[keep], group_e_hi=g_hi[keep], exposure=expo)


@dataclasses.dataclass(frozen=True)
class ObservationFiles:
    """Where an observation's files are: the PHA, and the ARF, RMF and background that
    override its ``ANCRFILE``/``RESPFILE``/``BACKFILE`` keywords (``None``: the keyword's
    file, resolved next to the PHA as XSPEC does)."""

    pha: Path
    arf: Path | None = None
    rmf: Path | None = None
    background: Path | None = None

    @classmethod
    def preset(cls, name: str) -> ObservationFiles:
        """The files of a shipped observation (``OBSERVATIONS``)."""
        if name not in OBSERVATIONS:
            raise ConfigError(f"unknown observation {name!r}; available: {sorted(OBSERVATIONS)}"
                              " (or give your own spectrum with pha=PATH)")
        return cls(data_path(OBSERVATIONS[name]))

    def read(self, name: str | None = None) -> Observation:
        """The :class:`Observation` of these files (checked, see :func:`read_observation`)."""
        return read_observation(self.pha, name=name, rmf=self.rmf, arf=self.arf,
                                background=self.background)

    def key(self) -> tuple:
        """A cache key that changes when a file changes (paths, sizes, modification times)."""
        paths = [p for p in (self.pha, self.arf, self.rmf, self.background) if p is not None]
        return (self, tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths))


@functools.lru_cache(maxsize=32)
def _cached(key: tuple, name: str | None, energy_range: tuple[float, float], grouping: str,
            exposure: float | None) -> tuple[Observation, InstrumentResponse]:
    obs = key[0].read(name)
    return obs, build_response(obs, energy_range=energy_range, grouping=grouping,
                               exposure=exposure)


def cached_response(files: ObservationFiles, energy_range: tuple[float, float], grouping: str,
                    exposure: float | None, *, name: str | None = None
                    ) -> tuple[Observation, InstrumentResponse]:
    """The observation and its :func:`build_response`, cached per process (and re-read when
    a file changes on disk)."""
    return _cached(files.key(), name, energy_range, grouping, exposure)
