"""The one module that touches the ``sbi`` package.

Everything sbi-specific (builders, trainers, posteriors, tracker) goes through here, so
that an sbi upgrade changes one file.  Density estimators are ``zuko`` flows built by
sbi's ``zuko_maf`` / ``zuko_nsf`` builders (``passes=2`` makes them coupling flows, which
sample in one network pass instead of one per dimension), or sbi's own ``nsf`` on nflows
(``flow: nsf_lu``: spline couplings with LU mixing).
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError

# nflows' LU layers (flow "nsf_lu") call a torch function torch has deprecated; the note
# says nothing to a user (the numbers are right) and would print on every first sample
warnings.filterwarnings("ignore", message=r"torch\.triangular_solve is deprecated",
                        category=UserWarning)


class NullTracker:
    """An sbi tracker that records nothing (sbi's default writes TensorBoard logs to cwd)."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _quiet(stdout: bool = False):
    """sbi's warnings (and, with ``stdout``, its prints) silenced: the one place they are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if stdout:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        else:
            yield


def flow_log_prob(net: nn.Module, theta: Tensor, condition: Tensor) -> Tensor:
    """``log q(theta | x)`` of an sbi flow, ``theta (S, B, D)``, ``condition (B, *E)``.

    sbi 0.27's ``ZukoFlow.log_prob`` and ``NFlowsFlow.log_prob`` broadcast the condition to
    ``(S, B, *E)`` before the embedding net, which costs ``S`` embedding passes and ``S``
    copies of every ``x`` (for a 3-D CNN on lightcones, tens of GB at ``S = 256``).  Here
    ``x`` is embedded once: a zuko flow's distribution broadcasts over the sample
    dimension, and an nflows flow (``nsf_lu``) gets the embedded rows repeated (vectors, not
    images).  Other estimators fall back to their own ``log_prob``.
    """
    from sbi.neural_nets.estimators.nflows_flow import NFlowsFlow
    from sbi.neural_nets.estimators.zuko_flow import ZukoFlow

    if theta.dim() != 3:
        return net.log_prob(theta, condition)
    if isinstance(net, ZukoFlow):
        dist = net.net(net._embedding_net(condition))  # batch shape (B,)
        return dist.log_prob(theta)  # (S, B)
    if isinstance(net, NFlowsFlow):
        flow = net.net  # nflows' Flow._log_prob, with the context embedded once
        s, b = theta.shape[:2]
        ctx = flow._embedding_net(condition)
        ctx = ctx.unsqueeze(0).expand(s, *ctx.shape).reshape(s * b, *ctx.shape[1:])
        noise, logabsdet = flow._transform(theta.reshape(s * b, -1), context=ctx)
        return (flow._distribution.log_prob(noise, context=ctx) + logabsdet).reshape(s, b)
    return net.log_prob(theta, condition)


def _flow_kwargs(config: Any) -> dict[str, Any]:
    if config.flow not in ("maf", "nsf", "nsf_lu") or config.coupling is None:
        raise ConfigError(f"flow and coupling must be resolved (TrainingConfig.resolved), got "
                          f"{config.flow!r}, {config.coupling!r}")
    if config.flow == "nsf_lu":  # sbi's nflows NSF: residual conditioners of num_blocks
        return dict(hidden_features=config.hidden_features, num_blocks=config.hidden_layers,
                    num_transforms=config.num_transforms, num_bins=config.num_bins)
    # a list sets the conditioner's layers (an int would give num_transforms layers)
    kw: dict[str, Any] = dict(hidden_features=[config.hidden_features] * config.hidden_layers,
                              num_transforms=config.num_transforms)
    if config.flow == "nsf":
        kw["num_bins"] = config.num_bins
    if config.coupling:
        kw["passes"] = 2
    return kw


def density_builder(method: str, config: Any, embedding: nn.Module, x_standardization: str):
    """sbi build function for the NPE posterior or NLE likelihood estimator."""
    from sbi.neural_nets import likelihood_nn, posterior_nn

    model = "nsf" if config.flow == "nsf_lu" else f"zuko_{config.flow}"
    with _quiet():
        if method == "npe":
            return posterior_nn(model=model, z_score_theta="independent",
                                z_score_x=x_standardization, embedding_net=embedding,
                                **_flow_kwargs(config))
        if method == "nle":
            return likelihood_nn(model=model, z_score_theta="independent",
                                 z_score_x=x_standardization, **_flow_kwargs(config))
    raise ConfigError(f"unknown density method {method!r}")


#: Rows a warm-started network is built from before its saved state replaces everything.
WARM_START_ROWS = 1024


def starting_from(builder: Any, state: dict[str, Tensor]) -> Any:
    """An sbi build function that loads ``state`` into the network it builds (warm start).

    sbi builds the network inside ``train`` from the training data (which sizes the z-score
    layers); the saved state then replaces every weight and buffer, so the network is built
    from the first rows only (the z-scoring of a whole image set makes several copies of it).
    """

    def build(theta: Tensor, x: Tensor) -> nn.Module:
        net = builder(theta[:WARM_START_ROWS], x[:WARM_START_ROWS])
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise ConfigError(f"init_from: the saved weights do not fit this architecture "
                              f"(use the run's own method, flow, coupling, sizes and "
                              f"embedding): "
                              f"{str(err).splitlines()[0]}") from err
        return net

    return build


def classifier_builder(config: Any, embedding: nn.Module, x_standardization: str):
    """sbi build function for the NRE classifier."""
    from sbi.neural_nets import classifier_nn

    return classifier_nn(model="resnet", z_score_theta="independent",
                         z_score_x=x_standardization, hidden_features=config.hidden_features,
                         embedding_net_x=embedding)


#: The plateau schedule halves the learning rate down to this fraction of the initial one
#: (also the end of the cosine schedule).
PLATEAU_FACTOR = 0.5
PLATEAU_MIN_FRACTION = 1.0 / 64.0


def _with_schedule(cls: type, config: Any) -> type:
    """``cls`` (an sbi trainer) with ``config.lr_schedule`` on its Adam learning rate:
    ``"plateau"`` halves it after ``config.lr_patience`` epochs without a better validation
    loss; ``"cosine"`` anneals it to 1/64 over ``config.max_epochs``.

    sbi 0.27 creates the optimizer inside its loop and has no scheduler hook; its loop calls
    ``_train_epoch`` once per epoch after the previous epoch's validation (``_val_loss``),
    so the schedule is stepped there, before the epoch's updates.
    """
    kind, patience, epochs = config.lr_schedule, config.lr_patience, config.max_epochs

    class Scheduled(cls):  # type: ignore[misc, valid-type]
        def _train_epoch(self, train_loader, clip_max_norm, loss_args):  # noqa: ANN001, ANN202
            sched = self._lr_scheduler
            if sched is None or sched.optimizer is not self.optimizer:
                lr0 = self.optimizer.param_groups[0]["lr"]
                if kind == "cosine":
                    # epochs 0..max_epochs-1: the last one trains at the floor
                    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                        self.optimizer, T_max=max(epochs - 1, 1),
                        eta_min=lr0 * PLATEAU_MIN_FRACTION)
                else:
                    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                        self.optimizer, mode="min", factor=PLATEAU_FACTOR, patience=patience,
                        min_lr=lr0 * PLATEAU_MIN_FRACTION)
                self._lr_scheduler = sched
            elif kind == "cosine":
                sched.step()
            elif math.isfinite(self._val_loss):
                sched.step(self._val_loss)
            return super()._train_epoch(train_loader, clip_max_norm, loss_args)

    Scheduled.__name__ = cls.__name__
    Scheduled.__qualname__ = cls.__qualname__
    return Scheduled


def _lean(cls: type) -> type:
    """``cls`` (an sbi trainer) that uses a single-round training set as given and reports
    each epoch to ``_on_epoch`` (set by :func:`train`).

    sbi 0.27 copies the training set in ``append_simulations`` (``x[is_valid_x]``, even
    when every row is valid) and again in ``get_simulations`` (``torch.cat`` of the one
    round), on top of the caller's copy: three copies of 300,000 64 x 64 images are
    14.7 GB.  :func:`train` has already dropped non-finite rows and cast to float32, so
    sbi's checks run on two rows and the stored tensors are the caller's (the same values,
    hence the same training).
    """

    class Lean(cls):  # type: ignore[misc, valid-type]
        _on_epoch = None  # called with each epoch's summary (see :func:`train`)
        _epoch_cap = None  # max_epochs, when sbi's own bound cannot express it (1 epoch)
        _lr_scheduler = None  # set by a learning-rate schedule (see _with_schedule)

        def _converged(self, epoch, stop_after_epochs):  # noqa: ANN001, ANN202
            converged = super()._converged(epoch, stop_after_epochs)
            if self._epoch_cap is not None and epoch >= self._epoch_cap and not converged:
                # the budget is spent: keep the best weights seen, as sbi does at its bound
                self._neural_net.load_state_dict(self._best_model_state_dict)
                return True
            return converged

        def _summarize_epoch(self, train_loss, val_loss, epoch_start_time,  # noqa: ANN001
                             summarization_kwargs):  # noqa: ANN001, ANN202
            super()._summarize_epoch(train_loss, val_loss, epoch_start_time,
                                     summarization_kwargs)
            if self._on_epoch is not None:
                self._on_epoch({"epoch": self.epoch + 1, "training_loss": float(train_loss),
                                "validation_loss": float(val_loss),
                                "seconds": float(self._summary["epoch_durations_sec"][-1]),
                                "learning_rate": float(self.optimizer.param_groups[0]["lr"])})

        def get_simulations(self, starting_round: int = 0):  # noqa: ANN202
            if len(self._x_roundwise) == 1 and starting_round == 0:
                return self._theta_roundwise[0], self._x_roundwise[0], self._prior_masks[0]
            return super().get_simulations(starting_round)

    Lean.__name__ = cls.__name__
    Lean.__qualname__ = cls.__qualname__
    return Lean


def balance_penalty(log_q: Tensor, log_prior: Tensor) -> Tensor:
    """Balanced NPE's penalty ``(E_joint[d] + E_marginal[d] - 1)^2`` (a scalar), with
    ``d = sigmoid(log q - log p)``; ``log_q``, ``log_prior``: ``(2, B)``, row 0 the joint
    pairs ``(theta_i, x_i)``, row 1 the marginal pairs.  Zero exactly when the classifier
    ``d`` is balanced (Delaunoy et al. 2023, eq. 5)."""
    d = torch.sigmoid(log_q - log_prior)
    return (d[0].mean() + d[1].mean() - 1.0) ** 2


def _balanced(cls: type, weight: float) -> type:
    """``cls`` (sbi's NPE trainer) with balanced NPE's loss: the negative log-density plus
    ``weight * balance_penalty`` per batch (the same on every row, so the batch mean adds it
    once).  The marginal pairs are ``(theta_{i-1}, x_i)``: batches are shuffled, so a
    neighbour's theta is an independent prior draw.  ``x`` is embedded once for both."""

    class Balanced(cls):  # type: ignore[misc, valid-type]
        def _loss(self, theta, x, masks, proposal, calibration_kernel,  # noqa: ANN001, ANN202
                  force_first_round_loss=False):  # noqa: ANN001
            pairs = torch.stack((theta, theta.roll(1, 0)))  # (2, B, D)
            log_q = flow_log_prob(self._neural_net, pairs, x)
            log_prior = self._prior.log_prob(pairs)
            penalty = balance_penalty(log_q, log_prior)
            return -log_q[0] + weight * penalty

    Balanced.__name__ = cls.__name__
    Balanced.__qualname__ = cls.__qualname__
    return Balanced


def ratio_logits(net: nn.Module, theta: Tensor, emb_x: Tensor) -> Tensor:
    """sbi's ``RatioEstimator`` logits ``(B,)`` of ``theta (B, D)`` paired row by row with
    ``emb_x (B, E)``, the network's own embedding of ``x`` computed beforehand (so that an
    ``x`` paired with many ``theta`` is embedded once)."""
    return net.net(torch.cat([net.embedding_net_theta(theta), emb_x], -1)).squeeze(-1)


def _embed_x_once(cls: type) -> type:
    """``cls`` (sbi's NRE-B trainer) with each ``x`` of a batch embedded once: sbi's
    ``_classifier_logits`` repeats every ``x`` for its ``num_atoms`` contrasting
    parameters and embeds each copy; here the embedding is computed once and repeated (the
    same logits and the same random choices; the embeddings hold no batch statistics or
    dropout).  On image tasks the embedding CNN is nearly all of the cost."""

    class EmbedXOnce(cls):  # type: ignore[misc, valid-type]
        def _classifier_logits(self, theta, x, num_atoms):  # noqa: ANN001, ANN202
            net = self._neural_net
            batch = theta.shape[0]
            # sbi's draw of the contrasting parameters, unchanged (the same global stream)
            probs = torch.ones(batch, batch) * (1 - torch.eye(batch)) / (batch - 1)
            choices = torch.multinomial(probs, num_samples=num_atoms - 1, replacement=False)
            atoms = torch.cat((theta[:, None, :], theta[choices]), dim=1)
            return ratio_logits(net, atoms.reshape(batch * num_atoms, -1),
                                net.embedding_net_x(x).repeat_interleave(num_atoms, 0))

    EmbedXOnce.__name__ = cls.__name__
    EmbedXOnce.__qualname__ = cls.__qualname__
    return EmbedXOnce


def _append(inference: Any, theta: Tensor, x: Tensor) -> None:
    """``inference.append_simulations(theta, x)`` (one round, from the prior), without
    sbi's copy: its checks and bookkeeping run on two rows, then the stored rows are
    replaced by the caller's tensors."""
    inference.append_simulations(theta[:2], x[:2])
    inference._theta_roundwise[-1] = theta
    inference._x_roundwise[-1] = x
    inference._prior_masks[-1] = torch.ones((theta.shape[0], 1), dtype=torch.bool,
                                            device=theta.device)


def trainer(method: str, prior: torch.distributions.Distribution, builder: Any,
            device: torch.device, config: Any = None):
    """The sbi trainer object for ``method`` (with ``config.lr_schedule`` applied)."""
    from sbi.inference import NLE, NPE, NRE

    cls = _lean({"npe": NPE, "nle": NLE, "nre": NRE}[method])
    if config is not None and config.lr_schedule != "constant":
        cls = _with_schedule(cls, config)
    if method == "nre":
        cls = _embed_x_once(cls)
    if config is not None and method == "npe" and config.balance:
        cls = _balanced(cls, float(config.balance))
    key = "classifier" if method == "nre" else "density_estimator"
    with _quiet():
        return cls(prior=prior, device=str(device), tracker=NullTracker(),
                   show_progress_bars=False, **{key: builder})


def train(inference: Any, theta: Tensor, x: Tensor, config: Any, on_epoch: Any = None
          ) -> tuple[nn.Module, dict]:
    """Runs sbi's training loop; returns the network and a JSON-friendly summary.

    ``on_epoch(summary)`` (optional) is called after every epoch with its number, training
    and validation loss, seconds and learning rate.
    """
    if on_epoch is not None:
        # sbi's own prints are silenced below; the callback's output goes where it would
        stdout = sys.stdout

        def report(epoch: dict) -> None:
            with contextlib.redirect_stdout(stdout):
                on_epoch(epoch)

        inference._on_epoch = report
    # sbi 0.27 runs epochs 0..max_num_epochs inclusive and needs max_num_epochs >= 1: one
    # fewer is passed, and a budget of one epoch is ended by the cap
    inference._epoch_cap = config.max_epochs
    with _quiet(stdout=True):  # sbi prints its convergence note: keep stdout clean
        _append(inference, theta, x)
        net = inference.train(training_batch_size=config.batch_size,
                              learning_rate=config.learning_rate,
                              validation_fraction=config.validation_fraction,
                              stop_after_epochs=config.stop_after_epochs,
                              max_num_epochs=max(config.max_epochs - 1, 1),
                              show_train_summary=False)
    s = inference.summary
    sched = inference._lr_scheduler
    summary = {
        "epochs": int(s["epochs_trained"][-1]) if s["epochs_trained"] else 0,
        "best_validation_loss": float(s["best_validation_loss"][-1]),
        "training_loss": [float(v) for v in s["training_loss"]],
        "validation_loss": [float(v) for v in s["validation_loss"]],
    }
    if sched is not None:
        summary["final_learning_rate"] = float(sched.optimizer.param_groups[0]["lr"])
    return net, summary


#: sbi's NRE (NRE-B) default contrastive atoms (``NRE.train(num_atoms=10)``), for streaming
NRE_NUM_ATOMS = 10
#: sbi's default gradient clipping
CLIP_MAX_NORM = 5.0


def batch_loss(inference: Any, method: str, theta: Tensor, x: Tensor) -> Tensor:
    """The per-row training loss ``(B,)`` of sbi's trainer on one batch (first round, from
    the prior: the loss ``inference.train`` minimises)."""
    if method == "npe":
        return inference._loss(theta, x, None, None, lambda v: torch.ones(len(v),
                               device=v.device), force_first_round_loss=True)
    if method == "nle":
        return inference._loss(theta, x)
    return inference._loss(theta, x, num_atoms=min(NRE_NUM_ATOMS, len(theta)))


def build_network(inference: Any, theta: Tensor, x: Tensor) -> nn.Module:
    """The network sbi's trainer builds from ``theta``, ``x`` (standardisation layers sized
    on them), set as the trainer's network (for :func:`batch_loss`)."""
    with _quiet():
        inference._neural_net = inference._build_neural_net(theta, x)
    return inference._neural_net


def rebuild(method: str, config: Any, embedding: nn.Module, x_standardization: str,
            theta_shape: tuple[int, ...], x_shape: tuple[int, ...]) -> nn.Module:
    """An untrained network of the same architecture (for ``load_state_dict``).

    The builders need a batch to size the z-scoring layers; their buffers are then
    overwritten by the saved state.
    """
    gen = torch.Generator().manual_seed(0)
    batch_theta = torch.randn((8, *theta_shape), generator=gen)
    batch_x = torch.randn((8, *x_shape), generator=gen)
    with _quiet():
        if method == "nre":
            return classifier_builder(config, embedding, x_standardization)(batch_theta, batch_x)
        return density_builder(method, config, embedding, x_standardization)(batch_theta, batch_x)


def mcmc_posterior(method: str, net: nn.Module, prior: Any, config: Any, device: torch.device):
    """An sbi MCMC posterior around a trained likelihood (NLE) or ratio (NRE) network."""
    inference = trainer(method, prior, "maf" if method == "nle" else "resnet", device)
    params = {"num_chains": config.num_chains, "warmup_steps": config.warmup_steps,
              "thin": config.thin, "init_strategy": "resample"}
    with _quiet():
        return inference.build_posterior(net, prior=prior, mcmc_method=config.mcmc_method,
                                         mcmc_parameters=params)


def sbi_version() -> str:
    import sbi

    return sbi.__version__


def sample_batched(posterior: Any, num_samples: int, x: Tensor) -> Tensor:
    """Samples ``(S, N, D)`` for observations ``x (N, *E)`` from an sbi posterior's
    ``sample_batched`` (its batched MCMC for NLE/NRE), quietly."""
    with _quiet():
        return posterior.sample_batched((num_samples,), x=x, show_progress_bars=False)
