"""Saving and loading a trained :class:`~.model.RIM`: a state dict and a JSON description.

A RIM directory holds ``rim.json`` (format, :class:`~.config.RIMConfig`, free metadata such
as the training summary, and the weights' file name and SHA-256) and the weights
``weights-<hash>.pt``, a plain state dict read back with ``torch.load(weights_only=True)``;
nothing is pickled.  Writing is atomic (weights first, then ``rim.json``, the commit
point; :mod:`sbi_astro.weights_files`, shared with the score models), and an existing RIM
is replaced only when asked (``overwrite=True``).

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

from pathlib import Path
from typing import Any

import torch

from ...errors import DataFormatError
from ...weights_files import read_weights, write_weights
from .config import RIMConfig
from .model import RIM

FORMAT = "sbi-astro-rim"
VERSION = 1
_JSON = "rim.json"
_WHAT = "RIM"


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
    return write_weights(path, rim.state_dict(), {"config": rim.config.to_dict(),
                                                  "metadata": metadata or {}},
                         json_name=_JSON, fmt=FORMAT, version=VERSION, what=_WHAT,
                         overwrite=overwrite)


def load_rim(path: str | Path, *, device: torch.device | str | None = None
             ) -> tuple[RIM, dict[str, Any]]:
    """The RIM saved in ``path`` and its metadata.

    Raises:
        FileNotFoundError: no ``rim.json`` or weights there.
        DataFormatError: a malformed description, or weights that fail their checksum or
            do not fit the configuration.
    """
    doc, state = read_weights(path, json_name=_JSON, fmt=FORMAT, version=VERSION, what=_WHAT)
    if not isinstance(doc.get("config"), dict):
        raise DataFormatError(f"{Path(path) / _JSON} has no RIM configuration; save the RIM "
                              "again")
    rim = RIM(RIMConfig.from_dict(doc["config"]), device=device)
    try:
        rim.load_state_dict(state)
    except RuntimeError as err:
        raise DataFormatError(f"{path}: the weights do not fit the configuration in {_JSON} "
                              f"({err}); save the RIM again") from err
    rim.eval()
    return rim, doc.get("metadata", {})
