"""``lensing_sie`` as a benchmark task: its exact log posterior and where its reference
chains start (the references machinery is :mod:`sbi_astro.benchmark_references`).

The posterior of a 64 x 64 lens image is far narrower than the prior, so emcee's walkers
do not start at the best of a few thousand prior draws, as they do for the X-ray tasks, but
at the ends of :data:`NUM_STARTS` seeded gradient descents (Adam on the log posterior,
through the differentiable ray tracing, in the logit of each parameter's prior box so every
step stays inside the support): every end within :data:`MODE_GAP` of the best log
posterior is a start (cycled over the walkers, with a tiny jitter).  Should the descents
end in two separate modes, walkers start in both, cannot cross between them, and the
split-R-hat over the half-chains (far above 1.01 then) rejects the row: it is skipped, so
a row kept has one mode as far as 64 descents can tell.

The likelihood is the simulator's: the normal approximation to Poisson counts plus
Gaussian background (variance ``background_rms^2 + mu / exposure_time``).  At the default
imaging (1,000 s, background rms 10 counts per pixel) the Poisson part is never skewed
enough to matter: the background's variance (100 counts^2) dominates where the counts are
few.  The chains evaluate it through the ``torch.compile`` d twin of the simulator (same
numbers to float32 round-off, ~9x faster), each image in float32, the sum over pixels in
float64.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sbi_astro.benchmark_references import BenchmarkReferences

#: gradient descents per row, their Adam steps and learning rate (in logit units)
NUM_STARTS = 64
DESCENT_STEPS = 1500
DESCENT_LR = 0.05
#: descents ending within this log posterior of the best start walkers
MODE_GAP = 10.0
#: the jitter of the walkers' starts (fraction of each prior range)
START_JITTER = 1e-5


class SIEBenchmarkReferences(BenchmarkReferences):
    """The benchmark hooks of ``lensing_sie`` (see the module docstring)."""

    references_dir = Path(__file__).resolve().parent / "data" / "benchmark"
    reference_ignored_options = ("compile",)

    def references_refusal(self) -> str | None:
        if self.options.image is not None:  # type: ignore[attr-defined]
            return ("benchmark references exist for the synthetic imaging only, not for "
                    "your own image")
        return None

    def reference_builder(self):  # noqa: ANN201
        """The compiled twin (same options and prior) on the CPU."""
        opts = {**self.options_dict(), "compile": True}  # type: ignore[attr-defined]
        return type(self)(device="cpu", prior=self.prior_overrides or None, **opts)  # type: ignore[attr-defined]

    def _log_posterior_fn(self, x_row: Tensor):  # noqa: ANN202
        """numpy ``(W, D) -> (W,)`` float64 log posterior of one image; rows outside the
        prior's box are evaluated at a point inside (one batch shape for the compiled
        kernels) and get ``-inf``."""
        prior = self.prior  # type: ignore[attr-defined]
        lo, hi = prior.low.cpu(), prior.high.cpu()
        x64 = x_row.to(torch.float64)

        def fn(th: np.ndarray) -> np.ndarray:
            t = torch.as_tensor(np.atleast_2d(th), dtype=torch.float64)
            inside = prior.within_support(t)
            safe = torch.where(inside[:, None], t, (lo + hi) / 2).to(torch.float32)
            with torch.no_grad():
                mu = self._expected(safe).to(torch.float64)  # type: ignore[attr-defined]
            ll = self.image_log_likelihood(mu, x64)  # type: ignore[attr-defined]
            lp = ll + prior.log_prob(safe).to(torch.float64)
            return torch.where(inside, lp, -math.inf).numpy()

        return fn

    def reference_start(self, log_post, x_row: Tensor, walkers: int, seed: int  # noqa: ANN001
                        ) -> np.ndarray:
        """``walkers`` starting points: the ends of :data:`NUM_STARTS` seeded gradient
        descents within :data:`MODE_GAP` of the best log posterior, cycled, each with a
        jitter of :data:`START_JITTER` prior ranges."""
        prior = self.prior  # type: ignore[attr-defined]
        lo, hi = prior.low.cpu(), prior.high.cpu()
        width = hi - lo
        gen = torch.Generator().manual_seed(seed)
        u = 0.05 + 0.9 * torch.rand(NUM_STARTS, lo.numel(), generator=gen)
        z = torch.logit(u).requires_grad_(True)
        x = x_row.to(torch.float32).expand(NUM_STARTS, *x_row.shape)
        opt = torch.optim.Adam([z], lr=DESCENT_LR)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, DESCENT_STEPS,
                                                           eta_min=DESCENT_LR / 50)
        for _ in range(DESCENT_STEPS):
            theta = lo + width * torch.sigmoid(z)
            loss = -(self.log_likelihood(theta, x) + prior.log_prob(theta)).sum()  # type: ignore[attr-defined]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        ends = (lo + width * torch.sigmoid(z.detach())).to(torch.float64).numpy()
        lp = log_post(ends)
        good = ends[np.argsort(-lp)][: int((lp > lp.max() - MODE_GAP).sum())]
        rng = np.random.default_rng(seed)
        start = good[np.arange(walkers) % len(good)] + START_JITTER * width.numpy() * (
            rng.standard_normal((walkers, lo.numel())))
        return np.clip(start, lo.numpy(), hi.numpy())
