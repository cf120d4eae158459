"""The lensed-source posterior sampler against an exact posterior, at the study's size.

With a Gaussian prior the posterior of ``y = A x + n`` is Gaussian and known in closed
form, so the reverse-diffusion sampler of the score study
(:func:`sbi_astro.solvers.sample_posterior`, convolved likelihood through the operator's
matrix) can be checked on the real problem: 32 x 32 GalSim sources (the prior: mean and
covariance of ``num_train`` of them, so its score is exact), lensed by the study's SIE +
shear with its PSF, noise 0.05 of the peak, 16 held-out galaxies, 16 chains each.

Rows:

* ``exact``: the closed-form posterior mean's pixel RMS error against the truth (the
  Wiener filter with the galaxies' covariance), and regularised least squares through the
  same operator (the study's baseline, strength 100);
* ``sampler``: the posterior mean of the chains, its RMS distance to the exact mean in units
  of the exact posterior standard deviation, and the median ratio of the chains' standard
  deviation to the exact one, for ``sigma_min`` 0.001 and 0.01 (the study's old setting:
  ``t_min``'s noise, ~``sigma_min``, is added to every sample, so it must sit below the
  posterior's pixel standard deviation, ~0.018 here);
* the TARP ATC over all pixels of the exact-prior posterior against the true galaxies: the
  Gaussian prior is not the galaxies' prior (their backgrounds are exactly zero), and TARP
  over 1,024 pixels sees it.

Run: ``python -m benchmarks score_lensing_exact [--quick]`` (needs galsim; ~3 min on one
core).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks._common import main_for
from sbi_astro.campaign import run_campaign
from sbi_astro.diagnostics.images import image_calibration
from sbi_astro.operators import get_operator
from sbi_astro.pipeline.score_study import _observe, _peak_normalised, operator_matrix
from sbi_astro.registry import load_simulator
from sbi_astro.solvers import (
    VESDE,
    GaussianLinearLikelihood,
    GaussianScore,
    regularised_least_squares,
    sample_posterior,
)

OPERATOR = {"theta_E": 0.9, "e1": 0.1, "e2": -0.05, "gamma1": 0.02, "gamma2": 0.01,
            "num_pix": 32, "pixel_scale": 0.08, "source_num_pix": 32,
            "source_pixel_scale": 0.04, "psf_fwhm": 0.15}
SIGMA = 0.05


def _images(tmp: Any, n: int, seed: int) -> torch.Tensor:
    sim = load_simulator("galsim_sources", device="cpu", num_pix=32, pixel_scale=0.08,
                         n_knots=15)
    with run_campaign(tmp / f"s{seed}.h5", sim, num_simulations=n, seed=seed,
                      chunk_size=250, progress=False) as store:
        return _peak_normalised(store.load()[1])


def run(quick: bool = False) -> list[dict]:
    import tempfile
    from pathlib import Path

    torch.set_num_threads(1)
    n_train, n_test, chains = (500, 4, 8) if quick else (2000, 16, 16)
    with tempfile.TemporaryDirectory() as tmp:
        train = _images(Path(tmp), n_train, 0).double().reshape(n_train, -1)
        truth = _images(Path(tmp), n_test, 200)
    d = train.shape[1]
    mu = train.mean(0)
    cov = torch.cov(train.T) + 1e-5 * torch.eye(d, dtype=torch.float64)
    op = get_operator("lensing", **OPERATOR)
    y = _observe(op, truth, 200, SIGMA)
    A = operator_matrix(op, (1, 32, 32), device=torch.device("cpu")).double()
    post_cov = torch.linalg.inv(torch.linalg.inv(cov) + A.T @ A / SIGMA**2)
    yf = y.reshape(n_test, -1).double()
    exact_mean = (post_cov @ (A.T @ yf.T / SIGMA**2 + torch.linalg.solve(cov, mu[:, None]))).T
    exact_std = post_cov.diag().sqrt()
    tf = truth.reshape(n_test, -1).double()
    with torch.no_grad():
        base = regularised_least_squares(op, op.adjoint, y, SIGMA, 100.0)
    rows: list[dict[str, Any]] = [{
        "case": f"exact Gaussian-prior posterior, {n_test} lenses",
        "rmse": round(float((exact_mean - tf).pow(2).mean().sqrt()), 4),
        "rmse_regularised_ls": round(float((base - truth).pow(2).mean().sqrt()), 4),
        "posterior_std_mean": round(float(exact_std.mean()), 4)}]
    lik = GaussianLinearLikelihood(A.float(), SIGMA, obs_shape=tuple(y.shape[1:]))
    for sigma_min in (0.001, 0.01):
        prior = GaussianScore(mu.float(), cov.float(), VESDE(sigma_min, 10.0),
                              event_shape=(1, 32, 32))
        t0 = time.perf_counter()
        s = sample_posterior(prior, lik, y, num_samples=chains, steps=300, corrector_steps=0,
                             final_steps=100, t_min=1e-3, event_shape=(1, 32, 32), seed=200,
                             device="cpu")
        seconds = time.perf_counter() - t0
        mean = s.mean(0).reshape(n_test, -1).double()
        std = s.std(0).reshape(n_test, -1).double()
        row = {"case": f"sampler, exact prior score, sigma_min {sigma_min:g}",
               "rmse": round(float((mean - tf).pow(2).mean().sqrt()), 4),
               "mean_offset_in_exact_std": round(float(((mean - exact_mean) / exact_std)
                                                       .pow(2).mean().sqrt()), 3),
               "std_ratio_median": round(float((std / exact_std).median()), 3),
               "seconds": round(seconds, 1)}
        if sigma_min == 0.001:
            res = image_calibration(s[:, :, 0], truth[:, 0], seed=0)
            row["tarp_atc"] = round(res.tarp.atc, 3)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main_for(__name__, run)
