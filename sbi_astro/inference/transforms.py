"""Parameter-space transforms for NPE: train the flow on an unbounded version of theta.

A flow's density lives on all of R^D, while box priors (uniform, log-uniform) are bounded.
Posteriors that pile up against a bound (an absorbing column consistent with 0, an
abundance at its upper limit) then leak mass outside the prior and are poorly fitted near the
edge.  :class:`LogitBox` maps the prior's box ``[low, high]`` to R^D,
``phi = logit((theta - low) / (high - low))``, so the flow is trained on ``phi`` and every
sample mapped back lies inside the prior; densities pick up the Jacobian
``log |d phi / d theta| = -sum_d [log u_d + log(1 - u_d) + log(high_d - low_d)]``.

Example:
    >>> import torch
    >>> t = LogitBox(torch.tensor([0.0, -1.0]), torch.tensor([1.0, 3.0]))
    >>> theta = torch.tensor([[0.5, 1.0], [0.1, -0.5]])
    >>> torch.allclose(t.inverse(t.forward(theta)), theta)
    True
    >>> t.forward(theta)[0].tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError

#: ``u`` is kept in ``[EPS, 1 - EPS]`` so that parameters exactly on a bound stay finite.
EPS = 1e-6


class LogitBox:
    """The map ``theta in [low, high] -> phi = logit((theta - low) / (high - low))``."""

    def __init__(self, low: Tensor, high: Tensor):
        if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
            raise ConfigError("theta_transform='logit' needs a prior with finite bounds on "
                              "every parameter (uniform or log-uniform marginals); use "
                              "theta_transform='none' for this prior")
        if not (high > low).all():
            raise ConfigError("theta_transform='logit' needs high > low for every parameter")
        self.low, self.high = low, high

    def _u(self, theta: Tensor) -> Tensor:
        low = self.low.to(theta)
        width = self.high.to(theta) - low
        return ((theta - low) / width).clamp(EPS, 1.0 - EPS)

    def forward(self, theta: Tensor) -> Tensor:
        """``phi`` for ``theta (*B, D)``."""
        return torch.logit(self._u(theta))

    def inverse(self, phi: Tensor) -> Tensor:
        """``theta`` for ``phi (*B, D)``, always inside ``[low, high]``."""
        low = self.low.to(phi)
        out = low + (self.high.to(phi) - low) * torch.sigmoid(phi)
        return torch.minimum(torch.maximum(out, low), self.high.to(phi))

    def log_abs_det_jacobian(self, theta: Tensor) -> Tensor:
        """``log |d phi / d theta|`` summed over the last dimension, ``(*B,)``."""
        u = self._u(theta)
        width = self.high.to(theta) - self.low.to(theta)
        return -(torch.log(u) + torch.log1p(-u) + torch.log(width)).sum(-1)
