"""Provenance: the versions and machine behind a result (stores, runs, reports, benchmarks).

Example:
    >>> v = package_versions()
    >>> sorted(v)[:3], v["python"].count(".")
    (['h5py', 'matplotlib', 'numpy'], 2)
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

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
