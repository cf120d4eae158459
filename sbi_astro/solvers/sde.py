"""Forward diffusions of score-based models: the VE and VP SDEs of Song et al. (2021).

A forward SDE ``dx = f(x, t) dt + g(t) dw`` on ``t in [0, 1]`` turns data ``x_0`` into
noise.  Both SDEs here are linear, so the marginal is Gaussian,
``x_t | x_0 ~ N(mean_scale(t) * x_0, std(t)**2 I)``, which is what denoising score matching
and the convolved likelihoods of :mod:`sbi_astro.solvers.likelihood` need.

* :class:`VESDE` (variance exploding, NCSN): ``mean_scale = 1``,
  ``std(t) = sigma_min (sigma_max / sigma_min) ** t``, no drift.
* :class:`VPSDE` (variance preserving, DDPM): ``beta(t) = beta_min + t (beta_max - beta_min)``,
  ``mean_scale(t) = exp(-B(t) / 2)`` with ``B(t) = int_0^t beta``,
  ``std(t) = sqrt(1 - exp(-B(t)))``, drift ``-beta(t) x / 2``.

Times are tensors ``(N,)`` (one per row); the returned coefficients have shape ``(N,)``.
Data are in whatever units the user trains on; ``sigma_max`` of a VE SDE should exceed the
largest distance between two data points (Song & Ermon 2020, technique 1).

Example:
    >>> import torch
    >>> sde = VPSDE()
    >>> t = torch.tensor([0.0, 0.5, 1.0])
    >>> m, s = sde.mean_scale(t), sde.std(t)
    >>> bool(torch.allclose(m**2 + s**2, torch.ones(3)))
    True

References:
    Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), "Score-based generative
    modeling through stochastic differential equations", ICLR, arXiv:2011.13456.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError


def _check_positive(**values: float) -> None:
    for name, v in values.items():
        if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a positive finite number, got {v!r}")


@dataclasses.dataclass(frozen=True)
class VESDE:
    """Variance-exploding SDE: ``dx = sigma(t) sqrt(2 ln(sigma_max / sigma_min)) dw``.

    Args:
        sigma_min: noise standard deviation at ``t = 0`` (data units).
        sigma_max: noise standard deviation at ``t = 1`` (data units).
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    kind = "ve"

    def __post_init__(self) -> None:
        _check_positive(sigma_min=self.sigma_min, sigma_max=self.sigma_max)
        if self.sigma_max <= self.sigma_min:
            raise ConfigError(f"sigma_max ({self.sigma_max}) must exceed sigma_min "
                              f"({self.sigma_min})")

    def std(self, t: Tensor) -> Tensor:
        """Marginal standard deviation ``sigma(t)``, shape of ``t``."""
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def mean_scale(self, t: Tensor) -> Tensor:
        """Marginal mean coefficient (1 for a VE SDE), shape of ``t``."""
        return torch.ones_like(t)

    def drift(self, t: Tensor, x: Tensor) -> Tensor:
        """Drift ``f(x, t)`` (zero), shape of ``x``."""
        return torch.zeros_like(x)

    def diffusion(self, t: Tensor) -> Tensor:
        """Diffusion coefficient ``g(t)``, shape of ``t``."""
        return self.std(t) * math.sqrt(2.0 * math.log(self.sigma_max / self.sigma_min))

    def prior_std(self) -> float:
        """Standard deviation of the noise distribution at ``t = 1`` (mean zero)."""
        return self.sigma_max

    def time_of_std(self, sigma: Tensor) -> Tensor:
        """The time at which ``std(t) = sigma`` (clamped to ``[0, 1]``)."""
        ratio = math.log(self.sigma_max / self.sigma_min)
        return (torch.log(sigma / self.sigma_min) / ratio).clamp(0.0, 1.0)

    def config(self) -> dict[str, Any]:
        """JSON description, inverse of :func:`sde_from_config`."""
        return {"kind": self.kind, "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


@dataclasses.dataclass(frozen=True)
class VPSDE:
    """Variance-preserving SDE: ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``.

    Args:
        beta_min: ``beta(0)`` (1 / unit time).
        beta_max: ``beta(1)`` (1 / unit time).
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    kind = "vp"

    def __post_init__(self) -> None:
        _check_positive(beta_min=self.beta_min, beta_max=self.beta_max)

    def _integral(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def beta(self, t: Tensor) -> Tensor:
        """``beta(t)``, shape of ``t``."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def std(self, t: Tensor) -> Tensor:
        """Marginal standard deviation ``sqrt(1 - exp(-B(t)))``, shape of ``t``."""
        return torch.sqrt(-torch.expm1(-self._integral(t)))

    def mean_scale(self, t: Tensor) -> Tensor:
        """Marginal mean coefficient ``exp(-B(t) / 2)``, shape of ``t``."""
        return torch.exp(-0.5 * self._integral(t))

    def drift(self, t: Tensor, x: Tensor) -> Tensor:
        """Drift ``-beta(t) x / 2``, shape of ``x``."""
        return -0.5 * self.beta(t).reshape(-1, *([1] * (x.dim() - 1))) * x

    def diffusion(self, t: Tensor) -> Tensor:
        """Diffusion coefficient ``sqrt(beta(t))``, shape of ``t``."""
        return torch.sqrt(self.beta(t))

    def prior_std(self) -> float:
        """Standard deviation of the noise distribution at ``t = 1`` (mean zero)."""
        return 1.0

    def config(self) -> dict[str, Any]:
        """JSON description, inverse of :func:`sde_from_config`."""
        return {"kind": self.kind, "beta_min": self.beta_min, "beta_max": self.beta_max}


SDE = VESDE | VPSDE


def sde_from_config(config: dict[str, Any]) -> SDE:
    """The SDE described by ``config`` (``{"kind": "ve" | "vp", ...}``).

    Raises:
        ConfigError: unknown kind or parameters.
    """
    kinds = {"ve": VESDE, "vp": VPSDE}
    kind = config.get("kind")
    if kind not in kinds:
        raise ConfigError(f"unknown SDE kind {kind!r}; use one of {sorted(kinds)}")
    params = {k: v for k, v in config.items() if k != "kind"}
    fields = {f.name for f in dataclasses.fields(kinds[kind])}
    if not set(params) <= fields:
        raise ConfigError(f"unknown {kind} SDE parameters {sorted(set(params) - fields)}; "
                          f"expected {sorted(fields)}")
    return kinds[kind](**params)


def expand(coef: Tensor, x: Tensor) -> Tensor:
    """A per-row coefficient ``(N,)`` reshaped to broadcast against ``x`` ``(N, ...)``."""
    return coef.reshape(-1, *([1] * (x.dim() - 1)))
