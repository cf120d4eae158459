"""The simulator API every plugin implements.

A simulator is a physical model with a named, bounded prior over ``D`` parameters and a
batched, seeded, device-aware ``simulate(theta) -> x``.  Subclasses implement a few
hooks on flat batches (``(N, D)`` in, ``(N, *event_shape)`` out); the base class handles
any number of leading batch dimensions, validation (shape, NaN, support), and the
counter-based random streams that make every row reproducible from its key alone.

Subclass hooks:
    ``build_prior()`` (required), ``event_shape`` (required), ``_simulate(theta, rng)``
    (required), ``_expected(theta)`` (noise-free mean, optional), ``_log_likelihood(theta,
    x)`` (optional), ``_reference_posterior(x, num_samples, rng)`` (optional),
    ``default_embedding()`` (optional), ``observed()`` (a shipped real observation, optional).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("gaussian_linear", device="cpu")
    >>> theta = sim.prior.sample((2, 3))
    >>> x = sim.simulate(theta, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape)
    (2, 3, 10)
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from .device import resolve_device
from .errors import ConfigError, NonFiniteError, NotAvailableError, SbiAstroError, ShapeError
from .options import coerce_option
from .priors import Prior
from .random import RowRandom, keys_from_generator
from .user_priors import apply_overrides, normalize_overrides


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """Options of a simulator that takes none."""


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """A JSON-serialisable recipe for a summary network (see :mod:`sbi_astro.embeddings`).

    Attributes:
        kind: registered embedding name, e.g. ``"mlp"``, ``"conv1d"``.
        kwargs: constructor keyword arguments (JSON types only).
    """

    kind: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "kwargs": dict(self.kwargs)}


class Simulator(ABC):
    """Base class of simulator plugins.

    Args:
        device: where tensors are created; ``None`` picks CUDA if available, else CPU.
            Computation follows the device of the input ``theta``.
        dtype: floating dtype of simulated data.
        prior: the user's prior overrides, ``{parameter: {kind: ..., ...}}`` (see
            :mod:`sbi_astro.user_priors`), checked against :meth:`physical_support`.
        **options: model options, validated against the class's ``Options`` dataclass.

    Class attributes:
        name: registry name (the entry point's name should match).
        Options: a frozen dataclass of model options with defaults.
        x_standardization: how flows z-score ``x``: ``"independent"`` (per feature) or
            ``"structured"`` (one mean/std, for spectra, images and boxes).
        default_theta_transform: what NPE's ``theta_transform="auto"`` (the default)
            trains on for this simulator's bounded prior: ``"none"`` (the default),
            ``"logit"`` or ``"logit_cdf"`` (:mod:`sbi_astro.inference.transforms`).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    x_standardization: ClassVar[str] = "independent"
    default_theta_transform: ClassVar[str] = "none"

    def __init__(self, *, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32, prior: Mapping[str, Any] | None = None,
                 **options: Any):
        self.device = resolve_device(device)
        self.dtype = dtype
        self.options = self._parse_options(options)
        self._constants: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}
        base = self.build_prior()
        self._default_prior = base
        self.prior_overrides = normalize_overrides(prior, base)
        if self.prior_overrides:
            base = apply_overrides(base, self.prior_overrides, self.physical_support(),
                                   simulator=self.name)
        self._prior = base.to(self.device)

    # -- options ------------------------------------------------------------------------
    @classmethod
    def _parse_options(cls, options: Mapping[str, Any]) -> Any:
        fields = {f.name: f for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(options) - set(fields))
        if unknown:
            known = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(
                f"unknown option(s) {unknown} for simulator {cls.name!r}; valid options: {known}"
            )
        hints = typing.get_type_hints(cls.Options)
        values = {k: coerce_option(v, hints[k], k, cls.name) for k, v in options.items()}
        try:
            return cls.Options(**values)
        except (TypeError, ValueError) as err:
            if isinstance(err, SbiAstroError):  # e.g. a bad data file: its own message
                raise
            raise ConfigError(f"invalid options for simulator {cls.name!r}: {err}") from err

    @classmethod
    def canonical_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` (as stored by an earlier version, say) with every default filled in, as
        :meth:`options_dict` writes them; unchanged when they do not parse."""
        try:
            parsed = cls._parse_options(options)
        except SbiAstroError:
            return dict(options)
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(parsed).items()}

    def spec(self) -> dict[str, Any]:
        """What rebuilds this simulator: ``{"name", "options", "prior"}`` (JSON; ``prior`` the
        user's overrides, ``{}`` for the simulator's own prior)."""
        return {"name": self.name, "options": self.options_dict(),
                "prior": dict(self.prior_overrides)}

    def on_device(self, device: torch.device | str) -> Simulator:
        """This simulator (same options and prior) on ``device``; itself when already there."""
        device = resolve_device(device)
        if device == self.device:
            return self
        return type(self)(device=device, dtype=self.dtype, prior=self.prior_overrides or None,
                          **self.options_dict())

    def prior_notes(self) -> dict[str, str]:
        """``{parameter: note}`` on where a marginal's range came from when the data set it
        (reports show the note beside the prior); ``{}`` by default."""
        return {}

    def data_files(self) -> dict[str, dict[str, Any]]:
        """The observation files this simulator was built from, ``{role: {"path", "sha256",
        "bytes"}}`` (see :func:`sbi_astro.provenance.file_record`); ``{}`` when it reads none.
        Stores, runs and reports record them, so a result says which data it is about."""
        return {}

    def physical_support(self) -> dict[str, tuple[float, float]]:
        """Per parameter, the range where the model is defined: the bounds a user's prior
        must stay inside.  Default: the simulator's own prior's support (narrowing is
        always allowed); plugins whose physics extends further override it."""
        return {m.name: (m.low, m.high) for m in self._default_prior.marginals}

    def options_dict(self) -> dict[str, Any]:
        """The options as JSON-friendly values."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self.options).items()}

    # -- metadata -----------------------------------------------------------------------
    @abstractmethod
    def build_prior(self) -> Prior:
        """The prior over parameters (called once, at construction)."""

    @property
    @abstractmethod
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one simulated observation ``x``."""

    @property
    def prior(self) -> Prior:
        return self._prior

    @property
    def param_names(self) -> tuple[str, ...]:
        return self._prior.names

    @property
    def param_units(self) -> tuple[str, ...]:
        return self._prior.units

    @property
    def dim(self) -> int:
        return self._prior.dim

    def default_embedding(self) -> EmbeddingSpec | None:
        """The summary network used by default for this simulator (``None``: identity)."""
        return None

    def constant(self, name: str, value: Tensor, like: Tensor) -> Tensor:
        """``value`` moved to ``like``'s device and dtype, cached by name."""
        key = (name, like.device, like.dtype)
        if key not in self._constants:
            self._constants[key] = value.to(device=like.device, dtype=like.dtype)
        return self._constants[key]

    # -- validation ---------------------------------------------------------------------
    def check_theta(self, theta: Tensor) -> Tensor:
        """Validates ``theta (*B, D)`` (shape, finiteness, support) and returns it as a tensor."""
        if not isinstance(theta, Tensor):
            theta = torch.as_tensor(theta, dtype=self.dtype, device=self.device)
        if not theta.is_floating_point():
            theta = theta.to(self.dtype)
        self._prior.check(theta)
        return theta

    def check_x(self, x: Tensor) -> Tensor:
        """Validates ``x (*B, *event_shape)``: shape and finiteness."""
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        ev = tuple(self.event_shape)
        if x.dim() < len(ev) or tuple(x.shape[x.dim() - len(ev):]) != ev:
            raise ShapeError(
                f"observation for simulator {self.name!r} must have shape (..., "
                f"{', '.join(map(str, ev))}), got {tuple(x.shape)}"
            )
        if not torch.isfinite(x).all():
            raise NonFiniteError(
                f"observation for simulator {self.name!r} contains NaN or infinite values; "
                "mask or remove them before inference"
            )
        return x

    # -- public API ---------------------------------------------------------------------
    def simulate(self, theta: Tensor, *, generator: torch.Generator | None = None,
                 keys: Tensor | None = None) -> Tensor:
        """Simulates one observation per parameter vector.

        Args:
            theta: parameters ``(*B, D)`` in the units of ``param_units``.
            generator: seeds the row keys (one number is drawn from it); row ``i`` of the
                flattened batch gets key ``fold(root, i)``, so the first rows give the same
                ``x`` whatever the batch size.
            keys: explicit int64 row keys ``(*B,)`` (used by campaigns); excludes
                ``generator``.

        Returns:
            ``x`` of shape ``(*B, *event_shape)`` on ``theta``'s device.
        """
        theta = self.check_theta(theta)
        batch = theta.shape[:-1]
        flat = theta.reshape(-1, self.dim)
        if keys is not None:
            if generator is not None:
                raise ConfigError("pass either generator= or keys=, not both")
            if tuple(keys.shape) != tuple(batch):
                raise ShapeError(f"keys must have shape {tuple(batch)}, got {tuple(keys.shape)}")
            row_keys = keys.reshape(-1).to(device=flat.device, dtype=torch.int64)
        else:
            row_keys = keys_from_generator(flat.shape[0], generator, flat.device)
        if flat.shape[0] == 0:
            return flat.new_zeros((*batch, *self.event_shape))
        x = self._simulate(flat, RowRandom(row_keys))
        return x.reshape(*batch, *self.event_shape)

    def expected(self, theta: Tensor) -> Tensor:
        """Noise-free, differentiable model prediction ``(*B, *event_shape)``."""
        theta = self.check_theta(theta)
        batch = theta.shape[:-1]
        out = self._expected(theta.reshape(-1, self.dim))
        return out.reshape(*batch, *self.event_shape)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Exact log-likelihood ``log p(x | theta)``, broadcasting batch dimensions.

        Args:
            theta: ``(*B1, D)``.
            x: ``(*B2, *event_shape)``; ``B1`` and ``B2`` must broadcast.

        Returns:
            ``(*broadcast(B1, B2),)``.
        """
        theta = self.check_theta(theta)
        x = self.check_x(x).to(theta.device)
        ev = len(self.event_shape)
        b1, b2 = theta.shape[:-1], x.shape[: x.dim() - ev]
        try:
            batch = torch.broadcast_shapes(b1, b2)
        except RuntimeError as err:
            raise ShapeError(f"batch shapes of theta {tuple(b1)} and x {tuple(b2)} do not "
                             "broadcast") from err
        th = theta.expand(*batch, self.dim).reshape(-1, self.dim)
        xx = x.expand(*batch, *self.event_shape).reshape(-1, *self.event_shape)
        return self._log_likelihood(th, xx).reshape(batch)

    def sample_joint(self, num: int, *, generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor]:
        """``(theta, x)`` pairs drawn from the prior and the simulator."""
        theta = self._prior.sample((num,), generator=generator)
        return theta, self.simulate(theta, generator=generator)

    def reference_posterior(self, x: Tensor, num_samples: int, *,
                            generator: torch.Generator | None = None) -> Tensor:
        """Exact posterior samples ``(S, *B, D)`` for observations ``x (*B, *event_shape)``.

        Raises:
            NotAvailableError: no reference sampler, or one that assumes the simulator's own
                prior while this instance has a user prior.
        """
        if not self.has_reference_posterior:
            raise NotAvailableError(
                f"simulator {self.name!r} has no reference posterior sampler" + (
                    " for a user prior (its sampler assumes the simulator's own prior)"
                    if self.prior_overrides else ""))
        x = self.check_x(x)
        batch = x.shape[: x.dim() - len(self.event_shape)]
        flat = x.reshape(-1, *self.event_shape)
        rng = RowRandom(keys_from_generator(flat.shape[0], generator, flat.device))
        out = self._reference_posterior(flat, num_samples, rng)
        return out.reshape(num_samples, *batch, self.dim)

    # -- hooks ----------------------------------------------------------------------------
    @abstractmethod
    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        """``theta (N, D)`` -> ``x (N, *event_shape)``, random numbers from ``rng`` only."""

    def _expected(self, theta: Tensor) -> Tensor:
        raise NotAvailableError(f"simulator {self.name!r} has no noise-free expected(theta)")

    def _log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        raise NotAvailableError(f"simulator {self.name!r} has no tractable likelihood; "
                                "use NLE or NRE to learn one")

    def _reference_posterior(self, x: Tensor, num_samples: int, rng: RowRandom) -> Tensor:
        raise NotAvailableError(f"simulator {self.name!r} has no reference posterior sampler")

    def observed(self) -> Tensor:
        """The real observation shipped with the simulator (``event_shape``), if it has one."""
        raise NotAvailableError(f"simulator {self.name!r} ships no real observation; pass your "
                                "own data to the estimator instead")

    @property
    def has_observation(self) -> bool:
        return type(self).observed is not Simulator.observed

    @property
    def has_likelihood(self) -> bool:
        return type(self)._log_likelihood is not Simulator._log_likelihood

    #: Whether ``_reference_posterior`` samples under ``self.prior`` whatever it is (e.g. MCMC
    #: on the likelihood), rather than under the simulator's own prior (a closed form).
    reference_follows_prior: ClassVar[bool] = False

    @property
    def has_reference_posterior(self) -> bool:
        own = type(self)._reference_posterior is not Simulator._reference_posterior
        return own and (not self.prior_overrides or self.reference_follows_prior)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description: name, options, parameters with units and bounds."""
        return {
            "name": self.name,
            "options": self.options_dict(),
            "event_shape": list(self.event_shape),
            "parameters": self._prior.to_dict(),
            "prior_overrides": dict(self.prior_overrides),
            "prior_notes": self.prior_notes(),
            "data_files": self.data_files(),
            "likelihood": self.has_likelihood,
            "reference_posterior": self.has_reference_posterior,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, options={self.options})"
