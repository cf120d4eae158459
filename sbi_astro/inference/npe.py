"""Neural posterior estimation (NPE): a conditional flow ``q(theta | x)``.

Sampling is vectorised over observations: ``S`` samples for each of ``N`` observations come
from one batched flow pass, and samples outside the prior's support ("leakage") are
replaced by fresh draws for exactly those slots.

References:
    Greenberg, Nonnenmacher & Macke (2019), ICML (APT / NPE-C, as implemented in sbi).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from . import sbi_adapter
from .estimator import TrainedEstimator
from .transforms import LogitBox

_MAX_REDRAWS = 100


class NPEEstimator(TrainedEstimator):
    """A trained NPE flow.

    Example:
        >>> import torch
        >>> from sbi_astro import load_simulator
        >>> from sbi_astro.inference import TrainingConfig, train
        >>> sim = load_simulator("two_moons", device="cpu")
        >>> theta, x = sim.sample_joint(500, generator=torch.Generator().manual_seed(0))
        >>> est = train(theta, x, sim, TrainingConfig(max_epochs=2, device="cpu"))
        >>> s = est.sample(300, x[:4], generator=torch.Generator().manual_seed(1))
        >>> tuple(s.shape), bool(sim.prior.within_support(s).all())  # no leakage
        ((300, 4, 2), True)
    """

    method = "npe"

    @torch.no_grad()
    def sample(self, num_samples: int, x: Tensor, *, generator: torch.Generator | None = None,
               max_batch: int = 20_000) -> Tensor:
        """Posterior samples ``(S, *B, D)`` restricted to the prior's support.

        Args:
            num_samples: ``S``.
            x: observations ``(*B, *event_shape)``.
            generator: seeds the flow's base samples (global RNG state is left untouched).
            max_batch: cap on ``S * N`` per flow pass.  Small passes keep the flow's
                activations in cache: 20,000 was ~3x faster than one 300,000-sample pass.
        """
        xf, batch = self._flatten_x(x, num_samples)
        n = xf.shape[0]
        per = max(1, max_batch // max(num_samples, 1))
        outs = [self._sample_flat(num_samples, xf[i: i + per], generator)
                for i in range(0, n, per)]
        out = torch.cat(outs, dim=1)
        return out.reshape(num_samples, *batch, self.simulator.dim)

    @property
    def theta_transform(self) -> LogitBox | None:
        """The box-to-R^D map the flow was trained in (``None``: trained on theta)."""
        if self.config.theta_transform == "none":
            return None
        return LogitBox.for_prior(self.prior, self.config.theta_transform)

    def _draw(self, num: int, xf: Tensor, generator: torch.Generator | None) -> Tensor:
        if generator is None:
            out = self.net.sample((num,), condition=xf)
        else:
            seed = int(torch.randint(0, 2**62, (), generator=generator))
            devices = [self.device] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                out = self.net.sample((num,), condition=xf)
        tr = self.theta_transform
        return out if tr is None else tr.inverse(out)

    def _sample_flat(self, num: int, xf: Tensor, generator: torch.Generator | None) -> Tensor:
        prior = self.prior
        out = self._draw(num, xf, generator)  # (S, N, D)
        ok = prior.within_support(out)
        for _ in range(_MAX_REDRAWS):
            if ok.all():
                return out
            cols = (~ok).any(0).nonzero().squeeze(1)
            new = self._draw(num, xf[cols], generator)  # (S, n, D)
            new_ok = prior.within_support(new)
            order = torch.argsort((~new_ok).to(torch.int8), dim=0, stable=True)
            new_sorted = torch.gather(new, 0, order[..., None].expand_as(new))
            n_acc = new_ok.sum(0)  # (n,)
            sub_ok = ok[:, cols]
            miss_rank = torch.cumsum((~sub_ok).to(torch.long), 0) - 1
            fill = (~sub_ok) & (miss_rank < n_acc[None, :])
            idx = miss_rank.clamp(0, num - 1)
            cand = torch.gather(new_sorted, 0, idx[..., None].expand_as(new))
            sub = out[:, cols]
            out[:, cols] = torch.where(fill[..., None], cand, sub)
            ok[:, cols] = sub_ok | fill
        frac = 1.0 - ok.float().mean().item()
        warnings.warn(f"{frac:.1%} of posterior samples still fall outside the prior after "
                      f"{_MAX_REDRAWS} redraws (strong leakage); they are left in place",
                      RuntimeWarning, stacklevel=3)
        return out

    @torch.no_grad()
    def log_prob(self, theta: Tensor, x: Tensor) -> Tensor:
        """Flow log-density ``(S, *B)`` of ``theta (S, *B, D)`` given ``x (*B, *E)``.

        Not renormalised for leakage; ``-inf`` outside the prior's support.
        """
        xf, batch = self._flatten_x(x)
        theta = torch.as_tensor(theta, dtype=torch.float32, device=self.device)
        s = theta.shape[0]
        th = theta.reshape(s, -1, self.simulator.dim)
        tr = self.theta_transform
        if tr is None:
            lp = sbi_adapter.flow_log_prob(self.net, th, xf)
        else:
            lp = (sbi_adapter.flow_log_prob(self.net, tr.forward(th), xf)
                  + tr.log_abs_det_jacobian(th))
        lp = torch.where(self.prior.within_support(th), lp, torch.full_like(lp, -torch.inf))
        return lp.reshape(s, *batch)
