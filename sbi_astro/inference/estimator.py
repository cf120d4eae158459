"""The trained estimator: a network, the simulator it was trained for, and its metadata.

Subclasses (:mod:`.npe`, :mod:`.nle`, :mod:`.nre`, :mod:`.ensemble`) implement ``sample``
and ``log_prob``; saving goes through :mod:`.run_files`, loading through :mod:`.runs`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError
from ..simulator import Simulator
from .config import TrainingConfig
from .data import as_tensor
from .run_files import RUN_FORMAT, RUN_FORMAT_VERSION, write_run


def resolve_embedding_spec(config: TrainingConfig, simulator: Simulator) -> dict | None:
    """The embedding spec actually used: the simulator's default, none, or the config's."""
    if config.embedding == "default":
        spec = simulator.default_embedding()
        return spec.to_dict() if spec is not None else None
    if config.embedding in ("none", None):
        return None
    return {"kind": config.embedding["kind"], "kwargs": dict(config.embedding.get("kwargs", {}))}


class TrainedEstimator(ABC):
    """A trained neural estimator together with the simulator it was trained for.

    Attributes:
        net: the trained network (an sbi/zuko module).
        simulator: the simulator (rebuilt from name and options when loaded).
        config: the training configuration.
        metadata: JSON-friendly provenance (training summary, data, versions).
    """

    method: str = ""

    def __init__(self, net: nn.Module, simulator: Simulator, config: TrainingConfig,
                 embedding_spec: dict | None, metadata: dict[str, Any]):
        self.net = net
        self.simulator = simulator
        self.config = config
        self.embedding_spec = embedding_spec
        self.metadata = metadata
        self.net.eval()

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def prior(self):
        return self.simulator.prior.to(self.device)

    def _flatten_x(self, x: Tensor, num_samples: int | None = None
                   ) -> tuple[Tensor, tuple[int, ...]]:
        """``x (*B, *E)`` as ``(N, *E)`` on the estimator's device, and ``B``; checks ``x``
        (and ``num_samples``, when sampling)."""
        if num_samples is not None and (isinstance(num_samples, bool) or not isinstance(
                num_samples, int) or num_samples < 1):
            raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
        if x is None:
            raise ShapeError(f"x is None: give the observation(s), shape (*B, "
                             f"{', '.join(map(str, self.simulator.event_shape))})")
        x = self.simulator.check_x(as_tensor(x, "x")).to(self.device, torch.float32)
        ev = len(self.simulator.event_shape)
        batch = tuple(x.shape[: x.dim() - ev])
        if x.numel() == 0:
            raise ShapeError(f"x holds no observations (shape {tuple(x.shape)}); give at least "
                             "one")
        return x.reshape(-1, *self.simulator.event_shape), batch

    @abstractmethod
    def sample(self, num_samples: int, x: Tensor, *, generator: torch.Generator | None = None
               ) -> Tensor:
        """Posterior samples ``(S, *B, D)`` for observations ``x (*B, *event_shape)``."""

    @abstractmethod
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """Log posterior density (up to a constant per ``x`` for NLE/NRE): ``(S, *B)``."""

    # -- persistence ----------------------------------------------------------------------
    def save(self, run_dir: str | Path) -> Path:
        """Writes the weights and ``run.json`` atomically (:func:`write_run`); returns the
        directory.  An existing run there is replaced in one step."""
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        doc = {
            "format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION,
            "method": self.method, "config": self.config.to_dict(),
            "simulator": self.simulator.spec(),
            "data_files": self.simulator.data_files(),
            "prior": self.simulator.prior.to_dict(),
            "param_names": list(self.simulator.param_names),
            "param_units": list(self.simulator.param_units),
            "event_shape": list(self.simulator.event_shape),
            "x_standardization": self.simulator.x_standardization,
            "embedding": self.embedding_spec, "metadata": self.metadata,
        }
        return write_run(run_dir, doc, state)
