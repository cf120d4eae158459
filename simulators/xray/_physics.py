"""X-ray spectral physics as pure, batched, differentiable torch functions.

Units: energies in keV, photon fluxes per energy bin in photons cm^-2 s^-1 (XSPEC's
"model value" of a bin), column densities ``nH`` in 1e22 cm^-2, cross-sections in 1e-22 cm^2
per H atom (so that the transmission is ``exp(-nH * sigma)``).  Batched parameters are
``(N,)`` tensors; energy grids are ``(E + 1,)`` edges; outputs are ``(N, E)``.

Conventions (chosen to match XSPEC so that fits are comparable):

* Redshift: a source-frame photon spectrum ``n(E')`` gives in the observed bin
  ``[E_lo, E_hi]`` the flux ``(1 + z)^-1 int_{E_lo (1+z)}^{E_hi (1+z)} n(E') dE'`` (the
  ``1/(1+z)`` is time dilation of the photon rate), as in XSPEC's ``zpowerlw``/``zbremss``;
  plasma models put the remaining ``(1+z)^-2`` into their normalisation.
* Absorption: ``tbabs`` (Wilms, Allen & McCray 2000, ``wilm`` abundances) and ``phabs``
  (Balucinska-Church & McCammon 1992 with ``aspl`` abundances), tabulated cross-sections
  evaluated at each bin's mid-energy by log-log interpolation (the table step, 0.05 %, is
  far finer than any response bin).

Example:
    >>> import torch
    >>> edges = torch.tensor([1.0, 2.0, 4.0])
    >>> powerlaw_flux(edges, torch.tensor([2.0]), torch.tensor([1.0]))
    tensor([[0.5000, 0.2500]])
"""

from __future__ import annotations

import torch
from torch import Tensor

# -- continuum shapes ------------------------------------------------------------------


def powerlaw_flux(edges: Tensor, index: Tensor, norm: Tensor,
                  redshift: Tensor | None = None, log_scale: Tensor | None = None) -> Tensor:
    """Photon flux per bin of ``K E^-Gamma`` (XSPEC ``powerlaw``/``zpowerlw``).

    Each bin's exact integral is written as ``K E_lo^a expm1(a Delta) / a`` with
    ``a = 1 - Gamma`` and ``Delta = ln(E_hi / E_lo)``: no difference of two large numbers
    (the form ``(E_hi^a - E_lo^a) / a`` loses up to ~1 % of a narrow bin's flux in float32
    where ``E^a`` is small, e.g. Gamma = 3.5 at 10 keV), and ``a -> 0`` is the smooth limit
    ``Delta (1 + a Delta / 2)``.

    Args:
        edges: bin edges ``(E + 1,)`` [keV].
        index: photon index ``Gamma`` ``(N,)``.
        norm: ``K`` ``(N,)`` [photons keV^-1 cm^-2 s^-1 at 1 keV, source frame].
        redshift: ``(N,)`` or ``None`` (z = 0).
        log_scale: optional ``(N, E)`` added to the exponent, i.e. a factor
            ``exp(log_scale)`` per bin (the absorption ``-nH sigma``: one ``exp`` pass for
            both).

    Returns:
        ``(N, E)`` photons cm^-2 s^-1 per bin, exact bin integrals (no midpoint rule).
    """
    a = 1.0 - index[:, None]
    log_lo = torch.log(edges[:-1])
    delta = torch.log1p(torch.diff(edges) / edges[:-1])  # ln(E_hi / E_lo), no cancellation
    if redshift is None:
        expo = a * log_lo[None, :]
    else:  # source-frame energies E (1 + z), and the (1 + z)^-1 of zpowerlw
        lz = torch.log1p(redshift)[:, None]
        expo = a * (log_lo[None, :] + lz) - lz
    if log_scale is not None:
        expo = expo + log_scale
    small = a.abs() < 1e-6
    a_safe = torch.where(small, torch.ones_like(a), a)
    width = torch.expm1(a_safe * delta[None, :])
    if bool(small.any()):
        width = torch.where(small, delta * (1.0 + 0.5 * a * delta), width)
    scale = torch.where(small, norm[:, None], norm[:, None] / a_safe)  # (N, 1)
    return torch.exp(expo) * (width * scale)


def cumulative_interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of a tabulated cumulative ``fp`` at ``x``.

    Args:
        x: query points ``(N, M)``.
        xp: increasing abscissae ``(K,)``.
        fp: values ``(N, K)`` or ``(K,)``; clamped to the end values outside ``xp``.

    Returns:
        ``(N, M)``; differentiable in ``x`` and ``fp``.
    """
    k = xp.shape[0]
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, k - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    w = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    if fp.dim() == 1:
        f0, f1 = fp[idx - 1], fp[idx]
    else:
        f0, f1 = torch.gather(fp, 1, idx - 1), torch.gather(fp, 1, idx)
    return f0 + w * (f1 - f0)


# -- absorption -----------------------------------------------------------------------


def cross_section_at(energy: Tensor, table_energy: Tensor, table_sigma: Tensor) -> Tensor:
    """Absorption cross-section ``(M,)`` [1e-22 cm^2 per H] at ``energy (M,)`` [keV].

    Log-log interpolation in the table; below the table the cross-section is continued as
    ``E^-2.5`` and above it as ``E^-3`` (photoelectric slopes; only bins below 0.1 keV or above
    20 keV use this, where the responses have negligible area).
    """
    le, ls = torch.log(table_energy), torch.log(table_sigma)
    x = torch.log(energy)
    inside = cumulative_interp(x[None, :], le, ls)[0]
    below = ls[0] - 2.5 * (x - le[0])
    above = ls[-1] - 3.0 * (x - le[-1])
    out = torch.where(x < le[0], below, torch.where(x > le[-1], above, inside))
    return torch.exp(out)


def log_transmission(nh: Tensor, sigma: Tensor) -> Tensor:
    """Log of the photoelectric transmission, ``-nH sigma`` ``(N, E)``.

    Args:
        nh: column density ``(N,)`` [1e22 cm^-2]; ``nH = 0`` gives exactly 0.
        sigma: cross-section per bin ``(E,)`` [1e-22 cm^2 per H].
    """
    return -nh[:, None] * sigma[None, :]


def transmission(nh: Tensor, sigma: Tensor) -> Tensor:
    """Photoelectric transmission ``exp(-nH sigma)`` ``(N, E)`` (see :func:`log_transmission`);
    ``nH = 0`` gives exactly 1."""
    return torch.exp(log_transmission(nh, sigma))


# -- normalisation --------------------------------------------------------------------


def xspec_plasma_norm_factor() -> float:
    """XSPEC plasma models: ``norm = 1e-14 / (4 pi D_A^2 (1+z)^2) int n_e n_H dV`` [cm^-5].

    The photon flux at Earth is then ``norm / 1e-14 * eps(E)`` for a volume emissivity
    ``eps`` per unit ``n_e n_H`` [photons cm^3 s^-1 keV^-1], i.e. this factor is ``1e14``.
    """
    return 1e14


# -- likelihoods ----------------------------------------------------------------------


def poisson_log_likelihood(mu: Tensor, x: Tensor) -> Tensor:
    """Exact Poisson log-probability ``sum_c [x log mu - mu - log x!]`` over the last axis."""
    return (torch.xlogy(x, mu) - mu - torch.lgamma(x + 1.0)).sum(-1)


def cash(mu: Tensor, x: Tensor) -> Tensor:
    """Cash (1979) statistic ``2 sum (mu - x ln mu)`` = ``-2 log L`` up to a data constant."""
    return 2.0 * (mu - torch.xlogy(x, mu)).sum(-1)


def cstat(mu: Tensor, x: Tensor) -> Tensor:
    """XSPEC C-stat ``2 sum [mu - x + x ln(x / mu)]`` (zero at ``mu = x``; ``-2 log`` of the
    likelihood ratio to the saturated model, so asymptotically chi^2-distributed)."""
    return 2.0 * (mu - x + torch.xlogy(x, x) - torch.xlogy(x, mu)).sum(-1)


def wstat(source_rate: Tensor, on: Tensor, off: Tensor, t_on: float | Tensor,
          t_off: float | Tensor) -> Tensor:
    """XSPEC W-stat: Poisson source and background with the background profiled out.

    The on-source counts ``on ~ Poisson(t_on (s + f))`` and background counts
    ``off ~ Poisson(t_off f)`` share the per-channel background rate ``f``; ``f`` is set to its
    maximum-likelihood value in closed form (XSPEC manual, Appendix B "Poisson data with
    Poisson background"), and the statistic is the C-stat of both data sets.

    Args:
        source_rate: model source counts per unit ``t_on`` ``(N, G)`` (usually pass expected
            source counts and ``t_on = 1``).
        on: on-source counts ``(N, G)``; off: background counts ``(N, G)``.
        t_on: source exposure x BACKSCAL (scalar or ``(G,)``); t_off: the background's.

    Returns:
        ``(N,)`` statistic (``-2 log`` profile likelihood ratio to the saturated model).
    """
    m, s, b = source_rate, on, off
    tt = t_on + t_off
    g = tt * m - s - b
    d = torch.sqrt(g * g + 4.0 * tt * b * m)
    # (-g + d) / (2 tt), written to avoid cancellation when g > 0.
    f = torch.where(g > 0, 2.0 * b * m / (g + d).clamp_min(1e-300), (d - g) / (2.0 * tt))
    mu_on = t_on * (m + f)
    mu_off = t_off * f
    dev_on = mu_on - s + torch.xlogy(s, s) - torch.xlogy(s, mu_on)
    dev_off = mu_off - b + torch.xlogy(b, b) - torch.xlogy(b, mu_off)
    return 2.0 * (dev_on + dev_off).sum(-1)


