"""A batched, adaptive Dormand-Prince 5(4) ODE solver in torch (pure functions).

Every row of the batch is an independent initial-value problem with its own time, step
size and error control, and steps are shortened to land exactly on the requested output
times, so a row's solution does not depend on the other rows (nor on the batch size).
Rows that reach their last output time leave the active set, so the batch costs what its
hardest row costs in Python iterations, and only the live rows in arithmetic.
Differentiable: gradients flow through the accepted steps (the step-size control is
detached, as in "discretise-then-differentiate" with a fixed step sequence).

Example:
    >>> import torch
    >>> f = lambda t, y, p: -p * y                     # dy/dt = -k y
    >>> k = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    >>> y = dopri5(f, torch.ones(2, 1, dtype=torch.float64), k, [1.0, 2.0])
    >>> torch.allclose(y[:, :, 0], torch.exp(-k * torch.tensor([1.0, 2.0])), rtol=1e-8)
    True

References:
    Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae", J. Comput. Appl.
    Math. 6, 19-26; Hairer, Norsett & Wanner (1993), "Solving Ordinary Differential
    Equations I", Sec. II.4-5 (step-size control, initial step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

# Butcher tableau of DOPRI5 (the 7th stage is the FSAL evaluation at the new point).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
# 5th-order weights minus the embedded 4th-order ones: the local error estimate.
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)

Rhs = Callable[[Tensor, Tensor, Tensor], Tensor]


def _error_norm(err: Tensor, y0: Tensor, y1: Tensor, rtol: float, atol: float) -> Tensor:
    """RMS over the state of ``err / (atol + rtol max(|y0|, |y1|))`` per row, ``(N,)``."""
    scale = atol + rtol * torch.maximum(y0.abs(), y1.abs())
    r = err / scale
    total = r[:, 0] * r[:, 0]
    for k in range(1, r.shape[1]):  # an explicit sum: the same order for every row
        total = total + r[:, k] * r[:, k]
    return torch.sqrt(total / r.shape[1])


def dopri5(f: Rhs, y0: Tensor, params: Tensor, t_out: Sequence[float], *, t0: float = 0.0,
           rtol: float = 1e-10, atol: float = 1e-12, h0: float = 1e-3,
           max_steps: int = 100_000) -> Tensor:
    """Solves ``dy/dt = f(t, y, params)`` for a batch of rows; returns ``y`` at ``t_out``.

    Args:
        f: right-hand side, ``(t (N,), y (N, K), params (N, P)) -> (N, K)``, row by row.
        y0: initial states ``(N, K)`` at ``t0``.
        params: per-row parameters ``(N, P)``.
        t_out: increasing output times ``>= t0`` (``T`` of them).
        rtol, atol: relative and absolute tolerances of the local error (RMS norm).
        h0: first trial step.
        max_steps: attempted steps per row before giving up.

    Returns:
        ``(N, T, K)`` in ``y0``'s dtype.

    Raises:
        RuntimeError: a row needed more than ``max_steps`` steps (its parameters make the
            problem too stiff for an explicit method).
    """
    # one adaptive step loop (error control, step-size update, dense output): reads better whole
    n, k = y0.shape
    times = torch.as_tensor(list(t_out), dtype=y0.dtype, device=y0.device)
    if times.numel() == 0 or bool((times[1:] <= times[:-1]).any()) or float(times[0]) < t0:
        raise ValueError("t_out must be increasing and >= t0")
    n_out = times.numel()
    records: list[tuple[Tensor, Tensor, Tensor]] = []  # (rows, output index, state)
    t = torch.full((n,), t0, dtype=y0.dtype, device=y0.device)
    j = torch.zeros(n, dtype=torch.long, device=y0.device)  # next output per row
    at_start = times[0] == t0
    if bool(at_start):
        records.append((torch.arange(n, device=y0.device), j.clone(), y0))
        j = j + 1
    y, h = y0, torch.full((n,), h0, dtype=y0.dtype, device=y0.device)
    k1 = f(t, y, params)
    rows = torch.arange(n, device=y0.device)  # live rows (indices into the batch)
    if n_out == int(at_start):
        rows = rows[:0]
    steps = 0
    while rows.numel():
        steps += 1
        if steps > max_steps:
            raise RuntimeError(f"dopri5: {rows.numel()} row(s) need more than {max_steps} steps; "
                               "their parameters make the ODE too stiff for this solver")
        tr, yr, hr, pr, jr, k1r = t[rows], y[rows], h[rows], params[rows], j[rows], k1[rows]
        target = times[jr]
        hit = hr >= target - tr
        step = torch.where(hit, target - tr, hr)
        ks = [k1r]
        for s in range(1, 7):
            inc = ks[0] * _A[s][0]
            for m in range(1, s):
                if _A[s][m] != 0.0:
                    inc = inc + ks[m] * _A[s][m]
            ks.append(f(tr + _C[s] * step, yr + step[:, None] * inc, pr))
        y_new = yr + step[:, None] * (
            ks[0] * _A[6][0] + ks[2] * _A[6][2] + ks[3] * _A[6][3] + ks[4] * _A[6][4]
            + ks[5] * _A[6][5])
        est = ks[0] * _E[0]
        for m in range(2, 7):
            est = est + ks[m] * _E[m]
        err = _error_norm(step[:, None] * est, yr, y_new, rtol, atol).detach()
        ok = err <= 1.0
        # step-size control (Hairer et al. II.4, safety 0.9, growth limited to [0.2, 10])
        factor = (0.9 * err.clamp_min(1e-10) ** -0.2).clamp(0.2, 10.0)
        factor = torch.where(ok, factor, factor.clamp(max=1.0))
        h_next = (step.detach() * factor).to(h.dtype)
        h_next = torch.where(ok & hit, torch.maximum(h_next, hr), h_next)  # don't shrink to land
        t_new = torch.where(ok, torch.where(hit, target, tr + step), tr)
        y_next = torch.where(ok[:, None], y_new, yr)
        k1_next = torch.where(ok[:, None], ks[6], k1r)
        landed = ok & hit
        if bool(landed.any()):
            idx = landed.nonzero().squeeze(1)
            records.append((rows[idx], jr[idx], y_new[idx]))
        j_next = jr + landed.long()
        t = t.index_copy(0, rows, t_new)
        y = y.index_copy(0, rows, y_next)
        h = h.index_copy(0, rows, h_next)
        j = j.index_copy(0, rows, j_next)
        k1 = k1.index_copy(0, rows, k1_next)
        rows = rows[j_next < n_out]
    out = y0.new_zeros((n, n_out, k))
    for r, jj, state in records:
        out = out.index_put((r, jj), state)
    return out
