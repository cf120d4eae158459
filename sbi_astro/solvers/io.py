"""Saving and loading score models: a state dict plus JSON, never a pickle.

A model directory holds ``score_model.json`` (format, SDE, network spec, EMA decay, any
user metadata such as the training summary, and the name and SHA-256 of the weights) and
``weights-<hash>.pt`` (a plain state dict, loaded with ``torch.load(weights_only=True)``).
Writing is atomic (:mod:`sbi_astro.weights_files`, shared with the RIM): the weights go to a
file named by their hash, then the JSON replaces the old one in one rename, so a kill
leaves the old model or the new one.  An existing model directory is replaced only with
``overwrite=True``.

Example:
    >>> import tempfile, torch
    >>> from sbi_astro.solvers import ScoreModel, VESDE
    >>> model = ScoreModel(VESDE(), {"kind": "mlp", "dim": 2, "hidden": 8})
    >>> path = save_score_model(model, tempfile.mkdtemp() + "/m")
    >>> again = load_score_model(path)
    >>> x, t = torch.randn(4, 2), torch.rand(4)
    >>> bool(torch.equal(model.eval().score(t, x), again.score(t, x)))
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import DataFormatError
from ..weights_files import read_weights, write_weights
from .score_model import ScoreModel
from .sde import sde_from_config

FORMAT = "sbi-astro-score-model"
FORMAT_VERSION = 1
_JSON = "score_model.json"
_WHAT = "score model"


def save_score_model(model: ScoreModel, path: str | Path, *, metadata: dict[str, Any] | None = None,
                     overwrite: bool = False) -> Path:
    """Writes ``model`` to the directory ``path`` and returns it.

    Args:
        model: the score model.
        path: a directory (created).
        metadata: JSON-serialisable extras stored under ``"metadata"`` (e.g. training loss).
        overwrite: replace an existing model in ``path``.

    Raises:
        ConfigError: ``path`` is a file or a foreign non-empty directory, or already holds a
            model and ``overwrite`` is false.
    """
    return write_weights(path, model.state_dict(), {**model.config(),
                                                    "metadata": metadata or {}},
                         json_name=_JSON, fmt=FORMAT, version=FORMAT_VERSION, what=_WHAT,
                         overwrite=overwrite)


def load_score_model(path: str | Path, *, device: str | torch.device = "cpu") -> ScoreModel:
    """The model saved in ``path`` on ``device``, in eval mode (EMA weights if any).

    Raises:
        FileNotFoundError: no model there; DataFormatError: altered files (the weights'
        checksum is verified) or weights that do not fit the described network.
    """
    doc, state = read_weights(path, json_name=_JSON, fmt=FORMAT, version=FORMAT_VERSION,
                              what=_WHAT)
    model = ScoreModel(sde_from_config(doc["sde"]), doc["network"], eps=doc["eps"],
                       ema_decay=doc["ema_decay"], data_std=doc["data_std"],
                       time_power=doc["time_power"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise DataFormatError(f"{path}: the weights do not fit the network in {_JSON}: "
                              f"{err}") from err
    return model.to(device).eval()
