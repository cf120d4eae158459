"""Posterior sampling by the reverse diffusion: predictor-corrector with a likelihood score.

:func:`sample_posterior` integrates the reverse-time SDE of Song et al. (2021),
``dx = [f(x, t) - g(t)^2 (grad log p_t(x) + grad log p_t(y | x))] dt + g(t) dw_bar``, from
``t = 1`` down to ``t_min`` with Euler-Maruyama steps (the predictor), each preceded by
``corrector_steps`` Langevin steps whose size follows the signal-to-noise rule of Song et
al. (``eps = 2 (snr |z| / |score|)^2``, capped at ``2 snr^2 std(t)^2``).  The last step
returns the mean of the update (no noise added), the usual final denoising; then
``final_steps`` Langevin steps at ``t_min`` may follow, where an approximate likelihood
score (the convolved one, Tweedie's) becomes exact: they remove most of its bias (on a
16-pixel deblurring problem, mean errors from 0.45 to 0.2 posterior standard deviations)
at the price of the slight widening of unadjusted Langevin (~5 % at ``snr = 0.1``, more
in very few dimensions).

Chains and observations are batched: ``y`` ``(*B, *obs_shape)`` gives samples
``(S, *B, *event_shape)``.  Randomness is counter based (:mod:`sbi_astro.random`): chain
``s`` of observation ``b`` draws every number from its own key ``fold(fold(root, b), s)``,
so its path does not depend on ``chunk_size``, on ``num_samples`` (the first ``k`` chains
are the same) or on the device's batching, up to floating-point rounding of batched
network calls.  With ``checkpoint=DIR`` every chunk of chains is saved there when it is
done (:mod:`sbi_astro.solvers.checkpoints`); a sampling killed and started again with the
same prior, likelihood, observations and settings reads the saved chunks back and
integrates only the others, with the same result.

Example:
    >>> import torch
    >>> from sbi_astro.solvers import (VESDE, GaussianScore, GaussianLinearLikelihood,
    ...                                sample_posterior)
    >>> prior = GaussianScore(torch.zeros(2), torch.eye(2), VESDE(0.01, 10.0))
    >>> lik = GaussianLinearLikelihood(torch.eye(2), 0.1)  # y = x + N(0, 0.1^2)
    >>> y = torch.tensor([[1.0, -1.0]])
    >>> s = sample_posterior(prior, lik, y, num_samples=500, steps=100, corrector_steps=0,
    ...                      seed=0, device="cpu")
    >>> s.shape                                  # exact posterior N(y / 1.01, 0.0995^2 I)
    torch.Size([500, 1, 2])
    >>> err_mean = (s.mean(0) - y / 1.01).abs().max()
    >>> err_std = (s.std(0) / 0.0995 - 1).abs().max()
    >>> bool(err_mean < 0.05), bool(err_std < 0.1)
    (True, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..device import resolve_device
from ..errors import ConfigError, ShapeError
from ..random import RowRandom, fold, key_from_seed
from . import checkpoints
from .sde import expand

_WHAT = "posterior sampling"


def _check(num_samples: int, steps: int, corrector_steps: int, snr: float,
           t_min: float) -> None:
    if not (isinstance(num_samples, int) and num_samples > 0):
        raise ConfigError(f"num_samples must be a positive integer, got {num_samples!r}")
    if not (isinstance(steps, int) and steps > 0):
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    if not (isinstance(corrector_steps, int) and corrector_steps >= 0):
        raise ConfigError(f"corrector_steps must be an integer >= 0, got {corrector_steps!r}")
    if not snr > 0:
        raise ConfigError(f"snr must be positive, got {snr!r}")
    if not 0 < t_min < 1:
        raise ConfigError(f"t_min must be in (0, 1), got {t_min!r}")


def _event_shape(prior: Any) -> tuple[int, ...]:
    shape = tuple(getattr(prior, "event_shape", ()))
    if not shape or any(e < 0 for e in shape):
        raise ConfigError("the prior's event shape is not fixed (a U-Net takes any H, W): "
                          "pass event_shape=(C, H, W) to sample_posterior")
    return shape


def sample_posterior(prior: Any, likelihood: Any, y: Tensor, *, num_samples: int,
                     steps: int = 500, corrector_steps: int = 1, snr: float = 0.1,
                     t_min: float = 1e-3, final_steps: int = 0, seed: int = 0,
                     chunk_size: int | None = None,
                     event_shape: tuple[int, ...] | None = None,
                     device: str | torch.device | None = None,
                     checkpoint: str | Path | None = None,
                     log: Callable[[str], Any] | None = None) -> Tensor:
    """Posterior samples of ``x`` given ``y`` under a score prior and a likelihood score.

    Args:
        prior: a :class:`~sbi_astro.solvers.ScoreModel` (or anything with ``sde``,
            ``event_shape`` and ``score(t, x)``, e.g. :class:`~sbi_astro.solvers.GaussianScore`).
        likelihood: one of :mod:`sbi_astro.solvers.likelihood` (``obs_shape``, ``score``).
        y: observations ``(*B, *obs_shape)`` in data units.
        num_samples: chains per observation ``S``.
        steps: predictor steps from ``t = 1`` to ``t_min``.
        corrector_steps: Langevin steps before each predictor step.
        snr: signal-to-noise ratio of the Langevin step size.
        t_min: last time (the data are not diffused below it).
        final_steps: Langevin steps at ``t_min`` after the last predictor step, where the
            likelihood score is exact: they correct the bias of an approximate likelihood
            score at larger ``t`` (the convolved likelihood's, say).
        seed: seeds every chain (see the module docstring).
        chunk_size: chains integrated at once (default all ``S * prod(B)``); changes the
            memory, not the result.
        event_shape: shape of one ``x`` when the prior's is not fixed (U-Net).
        device: ``None`` picks CUDA when available.
        checkpoint: a directory where each chunk's samples are saved when done, and read
            back instead of integrated again when this sampling is run again.
        log: called with a line per chunk (rows done, seconds).

    Returns:
        Samples ``(S, *B, *event_shape)``.

    Raises:
        ConfigError: bad settings; ``checkpoint`` holds chunks of another sampling (other
            prior, likelihood, observations or settings) or damaged ones (left as they
            are); ShapeError: ``y`` does not end with ``obs_shape``.
    """
    _check(num_samples, steps, corrector_steps, snr, t_min)
    if not (isinstance(final_steps, int) and final_steps >= 0):
        raise ConfigError(f"final_steps must be an integer >= 0, got {final_steps!r}")
    obs_shape = tuple(likelihood.obs_shape)
    if tuple(y.shape[y.dim() - len(obs_shape):]) != obs_shape or y.dim() < len(obs_shape):
        raise ShapeError(f"y must have shape (*B, {', '.join(map(str, obs_shape))}), got "
                         f"{tuple(y.shape)}")
    batch = tuple(y.shape[: y.dim() - len(obs_shape)])
    shape = tuple(event_shape) if event_shape is not None else _event_shape(prior)
    dev = resolve_device(device)
    if hasattr(prior, "to"):
        prior = prior.to(dev)
    prior.eval()
    if hasattr(likelihood, "to"):
        likelihood = likelihood.to(dev)
    y_flat = y.reshape(-1, *obs_shape).to(dev)
    nb = y_flat.shape[0]
    root = key_from_seed(seed).to(dev)
    obs_keys = fold(root, torch.arange(nb, device=dev))                      # (B,)
    keys = fold(obs_keys[:, None], torch.arange(num_samples, device=dev)[None, :]).reshape(-1)
    rows = keys.shape[0]
    obs_index = torch.arange(nb, device=dev).repeat_interleave(num_samples)
    chunk = rows if chunk_size is None else int(chunk_size)
    if chunk < 1:
        raise ConfigError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    settings = None
    if checkpoint is not None:
        checkpoints.check_path(checkpoint, one_checkpoint=False)  # it holds one per chunk
        settings = {"seed": seed, "steps": steps, "corrector_steps": corrector_steps,
                    "snr": snr, "t_min": t_min, "final_steps": final_steps,
                    "num_samples": num_samples, "event_shape": list(shape), "chunk_size": chunk,
                    "y": checkpoints.fingerprint(y_flat),
                    "prior": [type(prior).__name__, checkpoints.module_fingerprint(prior)],
                    "likelihood": [type(likelihood).__name__,
                                   checkpoints.module_fingerprint(likelihood)]}
    out = []
    for start in range(0, rows, chunk):
        sl = slice(start, min(start + chunk, rows))
        t0 = time.perf_counter()
        part = None
        if settings is not None:
            where = Path(checkpoint) / f"rows-{sl.start:09d}-{sl.stop:09d}"
            if checkpoints.exists(where):
                part = _saved_chunk(where, settings, sl, shape).to(dev, y_flat.dtype)
        if part is None:
            part = _integrate(prior, likelihood, y_flat[obs_index[sl]], keys[sl], shape,
                              steps, corrector_steps, snr, t_min, final_steps)
            if settings is not None:
                checkpoints.save_checkpoint(where, {"x": part}, {**settings,
                                            "rows": [sl.start, sl.stop]}, {}, what=_WHAT)
            how = f"{time.perf_counter() - t0:.1f} s"
        else:
            how = "read back from the checkpoint"
        if log is not None:
            log(f"chains {sl.stop}/{rows}: {how}")
        out.append(part)
    x = torch.cat(out).reshape(nb, num_samples, *shape).transpose(0, 1)
    return x.reshape(num_samples, *batch, *shape)


def _saved_chunk(where: Path, settings: dict[str, Any], sl: slice, shape: tuple[int, ...]
                 ) -> Tensor:
    """The samples of the rows ``sl`` saved in ``where`` by a sampling with ``settings``."""
    _, tensors = checkpoints.load_checkpoint(where, {**settings, "rows": [sl.start, sl.stop]},
                                             what=_WHAT)
    x = tensors.get("x")
    if x is None or tuple(x.shape) != (sl.stop - sl.start, *shape):
        raise ConfigError(f"the {_WHAT} checkpoint in {where} does not hold the samples of "
                          f"rows {sl.start}-{sl.stop}; delete it to sample them again")
    return x


def _integrate(prior: Any, likelihood: Any, y: Tensor, keys: Tensor, shape: tuple[int, ...],
               steps: int, corrector_steps: int, snr: float, t_min: float,
               final_steps: int) -> Tensor:
    """Reverse SDE of the rows ``keys`` ``(N,)`` with observations ``y`` ``(N, *obs_shape)``."""
    sde = prior.sde
    rng = RowRandom(keys)
    n = keys.shape[0]
    x = rng.normal(shape, dtype=y.dtype) * sde.prior_std()
    times = torch.linspace(1.0, t_min, steps + 1, device=y.device, dtype=y.dtype)

    def total_score(t: Tensor, x: Tensor) -> Tensor:
        with torch.no_grad():
            s = prior.score(t, x)
        return s + likelihood.score(t, x, y, sde=sde, prior=prior).detach()

    x_mean = x
    for i in range(steps):
        t = times[i].expand(n)
        dt = float(times[i + 1] - times[i])  # negative
        for _ in range(corrector_steps):
            x = _langevin(total_score, rng, t, x, shape, snr, sde.std(t))
        g = expand(sde.diffusion(t), x)
        x_mean = x + (sde.drift(t, x) - g**2 * total_score(t, x)) * dt
        x = x_mean + g * math.sqrt(-dt) * rng.normal(shape, dtype=y.dtype)
    t = times[-1].expand(n)
    g2_sum = torch.zeros(n, dtype=x.dtype, device=x.device)
    eps = 2.0 * (snr * sde.std(t)) ** 2
    dim = math.prod(shape)
    for k in range(final_steps):
        # The posterior may be much narrower than std(t_min): the step follows the running
        # mean of |score|^2 of the row, eps = 2 snr^2 D / mean |score|^2 (the SNR rule with
        # |z|^2 and |score|^2 averaged), growing at most 2x per step from the capped rule, so
        # that a chain that starts at the mode (|score| ~ 0) does not jump away.
        grad = total_score(t, x_mean)
        g2_sum = g2_sum + grad.reshape(n, -1).square().sum(1)
        eps = torch.minimum(2.0 * snr**2 * dim * (k + 1) / g2_sum.clamp_min(1e-30), 2.0 * eps)
        z = rng.normal(shape, dtype=x.dtype)
        x_mean = x_mean + expand(eps, x) * grad + expand(torch.sqrt(2.0 * eps), x) * z
    return x_mean


def _langevin(score: Any, rng: RowRandom, t: Tensor, x: Tensor, shape: tuple[int, ...],
              snr: float, std: Tensor) -> Tensor:
    """One Langevin step of size ``eps = 2 (snr |z|)^2 / max(|score|^2, |z|^2 / std^2)``:
    Song et al.'s rule, capped at ``2 snr^2 std(t)^2`` where the score is small (in few
    dimensions ``|score|`` can vanish near the mode and the uncapped step explode)."""
    n = x.shape[0]
    grad = score(t, x)
    z = rng.normal(shape, dtype=x.dtype)
    g2 = grad.reshape(n, -1).square().sum(1)
    z2 = z.reshape(n, -1).square().sum(1)
    eps = 2.0 * snr**2 * z2 / torch.maximum(g2, z2 / std**2)
    return x + expand(eps, x) * grad + expand(torch.sqrt(2.0 * eps), x) * z
