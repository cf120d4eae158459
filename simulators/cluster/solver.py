"""The implicit time integration of the gas model (:mod:`simulators.cluster._physics`):
:func:`evolve` and its settings.

Each backward-Euler step finds the unknowns ``(ln r_k, ln sigma^2_k)`` by Newton's method;
the Jacobian is banded (shell ``k``'s equations involve shells ``k-2 .. k+1``), so it is
assembled from 8 directional differences (a 4-colouring of the band, Curtis, Powell & Reid
1974) and solved as a batched linear system on the input's device.

Stochastic heating: binary heating in a real cluster comes in discrete events.  The binary
energy input over a step ``dt`` is multiplied by a log-normal factor of mean 1 and variance
``a^2 t_rc / dt`` (``t_rc`` the central relaxation time), the discretisation of a white-
noise modulation of the heating rate with ``a^2`` units of variance per central relaxation
time: ``a`` is about ``1 / sqrt(number of heating events per t_rc)``.  ``a = 0`` gives the
deterministic gas model.

Example:
    >>> import torch
    >>> one = torch.ones(1, dtype=torch.float64)
    >>> obs, steps, z = evolve(1e4 * one, one, 0 * one, torch.zeros(1, 100),
    ...                        torch.tensor([0.0, 0.5]), SolverSettings(n_shells=20))
    >>> tuple(obs.shape), tuple(z.shape)  # (log rho_c, log sigma_c, log r_c) at 2 times
    ((1, 3, 2), (1, 40))
    >>> bool(obs[0, 0, 1] > obs[0, 0, 0])  # the core contracts
    True

References:
    Curtis, Powell & Reid (1974), IMA J. Appl. Math. 13, 117 (Jacobians by colouring).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._physics import (
    ALPHA_BINARY,
    G,
    Grid,
    central_relaxation_time,
    core_observables,
    coulomb_log,
    density,
    make_grid,
    plummer_state,
    residual,
    t_rh_initial,
)

N_COLORS = 4  # band of the Jacobian: shells k-2..k+1


@functools.lru_cache(maxsize=16)
def _band(n_shells: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Colour tangents ``(8, 2K)`` and the row, column, source indices of the band."""
    rows, cols, src = [], [], []
    for i in range(n_shells):
        for off in (-2, -1, 0, 1):
            k = i + off
            if not 0 <= k < n_shells:
                continue
            for e in (0, 1):
                for v in (0, 1):
                    rows.append(2 * i + e)
                    cols.append(2 * k + v)
                    src.append((k % N_COLORS) * 2 + v)
    tangents = torch.zeros(2 * N_COLORS, 2 * n_shells, dtype=torch.float64)
    for k in range(n_shells):
        for v in (0, 1):
            tangents[(k % N_COLORS) * 2 + v, 2 * k + v] = 1.0

    def as_t(a: list[int]) -> Tensor:
        return torch.tensor(a, dtype=torch.long, device=device)

    return tangents.to(device), as_t(rows), as_t(cols), as_t(src)


def banded_jacobian(fun, z: Tensor, n_shells: int, step: float = 1e-7
                    ) -> tuple[Tensor, Tensor]:
    """Residual ``(B, 2K)`` and its dense Jacobian ``(B, 2K, 2K)``.

    ``fun`` maps ``(R * B, 2K)`` states to residuals row by row (``R`` replicas of the
    batch).  One call evaluates the state and 8 perturbed replicas, each moving one colour
    class of (shell mod 4, variable) by ``step`` in the log variables; the forward
    differences give every non-zero of the band (relative error ~``step``, enough for
    Newton's method to converge to round-off).  Forward-mode AD gives the same matrix but
    is ~50x slower in eager torch.
    """
    b, n = z.shape
    tangents, rows, cols, src = _band(n_shells, z.device)
    reps = tangents.shape[0]
    zz = torch.cat([z, z.repeat(reps, 1) + step * tangents.to(z.dtype).repeat_interleave(b, 0)])
    out = fun(zz)
    res = out[:b]
    jv = (out[b:].reshape(reps, b, n) - res[None]) / step
    vals = jv[src, :, rows]  # (nnz, B)
    jac = torch.zeros(b, n, n, dtype=z.dtype, device=z.device)
    jac[:, rows, cols] = vals.T
    return res, jac


@dataclass(frozen=True)
class SolverSettings:
    """Numerical settings of :func:`evolve`.

    Attributes:
        n_shells: number of Lagrangian shells.
        m_inner: mass fraction inside the innermost shell (the grid is uniform in
            ``log M_r`` from there to 0.995); it bounds how small a core is resolved.
        target_change: wanted largest change of ``ln rho``, ``ln sigma^2`` per step.
        dt_max: largest step in units of the initial half-mass relaxation time.
        dt_trc: largest step in central relaxation times; implicit Euler damps any
            oscillation it does not resolve, so this must be small (~10) for the
            gravothermal oscillations to appear.
        max_steps: hard cap on accepted + rejected steps (raises when reached).
        newton_iters: Newton iterations before a step is rejected and halved.
        newton_tol: a row has converged once its largest log-variable update is below
            this (the error left after that update is of order its square).
    """

    n_shells: int = 60
    m_inner: float = 1e-5
    target_change: float = 0.08
    dt_max: float = 0.2
    dt_trc: float = 10.0
    max_steps: int = 20000
    newton_iters: int = 8
    newton_tol: float = 1e-4


def _residual_replicas(z: Tensor, *, z_old: Tensor, dt: Tensor, mu: Tensor, heat: Tensor,
                       grid: Grid) -> Tensor:
    return residual(z, z_old, dt, mu, heat, grid)


def _newton(z: Tensor, z_old: Tensor, dt: Tensor, mu: Tensor, heat: Tensor, grid: Grid,
            settings: SolverSettings) -> tuple[Tensor, Tensor]:
    """Newton iterations of one backward-Euler step for a batch of rows ``(B, 2K)``.

    Each iteration assembles the banded Jacobian and solves only for the rows that have
    neither converged nor failed (a row's iterates do not depend on the other rows), so a
    batch costs the sum of its rows' iterations rather than the slowest row's times ``B``.

    Returns:
        the new states ``(B, 2K)`` and whether each row converged ``(B,)``.
    """
    n_shells = z.shape[1] // 2
    reps = 2 * N_COLORS + 1
    ok = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
    work = torch.arange(z.shape[0], device=z.device)  # rows still iterating
    for _it in range(settings.newton_iters):
        if work.numel() == 0:
            break
        fun = functools.partial(_residual_replicas, z_old=z_old[work].repeat(reps, 1),
                                dt=dt[work].repeat(reps), mu=mu[work].repeat(reps),
                                heat=heat[work].repeat(reps), grid=grid)
        res, jac = banded_jacobian(fun, z[work], n_shells)
        delta = torch.linalg.solve(jac, -res)
        bad = ~torch.isfinite(delta).all(1)
        delta = torch.where(bad[:, None], torch.zeros_like(delta), delta)
        size = delta.abs().amax(1)
        scale = torch.clamp(0.5 / size.clamp_min(1e-300), max=1.0)  # damp large updates
        z = z.index_copy(0, work, z[work] + scale[:, None] * delta)
        conv = ~bad & (size < settings.newton_tol)
        ok = ok.index_copy(0, work, conv)
        work = work[~(conv | bad)]
    return z, ok


def evolve(n_stars: Tensor, heat_scale: Tensor, noise_amp: Tensor, noise: Tensor,
           times: Tensor, settings: SolverSettings, *, stop_density: float = math.inf
           ) -> tuple[Tensor, Tensor, Tensor]:
    """Evolves a batch of gas spheres from Plummer models.

    Each row takes its own adaptive steps; rows never exchange information, so a row's
    result does not depend on the batch it is computed in.

    Args:
        n_stars: number of stars ``(B,)``.
        heat_scale: multiplier of the binary heating coefficient ``alpha`` ``(B,)``.
        noise_amp: stochastic heating amplitude ``a`` ``(B,)`` (0: deterministic).
        noise: standard normal numbers ``(B, S)``, one per accepted step (``S`` at least
            ``settings.max_steps``).
        times: output times ``(T,)``, increasing, in units of the initial half-mass
            relaxation time.
        settings: numerical settings.
        stop_density: a row stops evolving once its central density exceeds this value
            (N-body units); its remaining outputs stay NaN (for collapse studies).

    Returns:
        ``obs (B, 3, T)`` (see :func:`core_observables`) at ``times``, the number of
        accepted steps per row ``(B,)``, and the final state ``(B, 2K)`` (interleaved
        ``ln r``, ``ln sigma^2``).
    """
    dtype, dev = torch.float64, n_stars.device
    b = n_stars.shape[0]
    k = settings.n_shells
    grid = make_grid(k, m_inner=settings.m_inner, dtype=dtype, device=dev)
    r0, s0 = plummer_state(grid)
    z = torch.stack([torch.log(r0), torch.log(s0)], -1).reshape(1, 2 * k).repeat(b, 1)
    n_stars = n_stars.to(dtype)
    mu = coulomb_log(n_stars) / n_stars
    trh = t_rh_initial(n_stars)
    heat0 = ALPHA_BINARY * heat_scale.to(dtype) * G**5 / n_stars**3
    amp = noise_amp.to(dtype)
    times = times.to(dtype=dtype, device=dev)
    obs = torch.full((b, 3, times.shape[0]), float("nan"), dtype=dtype, device=dev)
    t = torch.zeros(b, dtype=dtype, device=dev)
    dt = torch.full((b,), 1e-4, dtype=dtype, device=dev)  # in units of t_rh(0)
    step = torch.zeros(b, dtype=torch.long, device=dev)
    o_prev = core_observables(z, grid)
    at0 = times <= 0
    obs[:, :, at0] = o_prev[:, :, None]
    t_end = times[-1]
    stopped = torch.zeros(b, dtype=torch.bool, device=dev)
    z_last, dt_last = z.clone(), torch.ones_like(dt)
    for _ in range(settings.max_steps):
        stopped = stopped | (o_prev[:, 0] > math.log10(stop_density))
        active = (t < t_end) & ~stopped
        if not bool(active.any()):
            break
        dt = torch.minimum(dt, t_end - t).clamp_min(0.0)
        dt_code = dt * trh
        heat = heat0 * _heating_noise(z, grid, mu, amp, dt_code, noise, step)
        z_old = z
        # predictor: linear extrapolation of the last accepted step (fewer Newton steps)
        z_new = z + (z - z_last) * (dt / dt_last.clamp_min(1e-300))[:, None].clamp(max=2.0)
        z_new, ok = _newton_active(z_new, z_old, active, dt_code, mu, heat, grid, settings)
        finite = torch.isfinite(z_new).all(1)
        change = (z_new - z_old).abs().amax(1)
        accept = active & ok & finite & (change < 4 * settings.target_change)
        reject = active & ~accept
        t_new = t + torch.where(accept, dt, torch.zeros_like(dt))
        z_last = torch.where(accept[:, None], z_old, z_last)
        dt_last = torch.where(accept, dt, dt_last)
        z = torch.where(accept[:, None], z_new, z_old)
        o_new = core_observables(z, grid)
        obs = _record_outputs(obs, times, t, t_new, dt, accept, o_prev, o_new)
        o_prev = torch.where(accept[:, None], o_new, o_prev)
        t = t_new
        step = step + accept.long()
        dt = _next_dt(dt, accept, reject, change, z, grid, mu, trh, settings)
    else:
        if bool(((t < t_end) & ~stopped).any()):
            raise RuntimeError(
                f"gas model did not reach t = {float(t_end):g} t_rh within {settings.max_steps} "
                "steps; raise max_steps or target_change, or shorten the time window")
    return obs, step, z


def _heating_noise(z: Tensor, grid: Grid, mu: Tensor, amp: Tensor, dt_code: Tensor,
                   noise: Tensor, step: Tensor) -> Tensor:
    """The log-normal factor ``(B,)`` of mean 1 and variance ``a^2 t_rc / dt`` multiplying
    each row's binary heating over its step (one normal number per accepted step)."""
    rho_c = density(torch.exp(z[:, 0::2]), grid)[:, 0]
    t_rc = central_relaxation_time(rho_c, torch.exp(z[:, 1]), mu)
    xi = torch.gather(noise, 1, step.clamp_max(noise.shape[1] - 1)[:, None])[:, 0]
    var = torch.log1p(amp**2 * t_rc / dt_code.clamp_min(1e-300))
    return torch.exp(torch.sqrt(var) * xi - var / 2)


def _newton_active(z_new: Tensor, z_old: Tensor, active: Tensor, dt_code: Tensor, mu: Tensor,
                   heat: Tensor, grid: Grid, settings: SolverSettings) -> tuple[Tensor, Tensor]:
    """Newton's method on the active rows only (finished rows cost nothing): the states
    ``(B, 2K)`` (inactive rows unchanged) and whether each row converged ``(B,)``."""
    ia = active.nonzero()[:, 0]
    za, ok_a = _newton(z_new[ia], z_old[ia], dt_code[ia], mu[ia], heat[ia], grid, settings)
    z_new = z_new.index_copy(0, ia, za)
    ok = torch.zeros(z_new.shape[0], dtype=torch.bool, device=z_new.device)
    return z_new, ok.index_copy(0, ia, ok_a)


def _record_outputs(obs: Tensor, times: Tensor, t: Tensor, t_new: Tensor, dt: Tensor,
                    accept: Tensor, o_prev: Tensor, o_new: Tensor) -> Tensor:
    """``obs (B, 3, T)`` with the output times crossed by this step filled in, linearly
    interpolated between the observables before (``o_prev``) and after (``o_new``) it."""
    frac = ((times[None, :] - t[:, None]) / dt.clamp_min(1e-300)[:, None]).clamp(0, 1)
    crossed = (accept[:, None] & (times[None, :] > t[:, None])
               & (times[None, :] <= t_new[:, None]))
    interp = o_prev[:, :, None] + frac[:, None, :] * (o_new - o_prev)[:, :, None]
    return torch.where(crossed[:, None, :], interp, obs)


def _next_dt(dt: Tensor, accept: Tensor, reject: Tensor, change: Tensor, z: Tensor, grid: Grid,
             mu: Tensor, trh: Tensor, settings: SolverSettings) -> Tensor:
    """The next step ``(B,)`` [t_rh(0)]: grown or shrunk towards ``target_change`` after an
    accepted step, quartered after a rejected one, capped by ``dt_max`` and ``dt_trc``
    central relaxation times."""
    grow = (settings.target_change / change.clamp_min(1e-12)).clamp(0.3, 2.0)
    dt = torch.where(accept, dt * grow, torch.where(reject, dt * 0.25, dt))
    rho_c = density(torch.exp(z[:, 0::2]), grid)[:, 0]
    t_rc = central_relaxation_time(rho_c, torch.exp(z[:, 1]), mu) / trh
    return torch.minimum(dt.clamp(max=settings.dt_max), settings.dt_trc * t_rc)
