"""The recurrent inference machine: :class:`RIM`, an unrolled, learned optimiser.

At step ``t`` the network sees the current link-space estimate ``z_t`` and the gradient of
the physical log-likelihood at it, ``g_t = d log p(data | signal(z_t)) / d z_t``, and
proposes the next estimate::

    g_t = grad_z log p(data | link^-1(z_t))          (autograd through the forward model)
    dz_t, h_{t+1} = network([standardised z_t, processed g_t], h_t)
    z_{t+1} = z_t + z_scale * dz_t

starting from ``z_0``, the mean link-space signal of the training set.  The likelihood is
any callable (see :mod:`.likelihoods`), so the same machine serves any differentiable
forward model; the prior is learned from the training signals.

Example:
    >>> import torch
    >>> from sbi_astro.solvers.rim import RIMConfig, gaussian_log_likelihood
    >>> rim = RIM(RIMConfig(signal_shape=(8,), steps=3, hidden=16), device="cpu")
    >>> ll = gaussian_log_likelihood(lambda s: s, sigma=0.1)
    >>> rim(torch.zeros(5, 8), ll).shape  # every step's estimate, link space
    torch.Size([3, 5, 8])
    >>> rim.reconstruct(torch.zeros(5, 8), ll).shape
    torch.Size([5, 8])

References:
    Putzky & Welling (2017), "Recurrent Inference Machines for Solving Inverse Problems",
    arXiv:1706.04008.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...device import resolve_device
from ...errors import ShapeError
from .config import RIMConfig
from .likelihoods import LogLikelihood, likelihood_gradient
from .links import to_link, to_signal
from .networks import ConvGRUUNet, GRUUpdate


class RIM(nn.Module):
    """A recurrent inference machine for signals of ``config.signal_shape``.

    Buffers (saved with the weights, set by :meth:`standardise`): ``z_init`` the starting
    estimate (link space, ``signal_shape``), ``z_scale`` the scale of link-space signals
    around it, ``grad_scale`` the typical size of the likelihood gradient there (scalars,
    or ``(C, 1, 1)``, one per channel, with ``config.scale == "channel"``).

    Args:
        config: the :class:`RIMConfig`.
        device: where the weights live (``None``: CUDA if available, else CPU).
    """

    def __init__(self, config: RIMConfig, *, device: torch.device | str | None = None):
        super().__init__()
        self.config = config
        shape = config.signal_shape
        per_channel = config.scale == "channel"
        extra = (shape[0] if per_channel else 1) if config.gradient == "rms" else 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.network == "gru":
                self.net: nn.Module = GRUUpdate(2 * shape[0] + extra, shape[0], config.hidden)
                last = self.net.decode
            else:
                self.net = ConvGRUUNet(2 * shape[0] + extra, shape[0], config.hidden)
                last = self.net.decode[-1]
            with torch.no_grad():  # small first steps: the machine starts near z_init
                last.weight.mul_(0.1)
                last.bias.zero_()
        scale_shape = (shape[0], 1, 1) if per_channel else ()
        self.register_buffer("z_init", torch.zeros(shape))
        self.register_buffer("z_scale", torch.ones(scale_shape))
        self.register_buffer("grad_scale", torch.ones(scale_shape))
        self.register_buffer("standardised", torch.zeros((), dtype=torch.bool))
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.z_init.device

    @torch.no_grad()
    def standardise(self, truth: Tensor, data: Tensor, log_likelihood: LogLikelihood) -> None:
        """Sets ``z_init``, ``z_scale`` and ``grad_scale`` from training pairs.

        Args:
            truth: signals ``(N, *signal_shape)`` (positive for the log link).
            data: their observations ``(N, *data_shape)``.
            log_likelihood: ``fn(signal, data) -> (N,)``.
        """
        z = to_link(self.config.link, truth.to(self.device, torch.float32))
        self.z_init.copy_(z.mean(0))
        dz = z - self.z_init
        grad, _ = likelihood_gradient(log_likelihood, self.z_init.expand_as(z).clone(),
                                      data.to(self.device), self.config.link)
        rms = self._rms(grad)
        scale = rms.log().mean(0).exp() if self.config.gradient == "rms" else rms.mean(0)
        if self.config.scale == "channel":
            self.z_scale.copy_(dz.transpose(0, 1).reshape(dz.shape[1], -1).std(1)
                               .clamp_min(1e-12).reshape(self.z_scale.shape))
        else:
            self.z_scale.fill_(float(dz.std().clamp_min(1e-12)))
        self.grad_scale.copy_(scale.clamp_min(1e-30).reshape(self.grad_scale.shape))
        self.standardised.fill_(True)

    def _rms(self, grad: Tensor) -> Tensor:
        """Root mean square of each row's gradient, shaped to broadcast against it: ``(B,
        1)`` or ``(B, 1, 1, 1)``; of each row's channels ``(B, C, 1, 1)`` with
        ``scale == "channel"``."""
        if self.config.scale == "channel":
            return grad.pow(2).mean((-2, -1), keepdim=True).sqrt().clamp_min(1e-30)
        rms = grad.reshape(grad.shape[0], -1).pow(2).mean(1).sqrt().clamp_min(1e-30)
        return rms.reshape(-1, *([1] * (grad.dim() - 1)))

    def _inputs(self, z: Tensor, grad: Tensor) -> Tensor:
        """The network input: standardised estimate, processed gradient (and log RMS)."""
        u = (z - self.z_init) / self.z_scale
        parts = [u]
        if self.config.gradient == "rms":
            rms = self._rms(grad)
            parts.append(grad / rms)
            # log RMS around the training data's typical level; /5 keeps a span of ~4
            # decades (e.g. 10 to 1e5 counts) within about +-1 for the network
            level = (rms.log() - self.grad_scale.log()) / 5.0
            if z.dim() == 2:
                parts.append(level)
            else:
                parts.append(level.expand(-1, -1, *z.shape[-2:]))
        else:
            parts.append(grad / self.grad_scale)
        return torch.cat(parts, 1)

    def forward(self, data: Tensor, log_likelihood: LogLikelihood) -> Tensor:
        """Every step's link-space estimate ``(T, B, *signal_shape)`` for ``data (B, ...)``.

        Differentiable in the weights (the likelihood gradients themselves are inputs,
        detached).
        """
        if data.dim() < 1 or data.shape[0] == 0:
            raise ShapeError(f"data must be a non-empty batch (B, *data_shape), got "
                             f"{tuple(data.shape)}; add a leading batch dimension")
        data = data.to(self.device)
        batch = data.shape[0]
        z = self.z_init.expand(batch, *self.config.signal_shape)
        state = self.net.initial_state(batch, z)
        out = []
        for _ in range(self.config.steps):
            grad, _ = likelihood_gradient(log_likelihood, z, data, self.config.link)
            dz, state = self.net(self._inputs(z, grad), state)
            z = z + self.z_scale * dz
            out.append(z)
        return torch.stack(out)

    @torch.no_grad()
    def reconstruct(self, data: Tensor, log_likelihood: LogLikelihood, *,
                    batch_size: int = 1024) -> Tensor:
        """The final estimate of the signal ``(B, *signal_shape)`` (signal space).

        Rows are processed in chunks of ``batch_size``; a row's result does not depend on
        the others.
        """
        data = data.to(self.device)
        outs = [to_signal(self.config.link, self(data[i:i + batch_size], log_likelihood)[-1])
                for i in range(0, data.shape[0], batch_size)]
        return torch.cat(outs)

    def step_weights(self) -> Tensor:
        """Weights ``(T,)`` of the per-step losses (sum 1)."""
        t = torch.arange(1, self.config.steps + 1, dtype=torch.float32, device=self.device)
        if self.config.step_weights == "uniform":
            w = torch.ones_like(t)
        elif self.config.step_weights == "linear":
            w = t
        else:
            w = (t == t[-1]).float()
        return w / w.sum()

    def loss(self, data: Tensor, truth: Tensor, log_likelihood: LogLikelihood) -> Tensor:
        """The training loss: ``sum_t w_t mean(((z_t - link(truth)) / z_scale)^2)`` (a
        scalar; ``z_scale`` per channel with ``config.scale == "channel"``)."""
        z_true = to_link(self.config.link, truth.to(self.device))
        zs = self(data, log_likelihood)
        per_step = ((zs - z_true) / self.z_scale).pow(2).reshape(zs.shape[0], -1).mean(1)
        return (self.step_weights() * per_step).sum()
