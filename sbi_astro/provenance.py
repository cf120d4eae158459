"""Provenance: the versions and machine behind a result (stores, runs, reports, benchmarks).

Example:
    >>> v = package_versions()
    >>> sorted(v)[:3], v["python"].count(".")
    (['h5py', 'matplotlib', 'numpy'], 2)
"""

from __future__ import annotations

import hashlib
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: The packages whose versions are recorded with every store, run and report.
PACKAGES = ("sbi-astro", "torch", "sbi", "zuko", "numpy", "scipy", "h5py", "matplotlib")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """``{"python": ..., package: version or "not installed"}``."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, str]:
    """The platform string and processor architecture."""
    return {"platform": platform.platform(), "machine": platform.machine()}


def file_record(path: str | Path) -> dict[str, object]:
    """``{"path": absolute path, "sha256": hex, "bytes": size}`` of a data file."""
    path = Path(path).resolve()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return {"path": str(path), "sha256": h.hexdigest(), "bytes": path.stat().st_size}
