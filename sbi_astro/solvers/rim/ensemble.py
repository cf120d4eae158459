"""An ensemble of RIMs: several machines trained alike from different seeds.

Their mean link-space estimate is the answer, and their spread measures what one machine's
training leaves uncertain (its bias where the data say little, which a bootstrap over the
noise does not see).  Added in quadrature to a noise spread (a parametric bootstrap), it
gives a total sigma (deep ensembles: Lakshminarayanan et al. 2017).

Example:
    >>> import torch
    >>> from sbi_astro.solvers.rim import RIM, RIMConfig, gaussian_log_likelihood
    >>> members = [RIM(RIMConfig(signal_shape=(4,), steps=2, hidden=8, seed=s), device="cpu")
    ...            for s in (0, 1, 2)]
    >>> ens = RIMEnsemble(members)
    >>> ll = gaussian_log_likelihood(lambda s: s, sigma=0.1)
    >>> signal, spread = ens.reconstruct_with_spread(torch.ones(5, 4), ll)
    >>> tuple(signal.shape), tuple(spread.shape), bool((spread > 0).all())
    ((5, 4), (5, 4), True)

References:
    Lakshminarayanan, Pritzel & Blundell (2017), "Simple and Scalable Predictive
    Uncertainty Estimation using Deep Ensembles", NeurIPS, arXiv:1612.01474.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ...errors import ConfigError
from .likelihoods import LogLikelihood
from .links import Link, to_link, to_signal
from .model import RIM


def positive_where_log(link: Link, x: Tensor) -> Tensor:
    """``x`` floored at 1e-30 where the link is a log (per channel for maps), so that an
    estimate clamped at zero still has a link-space value."""
    if isinstance(link, tuple):
        return torch.stack([x[:, c].clamp_min(1e-30) if name == "log" else x[:, c]
                            for c, name in enumerate(link)], 1)
    return x.clamp_min(1e-30) if link == "log" else x


class RIMEnsemble:
    """RIMs of one configuration (but their seeds).

    Args:
        members: the machines (at least one); their configurations may differ only in
            ``seed``.

    Raises:
        ConfigError: no member, or members of different configurations.
    """

    def __init__(self, members: list[RIM]):
        if not members:
            raise ConfigError("an ensemble needs at least one RIM")
        base = dataclasses.replace(members[0].config, seed=0)
        for m in members[1:]:
            if dataclasses.replace(m.config, seed=0) != base:
                raise ConfigError(f"ensemble members must share their configuration but "
                                  f"the seed; got {m.config} and {members[0].config}")
        self.members = list(members)

    @property
    def config(self):  # noqa: ANN201
        """The members' configuration (the first's seed)."""
        return self.members[0].config

    def __len__(self) -> int:
        return len(self.members)

    def reconstruct_with_spread(self, data: Tensor, log_likelihood: LogLikelihood, *,
                                batch_size: int = 1024) -> tuple[Tensor, Tensor]:
        """The ensemble's signal ``(B, *signal_shape)`` (the mean of the members'
        link-space estimates, back in signal space) and the members' standard deviation
        in link space (zeros for one member)."""
        link = self.config.link
        z = torch.stack([to_link(link, positive_where_log(link, m.reconstruct(
            data, log_likelihood, batch_size=batch_size))) for m in self.members])
        spread = z.std(0) if len(self.members) > 1 else torch.zeros_like(z[0])
        return to_signal(link, z.mean(0)), spread

    def reconstruct(self, data: Tensor, log_likelihood: LogLikelihood, *,
                    batch_size: int = 1024) -> Tensor:
        """The ensemble's signal (see :meth:`reconstruct_with_spread`)."""
        return self.reconstruct_with_spread(data, log_likelihood, batch_size=batch_size)[0]
