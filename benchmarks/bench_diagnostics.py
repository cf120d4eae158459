"""Diagnostics speed against the reference implementations, measured in the same run.

* TARP: :func:`sbi_astro.diagnostics.tarp_ecp` vs ``tarp.get_tarp_coverage`` (same samples,
  same references; 1,000 simulations x 1,000 samples x 10 parameters), float64 and
  float32, plus both bootstrap bands, plus sbi 0.27's ``_run_tarp``.
* SBC ranks (1,000 x 1,000 x 10): :func:`sbi_astro.diagnostics.sbc` vs sbi's ranking loop
  (``sbi.diagnostics.sbc._run_sbc``) on the same samples.
* Expected coverage (200 x 1,000): a real sbi ``DirectPosterior`` (MAF trained briefly on
  ``gaussian_linear``); ours calls ``log_prob_batched`` through the protocol, sbi's
  ``run_sbc(reduce_fns=log_prob)`` recipe calls ``log_prob`` once per simulation.  The
  documented recipe (``posterior.log_prob``, normalised) is timed on a subset and scaled.

Run: ``python -m benchmarks.bench_diagnostics [--quick]`` (quick: smaller sizes, < 1 min).
Sampling time is excluded everywhere: every method ranks the same samples.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from typing import Any

import numpy as np
import torch

from benchmarks._common import main_for, timeit
from sbi_astro.diagnostics import (
    expected_coverage,
    posterior_log_probs,
    sbc,
    tarp,
    tarp_ecp,
)


def _problem(s: int, n: int, d: int, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = theta + torch.randn(n, d, generator=g, dtype=torch.float64)
    samples = x / 2 + 0.5**0.5 * torch.randn(s, n, d, generator=g, dtype=torch.float64)
    refs = torch.rand(n, d, generator=g, dtype=torch.float64)
    return samples.to(dtype), theta.to(dtype), refs.to(dtype)


def _row(case: str, ours: float, peer: float, peer_name: str, **extra: Any) -> dict[str, Any]:
    return {"case": case, "ours_s": ours, "peer": peer_name, "peer_s": peer,
            "speedup": peer / ours, **extra}


def bench_tarp(quick: bool) -> list[dict[str, Any]]:
    import tarp as tarp_pkg
    from sbi.diagnostics.tarp import _run_tarp

    s, n, d = (300, 300, 10) if quick else (1000, 1000, 10)
    rows = []
    for dtype in (torch.float64, torch.float32):
        samples, theta, refs = _problem(s, n, d, dtype)
        sn, tn, rn = samples.numpy(), theta.numpy(), refs.numpy()
        ecp, _ = tarp_ecp(samples, theta, refs, grid="data")
        ecp_ref, _ = tarp_pkg.get_tarp_coverage(sn, tn, references=rn)
        err = float(np.abs(ecp.numpy() - ecp_ref).max())
        ours = timeit(lambda s=samples, t=theta, r=refs: tarp_ecp(s, t, r, grid="data"),
                      repeat=5)
        peer = timeit(lambda s=sn, t=tn, r=rn: tarp_pkg.get_tarp_coverage(s, t, references=r),
                      repeat=5)
        name = str(dtype).removeprefix("torch.")
        rows.append(_row(f"tarp ECP {s}x{n}x{d} {name}", ours, peer, "tarp 0.1.1",
                         max_abs_ecp_diff=err))
        if dtype == torch.float32:
            peer_sbi = timeit(lambda s=samples, t=theta, r=refs: _run_tarp(s, t, r), repeat=3)
            rows.append(_row(f"tarp ECP {s}x{n}x{d} {name}", ours, peer_sbi,
                             "sbi 0.27 _run_tarp"))
    # bootstrap bands: ours 100 resamples of the simulations (references fixed) vs the
    # package's 100 (each recomputes every distance, and mutates its inputs: copies given).
    samples, theta, refs = _problem(s, n, d, torch.float64)
    nb = 20 if quick else 100
    ours = timeit(lambda: tarp(samples, theta, references=refs, num_bootstrap=nb), repeat=3)
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # the package's tqdm bar
        tarp_pkg.get_tarp_coverage(samples.numpy().copy(), theta.numpy().copy(),
                                   references=refs.numpy().copy(), bootstrap=True,
                                   num_bootstrap=nb, seed=0)
    peer = time.perf_counter() - t0
    rows.append(_row(f"tarp + {nb} bootstrap {s}x{n}x{d} float64", ours, peer, "tarp 0.1.1"))
    return rows


def bench_sbc(quick: bool) -> list[dict[str, Any]]:
    from sbi.diagnostics.sbc import _run_sbc

    s, n, d = (300, 300, 10) if quick else (1000, 1000, 10)
    samples, theta, _ = _problem(s, n, d, torch.float32)
    xs = theta.clone()
    ours_ranks = sbc(samples, theta).ranks
    sbi_ranks = _run_sbc(theta, xs, samples, "marginals", show_progress_bar=False)
    same = bool(torch.equal(ours_ranks.float(), sbi_ranks))
    ours = timeit(lambda: sbc(samples, theta), repeat=3)
    t0 = time.perf_counter()
    _run_sbc(theta, xs, samples, "marginals", show_progress_bar=False)
    peer = time.perf_counter() - t0
    return [_row(f"SBC ranks + tests {s}x{n}x{d}", ours, peer, "sbi 0.27 _run_sbc",
                 identical_ranks=same)]


def _sbi_posterior(num_sims: int, epochs: int):
    from sbi.inference import NPE

    from sbi_astro import load_simulator

    sim = load_simulator("gaussian_linear", device="cpu")
    g = torch.Generator().manual_seed(1)
    theta, x = sim.sample_joint(num_sims, generator=g)
    prior = torch.distributions.MultivariateNormal(torch.zeros(10), 0.1 * torch.eye(10))
    torch.manual_seed(0)  # sbi's training draws from the global generator
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):  # sbi-logs/ go there
        trainer = NPE(prior=prior, density_estimator="maf", show_progress_bars=False)
        trainer.append_simulations(theta, x).train(max_num_epochs=epochs,
                                                   show_train_summary=False)
        return sim, trainer.build_posterior()


class _Protocol:
    """Our report protocol over an sbi DirectPosterior (batched sampling and log_prob)."""

    def __init__(self, post):
        self.post = post

    def sample(self, num_samples, x):
        return self.post.sample_batched((num_samples,), x=x, show_progress_bars=False)

    def log_prob(self, theta, x):
        return self.post.log_prob_batched(theta, x, norm_posterior=False)


def bench_coverage(quick: bool) -> list[dict[str, Any]]:
    from sbi.diagnostics.sbc import _run_sbc

    n, s = (50, 300) if quick else (200, 1000)
    sim, post = _sbi_posterior(500 if quick else 2000, 3 if quick else 10)
    proto = _Protocol(post)
    g = torch.Generator().manual_seed(2)
    theta, x = sim.sample_joint(n, generator=g)
    torch.manual_seed(3)
    with torch.no_grad():
        samples = proto.sample(s, x)

    def ours_fn():
        lp_s, lp_t = posterior_log_probs(proto, samples, theta, x)
        return expected_coverage(lp_s, lp_t)

    ours = timeit(ours_fn, repeat=2, warmup=1)

    def lp_unnorm(t, xx):
        return post.log_prob(t, x=xx, norm_posterior=False)

    t0 = time.perf_counter()
    ranks = _run_sbc(theta, x, samples, lp_unnorm, show_progress_bar=False)
    peer = time.perf_counter() - t0
    levels = ours_fn().levels
    # sbi ranks = #(lp(sample) < lp(theta)) = S * (1 - level) up to ties
    agree = float((ranks[:, 0] / s - (1 - levels)).abs().max())
    rows = [_row(f"expected coverage (HPD) {n}x{s}, sbi MAF", ours, peer,
                 "sbi 0.27 run_sbc(log_prob, norm_posterior=False)", max_level_diff=agree)]
    # The documented recipe reduce_fns=posterior.log_prob (normalised, leakage-corrected
    # per x): timed on a subset of simulations, scaled linearly to all n.
    k = 2 if quick else 10
    t0 = time.perf_counter()
    _run_sbc(theta[:k], x[:k], samples[:, :k], post.log_prob, show_progress_bar=False)
    peer_full = (time.perf_counter() - t0) * n / k
    rows.append(_row(f"expected coverage (HPD) {n}x{s}, sbi MAF", ours, peer_full,
                     f"sbi 0.27 run_sbc(posterior.log_prob) [{k} sims, scaled]"))
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    return bench_tarp(quick) + bench_sbc(quick) + bench_coverage(quick)


if __name__ == "__main__":
    main_for("bench_diagnostics", run)
