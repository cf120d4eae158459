"""Values of the command line: ``KEY=VALUE`` pairs, observation files, seeds, and the
atomic ``.npy`` writer of ``sample``.

Example:
    >>> _parse_pairs(["dim=3", "noise=0.1"], "--option")
    {'dim': '3', 'noise': '0.1'}
    >>> _parse_pairs(["dim"], "--option")
    Traceback (most recent call last):
        ...
    sbi_astro.errors.ConfigError: --option expects KEY=VALUE, got 'dim'
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def _parse_pairs(pairs: list[str], flag: str, convert: Any = str) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> dict; ``convert`` maps each value (e.g. YAML scalars)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = convert(value)
        except (ValueError, TypeError, _yaml_error()) as err:
            raise ConfigError(f"{flag} {key.strip()}: cannot read {value!r} "
                              f"({' '.join(str(err).split())[:150]})") from None
    return out


def _yaml_error() -> type[Exception]:
    import yaml

    return yaml.YAMLError


def _load_observation(path: Path, sim: Any) -> Any:
    import torch

    from ..user_arrays import read_user_array

    x = torch.as_tensor(read_user_array(path))
    if tuple(x.shape) == (int(x.numel()),) and len(sim.event_shape) > 1 and \
            x.numel() == int(torch.tensor(sim.event_shape).prod()):
        x = x.reshape(sim.event_shape)
    return sim.check_x(x)


def _atomic_save_npy(path: Path, array: Any) -> None:
    import numpy as np

    from ..atomic import atomic_write

    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def _seed(value: str) -> int:
    """argparse type of ``--seed``: an integer in [0, 2**63 - 1]."""
    from ..random import check_seed

    try:
        return check_seed(int(value), "--seed")
    except ValueError:  # ConfigError is one too
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**63 - 1, got "
                                         f"{value!r}") from None
