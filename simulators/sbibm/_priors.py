"""Two prior families the sbibm tasks need beyond the core's marginals.

* :class:`LogNormal`: a marginal with ``log v ~ N(loc, scale^2)`` (SIR, Lotka-Volterra).
* :class:`GaussianPrior`: a correlated multivariate normal ``N(loc, Sigma)`` (Bernoulli
  GLM's smoothness prior), a :class:`~sbi_astro.priors.Prior` whose marginals (named
  ``Normal`` with the marginal standard deviations) describe the parameters, while
  sampling and densities use the full covariance.

Both draw from counter-based rows (:meth:`Prior.sample_rows`) like the core priors, so a
row's parameters do not depend on the batch.

Example:
    >>> import torch
    >>> from sbi_astro.priors import Prior
    >>> prior = Prior([LogNormal("beta", -0.916, 0.5, unit="1 / day")])
    >>> bool((prior.sample((5,)) > 0).all())
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError, ShapeError
from sbi_astro.priors import Marginal, Normal, Prior
from sbi_astro.random import RowRandom


@dataclass(frozen=True)
class LogNormal(Marginal):
    """``log v ~ N(loc, scale^2)``: support ``(0, inf)``, median ``exp(loc)``."""

    loc: float = 0.0
    scale: float = 1.0
    kind = "lognormal"

    def __init__(self, name: str, loc: float, scale: float, *, unit: str = "",
                 description: str = ""):
        if not (math.isfinite(loc) and math.isfinite(scale) and scale > 0):
            raise ConfigError(f"LogNormal prior of {name!r} needs finite loc and scale > 0, "
                              f"got loc={loc}, scale={scale}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "unit", unit)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "loc", float(loc))
        object.__setattr__(self, "scale", float(scale))

    @property
    def low(self) -> float:
        return 0.0

    def icdf(self, u: Tensor) -> Tensor:
        return torch.exp(self.loc + self.scale * math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0))

    def to_dict(self) -> dict:
        """``kind``, name, unit, ``loc``, ``scale`` and the support ``lower = 0``, ``upper =
        inf`` (listings that show bounded marginals as ``kind[lower, upper]`` need them)."""
        return {**super().to_dict(), "lower": 0.0, "upper": math.inf}

    def log_prob(self, v: Tensor) -> Tensor:
        pos = v > 0
        logv = torch.log(torch.where(pos, v, torch.ones_like(v)))
        z = (logv - self.loc) / self.scale
        lp = -0.5 * z * z - logv - math.log(self.scale) - 0.5 * math.log(2 * math.pi)
        return torch.where(pos, lp, -math.inf)


def matvec(matrix: Tensor, v: Tensor) -> Tensor:
    """``matrix @ v`` for ``v (..., K)`` as an elementwise product and a sum over ``K``.

    Unlike a BLAS ``matmul``, every row is reduced in the same order whatever the batch
    size, so seeded outputs do not depend on how many rows are computed together.  Rows
    are processed in chunks that keep the ``(rows, *matrix.shape)`` temporary near 32 MB.
    """
    rows = max(1, (1 << 22) // matrix.numel())
    flat = v.reshape(-1, v.shape[-1])
    if flat.shape[0] <= rows:
        return (v[..., None, :] * matrix).sum(-1)
    out = torch.cat([(flat[i:i + rows, None, :] * matrix).sum(-1)
                     for i in range(0, flat.shape[0], rows)])
    return out.reshape(*v.shape[:-1], matrix.shape[0])


class GaussianPrior(Prior):
    """Multivariate normal prior ``N(loc, covariance)`` with named parameters.

    Args:
        names: parameter names (``D``).
        loc: mean ``(D,)``.
        covariance: ``(D, D)``, symmetric positive definite.
        units: one unit string per parameter ("" if dimensionless).
        description: shown with every parameter (the marginals are ``Normal`` with the
            marginal standard deviations; the correlations live here).
    """

    def __init__(self, names: list[str] | tuple[str, ...], loc: Tensor, covariance: Tensor, *,
                 units: tuple[str, ...] | None = None, description: str = "",
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        loc = torch.as_tensor(loc, dtype=torch.float64).cpu()
        cov = torch.as_tensor(covariance, dtype=torch.float64).cpu()
        d = len(names)
        if loc.shape != (d,) or cov.shape != (d, d):
            raise ShapeError(f"GaussianPrior needs loc ({d},) and covariance ({d}, {d}), got "
                             f"{tuple(loc.shape)} and {tuple(cov.shape)}")
        units = units or ("",) * d
        std = torch.sqrt(torch.diagonal(cov))
        marginals = [Normal(n, float(m), float(s), unit=u, description=description)
                     for n, m, s, u in zip(names, loc, std, units, strict=True)]
        super().__init__(marginals, device=device, dtype=dtype)
        self._loc64, self._cov64 = loc, cov
        self._tril64 = torch.linalg.cholesky(cov)
        self._precision64 = torch.cholesky_inverse(self._tril64)
        self._log_norm = float(-0.5 * d * math.log(2 * math.pi)
                               - torch.log(torch.diagonal(self._tril64)).sum())

    @property
    def covariance(self) -> Tensor:
        """``(D, D)`` float64 on the CPU."""
        return self._cov64

    def to(self, device: torch.device | str) -> GaussianPrior:
        return GaussianPrior(self.names, self._loc64, self._cov64, units=self.units,
                             description=self.marginals[0].description, device=device,
                             dtype=self._dtype)

    def _from_normals(self, z: Tensor) -> Tensor:
        tril = self._tril64.to(z.device)
        return (self._loc64.to(z.device) + matvec(tril, z)).to(self._device, self._dtype)

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = (), *,
               generator: torch.Generator | None = None) -> Tensor:
        """Samples of shape ``(*sample_shape, D)``."""
        gen_device = generator.device if generator is not None else self._device
        z = torch.randn((*tuple(sample_shape), self.dim), generator=generator,
                        device=gen_device, dtype=torch.float64)
        return self._from_normals(z)

    def sample_rows(self, rng: RowRandom) -> Tensor:
        """One sample per row of ``rng``: ``(N, D)``, reproducible per row key."""
        return self._from_normals(rng.normal((self.dim,), dtype=torch.float64))

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-density of ``value (*B, D)`` -> ``(*B,)``."""
        if value.shape[-1:] != (self.dim,):
            raise ShapeError(f"prior.log_prob expects (..., {self.dim}), got {tuple(value.shape)}")
        r = value.to(torch.float64) - self._loc64.to(value.device)
        quad = (r * matvec(self._precision64.to(value.device), r)).sum(-1)
        return (self._log_norm - 0.5 * quad).to(value.dtype)
