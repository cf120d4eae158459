"""A trained network on disk: a JSON description plus a state dict named by its hash.

The one format of the learned solvers' models (score models, RIMs): a directory holding

* ``weights-<sha16>.pt``: the state dict (tensors only, written with ``torch.save``);
* ``NAME.json``: the description (``format``, ``version``, the caller's fields) and
  ``weights: {file, sha256, bytes}``, the single commit point.

:func:`write_weights` writes the weights, then the JSON, each atomically, then removes
weights files no description names any more: a reader sees the old model or the new one,
never a mix.  :func:`read_weights` checks the description's format and version, the file
name, the SHA-256 of the bytes, and loads them with ``torch.load(weights_only=True)`` (no
unpickling of arbitrary objects).

Example:
    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp()
    >>> _ = write_weights(d, {"w": torch.ones(2)}, {"n": 2}, json_name="toy.json",
    ...                   fmt="toy", version=1, what="toy model")
    >>> doc, state = read_weights(d, json_name="toy.json", fmt="toy", version=1,
    ...                           what="toy model")
    >>> doc["n"], state["w"].tolist()
    (2, [1.0, 1.0])
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from . import atomic
from .errors import ConfigError, DataFormatError

_WEIGHTS = re.compile(r"^weights-[0-9a-f]{16}\.pt$")


def write_weights(path: str | Path, state_dict: dict[str, Any], doc: dict[str, Any], *,
                  json_name: str, fmt: str, version: int, what: str,
                  overwrite: bool = False) -> Path:
    """Writes ``state_dict`` and ``doc`` (JSON-ready) to the directory ``path``.

    Raises:
        ConfigError: ``path`` is a file or a non-empty directory holding no ``what``; it
            holds one and ``overwrite`` is false; ``doc`` is not JSON-serialisable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file; give a directory for the {what}")
    if path.is_dir() and any(path.iterdir()):
        if not (path / json_name).is_file():
            raise ConfigError(f"{path} is a non-empty directory that holds no {what}; choose "
                              "a new directory")
        if not overwrite:
            raise ConfigError(f"{path} already holds a {what}; pass overwrite=True to replace "
                              "it or choose another directory")
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    name = f"weights-{sha[:16]}.pt"
    full = {"format": fmt, "version": version, **doc,
            "weights": {"file": name, "sha256": sha, "bytes": len(data)}}
    try:
        text = json.dumps(full, indent=2)
    except TypeError as err:
        raise ConfigError(f"the {what}'s metadata must be JSON-serialisable: {err}") from err
    path.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path / name, data)
    atomic.write_text(path / json_name, text)
    for old in path.iterdir():
        if old.name != name and _WEIGHTS.match(old.name):
            old.unlink(missing_ok=True)
    return path


def read_weights(path: str | Path, *, json_name: str, fmt: str, version: int, what: str
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The description and the checked state dict saved in ``path`` (on the CPU).

    Raises:
        FileNotFoundError: no description or no weights file there.
        DataFormatError: not valid JSON, another format or version, or weights that fail
            their checksum or are not a plain state dict.
    """
    path = Path(path)
    meta_path = path / json_name
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {path} is not a saved {what}")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{meta_path} is not valid JSON ({err}); save the {what} "
                              "again") from err
    weights = doc.get("weights") if isinstance(doc, dict) else None
    if (not isinstance(doc, dict) or doc.get("format") != fmt or doc.get("version") != version
            or not isinstance(weights, dict) or not _WEIGHTS.match(str(weights.get("file")))):
        raise DataFormatError(f"{meta_path} is not an sbi-astro {what} description (format "
                              f"{fmt!r} version {version}, with its weights); save it again")
    wpath = path / weights["file"]
    if not wpath.is_file():
        raise FileNotFoundError(f"{wpath} not found: the {what}'s weights are missing; save "
                                "it again")
    blob = wpath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != weights.get("sha256"):
        raise DataFormatError(f"{wpath} does not match the checksum in {meta_path} (damaged "
                              f"or replaced); save the {what} again")
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise DataFormatError(f"{wpath} is not a plain state dict ({err})") from err
    return doc, state
