"""Foundation benchmark: campaign throughput, NPE training, batched sampling, C2ST accuracy,
and an NRE training epoch on images.

Peers, measured in the same run: sbi 0.27's own ``sample_batched`` (on sbi's default MAF
and on our network) and sbi's default NPE (MAF) for accuracy; sbi's NRE-B loss for the NRE
epoch.

    python -m benchmarks.bench_inference [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from benchmarks._common import main_for
from sbi_astro import load_simulator
from sbi_astro.campaign import run_campaign, simulate_rows
from sbi_astro.diagnostics.c2st import c2st
from sbi_astro.inference import TrainingConfig, sbi_adapter, sbi_peers, train  # noqa: F401


def _campaign_rows(quick: bool) -> list[dict]:
    rows = []
    n = 20_000 if quick else 200_000
    for name in ("gaussian_linear", "two_moons"):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            store = run_campaign(Path(d) / "s.h5", name, num_simulations=n, seed=0,
                                 chunk_size=10_000, device="cpu", progress=False)
            dt = time.perf_counter() - t0
            store.close()
        rows.append({"case": f"campaign {name} (store incl.)", "n": n, "seconds": dt,
                     "sims_per_s": n / dt})
    return rows


def _accuracy_rows(name: str, quick: bool) -> list[dict]:
    sim = load_simulator(name, device="cpu")
    n_train = 2_000 if quick else 10_000
    theta, x = simulate_rows(sim, 1, 0, n_train)
    _, x_o = simulate_rows(sim, 999, 0, 5)
    ref = sim.reference_posterior(x_o, 10_000 if not quick else 2_000,
                                  generator=torch.Generator().manual_seed(1))
    s_ref = ref.shape[0]
    rows = []
    est = train(theta, x, sim, TrainingConfig(device="cpu", max_epochs=20 if quick else 1000))
    ours = est.sample(s_ref, x_o, generator=torch.Generator().manual_seed(0))
    c_ours = [c2st(ours[:, i], ref[:, i], seed=i) for i in range(5)]
    flow = est.config.flow.upper()
    rows.append({"case": f"NPE {name} sbi-astro ({flow} coupling)", "n": n_train,
                 "train_s": est.metadata["training"]["seconds"],
                 "c2st_mean": sum(c_ours) / 5, "c2st_max": max(c_ours)})
    peer, secs = sbi_peers.sbi_peer("sbi-npe", sim.prior, theta, x, torch.device("cpu"),
                                    max_epochs=20 if quick else 2**31 - 1)
    post = peer.posterior  # sbi's own DirectPosterior
    theirs = sbi_adapter.sample_batched(post, s_ref, x_o)
    c_sbi = [c2st(theirs[:, i], ref[:, i], seed=i) for i in range(5)]
    rows.append({"case": f"NPE {name} sbi 0.27 defaults (MAF)", "n": n_train, "train_s": secs,
                 "c2st_mean": sum(c_sbi) / 5, "c2st_max": max(c_sbi)})
    if name == "gaussian_linear":
        n_obs = 200 if quick else 1000
        _, xs = simulate_rows(sim, 7, 0, n_obs)
        t0 = time.perf_counter()
        est.sample(1000, xs, generator=torch.Generator().manual_seed(0))
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        sbi_adapter.sample_batched(post, 1000, xs)
        t_sbi = time.perf_counter() - t0
        t0 = time.perf_counter()
        sbi_adapter.sample_batched(sbi_peers.direct_posterior(est.net, est.prior,
                                                                torch.device("cpu")), 1000, xs)
        t_sbi_ournet = time.perf_counter() - t0
        rows.append({"case": f"sample 1000 x {n_obs} obs: sbi-astro", "seconds": t_ours})
        rows.append({"case": f"sample 1000 x {n_obs} obs: sbi sample_batched (MAF default)",
                     "seconds": t_sbi, "speedup_vs_peer": t_sbi / t_ours})
        rows.append({"case": f"sample 1000 x {n_obs} obs: sbi sample_batched (our net)",
                     "seconds": t_sbi_ournet, "speedup_vs_peer": t_sbi_ournet / t_ours})
    return rows


def _nre_image_rows(quick: bool) -> list[dict]:
    """One NRE training epoch on ``lensing_sie`` images (64 x 64, the default ResNet
    embedding): ours, which embeds each image of a batch once, against sbi 0.27's NRE-B
    loss, which embeds it once per contrasting atom (10), from the same seed."""
    sim = load_simulator("lensing_sie", device="cpu")
    theta, x = simulate_rows(sim, 0, 0, 400 if quick else 2000)
    rows, plain = [], sbi_adapter._embed_x_once
    try:
        for who in ("sbi-astro", "sbi 0.27 NRE-B loss"):
            if who != "sbi-astro":
                sbi_adapter._embed_x_once = lambda cls: cls  # sbi's own _classifier_logits
            t0 = time.perf_counter()
            est = train(theta, x, sim, TrainingConfig(method="nre", device="cpu", seed=0,
                                                      max_epochs=1))
            rows.append({"case": f"NRE, one epoch of {len(theta)} lensing_sie images",
                         "who": who, "seconds": round(time.perf_counter() - t0, 1),
                         "validation_loss": est.metadata["training"]["validation_loss"][-1]})
    finally:
        sbi_adapter._embed_x_once = plain
    rows[0]["speedup"] = round(rows[1]["seconds"] / rows[0]["seconds"], 1)
    return rows


def run(quick: bool = False) -> list[dict]:
    rows = _campaign_rows(quick)
    for name in ("gaussian_linear", "two_moons"):
        rows += _accuracy_rows(name, quick)
    return rows + _nre_image_rows(quick)


if __name__ == "__main__":
    main_for(__name__, run)
