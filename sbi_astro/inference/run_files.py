"""Run directories on disk: the weights file and ``run.json``, written atomically, read checked.

A run directory holds the weights ``estimator-<hash>.pt`` (a plain state dict, loaded with
``torch.load(weights_only=True)``) and ``run.json`` (method, training config, simulator
name and options, prior, embedding spec, shapes, training summary, provenance, and the
weights' file name and SHA-256).  Nothing is pickled.

Saving is atomic (:func:`write_run`): the new weights go to a file of their own name, and
replacing ``run.json`` is the one step that switches the run, so a kill at any moment
leaves either the old run or the new one, never new weights under old metadata.  Runs of
format version 1 (weights in ``estimator.pt``, no checksum) still load.

Example:
    >>> import tempfile, torch
    >>> d = write_run(tempfile.mkdtemp(), {"format": RUN_FORMAT, "method": "npe",
    ...               "config": {}, "simulator": {"name": "x"}, "event_shape": [1],
    ...               "param_names": ["a"], "x_standardization": "independent"},
    ...               {"w": torch.ones(2)})
    >>> doc, state = read_run(d)
    >>> doc["weights"]["file"] == weights_path(d).name, state["w"].tolist()
    (True, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle  # only for its exception type: nothing is unpickled
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import atomic
from ..errors import ConfigError, DataFormatError

RUN_FORMAT = "sbi-astro-run"
RUN_FORMAT_VERSION = 2
_WEIGHTS = re.compile(r"^estimator-[0-9a-f]{16}\.pt$")
_LEGACY_WEIGHTS = "estimator.pt"


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
