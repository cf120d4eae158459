"""The configuration of a recurrent inference machine: :class:`RIMConfig`.

Example:
    >>> RIMConfig(signal_shape=(64,)).network
    'gru'
    >>> RIMConfig(signal_shape=(2, 32, 32)).network
    'convgru'
    >>> RIMConfig(signal_shape=(64,), steps=0)
    Traceback (most recent call last):
        ...
    sbi_astro.errors.ConfigError: RIMConfig.steps must be an integer >= 1, got 0; ...
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ...errors import ConfigError

LINKS = ("identity", "log")
GRADIENT_MODES = ("fixed", "rms")
STEP_WEIGHTS = ("uniform", "linear", "last")
SCALES = ("global", "channel")


@dataclasses.dataclass(frozen=True)
class RIMConfig:
    """What defines a RIM: the signal, the number of steps, the network and the loss.

    Attributes:
        signal_shape: shape of one signal: ``(n,)`` for a 1-D signal (a GRU over the whole
            vector) or ``(C, H, W)`` for ``C`` maps of ``H x W`` pixels (a ConvGRU U-Net;
            ``H`` and ``W`` even).
        steps: number of unrolled steps ``T``.
        link: ``"identity"`` or ``"log"`` (the RIM works on ``z = log(signal)``, for
            positive signals); for maps also one per channel, e.g. ``("identity", "log")``
            for a source and a convergence map.
        hidden: width of the GRU state (1-D) or channels of the full-resolution ConvGRU
            state (2-D; the half-resolution one has twice as many).
        gradient: how the likelihood gradient is fed to the network: ``"fixed"`` divides it
            by one scale measured on the training data; ``"rms"`` divides each signal's
            gradient by its own root mean square and adds the log of that RMS as an input
            (for data whose gradient spans orders of magnitude, e.g. Poisson counts from
            tens to tens of thousands).
        step_weights: weights of the per-step losses: ``"uniform"`` (Putzky & Welling
            2017), ``"linear"`` (``t / sum t``) or ``"last"`` (last step only).
        scale: ``"global"``: one scale for the estimate and one for the gradient;
            ``"channel"`` (maps only): one per channel, for channels of different kinds and
            sizes (a surface brightness and a log-convergence); the loss then weighs each
            channel's error by its own scale.
        seed: seed of the initial weights (and, in training, of shuffling and noise).
    """

    signal_shape: tuple[int, ...]
    steps: int = 10
    link: str | tuple[str, ...] = "identity"
    hidden: int = 128
    gradient: str = "fixed"
    step_weights: str = "uniform"
    scale: str = "global"
    seed: int = 0

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.signal_shape)
        object.__setattr__(self, "signal_shape", shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise ConfigError(f"RIMConfig.signal_shape must be (n,) or (C, H, W) with positive "
                              f"sizes, got {self.signal_shape}")
        if len(shape) == 3 and (shape[1] % 2 or shape[2] % 2):
            raise ConfigError(f"RIMConfig.signal_shape {shape}: the 2-D U-Net halves the maps "
                              "once, so H and W must be even; pad or crop the maps")
        for name, value in (("steps", self.steps), ("hidden", self.hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"RIMConfig.{name} must be an integer >= 1, got {value!r}; "
                                  f"e.g. {name}={10 if name == 'steps' else 128}")
        if isinstance(self.link, list | tuple):
            object.__setattr__(self, "link", tuple(self.link))
            if len(shape) != 3 or len(self.link) != shape[0]:
                raise ConfigError(f"RIMConfig.link {self.link}: one link per channel needs maps "
                                  f"(C, H, W) with C = {len(self.link)}, got signal_shape "
                                  f"{shape}; or give one link for all")
            if any(name not in LINKS for name in self.link):
                raise ConfigError(f"RIMConfig.link entries must be in {LINKS}, got {self.link}")
        elif self.link not in LINKS:
            raise ConfigError(f"RIMConfig.link must be one of {LINKS} (or one per map "
                              f"channel), got {self.link!r}")
        for name, allowed in (("gradient", GRADIENT_MODES), ("step_weights", STEP_WEIGHTS),
                              ("scale", SCALES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"RIMConfig.{name} must be one of {allowed}, got "
                                  f"{getattr(self, name)!r}")
        if self.scale == "channel" and len(shape) != 3:
            raise ConfigError("RIMConfig.scale='channel' needs maps (C, H, W); a 1-D signal "
                              "has one scale ('global')")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"RIMConfig.seed must be a non-negative integer, got {self.seed!r}")

    @property
    def network(self) -> str:
        """``"gru"`` for 1-D signals, ``"convgru"`` for maps."""
        return "gru" if len(self.signal_shape) == 1 else "convgru"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (:meth:`from_dict` reads it back)."""
        d = dataclasses.asdict(self)
        d["signal_shape"] = list(self.signal_shape)
        if isinstance(self.link, tuple):
            d["link"] = list(self.link)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RIMConfig:
        """The config of a dict written by :meth:`to_dict`.

        Raises:
            ConfigError: unknown keys or invalid values.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ConfigError(f"unknown RIMConfig keys {unknown}; known: {sorted(fields)}")
        return cls(**{**d, "signal_shape": tuple(d.get("signal_shape", ()))})
