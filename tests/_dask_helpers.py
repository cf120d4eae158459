"""Test simulators of the scale-out tests: gaussian_linear that can be slow or fail, and a
simulator of wide rows (stores larger than memory).

It lives in an importable module (not in a test file) because Dask workers rebuild the
simulator from its class; they inherit the test process's ``sys.path``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time

import torch
from torch import Tensor

from sbi_astro.priors import Normal, Prior
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator
from simulators.sbibm.gaussian_linear import GaussianLinear


@dataclasses.dataclass(frozen=True)
class FaultyOptions:
    """Attributes:
    dim: parameters (and data dimensions).
    fail_above: the simulation raises when a row's ``theta_0`` exceeds it.
    delay: seconds each call sleeps (a slow simulator, to kill workers mid-chunk).
    """

    dim: int = 2
    fail_above: float = 1e9
    delay: float = 0.0


class FaultyGaussian(GaussianLinear):
    """``gaussian_linear`` (same rows for the same seed) with a failure and a delay."""

    name = "faulty_gaussian"
    Options = FaultyOptions

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        time.sleep(self.options.delay)
        if bool((theta[..., 0] > self.options.fail_above).any()):
            raise ValueError(f"theta_0 above {self.options.fail_above}")
        return super()._simulate(theta, rng)


NOISE = 1.0


@dataclasses.dataclass(frozen=True)
class WideOptions:
    """Attributes:
    width: data dimensions (features of x), a multiple of 64.
    """

    width: int = 2048


class WideGaussian(Simulator):
    """Two parameters seen through many features: 64 noisy measurements
    ``B theta + noise`` (``B (64, 2)`` of entries +-1, unit noise), each repeated over
    ``width / 64`` features: large rows that are cheap to simulate and learn (the
    store-larger-than-memory tests).  The posterior is Gaussian, of standard deviation
    about 1/8 per parameter."""

    name = "wide_gaussian"
    Options = WideOptions

    def build_prior(self) -> Prior:
        return Prior([Normal("a", 0.0, 1.0), Normal("b", 0.0, 1.0)])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.options.width,)

    def default_embedding(self) -> EmbeddingSpec:
        return EmbeddingSpec("mlp", {"in_shape": [self.options.width], "out_features": 8,
                                     "hidden": []})

    def _matrix(self, like: Tensor) -> Tensor:
        i = torch.arange(self.options.width)[:, None] // (self.options.width // 64)
        j = torch.arange(2)[None, :]
        signs = torch.where((i * 7 + j * 3) % 5 < 3, 1.0, -1.0)
        return self.constant("A", signs, like)

    def _expected(self, theta: Tensor) -> Tensor:
        return (theta @ self._matrix(theta).T).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        noise = rng.normal((64,), dtype=theta.dtype).repeat_interleave(
            self.options.width // 64, dim=-1)
        return (self._expected(theta) + NOISE * noise).to(self.dtype)


@contextlib.contextmanager
def one_worker_killed(scheduler_address: str, after: float = 0.9):
    """SIGKILLs one worker process of the cluster ``after`` seconds into the block; yields
    its pid.  On exit, waits until the nanny has restarted it (for later tests)."""
    from distributed import Client

    with Client(scheduler_address) as client:
        victim = sorted(client.run(os.getpid).values())[0]

    def kill() -> None:
        time.sleep(after)
        os.kill(victim, signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    try:
        yield victim
    finally:
        killer.join()
    with Client(scheduler_address) as client:
        client.wait_for_workers(2, timeout=60)
        assert victim not in client.run(os.getpid).values()
