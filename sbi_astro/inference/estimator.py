"""Trained estimators and self-describing run directories.

A run directory holds the weights ``estimator-<hash>.pt`` (a plain state dict, loaded with
``torch.load(weights_only=True)``) and ``run.json`` (method, training config, simulator
name and options, prior, embedding spec, shapes, training summary, provenance, and the
weights' file name and SHA-256).  Nothing is pickled: loading rebuilds the network from
``run.json``, checks the weights against their checksum and then loads them.

Saving is atomic (:func:`write_run`): the new weights go to a file of their own name, and
replacing ``run.json`` is the one step that switches the run, so a kill at any moment
leaves either the old run or the new one, never new weights under old metadata.  Runs of
format version 1 (weights in ``estimator.pt``, no checksum) still load.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle  # only for its exception type: nothing is unpickled
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import atomic
from ..embeddings import build_embedding
from ..errors import ConfigError, DataFormatError, SbiAstroError, ShapeError
from ..registry import load_simulator
from ..simulator import Simulator
from . import sbi_adapter
from .config import TrainingConfig

RUN_FORMAT = "sbi-astro-run"
RUN_FORMAT_VERSION = 2
_WEIGHTS = re.compile(r"^estimator-[0-9a-f]{16}\.pt$")
_LEGACY_WEIGHTS = "estimator.pt"


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
        x = self.simulator.check_x(_as_tensor(x, "x")).to(self.device, torch.float32)
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
            "simulator": {"name": self.simulator.name, "options": self.simulator.options_dict()},
            "prior": self.simulator.prior.to_dict(),
            "param_names": list(self.simulator.param_names),
            "param_units": list(self.simulator.param_units),
            "event_shape": list(self.simulator.event_shape),
            "x_standardization": self.simulator.x_standardization,
            "embedding": self.embedding_spec, "metadata": self.metadata,
        }
        return write_run(run_dir, doc, state)


def write_run(run_dir: str | Path, doc: dict[str, Any], state: dict[str, Tensor]) -> Path:
    """Writes a run directory: weights ``state`` and the description ``doc`` (``run.json``).

    Atomic: the weights are written (temporary file, ``fsync``, rename) under a name made of
    their hash, which no current ``run.json`` names unless it holds the same bytes; then
    ``run.json`` (with the name and SHA-256 of the weights) replaces the old one in one
    rename, the commit point; then weights no ``run.json`` names any more are removed.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory; choose another path")
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    name = f"estimator-{sha[:16]}.pt"
    doc = {**doc, "weights": {"file": name, "sha256": sha, "bytes": len(data)}}
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / name
    if not (target.is_file() and _sha256(target) == sha):
        atomic.write_bytes(target, data)
    atomic.write_text(run_dir / "run.json", json.dumps(doc, indent=2))
    for old in run_dir.iterdir():
        if old.name != name and (_WEIGHTS.match(old.name) or old.name == _LEGACY_WEIGHTS):
            old.unlink(missing_ok=True)
    return run_dir


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_path(run_dir: str | Path) -> Path:
    """The weights file of a run directory (named in its ``run.json``)."""
    run_dir = Path(run_dir)
    try:
        weights = json.loads((run_dir / "run.json").read_text()).get("weights") or {}
        name = weights.get("file", _LEGACY_WEIGHTS)
    except (OSError, ValueError, AttributeError):
        name = _LEGACY_WEIGHTS
    return run_dir / (name if isinstance(name, str) and _WEIGHTS.match(name) else
                      _LEGACY_WEIGHTS)


def read_run(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The checked ``run.json`` document and weights of a run directory (no unpickling).

    Raises:
        FileNotFoundError: no such directory, or it holds no ``run.json``.
        DataFormatError: ``run.json`` malformed, or weights missing, damaged (checksum) or
            not an sbi-astro weights file.
    """
    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a directory: give a run directory written "
                                "by `sbi-astro train` or est.save()")
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {run_dir} is not a trained run "
                                "directory (create one with `sbi-astro train`)")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{meta_path} is not valid JSON ({err}); the run is damaged, "
                              "train it again") from err
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT:
        raise DataFormatError(f"{meta_path} is not an sbi-astro run description (no "
                              f"'format': '{RUN_FORMAT}' object); train the run again")
    for key, kind in _RUN_KEYS.items():
        if key not in doc:
            raise DataFormatError(f"{meta_path} lacks the key {key!r}; the run is damaged, "
                                  "train it again")
        if not isinstance(doc[key], kind):
            raise DataFormatError(f"{meta_path}: {key!r} must be a JSON "
                                  f"{_JSON_NAMES[kind]}, got {doc[key]!r}")
    weights = doc.get("weights")
    if weights is None:  # format version 1
        path, sha = run_dir / _LEGACY_WEIGHTS, None
    else:
        if not (isinstance(weights, dict) and isinstance(weights.get("file"), str)
                and _WEIGHTS.match(weights["file"]) and isinstance(weights.get("sha256"), str)):
            raise DataFormatError(f"{meta_path}: 'weights' must name an estimator-<hash>.pt "
                                  "file in the run directory and its sha256")
        path, sha = run_dir / weights["file"], weights["sha256"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run's weights are missing; train the "
                                "run again")
    if sha is not None and _sha256(path) != sha:
        raise DataFormatError(f"{path} is not a valid sbi-astro weights file for this run: it "
                              f"does not match the checksum recorded in {meta_path} (damaged "
                              "or replaced); train the run again")
    return doc, _load_weights(path)


def _load_weights(path: Path) -> dict[str, Tensor]:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on foreign pickle protocols
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, OSError, EOFError, pickle.UnpicklingError,
            AttributeError, TypeError, IndexError, KeyError) as err:
        # torch's own message suggests an unsafe retry: it is not passed on
        raise DataFormatError(f"{path} is not a valid sbi-astro weights file (a state dict "
                              f"saved by sbi-astro; {type(err).__name__} while reading "
                              "it); train the run again") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise DataFormatError(f"{path} is not a valid sbi-astro weights file (not a state "
                              "dict of tensors); train the run again")
    return state


_RUN_KEYS = {"method": str, "config": dict, "simulator": dict, "event_shape": list,
             "param_names": list, "x_standardization": str}
_JSON_NAMES = {str: "string", dict: "object", list: "list"}


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
        DataFormatError: ``run.json`` is malformed, or the weights are damaged, foreign or do
            not fit the architecture it describes.
    """
    from ..device import resolve_device

    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    doc, state = read_run(run_dir)
    try:
        config = TrainingConfig.from_dict(doc["config"])
        sim_doc = doc["simulator"]
        if not isinstance(sim_doc.get("name"), str) or not isinstance(
                sim_doc.get("options", {}), dict):
            raise ConfigError("'simulator' must be {name: str, options: {...}}")
        sim = load_simulator(sim_doc["name"], device="cpu", **sim_doc.get("options", {}))
    except SbiAstroError as err:
        raise DataFormatError(f"{meta_path} is malformed: {err}") from err
    if list(sim.event_shape) != doc["event_shape"] or list(sim.param_names) != doc["param_names"]:
        raise DataFormatError(f"{run_dir}: the simulator {sim.name!r} installed now has other "
                              "parameters or event shape than the one the run was trained on")
    method = doc["method"]
    if method not in ("npe", "nle", "nre"):
        raise DataFormatError(f"{meta_path}: method must be npe, nle or nre, got {method!r}")

    def rebuild() -> nn.Module:
        return sbi_adapter.rebuild(method, config, build_embedding(doc.get("embedding")),
                                   doc["x_standardization"], (sim.dim,), tuple(sim.event_shape))

    try:
        net = (nn.ModuleList([rebuild() for _ in range(config.ensemble)])
               if config.ensemble > 1 else rebuild())
        net.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, SbiAstroError) as err:
        raise DataFormatError(f"the weights in {run_dir} do not match the architecture in "
                              f"{meta_path} ({str(err).splitlines()[0][:200]}); train the run "
                              "again") from None
    dev = resolve_device(device)
    sim = load_simulator(sim_doc["name"], device=dev, **sim_doc.get("options", {}))
    cls = _estimator_classes()["npe-ensemble" if config.ensemble > 1 else method]
    metadata = doc.get("metadata", {})
    return cls(net.to(dev), sim, config, doc.get("embedding"),
               metadata if isinstance(metadata, dict) else {})


def check_theta_x(theta: Any, x: Any, sim: Simulator) -> tuple[Tensor, Tensor]:
    """Validates a ``(theta (N, D), x (N, *E))`` training set (tensors or arrays of numbers),
    dropping rows with non-finite values or parameters outside the prior, with a warning."""
    theta, x = _as_tensor(theta, "theta"), _as_tensor(x, "x")
    if theta.dim() != 2 or theta.shape[1] != sim.dim:
        raise ShapeError(f"theta must be (N, {sim.dim}), got {tuple(theta.shape)}")
    if tuple(x.shape[1:]) != tuple(sim.event_shape) or x.shape[0] != theta.shape[0]:
        raise ShapeError(f"x must be (N={theta.shape[0]}, {', '.join(map(str, sim.event_shape))})"
                         f", got {tuple(x.shape)}")
    # in row blocks, and without a copy when every row is finite: a training set of
    # 300,000 images is 4.9 GB, and each copy of it counts against the machine's memory
    flat = x.reshape(x.shape[0], -1)
    finite = torch.isfinite(theta).all(1)
    for i in range(0, flat.shape[0], _CHECK_ROWS):
        finite[i: i + _CHECK_ROWS] &= torch.isfinite(flat[i: i + _CHECK_ROWS]).all(1)
    inside = sim.prior.to(theta.device).within_support(theta) | ~finite
    ok = finite & inside
    if ok.sum() < 10:
        raise ShapeError(f"fewer than 10 usable simulations to train on ({int((~finite).sum())} "
                         f"of {len(ok)} non-finite, {int((~inside).sum())} outside the prior)")
    if ok.all():
        return theta, x
    import warnings

    if not finite.all():
        warnings.warn(f"dropping {(~finite).sum().item()} simulations with non-finite values",
                      RuntimeWarning, stacklevel=3)
    if not inside.all():
        warnings.warn(f"dropping {(~inside).sum().item()} of {len(ok)} simulations whose "
                      f"parameters lie outside the prior of {sim.name!r} (the estimator "
                      "describes the posterior under that prior); simulate from the prior "
                      "or widen it", RuntimeWarning, stacklevel=3)
    return theta[ok], x[ok]


def _as_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise ShapeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value
    try:
        import numpy as np

        arr = np.asarray(value)
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"dtype {arr.dtype}")
        return torch.as_tensor(arr.astype(np.float32, copy=False))
    except (TypeError, ValueError) as err:
        raise ShapeError(f"{name} must be a tensor or an array of real numbers, got "
                         f"{type(value).__name__} ({err})") from None


_CHECK_ROWS = 4096

