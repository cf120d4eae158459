"""Checkpoints of long solver runs: a killed training or sampling resumes where it stopped.

A checkpoint is a directory in the one format of the learned solvers' files
(:mod:`sbi_astro.weights_files`: plain tensors named by their hash, a JSON description
written last, both atomically, read back with their checksum and
``torch.load(weights_only=True)``).  Its description holds the ``settings`` of the run that
wrote it (everything that decides its numbers, with fingerprints of its tensors); a run
resumes from it only when its own settings are equal.  A checkpoint of another run, or a
damaged one, is refused with the reason and the fix, and left as it is.

Example:
    >>> import tempfile, torch
    >>> d = tempfile.mkdtemp() + "/ckpt"
    >>> settings = {"steps": 10, "data": fingerprint(torch.ones(3))}
    >>> save_checkpoint(d, {"w": torch.zeros(2)}, settings, {"step": 4}, what="toy run")
    >>> doc, tensors = load_checkpoint(d, settings, what="toy run")
    >>> doc["step"], tensors["w"].tolist()
    (4, [0.0, 0.0])
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, DataFormatError
from ..store_batches import StoreBatches
from ..weights_files import read_weights, write_weights

_JSON, _FORMAT, _VERSION = "checkpoint.json", "sbi-astro-checkpoint", 1


def fingerprint(*tensors: Tensor) -> list[Any]:
    """The shapes and float64 sums (of values and of squares) of ``tensors``: what tells
    one run's data, observations or weights from another's in a checkpoint's settings."""
    out: list[Any] = []
    for t in tensors:
        d = t.detach().double()
        out.append([list(t.shape), float(d.sum()), float((d * d).sum())])
    return out


def data_fingerprint(data: Any) -> dict[str, Any]:
    """What identifies a training set in a checkpoint's settings: a tensor's
    :func:`fingerprint`, a store's rows and shuffling seed, or (fresh draws of a function)
    its name."""
    if isinstance(data, Tensor):
        return {"kind": "tensor", "tensor": fingerprint(data)}
    if isinstance(data, StoreBatches):
        return {"kind": "store", "rows": data.num_rows, "train_rows": data.num_train,
                "seed": data.seed}
    return {"kind": "function", "name": getattr(data, "__qualname__", type(data).__name__)}


def check_path(path: str | Path, *, one_checkpoint: bool = True) -> None:
    """Refuses, before any work, a ``path`` a checkpoint cannot be written to: a file, or
    (``one_checkpoint``) a non-empty directory that holds no checkpoint.

    Raises:
        ConfigError: naming the path and the fix.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"checkpoint {path} is a file; give a directory (new or a "
                          "checkpoint's)")
    if one_checkpoint and path.is_dir() and any(path.iterdir()) and not exists(path):
        raise ConfigError(f"checkpoint {path} is a non-empty directory that holds no "
                          "checkpoint; give a new directory")


def module_fingerprint(module: Any) -> list[Any]:
    """:func:`fingerprint` of a module's state dict, or of an object's tensor attributes
    (a likelihood, an analytic score)."""
    if hasattr(module, "state_dict"):
        return fingerprint(*module.state_dict().values())
    return fingerprint(*(v for _, v in sorted(vars(module).items()) if isinstance(v, Tensor)))


def exists(path: str | Path) -> bool:
    """Whether ``path`` holds a checkpoint (sound or not: :func:`load_checkpoint` checks)."""
    return (Path(path) / _JSON).exists()


def save_checkpoint(path: str | Path, tensors: dict[str, Tensor], settings: dict[str, Any],
                    state: dict[str, Any], *, what: str) -> None:
    """Writes ``tensors`` and the JSON-ready ``settings`` and ``state`` to ``path``
    atomically, replacing the checkpoint there."""
    write_weights(path, tensors, {"what": what, "settings": settings, **state},
                  json_name=_JSON, fmt=_FORMAT, version=_VERSION, what=f"{what} checkpoint",
                  overwrite=True)


def load_checkpoint(path: str | Path, settings: dict[str, Any], *, what: str
                    ) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The description and tensors of the checkpoint in ``path``, written by a run with
    these ``settings``.

    Raises:
        ConfigError: the checkpoint is damaged, of another kind of run, or of a run with
            other settings (naming the keys that differ); it is left as it is.
    """
    path = Path(path)
    try:
        doc, tensors = read_weights(path, json_name=_JSON, fmt=_FORMAT, version=_VERSION,
                                    what=f"{what} checkpoint")
    except (FileNotFoundError, DataFormatError) as err:
        reason = str(err).split(";")[0]  # read_weights's fix ("save it again") is not ours
        raise ConfigError(f"the {what} checkpoint in {path} is damaged or incomplete "
                          f"({reason}); delete {path} to start the {what} from the "
                          "beginning") from err
    now = json.loads(json.dumps(settings))  # tuples as lists, as saved
    saved = doc.get("settings")
    if doc.get("what") != what or not isinstance(saved, dict) or saved != now:
        diff = sorted(k for k in now if not isinstance(saved, dict) or saved.get(k) != now[k])
        raise ConfigError(f"{path} holds the checkpoint of another {what} (it differs in "
                          f"{', '.join(diff) or 'its kind'}); run with the settings it was "
                          f"saved with to resume it, or delete {path} to start afresh")
    return doc, tensors


def optimizer_state(opt: torch.optim.Optimizer, sched: Any) -> tuple[dict[str, Tensor],
                                                                     dict[str, Any]]:
    """An optimizer's state as tensors (``opt.{param}.{name}``: Adam's moments and step
    counts) and JSON (its parameter groups and ``sched``'s state, for
    :func:`restore_optimizer`)."""
    state = opt.state_dict()
    tensors = {f"opt.{i}.{k}": torch.as_tensor(v) for i, st in state["state"].items()
               for k, v in st.items()}
    doc = {"param_groups": state["param_groups"],
           "scheduler": {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}}
    return tensors, doc


def restore_optimizer(opt: torch.optim.Optimizer, sched: Any, tensors: dict[str, Tensor],
                      doc: dict[str, Any]) -> None:
    """Loads what :func:`optimizer_state` saved into ``opt`` and ``sched`` (a
    ``LambdaLR``, whose functions are the caller's)."""
    state: dict[int, dict[str, Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": doc["param_groups"]})
    sched.load_state_dict({**doc["scheduler"], "lr_lambdas": [None]})
