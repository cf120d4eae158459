"""Training a run and saving it, atomically: the one path the CLI and studies share.

Example:
    >>> import tempfile, pathlib, torch
    >>> from sbi_astro import load_simulator
    >>> from sbi_astro.inference import TrainingConfig
    >>> sim = load_simulator("gaussian_linear", device="cpu", dim=2)
    >>> theta, x = sim.sample_joint(300, generator=torch.Generator().manual_seed(0))
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> est = train_run(theta, x, sim, TrainingConfig(max_epochs=1, device="cpu"), run,
    ...                 log=lambda line: None)
    >>> sorted(p.suffix for p in run.iterdir())
    ['.json', '.pt']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from ..inference import TrainedEstimator, TrainingConfig, train, train_from_store
from ..simulator import Simulator


def epoch_logger(log: Callable[[str], Any]) -> Callable[[dict[str, Any]], None]:
    """An ``on_epoch`` callback for :func:`~sbi_astro.inference.train` that writes one line
    per epoch with ``log``."""

    def on_epoch(e: dict[str, Any]) -> None:
        member = f"member {e['member'] + 1}, " if "member" in e else ""
        log(f"      {member}epoch {e['epoch']}: training loss {e['training_loss']:.4f}, "
            f"validation loss {e['validation_loss']:.4f}, learning rate "
            f"{e['learning_rate']:.3g}, {e['seconds']:.1f} s")
    return on_epoch


def train_run(theta: Tensor, x: Tensor, simulator: Simulator, config: TrainingConfig,
              run_dir: str | Path, *, provenance: dict[str, Any] | None = None,
              log: Callable[[str], Any] = print) -> TrainedEstimator:
    """Trains on ``theta (N, D)``, ``x (N, *E)`` and saves the run in ``run_dir``.

    The run directory is written only once training has succeeded, and atomically (an
    existing run there is replaced in one step; see
    :func:`sbi_astro.inference.run_files.write_run`): an interrupted or failed training
    leaves it as it was.  Check ``run_dir`` first with
    :func:`sbi_astro.outputs.check_output_dir`.

    Returns:
        The trained estimator.
    """
    est = train(theta, x, simulator, config, provenance=provenance,
                on_epoch=epoch_logger(log))
    est.save(run_dir)
    return est


def train_store_run(store: str | Path, simulator: Simulator, config: TrainingConfig,
                    run_dir: str | Path, *, num_rows: int | None = None,
                    stream: bool | None = None, provenance: dict[str, Any] | None = None,
                    log: Callable[[str], Any] = print) -> TrainedEstimator:
    """Trains on the first ``num_rows`` rows of ``store`` and saves the run in ``run_dir``
    (atomically, as :func:`train_run`); the rows are streamed from disk when they would not
    fit in memory, or when ``stream`` is true (see
    :func:`~sbi_astro.inference.training.train_from_store`)."""
    est = train_from_store(store, simulator, config, num_rows=num_rows, stream=stream,
                           provenance=provenance, on_epoch=epoch_logger(log))
    est.save(run_dir)
    return est
