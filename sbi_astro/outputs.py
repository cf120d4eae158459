"""Checking where results will be written, before any expensive work starts.

A run of 26 minutes that fails at the end because ``-o`` names a file, an empty path or a
read-only folder loses the work; these checks run first.  None of them writes anything
except a probe file, created and removed in the nearest existing folder to learn whether
it is writable (permission bits alone do not say so for root or on read-only mounts).

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_output_dir(d / "run", kind="run", overwrite=False)
    PosixPath('...run')
    >>> (d / "f").write_text("x")
    1
    >>> check_output_dir(d / "f", kind="run", overwrite=False)
    Traceback (most recent call last):
    ...
    sbi_astro.errors.ConfigError: ...f is a file, not a folder; ...
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

#: The files that make a folder a given kind of output (refused without ``overwrite``).
MARKERS = {"run": ("run.json",), "report": ("report.html", "metrics.json"),
           "study": ("simulations.h5", "run", "report"), "benchmark": ("cells", "results.md")}


def _nonempty(path: str | Path | None, flag: str) -> Path:
    if path is None or not str(path).strip():
        raise ConfigError(f"{flag} is empty; give a path to write to")
    return Path(path)


def _writable_parent(path: Path) -> None:
    """Raises unless the nearest existing ancestor of ``path`` is a writable folder."""
    parent = path.parent if path.parent != path else path
    while not parent.exists():
        if parent.parent == parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"cannot create {path}: {parent} is a file, not a folder; choose "
                          "another path")
    probe = parent / f".sbi-astro-probe{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as err:
        raise ConfigError(f"cannot write to {parent} ({err.strerror}); choose a writable "
                          "output path") from None
    os.close(fd)
    probe.unlink(missing_ok=True)


def check_output_dir(path: str | Path | None, *, kind: str, overwrite: bool,
                     flag: str = "-o/--output") -> Path:
    """Checks that the folder ``path`` can receive an output of ``kind`` (``"run"``,
    ``"report"``, ``"study"``): not a file, writable, and not already holding such an output
    unless ``overwrite``.

    Raises:
        ConfigError: naming the problem and the fix.
    """
    path = _nonempty(path, flag)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file, not a folder; the {kind} is a folder of files: "
                          f"choose another {flag}")
    if path.is_dir():
        found = [m for m in MARKERS[kind] if (path / m).exists()]
        if found and not overwrite:
            raise ConfigError(f"{path} already holds a {kind} ({', '.join(found)}); choose "
                              f"another {flag} or pass --overwrite")
        _writable_parent(path / "x")
    else:
        _writable_parent(path)
    return path


def check_output_file(path: str | Path | None, *, overwrite: bool,
                      flag: str = "-o/--output") -> Path:
    """Checks that the file ``path`` can be written: not a folder, in a writable folder,
    and absent unless ``overwrite``.

    Raises:
        ConfigError: naming the problem and the fix.
    """
    path = _nonempty(path, flag)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; {flag} must name a file")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} exists; choose another {flag} or pass --overwrite")
    _writable_parent(path)
    return path
