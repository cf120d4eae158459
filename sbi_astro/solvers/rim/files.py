"""Saving and loading a trained :class:`~.model.RIM`: a state dict and a JSON description.

A RIM directory holds ``rim.json`` (format, :class:`~.config.RIMConfig`, free metadata such
as the training summary, and the weights' file name and SHA-256) and the weights
``weights-<hash>.pt``, a plain state dict read back with ``torch.load(weights_only=True)``;
nothing is pickled.  Writing is atomic (weights first, then ``rim.json``, the commit
point), and an existing RIM is replaced only when asked (``overwrite=True``).

Example:
    >>> import tempfile, torch
    >>> from sbi_astro.solvers.rim import RIM, RIMConfig
    >>> rim = RIM(RIMConfig(signal_shape=(4,), hidden=8), device="cpu")
    >>> path = save_rim(rim, tempfile.mkdtemp() + "/rim", metadata={"note": "untrained"})
    >>> again, meta = load_rim(path, device="cpu")
    >>> all(torch.equal(a, b) for a, b in zip(rim.state_dict().values(),
    ...                                       again.state_dict().values())), meta["note"]
    (True, 'untrained')
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

from ... import atomic
from ...errors import ConfigError, DataFormatError
from .config import RIMConfig
from .model import RIM

FORMAT = "sbi-astro-rim"
VERSION = 1
_WEIGHTS = re.compile(r"^weights-[0-9a-f]{16}\.pt$")


def save_rim(rim: RIM, path: str | Path, *, metadata: dict[str, Any] | None = None,
             overwrite: bool = False) -> Path:
    """Writes ``rim`` to the directory ``path``; returns ``path``.

    Args:
        rim: the machine.
        path: a new directory (or an existing RIM directory with ``overwrite=True``).
        metadata: JSON-ready extras stored under ``"metadata"``.
        overwrite: replace a RIM already saved there.

    Raises:
        ConfigError: ``path`` is a file, a non-empty foreign directory, or a RIM directory
            and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file; give a directory for the RIM")
    if path.is_dir() and any(path.iterdir()):
        if not (path / "rim.json").is_file():
            raise ConfigError(f"{path} is a non-empty directory that holds no RIM; choose "
                              "a new directory")
        if not overwrite:
            raise ConfigError(f"{path} already holds a RIM; pass overwrite=True to replace "
                              "it or choose another directory")
    try:
        meta_text = json.dumps(metadata or {})
    except TypeError as err:
        raise ConfigError(f"metadata must be JSON-serialisable: {err}") from err
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in rim.state_dict().items()}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    name = f"weights-{sha[:16]}.pt"
    doc = {"format": FORMAT, "version": VERSION, "config": rim.config.to_dict(),
           "metadata": json.loads(meta_text),
           "weights": {"file": name, "sha256": sha, "bytes": len(data)}}
    path.mkdir(parents=True, exist_ok=True)
    atomic.write_bytes(path / name, data)
    atomic.write_text(path / "rim.json", json.dumps(doc, indent=2))
    for old in path.iterdir():
        if old.name != name and _WEIGHTS.match(old.name):
            old.unlink(missing_ok=True)
    return path


def load_rim(path: str | Path, *, device: torch.device | str | None = None
             ) -> tuple[RIM, dict[str, Any]]:
    """The RIM saved in ``path`` and its metadata.

    Raises:
        FileNotFoundError: no ``rim.json`` or weights there.
        DataFormatError: a malformed description, or weights that fail their checksum or
            do not fit the configuration.
    """
    path = Path(path)
    meta_path = path / "rim.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: {path} is not a saved RIM (write one "
                                "with save_rim)")
    try:
        doc = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataFormatError(f"{meta_path} is not valid JSON ({err}); save the RIM again") from err
    weights = doc.get("weights") if isinstance(doc, dict) else None
    if (not isinstance(doc, dict) or doc.get("format") != FORMAT
            or not isinstance(doc.get("config"), dict) or not isinstance(weights, dict)
            or not _WEIGHTS.match(str(weights.get("file", "")))):
        raise DataFormatError(f"{meta_path} is not an sbi-astro RIM description (format "
                              f"{FORMAT!r}, config, weights); save the RIM again")
    wpath = path / weights["file"]
    if not wpath.is_file():
        raise FileNotFoundError(f"{wpath} not found: the RIM's weights are missing; save it again")
    blob = wpath.read_bytes()
    if hashlib.sha256(blob).hexdigest() != weights.get("sha256"):
        raise DataFormatError(f"{wpath} does not match the checksum in {meta_path} (damaged or "
                              "replaced); save the RIM again")
    try:
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise DataFormatError(f"{wpath} is not a weights file ({err})") from err
    rim = RIM(RIMConfig.from_dict(doc["config"]), device=device)
    try:
        rim.load_state_dict(state)
    except RuntimeError as err:
        raise DataFormatError(f"{wpath}: the weights do not fit the configuration in "
                              f"{meta_path} ({err}); save the RIM again") from err
    rim.eval()
    return rim, doc.get("metadata", {})
