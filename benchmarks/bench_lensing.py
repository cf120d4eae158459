"""Lensed images per second: ``lensing_sie`` against caustics and lenstronomy.

The same scene for all three codes: SIE + external shear, elliptical Sersic source,
``supersampling = 2`` rays per pixel side, a Gaussian PSF of FWHM 0.1 arcsec, parameters
drawn from ``lensing_sie``'s prior, and three noise settings compared like with like:

* ``none``: the noise-free image;
* ``poisson``: exact Poisson counts of the source over 1000 s plus Gaussian background.
  Ours: ``noise="poisson"`` (counter-based, reproducible per row whatever the batch);
  caustics has no noise model, so ``torch.poisson`` + ``torch.randn`` on its image (global
  generator); lenstronomy: ``numpy.random.Generator.poisson`` + ``standard_normal``;
* ``gaussian``: lenstronomy's own noise model, the Gaussian approximation of the Poisson
  term, ``image_util.add_poisson`` (``randn * sqrt(|image| / exp_time)``) plus
  ``image_util.add_background`` (``randn * background_rms``), both on numpy's global
  generator.  Ours: ``noise="gaussian"`` (one counter-based normal per pixel of the same
  variance); caustics: ``torch.randn`` with the same variance.

Codes:

* ours: ``LensingSIE.simulate`` (or ``expected``) on a batch, eager and with the
  ``compile=True`` option (``torch.compile`` of the ray tracing; compile time reported
  separately, not in the rate);
* caustics: ``LensSource(SinglePlane([SIE, ExternalShear]), Sersic, upsample_factor=2, psf)``
  evaluated by ``torch.vmap`` over a parameter batch (its documented batching), in chunks
  of 16 and in one pass, the better one counted; the PSF is given at the upsampled
  resolution, as caustics convolves before binning;
* lenstronomy: ``ImageModel`` with a ``PIXEL`` PSF and ``supersampling_factor=2``, one image
  per call (its interface).

All run in one process with ``torch.set_num_threads(1)``, timed in CPU seconds of the
process (``time.process_time``): images per CPU-second on one core, which other jobs on a
shared machine do not inflate; wall-clock rates are reported alongside.  Timings are the
best of interleaved repeats; the ratios are to the peer with the same noise.

Run: ``python -m benchmarks lensing [--quick]`` (needs the ``bench`` extra).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import torch

from benchmarks._common import main_for

EXPOSURE = 1000.0
FWHM = 0.1
FOV = 5.12  # arcsec: 64 x 0.08" and 128 x 0.04"
NOISES = ("none", "poisson", "gaussian")


def _best(fns: dict[Any, Any], repeat: int) -> tuple[dict[Any, float], dict[Any, float]]:
    """Best CPU seconds (``process_time``) and best wall seconds of each function."""
    cpu = {k: math.inf for k in fns}
    wall = {k: math.inf for k in fns}
    for f in fns.values():  # warm-up
        f()
    for _ in range(repeat):
        for k, f in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            cpu[k] = min(cpu[k], time.process_time() - c0)
            wall[k] = min(wall[k], time.perf_counter() - t0)
    return cpu, wall


def _ours(num_pix: int, batch: int, compile: bool = False):
    """``(sim, theta, {noise: fn})`` for ``lensing_sie`` at ``num_pix``."""
    from sbi_astro import load_simulator

    sims = {noise: load_simulator("lensing_sie", device="cpu", num_pix=num_pix,
                                  pixel_scale=FOV / num_pix, supersampling=2, psf_fwhm=FWHM,
                                  exposure_time=EXPOSURE, compile=compile, noise=noise)
            for noise in ("poisson", "gaussian")}
    sim = sims["poisson"]
    theta = sim.prior.sample((batch,), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    fns = {"none": lambda: sim.expected(theta)}
    for noise, s in sims.items():
        fns[noise] = (lambda s=s: s.simulate(theta, generator=gen))
    return sim, theta, fns


def _q_phi(e1: torch.Tensor, e2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.hypot(e1, e2)
    return (1 - c) / (1 + c), 0.5 * torch.atan2(e2, e1)


def _caustics(sim, theta: torch.Tensor, chunk: int):
    import caustics

    o = sim.options
    cosmo = caustics.FlatLambdaCDM(name="cosmo")
    sie = caustics.SIE(cosmology=cosmo, name="sie", x0=0.0, y0=0.0, q=0.7, phi=0.3, Rein=1.0)
    ext = caustics.ExternalShear(cosmology=cosmo, name="shear", x0=0.0, y0=0.0, gamma_1=0.0,
                                 gamma_2=0.0)
    lens = caustics.SinglePlane(cosmology=cosmo, lenses=[sie, ext], name="lens", z_l=0.5,
                                z_s=1.0)
    src = caustics.Sersic(name="src", x0=0.0, y0=0.0, q=0.8, phi=0.0, n=1.0, Re=0.2, Ie=1.0)
    from simulators.lensing._physics import gaussian_psf_kernel

    psf = gaussian_psf_kernel(FWHM, o.pixel_scale / 2, dtype=torch.float32)
    model = caustics.LensSource(lens=lens, source=src, pixelscale=o.pixel_scale,
                                pixels_x=o.num_pix, upsample_factor=2, psf=psf, name="sim")
    for p in (sie.x0, sie.y0, sie.q, sie.phi, sie.Rein, ext.gamma_1, ext.gamma_2, src.x0,
              src.y0, src.q, src.phi, src.n, src.Re, src.Ie):
        p.to_dynamic()
    t = theta
    q, phi = _q_phi(t[:, 1], t[:, 2])
    qs, phis = _q_phi(t[:, 8], t[:, 9])
    zero = torch.zeros_like(q)
    params = torch.stack([zero, zero, q, phi % math.pi, t[:, 0], t[:, 3], t[:, 4], t[:, 10],
                          t[:, 11], qs, phis % math.pi, t[:, 7], t[:, 6], t[:, 5]], dim=-1)
    area = o.pixel_scale ** 2
    batched = torch.vmap(model)

    def noisy(mu: torch.Tensor, noise: str) -> torch.Tensor:
        if noise == "poisson":
            mu = mu.clamp_min(0)
            return (torch.poisson(mu * EXPOSURE) / EXPOSURE
                    + o.background_rms * torch.randn_like(mu))
        if noise == "gaussian":
            var = o.background_rms ** 2 + mu.abs() / EXPOSURE
            return mu + var.sqrt() * torch.randn_like(mu)
        return mu

    def make(noise: str):
        def run():
            return torch.cat([noisy(batched(c) * area, noise) for c in params.split(chunk)])
        return run

    return {noise: make(noise) for noise in NOISES}


def _lenstronomy(sim, theta: torch.Tensor, count: int):
    from lenstronomy.Data.imaging_data import ImageData
    from lenstronomy.Data.psf import PSF
    from lenstronomy.ImSim.image_model import ImageModel
    from lenstronomy.LensModel.lens_model import LensModel
    from lenstronomy.LightModel.light_model import LightModel

    o = sim.options
    n, dp = o.num_pix, o.pixel_scale
    data = ImageData(image_data=np.zeros((n, n)), transform_pix2angle=np.eye(2) * dp,
                     ra_at_xy_0=-(n - 1) / 2 * dp, dec_at_xy_0=-(n - 1) / 2 * dp)
    psf = PSF(psf_type="PIXEL", kernel_point_source=sim.psf_kernel.numpy())
    model = ImageModel(data, psf, lens_model_class=LensModel(["SIE", "SHEAR"]),
                       source_model_class=LightModel(["SERSIC_ELLIPSE"]),
                       kwargs_numerics={"supersampling_factor": 2,
                                        "supersampling_convolution": False})
    from lenstronomy.Util import image_util

    rng = np.random.default_rng(0)
    np.random.seed(0)  # lenstronomy's own noise draws from numpy's global generator
    rows = theta[:count].double().tolist()

    def noisy(img: np.ndarray, noise: str) -> np.ndarray:
        if noise == "poisson":
            return (rng.poisson(np.clip(img, 0, None) * EXPOSURE) / EXPOSURE
                    + o.background_rms * rng.standard_normal(img.shape))
        if noise == "gaussian":
            return (img + image_util.add_poisson(img, exp_time=EXPOSURE)
                    + image_util.add_background(img, sigma_bkd=o.background_rms))
        return img

    def make(noise: str):
        def run():
            out = []
            for p in rows:
                img = model.image(
                    kwargs_lens=[dict(theta_E=p[0], e1=p[1], e2=p[2], center_x=0.0,
                                      center_y=0.0),
                                 dict(gamma1=p[3], gamma2=p[4], ra_0=0.0, dec_0=0.0)],
                    kwargs_source=[dict(amp=p[5], R_sersic=p[6], n_sersic=p[7], e1=p[8],
                                        e2=p[9], center_x=p[10], center_y=p[11])])
                out.append(noisy(img, noise))
            return out
        return run

    return {noise: make(noise) for noise in NOISES}


def run(quick: bool = False) -> list[dict]:
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # One thread, timed in CPU seconds of the process: the per-image cost on one core,
    # which the other jobs of a shared machine do not inflate (waiting for a core is not
    # CPU time; wall-clock rates at load 5-9 on the 2-core machine were inconsistent,
    # e.g. lenstronomy with noise faster than without).  Wall rates are kept alongside.
    # SBI_ASTRO_BENCH_THREADS=2 instead gives torch two threads and compares wall-clock
    # rates (only meaningful on an otherwise idle machine; lenstronomy stays one image at a
    # time, numpy on one core).
    threads = int(os.environ.get("SBI_ASTRO_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    rows: list[dict] = []
    # (image side, batch of the batched codes, images of the per-image code).  Short calls
    # repeated many times, interleaved, best of each: on a shared machine the best of many
    # short trials is the least disturbed estimate.
    sizes = [(64, 256, 4), (128, 64, 2)]
    repeat = 2 if quick else 8
    for num_pix, batch, n_len in sizes:
        sim, theta, ours = _ours(num_pix, batch)
        fns: dict[tuple[str, str], Any] = {("ours", k): f for k, f in ours.items()}
        counts = {key: batch for key in fns}
        compile_s = None
        if not quick:
            _, _, ours_c = _ours(num_pix, batch, compile=True)
            t0 = time.perf_counter()
            for f in ours_c.values():
                f()  # compiles (one chunk size: batch is a multiple of 16)
            compile_s = time.perf_counter() - t0
            for k, f in ours_c.items():
                fns["ours_compiled", k] = f
                counts["ours_compiled", k] = batch
        try:
            for label, chunk in (("caustics", 16), ("caustics_full_batch", batch)):
                for k, f in _caustics(sim, theta, chunk=chunk).items():
                    fns[label, k] = f
                    counts[label, k] = batch
        except ImportError:
            pass
        try:
            for k, f in _lenstronomy(sim, theta, n_len).items():
                fns["lenstronomy", k] = f
                counts["lenstronomy", k] = n_len
        except ImportError:
            pass
        load = os.getloadavg()[0]
        cpu, wall = _best(fns, repeat=repeat)
        basis = cpu if threads == 1 else wall
        rate = {key: counts[key] / basis[key] for key in fns}
        for (code, noise), r in rate.items():
            row = {"case": f"{num_pix}x{num_pix}", "code": code, "noise": noise,
                   "batch": counts[code, noise], "images_per_cpu_s": counts[code, noise]
                   / cpu[code, noise],
                   "images_per_wall_s": counts[code, noise] / wall[code, noise],
                   "load_avg_1min": load, "threads": threads,
                   "ratio_basis": "cpu" if threads == 1 else "wall"}
            if code == "ours_compiled":
                row["compile_s"] = compile_s
            cau = max(rate.get(("caustics", noise), 0.0),
                      rate.get(("caustics_full_batch", noise), 0.0))
            if cau and code.startswith("ours"):
                row["x_caustics_best"] = r / cau
            if ("lenstronomy", noise) in rate and code.startswith("ours"):
                row["x_lenstronomy"] = r / rate["lenstronomy", noise]
            rows.append(row)
    return rows


if __name__ == "__main__":
    main_for("bench_lensing", run)  # __name__ is "__main__" under python -m
