"""Saving and loading score models: a state dict plus JSON, never a pickle.

A model directory holds ``score_model.json`` (format, SDE, network spec, EMA decay, any
user metadata such as the training summary, and the name and SHA-256 of the weights) and
``weights-<hash>.pt`` (a plain state dict, loaded with ``torch.load(weights_only=True)``).
Writing is atomic (:mod:`sbi_astro.atomic`): the weights go to a file named by their hash,
then the JSON replaces the old one in one rename, so a kill leaves the old model or the new
one.  An existing model directory is replaced only with ``overwrite=True``.

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

import hashlib
import io
import json
import pickle  # only for its exception type: nothing is unpickled
from pathlib import Path
from typing import Any

import torch

from .. import atomic
from ..errors import ConfigError, DataFormatError
from .score_model import ScoreModel
from .sde import sde_from_config

FORMAT = "sbi-astro-score-model"
FORMAT_VERSION = 1
_JSON = "score_model.json"


def save_score_model(model: ScoreModel, path: str | Path, *, metadata: dict[str, Any] | None = None,
                     overwrite: bool = False) -> Path:
    """Writes ``model`` to the directory ``path`` and returns it.

    Args:
        model: the score model.
        path: a directory (created).
        metadata: JSON-serialisable extras stored under ``"metadata"`` (e.g. training loss).
        overwrite: replace an existing model in ``path``.

    Raises:
        ConfigError: ``path`` is a file, or already holds a model and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file, not a model directory; choose another path")
    if (path / _JSON).exists() and not overwrite:
        raise ConfigError(f"{path} already holds a score model; pass overwrite=True or choose "
                          "another directory")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    name = f"weights-{sha[:16]}.pt"
    doc = {"format": FORMAT, "version": FORMAT_VERSION, **model.config(),
           "metadata": metadata or {}, "weights": {"file": name, "sha256": sha}}
    try:
        text = json.dumps(doc, indent=2)
    except TypeError as err:
        raise ConfigError(f"metadata must be JSON-serialisable: {err}") from err
    path.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path / name, data)
    atomic.write_text(path / _JSON, text)
    for old in path.glob("weights-*.pt"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON description of the model in ``path``.

    Raises:
        DataFormatError: no model there, or not a score model of a known version.
    """
    file = Path(path) / _JSON
    if not file.is_file():
        raise DataFormatError(f"{file} not found: {path} is not a saved score model "
                              "(save one with save_score_model)")
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{file} is not valid JSON ({err}); re-save the model") from err
    if doc.get("format") != FORMAT or doc.get("version") != FORMAT_VERSION:
        raise DataFormatError(f"{file} is not a {FORMAT} version {FORMAT_VERSION} file")
    return doc


def load_score_model(path: str | Path, *, device: str | torch.device = "cpu") -> ScoreModel:
    """The model saved in ``path`` on ``device``, in eval mode (EMA weights if any).

    Raises:
        DataFormatError: missing or altered files (the weights' checksum is verified).
    """
    doc = read_metadata(path)
    wfile = Path(path) / doc["weights"]["file"]
    if not wfile.is_file():
        raise DataFormatError(f"{wfile} is missing; the model directory is incomplete")
    data = wfile.read_bytes()
    if hashlib.sha256(data).hexdigest() != doc["weights"]["sha256"]:
        raise DataFormatError(f"{wfile} does not match the checksum in {_JSON}: the file was "
                              "altered or truncated; re-save the model")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as err:
        raise DataFormatError(f"{wfile} is not a plain state dict: {err}") from err
    model = ScoreModel(sde_from_config(doc["sde"]), doc["network"], eps=doc["eps"],
                       ema_decay=doc["ema_decay"], data_std=doc["data_std"],
                       time_power=doc["time_power"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise DataFormatError(f"{wfile} does not fit the network in {_JSON}: {err}") from err
    return model.to(device).eval()
