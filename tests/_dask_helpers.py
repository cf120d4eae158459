"""A test simulator for the Dask executor: gaussian_linear that can be slow or fail.

It lives in an importable module (not in a test file) because Dask workers rebuild the
simulator from its class; they inherit the test process's ``sys.path``.
"""

from __future__ import annotations

import dataclasses
import time

from torch import Tensor

from sbi_astro.random import RowRandom
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
