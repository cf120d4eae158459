"""Parameter-space transforms for NPE: train the flow on an unbounded version of theta.

A flow's density lives on all of R^D, while box priors (uniform, log-uniform) are bounded.
Posteriors that pile up against a bound (an absorbing column consistent with 0, an
abundance at its upper limit) then leak mass outside the prior and are poorly fitted near the
edge.  :class:`LogitBox` maps the prior's box ``[low, high]`` to R^D,
``phi = logit((theta - low) / (high - low))``, so the flow is trained on ``phi`` and every
sample mapped back lies inside the prior; densities pick up the Jacobian
``log |d phi / d theta| = -sum_d [log u_d + log(1 - u_d) + log(high_d - low_d)]``.

``theta_transform="logit_cdf"`` takes ``u`` as each marginal's prior CDF instead: the same for
a uniform marginal, ``u = log(theta / low) / log(high / low)`` for a log-uniform one.  A
log-uniform parameter (a temperature over 0.2-10 keV) has posteriors of similar width in
``log theta`` across its range but widths that differ fifty-fold in ``theta``; on the CDF
scale the flow sees the similar widths.  The Jacobian of a log dimension gains
``-log theta_d`` and uses ``log(high_d / low_d)`` for the width.

Example:
    >>> import torch
    >>> t = LogitBox(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 3.0]))
    >>> theta = torch.tensor([[0.5, 1.0], [0.1, -0.5]])
    >>> torch.allclose(t.inverse(t.forward(theta)), theta)
    True
    >>> t.forward(theta)[0].tolist()
    [0.0, 0.0]
    >>> c = LogitBox(torch.tensor([0.1]), torch.tensor([10.0]), log=torch.tensor([True]))
    >>> round(c.forward(torch.tensor([[1.0]])).item(), 6)  # 1 is the log-midpoint of [0.1, 10]
    0.0
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError
from ..priors import Prior

#: ``u`` is kept in ``[EPS, 1 - EPS]`` so that parameters exactly on a bound stay finite.
EPS = 1e-6


class LogitBox:
    """The map ``theta in [low, high] -> phi = logit((theta - low) / (high - low))``.

    Where ``log`` (a ``(D,)`` bool mask) is set, ``theta`` is replaced by ``log theta`` and the
    bounds by theirs (those dimensions need ``low > 0``).
    """

    def __init__(self, low: Tensor, high: Tensor, log: Tensor | None = None):
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ConfigError("theta_transform 'logit' or 'logit_cdf' needs a prior with finite "
                              "bounds on every parameter (uniform or log-uniform marginals); "
                              "use theta_transform='none' for this prior")
        if not (high > low).all():
            raise ConfigError("theta_transform 'logit' or 'logit_cdf' needs high > low for "
                              "every parameter")
        log = torch.zeros(low.shape, dtype=torch.bool, device=low.device) if log is None else log
        if not (low[log] > 0).all():
            raise ConfigError("theta_transform 'logit_cdf' needs low > 0 on every log-uniform "
                              "parameter")
        self.low, self.high, self.log = low, high, log.to(low.device)

    @classmethod
    def for_prior(cls, prior: Prior, kind: str) -> LogitBox:
        """The transform ``kind`` (``"logit"`` or ``"logit_cdf"``) of a prior's box."""
        if kind not in ("logit", "logit_cdf"):
            raise ConfigError(f"no box transform {kind!r}: a run's theta_transform must be "
                              "concrete ('none', 'logit' or 'logit_cdf'); train it again")
        log = None
        if kind == "logit_cdf":
            log = torch.tensor([m.kind == "loguniform" for m in prior.marginals],
                               device=prior.low.device)
        return cls(prior.low, prior.high, log)

    def _scaled(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``low``, ``high`` and the mask on ``like``'s device and dtype, logs where masked."""
        low, high, log = self.low.to(like), self.high.to(like), self.log.to(like.device)
        return self._log_where(log, low, low), self._log_where(log, high, low), log

    @staticmethod
    def _log_where(log: Tensor, value: Tensor, low: Tensor) -> Tensor:
        """``log(value)`` where ``log`` is set (``value`` floored at ``low > 0`` there, so a
        value outside the prior stays finite), ``value`` elsewhere."""
        safe = torch.where(log, torch.maximum(value, low), torch.ones_like(value))
        return torch.where(log, safe.log(), value)

    def _u(self, theta: Tensor) -> Tensor:
        low, high, log = self._scaled(theta)
        v = self._log_where(log, theta, self.low.to(theta))
        return ((v - low) / (high - low)).clamp(EPS, 1.0 - EPS)

    def forward(self, theta: Tensor) -> Tensor:
        """``phi`` for ``theta (*B, D)``."""
        return torch.logit(self._u(theta))

    def inverse(self, phi: Tensor) -> Tensor:
        """``theta`` for ``phi (*B, D)``, always inside ``[low, high]``."""
        low, high, log = self._scaled(phi)
        v = low + (high - low) * torch.sigmoid(phi)
        out = torch.where(log, v.exp(), v)
        return torch.minimum(torch.maximum(out, self.low.to(phi)), self.high.to(phi))

    def log_abs_det_jacobian(self, theta: Tensor) -> Tensor:
        """``log |d phi / d theta|`` summed over the last dimension, ``(*B,)``."""
        u = self._u(theta)
        low, high, log = self._scaled(theta)
        chain = torch.where(log, self._log_where(log, theta, self.low.to(theta)), 0.0)
        return -(torch.log(u) + torch.log1p(-u) + torch.log(high - low) + chain).sum(-1)
