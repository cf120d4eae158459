"""Tabulates the MEKAL plasma emissivity on a (kT, energy) grid: ``data/mekal_table.npz``.

Run once at build time (about a minute on one core)::

    python -m simulators.xray.build_mekal_table /work/shared/data/xray/mekal_atomic_data

The MEKAL atomic data (XSPEC's ``mekal1.dat`` ... ``mekal6.dat``) are needed only here; the
package ships the table.  Contents (all float32 unless noted):

* ``kt`` ``(T,)`` [keV]: log-spaced temperatures 0.08-64 keV.
* ``energy_edges`` ``(K + 1,)`` [keV]: log-spaced rest-frame bins 0.05-50 keV.
* ``hhe`` and ``metals`` ``(T, K)`` [photons cm^3 s^-1 per bin]: emission per unit ``n_e n_H``
  integrated over each bin, of H + He and of all metals (C ... Ni) at Anders & Grevesse (1989)
  solar abundances; continuum (free-free, free-bound, two-photon) at bin centres times the
  width, plus every line placed in the bin holding its energy.  A plasma of metal abundance
  ``Z`` [solar] emits ``hhe + Z * metals``.
* ``fe_k`` ``(T,)``: the part of ``metals`` in lines of Fe between 6.4 and 7.1 keV, and
  ``fe_k_cont`` ``(T,)``: the total continuum per keV at 6.7 keV (for equivalent widths).
* ``fe_xxv`` ``(T,)``: the part of ``fe_k`` emitted by Fe XXV between 6.6 and 6.71 keV (the
  n = 2 -> 1 lines w, x, y, z, excitation plus recombination), and ``fe_xxvi`` ``(T,)``: by
  Fe XXVI between 6.9 and 7.0 keV (Lyman alpha); checked against CHIANTI in the tests.
* ``ion_fraction`` ``(T, 207)``: equilibrium ion fractions (elements in MEKAL order).
* ``ne_nh`` ``(T,)``: ``n_e / n_H`` at solar abundances.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from . import _mekal as mk

OUT = Path(__file__).resolve().parent / "data" / "mekal_table.npz"
KT_GRID = np.geomspace(0.08, 64.0, 70)
EDGES = np.geomspace(0.05, 50.0, 3001)


def _abund_vector(elements: range | list[int]) -> np.ndarray:
    """Per-ion abundance weights selecting some elements (solar), zero elsewhere."""
    w = np.zeros(mk.NUM_ION)
    for e in elements:
        k0, n = mk.ION_START[e], mk.N_ION[e]
        w[k0:k0 + n] = mk.SOLAR[e]
    return w


def build(atomic_dir: str | Path, out: Path = OUT) -> dict:
    data = mk.read_mekal_data(atomic_dir)
    mid = np.sqrt(EDGES[1:] * EDGES[:-1])
    width = np.diff(EDGES)
    w_hhe = _abund_vector([0, 1])
    w_met = _abund_vector(list(range(2, len(mk.ELEMENTS))))
    nt, nk = KT_GRID.size, mid.size
    hhe = np.zeros((nt, nk))
    met = np.zeros((nt, nk))
    fe_k = np.zeros(nt)
    fe_k_cont = np.zeros(nt)
    fe_xxv = np.zeros(nt)
    fe_xxvi = np.zeros(nt)
    fe0 = mk.ION_START[mk.ELEMENTS.index("Fe")]
    frac = np.zeros((nt, mk.NUM_ION))
    ne_nh = np.zeros(nt)
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        for j, kt in enumerate(KT_GRID):
            f = mk.ion_fractions(data, kt)
            frac[j] = f
            ne_nh[j] = mk.electron_density_ratio(f)
            scale = mk.RAW_TO_CGS / np.sqrt(kt)
            hhe[j] = mk.continuum(data, kt, f * w_hhe, mid) * width * scale
            met[j] = mk.continuum(data, kt, f * w_met, mid) * width * scale
            en, fl, el, ion = mk.lines(data, kt, f * (w_hhe + w_met), elden=ne_nh[j])
            ok = (en >= EDGES[0]) & (en < EDGES[-1])
            idx = np.searchsorted(EDGES, en[ok], side="right") - 1
            is_metal = el[ok] >= 2
            np.add.at(met[j], idx[is_metal], fl[ok][is_metal] * scale)
            np.add.at(hhe[j], idx[~is_metal], fl[ok][~is_metal] * scale)
            sel = (el == 13) & (en > 6.4) & (en < 7.1)
            fe_k[j] = fl[sel].sum() * scale
            fe_xxv[j] = fl[(ion == fe0 + 24) & (en > 6.6) & (en < 6.71)].sum() * scale
            fe_xxvi[j] = fl[(ion == fe0 + 25) & (en > 6.9) & (en < 7.0)].sum() * scale
            fe_k_cont[j] = mk.continuum(data, kt, f * (w_hhe + w_met), np.array([6.7]))[0] * scale
    seconds = time.perf_counter() - t0
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
           for p in sorted(Path(atomic_dir).glob("mekal*.dat"))}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out, kt=KT_GRID.astype(np.float32), energy_edges=EDGES.astype(np.float64),
        hhe=hhe.astype(np.float32), metals=met.astype(np.float32),
        fe_k=fe_k.astype(np.float32), fe_k_cont=fe_k_cont.astype(np.float32),
        fe_xxv=fe_xxv.astype(np.float32), fe_xxvi=fe_xxvi.astype(np.float32),
        ion_fraction=frac.astype(np.float32), ne_nh=ne_nh.astype(np.float32),
        build_seconds=np.float64(seconds),
        source_sha256=np.array([f"{k} {v}" for k, v in sha.items()]))
    return {"seconds": seconds, "bytes": out.stat().st_size, "path": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("atomic_dir", help="folder holding mekal1.dat ... mekal6.dat")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    info = build(args.atomic_dir, Path(args.out))
    print(f"wrote {info['path']} ({info['bytes'] / 1e6:.2f} MB) in {info['seconds']:.1f} s")


if __name__ == "__main__":
    main()
