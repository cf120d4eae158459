"""Loading a run directory back into a trained estimator (no unpickling).

Example:
    >>> import tempfile, torch
    >>> from sbi_astro import load_simulator
    >>> from sbi_astro.inference import TrainingConfig, train
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> theta, x = sim.sample_joint(300, generator=torch.Generator().manual_seed(0))
    >>> d = train(theta, x, sim, TrainingConfig(max_epochs=1, device="cpu")).save(tempfile.mkdtemp())
    >>> load_run(d, device="cpu").sample(10, x[0]).shape
    torch.Size([10, 2])
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..device import resolve_device
from ..embeddings import build_embedding
from ..errors import ConfigError, DataFormatError, SbiAstroError
from ..registry import load_simulator
from ..simulator import Simulator
from . import sbi_adapter
from .config import METHODS, TrainingConfig
from .estimator import TrainedEstimator
from .methods import estimator_class
from .run_files import read_run


def load_run(run_dir: str | Path, *, device: str | torch.device | None = None,
             simulator: Simulator | None = None) -> TrainedEstimator:
    """Loads a trained estimator from a run directory (no unpickling).

    Args:
        run_dir: the run directory.
        device: where the network goes (default: CUDA if available).
        simulator: an instance of the run's simulator with the run's options, used instead of
            building a new one (a study passes the one it simulated with).

    Raises:
        FileNotFoundError: the directory or its files are missing.
        DataFormatError: ``run.json`` is malformed, or the weights are damaged, foreign or do
            not fit the architecture it describes.
    """
    run_dir = Path(run_dir)
    meta_path = run_dir / "run.json"
    dev = resolve_device(device)
    doc, state = read_run(run_dir)
    try:
        config = TrainingConfig.from_dict(doc["config"])
        sim_doc = doc["simulator"]
        if not isinstance(sim_doc.get("name"), str) or not isinstance(
                sim_doc.get("options", {}), dict):
            raise ConfigError("'simulator' must be {name: str, options: {...}}")
        options = sim_doc.get("options", {})
        overrides = sim_doc.get("prior") or {}
        sim = simulator
        if sim is None or sim.spec() != {"name": sim_doc["name"], "options": options,
                                         "prior": overrides}:
            sim = load_simulator(sim_doc["name"], device=dev, prior=overrides or None,
                                 **options)
        sim = sim.on_device(dev)
    except SbiAstroError as err:
        raise DataFormatError(f"{meta_path} is malformed: {err}") from err
    if "prior" in doc and sim.prior.to_dict() != doc["prior"]:
        raise DataFormatError(f"{run_dir}: the prior of the simulator {sim.name!r} rebuilt now "
                              "differs from the one the run was trained under (another "
                              "version of the plugin?); retrain the run")
    if list(sim.event_shape) != doc["event_shape"] or list(sim.param_names) != doc["param_names"]:
        raise DataFormatError(f"{run_dir}: the simulator {sim.name!r} installed now has other "
                              "parameters or event shape than the one the run was trained on")
    method = doc["method"]
    if method not in METHODS:
        raise DataFormatError(f"{meta_path}: method must be one of {METHODS}, got {method!r}")

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
    cls = estimator_class(method, config.ensemble)
    metadata = doc.get("metadata", {})
    return cls(net.to(dev), sim, config, doc.get("embedding"),
               metadata if isinstance(metadata, dict) else {})
