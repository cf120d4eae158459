"""sbibm's fixed observations, true parameters and reference posterior samples.

Every sbibm task ships 10 observations (numbered 1 to 10, as in sbibm), the parameters
that generated them, and 10,000 reference posterior samples per observation.  They are
stored per task in ``data/<task>.npz`` (built from the sbibm 1.1.0 wheel by
``build_data.py``; provenance in ``data/PROVENANCE.md``): observations and true parameters
as sbibm's float32 values, the reference samples quantised to 16 bits per value between
the per-(observation, parameter) minimum and maximum (the largest rounding error is
1/131070 of that range, below 1e-4 posterior standard deviations on every task).

:class:`SbibmReference` is a mixin that gives a task the methods ``observation(i)``,
``true_parameters(i)``, ``reference_samples(i)`` and ``observed()`` (observation 1).

Example:
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("two_moons", device="cpu")
    >>> tuple(sim.observation(1).shape), tuple(sim.reference_samples(1).shape)
    ((2,), (10000, 2))

References:
    Lueckmann, Boelts, Greenberg, Goncalves & Macke (2021), "Benchmarking simulation-based
    inference", AISTATS (sbibm 1.1.0, MIT licence).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from sbi_astro.errors import ConfigError, DataFormatError, NotAvailableError

DATA_DIR = Path(__file__).resolve().parent / "data"
NUM_OBSERVATIONS = 10
QUANT_LEVELS = 65535  # uint16 codes 0..65535 span [lo, hi]


@functools.cache
def load_task_data(stem: str) -> dict[str, np.ndarray]:
    """The arrays of ``data/<stem>.npz`` (read once, cached; never unpickled)."""
    path = DATA_DIR / f"{stem}.npz"
    if not path.is_file():
        raise DataFormatError(f"sbibm reference data {path} is missing; reinstall sbi-astro or "
                              "rebuild it with `python simulators/sbibm/build_data.py`")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def dequantize(codes: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``codes (S, D)`` uint16 -> float64 values ``lo + codes * (hi - lo) / 65535``."""
    return lo + codes.astype(np.float64) * ((hi - lo) / QUANT_LEVELS)


class SbibmReference:
    """Mixin for a :class:`~sbi_astro.Simulator` that is an sbibm task.

    Class attributes:
        sbibm_data: stem of the task's ``data/<stem>.npz``.
        sbibm_observation_key: array holding the observations (tasks that share a file,
            such as ``slcp`` and ``slcp_distractors``, differ here).
        num_observations: 10, numbered ``1..10`` as in sbibm.
    """

    sbibm_data: ClassVar[str] = ""
    sbibm_observation_key: ClassVar[str] = "observations"
    num_observations: ClassVar[int] = NUM_OBSERVATIONS

    def _sbibm_unavailable(self) -> str | None:
        """Why sbibm's data do not apply to this instance (its options differ from sbibm's),
        or ``None`` when they do (override)."""
        return None

    @property
    def has_observation(self) -> bool:
        return self._sbibm_unavailable() is None

    def _sbibm_array(self, key: str, i: int) -> np.ndarray:
        reason = self._sbibm_unavailable()
        if reason is not None:
            raise NotAvailableError(reason)
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not (
                1 <= i <= self.num_observations):
            raise ConfigError(f"observation number must be an integer in 1..{self.num_observations}"
                              f" (sbibm's numbering), got {i!r}")
        return load_task_data(self.sbibm_data)[key][i - 1]

    def _as_tensor(self, a: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)  # type: ignore[attr-defined]

    def observation(self, i: int) -> Tensor:
        """sbibm's observation number ``i`` (1..10), shape ``event_shape``."""
        return self._as_tensor(self._sbibm_array(self.sbibm_observation_key, i))

    def reference_observation(self, i: int) -> Tensor:
        """The benchmark's name for :meth:`observation` (sbi-astro benchmark tasks)."""
        return self.observation(i)

    def true_parameters(self, i: int) -> Tensor:
        """The parameters ``(D,)`` that generated observation ``i``."""
        return self._as_tensor(self._sbibm_array("true_parameters", i))

    def reference_samples(self, i: int, num_samples: int | None = None) -> Tensor:
        """sbibm's reference posterior samples ``(S, D)`` for observation ``i`` (under
        sbibm's prior: refused when the simulator has a user prior).

        Args:
            i: observation number, 1..10.
            num_samples: the first ``S`` of the 10,000 stored samples (all by default).
        """
        if self.prior_overrides:  # type: ignore[attr-defined]
            raise NotAvailableError(f"sbibm's reference samples are posteriors under sbibm's "
                                    f"prior; this {self.name} has your prior "  # type: ignore[attr-defined]
                                    f"{sorted(self.prior_overrides)}")  # type: ignore[attr-defined]
        codes = self._sbibm_array("reference_codes", i)
        if num_samples is not None:
            if not 1 <= num_samples <= codes.shape[0]:
                raise ConfigError(f"num_samples must be in 1..{codes.shape[0]}, got {num_samples}")
            codes = codes[:num_samples]
        lo = self._sbibm_array("reference_lo", i)
        hi = self._sbibm_array("reference_hi", i)
        return self._as_tensor(dequantize(codes, lo, hi))

    def observed(self) -> Tensor:
        """Observation 1 of sbibm (``event_shape``)."""
        try:
            return self.observation(1)
        except NotAvailableError as err:
            raise NotAvailableError(f"{err}; observed() is sbibm's observation 1") from err
