"""Discovery of simulator plugins through the ``sbi_astro.simulators`` entry-point group.

Built-in simulators (in ``simulators/``) are registered in ``pyproject.toml`` exactly like
a third party's, so the core never imports them by name.  A plugin package declares::

    [project.entry-points."sbi_astro.simulators"]
    my_model = "my_package.model:MyModel"

Example:
    >>> from sbi_astro import list_simulators
    >>> "gaussian_linear" in list_simulators()
    True
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import PluginError, UnknownSimulatorError
from .simulator import Simulator

GROUP = "sbi_astro.simulators"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def list_simulators() -> list[str]:
    """Names of all registered simulators, sorted."""
    return sorted(_entry_points())


def simulator_class(name: str) -> type[Simulator]:
    """The class registered under ``name``.

    Raises:
        UnknownSimulatorError: no plugin of that name; the message lists the known ones.
        PluginError: the plugin fails to import or is not a :class:`Simulator` subclass.
    """
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "(none installed)"
        raise UnknownSimulatorError(
            f"unknown simulator {name!r}; registered simulators: {known}. Install the plugin "
            f"that provides it (entry-point group '{GROUP}') or check the spelling"
        )
    ep = eps[name]
    try:
        cls = ep.load()
    except Exception as err:  # a broken third-party plugin must not crash listing
        raise PluginError(f"simulator plugin {name!r} ({ep.value}) failed to import: "
                          f"{type(err).__name__}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, Simulator)):
        raise PluginError(f"entry point {name!r} ({ep.value}) is not a subclass of "
                          "sbi_astro.Simulator")
    return cls


def load_simulator(name: str, *, device: Any = None, prior: Any = None,
                   **options: Any) -> Simulator:
    """Instantiates the simulator registered under ``name`` with validated ``options``.

    Args:
        name: registered name (see :func:`list_simulators`).
        device: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA if available).
        prior: your own prior for any parameters, ``{name: {kind: ..., ...}}`` (see
            :mod:`sbi_astro.user_priors`).
        **options: model options; unknown ones raise :class:`~sbi_astro.errors.ConfigError`.
    """
    return simulator_class(name)(device=device, prior=prior, **options)
