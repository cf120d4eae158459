"""Trained estimators and self-describing run directories.

A run directory holds ``estimator.pt`` (a plain state dict, loaded with
``torch.load(weights_only=True)``) and ``run.json`` (method, training config, simulator
name and options, prior, embedding spec, shapes, training summary, provenance).  Nothing
is pickled: loading rebuilds the network from ``run.json`` and then loads the weights.
"""

from __future__ import annotations

import json
import pickle  # only for its exception type: nothing is unpickled
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..embeddings import build_embedding
from ..errors import ConfigError, DataFormatError, ShapeError
from ..registry import load_simulator
from ..simulator import Simulator
from . import sbi_adapter
from .config import TrainingConfig

RUN_FORMAT = "sbi-astro-run"
RUN_FORMAT_VERSION = 1


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

    def _flatten_x(self, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        x = self.simulator.check_x(torch.as_tensor(x)).to(self.device, torch.float32)
        ev = len(self.simulator.event_shape)
        batch = tuple(x.shape[: x.dim() - ev])
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
        """Writes ``estimator.pt`` (state dict) and ``run.json``; returns the directory."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        tmp = run_dir / "estimator.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(run_dir / "estimator.pt")
        doc = {
            "format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION,
            "method": self.method, "config": self.config.to_dict(),
            "simulator": {"name": self.simulator.name, "options": self.simulator.options_dict()},
            "prior": self.simulator.prior.to_dict(),
            "param_names": list(self.simulator.param_names),
            "param_units": list(self.simulator.param_units),
            "event_shape": list(self.simulator.event_shape),
            "x_standardization": self.simulator.x_standardization,
            "embedding": self.embedding_spec, "metadata": self.metadata,
        }
        (run_dir / "run.json").write_text(json.dumps(doc, indent=2))
        return run_dir


def _estimator_classes() -> dict[str, type[TrainedEstimator]]:
    from .ensemble import NPEEnsemble
    from .nle import NLEEstimator
    from .npe import NPEEstimator
    from .nre import NREEstimator

    return {"npe": NPEEstimator, "nle": NLEEstimator, "nre": NREEstimator,
            "npe-ensemble": NPEEnsemble}


def load_run(run_dir: str | Path, *, device: str | torch.device | None = None
             ) -> TrainedEstimator:
    """Loads a trained estimator from a run directory (no unpickling).

    Raises:
        FileNotFoundError: the directory or its files are missing.
        DataFormatError: ``run.json`` is malformed or the weights do not fit it.
    """
    from ..device import resolve_device

    run_dir = Path(run_dir)
    meta_path, weights = run_dir / "run.json", run_dir / "estimator.pt"
    for p in (meta_path, weights):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found: {run_dir} is not a trained run directory "
                                    "(create one with `sbi-astro train`)")
    try:
        doc = json.loads(meta_path.read_text())
        if doc.get("format") != RUN_FORMAT:
            raise DataFormatError(f"{meta_path} is not an sbi-astro run description")
        config = TrainingConfig.from_dict(doc["config"])
        sim = load_simulator(doc["simulator"]["name"], device="cpu", **doc["simulator"]["options"])
    except (json.JSONDecodeError, KeyError, ConfigError) as err:
        raise DataFormatError(f"{meta_path} is malformed: {err}") from err
    if list(sim.event_shape) != doc["event_shape"] or list(sim.param_names) != doc["param_names"]:
        raise DataFormatError(f"{run_dir}: the simulator {sim.name!r} installed now has other "
                              "parameters or event shape than the one the run was trained on")
    method = doc["method"]

    def rebuild() -> nn.Module:
        return sbi_adapter.rebuild(method, config, build_embedding(doc["embedding"]),
                                   doc["x_standardization"], (sim.dim,), tuple(sim.event_shape))

    net = (nn.ModuleList([rebuild() for _ in range(config.ensemble)]) if config.ensemble > 1
           else rebuild())
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise DataFormatError(f"{weights} does not match the architecture in {meta_path}: "
                              f"{err}") from err
    dev = resolve_device(device)
    sim = load_simulator(doc["simulator"]["name"], device=dev, **doc["simulator"]["options"])
    cls = _estimator_classes()["npe-ensemble" if config.ensemble > 1 else method]
    return cls(net.to(dev), sim, config, doc["embedding"], doc.get("metadata", {}))


def check_theta_x(theta: Tensor, x: Tensor, sim: Simulator) -> tuple[Tensor, Tensor]:
    """Validates a ``(theta (N, D), x (N, *E))`` training set, dropping non-finite rows."""
    if theta.dim() != 2 or theta.shape[1] != sim.dim:
        raise ShapeError(f"theta must be (N, {sim.dim}), got {tuple(theta.shape)}")
    if tuple(x.shape[1:]) != tuple(sim.event_shape) or x.shape[0] != theta.shape[0]:
        raise ShapeError(f"x must be (N={theta.shape[0]}, {', '.join(map(str, sim.event_shape))})"
                         f", got {tuple(x.shape)}")
    # in row blocks, and without a copy when every row is finite: a training set of
    # 300,000 images is 4.9 GB, and each copy of it counts against the machine's memory
    flat = x.reshape(x.shape[0], -1)
    ok = torch.isfinite(theta).all(1)
    for i in range(0, flat.shape[0], _CHECK_ROWS):
        ok[i: i + _CHECK_ROWS] &= torch.isfinite(flat[i: i + _CHECK_ROWS]).all(1)
    if ok.sum() < 10:
        raise ShapeError("fewer than 10 finite simulations to train on")
    if ok.all():
        return theta, x
    import warnings

    warnings.warn(f"dropping {(~ok).sum().item()} simulations with non-finite values",
                  RuntimeWarning, stacklevel=3)
    return theta[ok], x[ok]


_CHECK_ROWS = 4096

