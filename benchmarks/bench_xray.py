"""Simulated X-ray spectra per second through real Chandra and XMM responses.

Cases, all in the same run and on the same data (ARF x RMF x exposure of the shipped
observations, Poisson source + background counts):

* ``sbi-astro``: ``xray_powerlaw`` / ``xray_thermal`` ``simulate`` on a batch (torch, dense
  folded response, counter-based Poisson draws).
* ``numpy-loop``: the textbook per-spectrum loop: model on the energy grid in numpy, fold with
  the scipy sparse RMF, ``numpy.random.Generator.poisson``.
* ``jaxspec``: ``jaxspec.data.util.fakeit_for_multiple_parameters`` with the same
  ``tbabs * powerlaw`` model and files (jit-compiled, vmapped), if jaxspec is installed (the
  ``bench`` extra); otherwise the row says why it is missing.

Run: ``OMP_NUM_THREADS=2 python -m benchmarks xray`` (``--quick`` for a smoke run); needs the
``bench`` extra (jaxspec) for the peer rows.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from benchmarks._common import main_for, timeit

THREADS = 2


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def _sbi_astro(sim_name: str, observation: str, n: int, **opts: Any) -> dict[str, Any]:
    from sbi_astro import load_simulator

    sim = load_simulator(sim_name, device="cpu", observation=observation, **opts)
    theta = sim.prior.sample((n,), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    sec = timeit(lambda: sim.simulate(theta, generator=gen), repeat=2, warmup=1)
    return {"case": f"sbi-astro {sim_name}", "observation": observation,
            "channels": sim.event_shape[0], "batch": n, "seconds": sec,
            "spectra_per_s": _rate(n, sec)}


def _numpy_loop(observation: str, n: int) -> dict[str, Any]:
    """Per-spectrum absorbed power law folded with scipy.sparse, Poisson from numpy."""
    from simulators.xray.absorption import absorption_table
    from simulators.xray.observations import build_response, load_observation

    obs = load_observation(observation)
    resp = build_response(obs)
    edges = resp.energy_edges
    mid = 0.5 * (edges[1:] + edges[:-1])
    e_tab, s_tab = absorption_table("tbabs")
    sigma = np.exp(np.interp(np.log(mid), np.log(e_tab), np.log(s_tab)))
    rsp = (obs.rmf.matrix.multiply(obs.arf.specresp[:, None])).T.tocsr()  # (C, E) sparse
    grp = resp.group_matrix.T  # (G, C)
    rng = np.random.default_rng(0)
    theta = np.column_stack([rng.uniform(0, 1, n), rng.uniform(0.5, 3.5, n),
                             rng.uniform(-5, -2.5, n)])

    def run() -> None:
        for nh, g, lognorm in theta:
            flux = 10**lognorm * np.diff(edges ** (1 - g)) / (1 - g) * np.exp(-nh * sigma)
            counts = grp @ (rsp @ flux) * resp.exposure + resp.background
            rng.poisson(counts)

    sec = timeit(run, repeat=1, warmup=0)
    return {"case": "numpy-loop powerlaw", "observation": observation,
            "channels": resp.num_groups, "batch": n, "seconds": sec,
            "spectra_per_s": _rate(n, sec)}


def _offline_jaxspec_tables() -> None:
    """Feeds jaxspec's pooch cache with our shipped copy of the tbabs table (byte-identical
    to the file jaxspec downloads, same sha256), so that it runs without internet."""
    import gzip
    import tempfile
    from pathlib import Path

    from jaxspec.util import online_storage

    from simulators.xray.observations import data_path

    cache = Path(tempfile.gettempdir()) / "sbi_astro_jaxspec_cache"
    cache.mkdir(exist_ok=True)
    for name in ("xsect_tbabs_wilm.fits", "xsect_phabs_aspl.fits", "abundances.dat"):
        src = data_path(f"absorption/{name}.gz")
        if not src.exists():
            src = data_path(f"absorption/{name}")
        dst = cache / name
        if not dst.exists():
            raw = src.read_bytes()
            dst.write_bytes(gzip.decompress(raw) if src.suffix == ".gz" else raw)
    online_storage.table_manager.path = cache


def _jaxspec(observation: str, n: int) -> dict[str, Any]:
    row: dict[str, Any] = {"case": "jaxspec fakeit powerlaw", "observation": observation,
                           "batch": n}
    try:
        import jax
        from jaxspec.data import ObsConfiguration
        from jaxspec.data.util import fakeit_for_multiple_parameters
        from jaxspec.model.additive import Powerlaw
        from jaxspec.model.multiplicative import Tbabs
    except Exception as err:  # noqa: BLE001 - report any import failure as a row
        row["note"] = f"jaxspec unavailable: {type(err).__name__}: {err}"[:200]
        return row
    import warnings

    from simulators.xray.observations import OBSERVATIONS, data_path, load_observation

    _offline_jaxspec_tables()
    obs = load_observation(observation)
    pha = str(data_path(OBSERVATIONS[observation]))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = ObsConfiguration.from_pha_file(pha, rmf_path=obs.rmf.path,
                                                 arf_path=obs.arf.path,
                                                 low_energy=0.5, high_energy=7.0)
        model = Tbabs() * Powerlaw()
        rng = np.random.default_rng(0)

        def params(m: int) -> dict[str, np.ndarray]:
            return {"tbabs_1.nh": rng.uniform(0, 1, m),
                    "powerlaw_1.alpha": rng.uniform(0.5, 3.5, m),
                    "powerlaw_1.norm": 10 ** rng.uniform(-5, -2.5, m)}

        def call(m: int) -> float:
            p = params(m)
            t = time.perf_counter()
            out = fakeit_for_multiple_parameters(cfg, model, p, rng_key=0, apply_stat=True)
            jax.block_until_ready(out)
            return time.perf_counter() - t

        call(min(n, 100))  # first-use costs (imports, table loading)
        sec = call(n)
        sec4 = call(4 * n)
        chans = int(np.asarray(out_shape(cfg, model, params)).item())
    except Exception as err:  # noqa: BLE001 - an API mismatch is reported, not fatal
        row["note"] = f"jaxspec failed: {type(err).__name__}: {err}"[:300]
        return row
    row.update(seconds=sec, spectra_per_s=_rate(n, sec), channels=chans,
               marginal_spectra_per_s=_rate(3 * n, sec4 - sec),
               note="each fakeit call re-traces and jit-compiles; marginal rate excludes that")
    return row


def out_shape(cfg: Any, model: Any, params: Any) -> int:
    from jaxspec.data.util import fakeit_for_multiple_parameters

    return fakeit_for_multiple_parameters(cfg, model, params(2), rng_key=0).shape[-1]


def run(quick: bool = False) -> list[dict[str, Any]]:
    torch.set_num_threads(THREADS)
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    n = 2000 if quick else 10000
    n_loop = 200 if quick else 1000
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def add(row: dict[str, Any]) -> None:
        row["threads"] = THREADS
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()},
              flush=True)

    add(_sbi_astro("xray_powerlaw", "chandra_3c273", n))
    add(_numpy_loop("chandra_3c273", n_loop))
    add(_jaxspec("chandra_3c273", n))
    add(_sbi_astro("xray_powerlaw", "chandra_dgtau", n))
    add(_numpy_loop("chandra_dgtau", n_loop))
    add(_jaxspec("chandra_dgtau", n))
    add(_sbi_astro("xray_thermal", "chandra_dgtau", n))
    add(_sbi_astro("xray_powerlaw", "xmm_ngc7793", n))
    add(_sbi_astro("xray_thermal", "xmm_ngc7793", n))
    free_z = _sbi_astro("xray_thermal", "chandra_dgtau", max(n // 10, 200), fix_redshift=None)
    free_z["case"] += " (free z)"
    add(free_z)
    rows.append({"case": "total wall time", "seconds": time.perf_counter() - t0})
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
