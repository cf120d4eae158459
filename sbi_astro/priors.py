"""Named, bounded priors: a product of one-dimensional marginals with explicit support.

A :class:`Prior` is a :class:`torch.distributions.Distribution` with ``event_shape (D,)``,
so it plugs into ``sbi`` directly, and it knows each parameter's name, unit and bounds.
Its :meth:`Prior.check` raises :class:`~sbi_astro.errors.OutOfSupportError` naming the
parameter, the value and the bounds.  Sampling can be driven by a torch generator or by
counter-based row keys (:meth:`Prior.sample_rows`), the latter giving the same parameters
for a row whatever the batch.

Example:
    >>> import torch
    >>> prior = Prior([Uniform("kT", 0.5, 10.0, unit="keV"), Normal("z", 0.0, 1.0)])
    >>> prior.sample((4,)).shape
    torch.Size([4, 2])
    >>> prior.check(torch.tensor([[20.0, 0.0]]))
    Traceback (most recent call last):
    ...
    sbi_astro.errors.OutOfSupportError: parameter 'kT' = 20 [keV] (row 0) is outside the prior's support [0.5, 10]; draw parameters from the prior or widen its bounds
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution, constraints

from .errors import ConfigError, NonFiniteError, OutOfSupportError, ShapeError
from .random import RowRandom


@dataclass(frozen=True)
class Marginal:
    """A one-dimensional prior marginal.

    Attributes:
        name: parameter name.
        unit: unit string (astropy-parsable where there is one, "" if dimensionless).
        description: free text shown by ``sbi-astro simulators``.
    """

    name: str
    unit: str = ""
    description: str = ""

    kind = "abstract"

    @property
    def low(self) -> float:
        return -math.inf

    @property
    def high(self) -> float:
        return math.inf

    def icdf(self, u: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, v: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    def _assign(self, **fields: Any) -> None:
        """Sets the fields of the frozen dataclass (its constructors validate first)."""
        for key, value in fields.items():
            object.__setattr__(self, key, value)


class _FromLowerUpper:
    """``low``/``high`` read from a marginal's ``lower``/``upper`` fields."""

    @property
    def low(self) -> float:
        return self.lower

    @property
    def high(self) -> float:
        return self.upper


@dataclass(frozen=True)
class _Bounded(_FromLowerUpper, Marginal):
    """A marginal on ``[lower, upper]`` (the constructor, validation and bounds they share)."""

    lower: float = 0.0
    upper: float = 1.0

    def __init__(self, name: str, lower: float, upper: float, *, unit: str = "",
                 description: str = ""):
        if not self._valid(float(lower), float(upper)):
            raise ConfigError(f"{type(self).__name__} prior of {name!r} needs "
                              f"{self._requirement}, got [{lower}, {upper}]")
        self._assign(name=name, unit=unit, description=description, lower=float(lower),
                     upper=float(upper))

    _requirement = "finite lower < upper"

    @staticmethod
    def _valid(lower: float, upper: float) -> bool:
        return math.isfinite(lower) and math.isfinite(upper) and lower < upper


@dataclass(frozen=True, init=False)
class Uniform(_Bounded):
    """Uniform on ``[lower, upper]``."""

    kind = "uniform"

    def icdf(self, u: Tensor) -> Tensor:
        return self.lower + u * (self.upper - self.lower)

    def log_prob(self, v: Tensor) -> Tensor:
        inside = (v >= self.lower) & (v <= self.upper)
        return torch.where(inside, -math.log(self.upper - self.lower), -math.inf)


@dataclass(frozen=True, init=False)
class LogUniform(_Bounded):
    """Log-uniform (density proportional to 1/v) on ``[lower, upper]``, ``lower > 0``."""

    kind = "loguniform"
    _requirement = "0 < lower < upper"

    @staticmethod
    def _valid(lower: float, upper: float) -> bool:
        return 0 < lower < upper < math.inf

    def icdf(self, u: Tensor) -> Tensor:
        return self.lower * (self.upper / self.lower) ** u

    def log_prob(self, v: Tensor) -> Tensor:
        inside = (v >= self.lower) & (v <= self.upper)
        lp = -torch.log(v.clamp_min(self.lower)) - math.log(math.log(self.upper / self.lower))
        return torch.where(inside, lp, -math.inf)


@dataclass(frozen=True)
class Normal(Marginal):
    """Normal with mean ``loc`` and standard deviation ``scale`` (unbounded support)."""

    loc: float = 0.0
    scale: float = 1.0
    kind = "normal"

    def __init__(self, name: str, loc: float, scale: float, *, unit: str = "",
                 description: str = ""):
        if not (math.isfinite(loc) and math.isfinite(scale) and scale > 0):
            raise ConfigError(f"Normal prior of {name!r} needs finite loc and scale > 0, "
                              f"got loc={loc}, scale={scale}")
        self._assign(name=name, unit=unit, description=description, loc=float(loc),
                     scale=float(scale))

    def icdf(self, u: Tensor) -> Tensor:
        return self.loc + self.scale * math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)

    def log_prob(self, v: Tensor) -> Tensor:
        z = (v - self.loc) / self.scale
        return -0.5 * z * z - math.log(self.scale) - 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True, init=False)
class TruncatedNormal(_FromLowerUpper, Marginal):
    """Normal ``N(loc, scale^2)`` restricted to ``[lower, upper]`` (either may be infinite),
    e.g. a column density measured as ``0.05 +- 0.01`` and physically ``>= 0``."""

    loc: float = 0.0
    scale: float = 1.0
    lower: float = -math.inf
    upper: float = math.inf
    kind = "truncnormal"

    def __init__(self, name: str, loc: float, scale: float, lower: float = -math.inf,
                 upper: float = math.inf, *, unit: str = "", description: str = ""):
        loc, scale, lower, upper = float(loc), float(scale), float(lower), float(upper)
        if not (math.isfinite(loc) and math.isfinite(scale) and scale > 0 and lower < upper):
            raise ConfigError(f"TruncatedNormal prior of {name!r} needs finite loc, scale > 0 "
                              f"and lower < upper, got loc={loc}, scale={scale}, "
                              f"[{lower}, {upper}]")
        a, b = (lower - loc) / scale, (upper - loc) / scale
        if _tail_mass(a, b) < 1e-300:
            raise ConfigError(f"TruncatedNormal prior of {name!r}: [{lower}, {upper}] holds no "
                              f"probability of N({loc}, {scale}^2); move the bounds or the loc")
        self._assign(name=name, unit=unit, description=description, loc=loc, scale=scale,
                     lower=lower, upper=upper)

    def _ab(self) -> tuple[float, float, bool]:
        """Standardised bounds, mirrored into the lower tail when both lie above the mean
        (so that CDF differences never cancel)."""
        a, b = (self.lower - self.loc) / self.scale, (self.upper - self.loc) / self.scale
        return (-b, -a, True) if a > 0 else (a, b, False)

    def icdf(self, u: Tensor) -> Tensor:
        a, b, flip = self._ab()
        u64 = u.to(torch.float64)
        pa, pb = _ndtr(a), _ndtr(b)
        z = torch.special.ndtri((pa + (u64 if not flip else 1 - u64) * (pb - pa))
                                .clamp(1e-300, 1.0))
        z = -z if flip else z
        out = self.loc + self.scale * z
        return out.clamp(self.lower, self.upper).to(u.dtype)

    def log_prob(self, v: Tensor) -> Tensor:
        a, b, _ = self._ab()
        z = (v - self.loc) / self.scale
        lp = (-0.5 * z * z - math.log(self.scale) - 0.5 * math.log(2 * math.pi)
              - math.log(_tail_mass(a, b)))
        inside = (v >= self.lower) & (v <= self.upper)
        return torch.where(inside, lp, -math.inf)


def _ndtr(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _tail_mass(a: float, b: float) -> float:
    """``Phi(b) - Phi(a)`` computed in the tail where it does not cancel."""
    if a > 0:
        a, b = -b, -a
    return _ndtr(b) - _ndtr(a)


_KINDS: dict[str, type[Marginal]] = {"uniform": Uniform, "loguniform": LogUniform,
                                     "normal": Normal, "truncnormal": TruncatedNormal}
#: The parameters of each kind, in constructor order (what a prior specification gives).
KIND_PARAMETERS = {"uniform": ("lower", "upper"), "loguniform": ("lower", "upper"),
                   "normal": ("loc", "scale"), "truncnormal": ("loc", "scale", "lower", "upper")}


def marginal_from_dict(spec: dict[str, Any]) -> Marginal:
    """Rebuilds a marginal from :meth:`Marginal.to_dict` output (e.g. stored metadata)."""
    spec = dict(spec)
    kind = spec.pop("kind", None)
    if kind not in _KINDS:
        raise ConfigError(f"unknown prior kind {kind!r}; expected one of {sorted(_KINDS)}")
    name = spec.pop("name")
    args = [spec.pop(p) for p in KIND_PARAMETERS[kind] if p in spec]
    return _KINDS[kind](name, *args, **spec)


class Prior(Distribution):
    """Independent product of named one-dimensional marginals, ``event_shape (D,)``.

    Args:
        marginals: one :class:`Marginal` per parameter, in order.
        device: device of the tensors it returns.
        dtype: floating dtype of the samples.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, marginals: list[Marginal] | tuple[Marginal, ...], *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        if not marginals:
            raise ConfigError("a prior needs at least one parameter")
        names = [m.name for m in marginals]
        if len(set(names)) != len(names):
            raise ConfigError(f"prior parameter names must be unique, got {names}")
        self.marginals = tuple(marginals)
        self._device = torch.device(device)
        self._dtype = dtype
        self._low = torch.tensor([m.low for m in marginals], device=self._device, dtype=dtype)
        self._high = torch.tensor([m.high for m in marginals], device=self._device, dtype=dtype)
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([len(marginals)]),
                         validate_args=False)

    # -- metadata -----------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.marginals)

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(m.unit for m in self.marginals)

    @property
    def dim(self) -> int:
        return len(self.marginals)

    @property
    def low(self) -> Tensor:
        """Lower bounds ``(D,)`` (``-inf`` where unbounded)."""
        return self._low

    @property
    def high(self) -> Tensor:
        """Upper bounds ``(D,)`` (``+inf`` where unbounded)."""
        return self._high

    @property
    def bounded(self) -> bool:
        """Whether every marginal has finite lower and upper bounds (a box)."""
        return bool(torch.isfinite(self._low).all() and torch.isfinite(self._high).all())

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def to(self, device: torch.device | str) -> Prior:
        """The same prior returning tensors on ``device``."""
        return Prior(self.marginals, device=device, dtype=self._dtype)

    def to_dict(self) -> list[dict[str, Any]]:
        """JSON-serialisable description (inverse: :meth:`from_dict`)."""
        return [m.to_dict() for m in self.marginals]

    @classmethod
    def from_dict(cls, spec: list[dict[str, Any]], **kwargs: Any) -> Prior:
        return cls([marginal_from_dict(s) for s in spec], **kwargs)

    # -- torch.distributions interface --------------------------------------------------
    @constraints.dependent_property(is_discrete=False, event_dim=1)
    def support(self):  # noqa: D401 - torch API
        if self.bounded:
            return constraints.independent(constraints.interval(self._low, self._high), 1)
        return constraints.independent(constraints.real, 1)

    @property
    def mean(self) -> Tensor:
        u = torch.full((self.dim,), 0.5, dtype=torch.float64)
        # the median for non-symmetric marginals; exact mean for uniform and normal
        return self._columns_icdf(u[None])[0].to(self._device, self._dtype)

    def _columns_icdf(self, u: Tensor) -> Tensor:
        cols = [m.icdf(u[..., i]) for i, m in enumerate(self.marginals)]
        return torch.stack(cols, dim=-1)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(), *,
               generator: torch.Generator | None = None) -> Tensor:
        """Samples of shape ``(*sample_shape, D)``."""
        shape = tuple(sample_shape) + (self.dim,)
        gen_device = generator.device if generator is not None else self._device
        u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64)
        u = u.clamp(2.0**-54, 1 - 2.0**-53).to(self._device)
        return self._columns_icdf(u).to(self._dtype)

    def sample_rows(self, rng: RowRandom) -> Tensor:
        """One sample per row of ``rng``: shape ``(N, D)``, reproducible per row key."""
        u = rng.uniform((self.dim,), dtype=torch.float64)
        return self._columns_icdf(u).to(self._dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-density of ``value (*B, D)`` -> ``(*B,)``; ``-inf`` outside the support."""
        if value.shape[-1:] != (self.dim,):
            raise ShapeError(f"prior.log_prob expects (..., {self.dim}), got {tuple(value.shape)}")
        lp = [m.log_prob(value[..., i]) for i, m in enumerate(self.marginals)]
        return torch.stack(lp, dim=-1).sum(-1)

    # -- validation ---------------------------------------------------------------------
    def within_support(self, theta: Tensor) -> Tensor:
        """Boolean ``(*B,)``: whether each parameter vector lies inside the support."""
        low = self._low.to(theta.device, theta.dtype)
        high = self._high.to(theta.device, theta.dtype)
        return ((theta >= low) & (theta <= high)).all(-1)

    def check(self, theta: Tensor) -> None:
        """Raises unless ``theta (*B, D)`` is finite and inside the support.

        Raises:
            ShapeError: the last dimension is not ``D``.
            NonFiniteError: NaN or infinite entries.
            OutOfSupportError: a value outside the bounds; the message names it.
        """
        if theta.dim() == 0 or theta.shape[-1] != self.dim:
            raise ShapeError(
                f"theta must have shape (..., {self.dim}) for parameters {list(self.names)}, "
                f"got {tuple(theta.shape)}"
            )
        flat = theta.reshape(-1, self.dim)
        finite = torch.isfinite(flat)
        if not finite.all():
            row, col = (~finite).nonzero()[0].tolist()
            raise NonFiniteError(
                f"parameter {self.names[col]!r} is {flat[row, col].item()} (row {row}); "
                "parameters must be finite numbers"
            )
        inside = (flat >= self._low.to(flat)) & (flat <= self._high.to(flat))
        if not inside.all():
            row, col = (~inside).nonzero()[0].tolist()
            m = self.marginals[col]
            unit = f" [{m.unit}]" if m.unit else ""
            raise OutOfSupportError(
                f"parameter {m.name!r} = {flat[row, col].item():.6g}{unit} (row {row}) is outside "
                f"the prior's support [{m.low:.6g}, {m.high:.6g}]; draw parameters from the "
                "prior or widen its bounds"
            )

    def __repr__(self) -> str:
        parts = ", ".join(f"{m.name}~{m.kind}[{m.low:g},{m.high:g}]" for m in self.marginals)
        return f"Prior({parts})"
