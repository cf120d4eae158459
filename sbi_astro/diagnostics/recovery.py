"""Parameter recovery: how well posterior means track the true parameters, and how tight.

For held-out pairs ``(theta_j, x_j)`` and posterior samples ``(S, N, D)``, per parameter:

* ``r2``: the coefficient of determination of the posterior mean as a predictor of the truth,
  ``1 - sum_j (mean_j - theta_j)^2 / sum_j (theta_j - <theta>)^2`` (1 is perfect, 0 is no
  better than the prior mean of the test set, negative is worse).  This is the figure that
  regression networks such as 21cmPIE-Net report (Neutsch et al. 2022, arXiv:2201.07587).
* ``rmse``: root-mean-square error of the posterior mean, in the parameter's unit.
* ``posterior_std_median``: median posterior standard deviation.
* ``relative_std_median``: median of ``std_j / |theta_j|`` (fractional precision, e.g. "the
  Einstein radius to 2 %"); NaN when a truth is exactly 0.
* ``prior_std``: standard deviation of the true values (the scale ``r2`` compares against).

Recovery says nothing about calibration (an overconfident posterior can have a high ``r2``):
read it next to TARP/SBC.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> theta = torch.randn(500, 1, generator=g)
    >>> x = theta + 0.5 * torch.randn(500, 1, generator=g)
    >>> post = 0.8 * x + (0.2 ** 0.5) * torch.randn(400, 500, 1, generator=g)  # exact posterior
    >>> res = parameter_recovery(post, theta)
    >>> round(res.r2[0].item(), 1), round(res.posterior_std_median[0].item(), 2)
    (0.8, 0.45)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from ._common import check_samples_theta


@dataclasses.dataclass
class RecoveryResult:
    """Per-parameter recovery figures (tensors of shape ``(D,)``) and per-simulation moments.

    Attributes:
        mean: posterior means ``(N, D)``.
        std: posterior standard deviations ``(N, D)``.
        r2, rmse, posterior_std_median, relative_std_median, prior_std: ``(D,)``.
    """

    mean: Tensor
    std: Tensor
    r2: Tensor
    rmse: Tensor
    posterior_std_median: Tensor
    relative_std_median: Tensor
    prior_std: Tensor

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).tolist() for k in
                ("r2", "rmse", "posterior_std_median", "relative_std_median", "prior_std")}


def parameter_recovery(samples: Tensor, theta: Tensor) -> RecoveryResult:
    """Recovery figures of posterior ``samples (S, N, D)`` for truths ``theta (N, D)``."""
    check_samples_theta(samples, theta, "parameter_recovery")
    samples = samples.to(theta)
    std, mean = torch.std_mean(samples, dim=0)
    resid = ((mean - theta) ** 2).sum(0)
    spread = ((theta - theta.mean(0)) ** 2).sum(0)
    r2 = 1.0 - resid / spread.clamp_min(torch.finfo(theta.dtype).tiny)
    rel = std / theta.abs()
    return RecoveryResult(
        mean=mean, std=std, r2=r2, rmse=(resid / theta.shape[0]).sqrt(),
        posterior_std_median=std.median(0).values,
        relative_std_median=rel.nanmedian(0).values,
        prior_std=theta.std(0))
