"""Training configuration (a frozen, validated dataclass)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..errors import ConfigError
from ..random import check_seed

METHODS = ("npe", "nle", "nre")
FLOWS = ("auto", "nsf", "maf", "nsf_lu")
#: What a trained run's ``theta_transform`` can be ("auto" resolves to one of them).
CONCRETE_THETA_TRANSFORMS = ("none", "logit", "logit_cdf")
THETA_TRANSFORMS = ("auto", *CONCRETE_THETA_TRANSFORMS)
LR_SCHEDULES = ("constant", "plateau", "cosine")
AUTO_NSF_MAX_DIM = 4
NSF_MAX_BATCH = 200  # sbi's default training batch
_POSITIVE_INTS = ("hidden_features", "hidden_layers", "num_transforms", "num_bins",
                  "max_epochs", "stop_after_epochs", "num_chains", "thin", "lr_patience")


def _require_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How to train a neural estimator.

    Attributes:
        method: ``"npe"`` (posterior), ``"nle"`` (likelihood) or ``"nre"`` (ratio).
        flow: flow family for NPE/NLE: ``"nsf"`` (zuko's rational-quadratic splines),
            ``"maf"`` (zuko's affine), ``"nsf_lu"`` (sbi's ``nsf``, on nflows: coupling
            rational-quadratic splines with linear tails at +-3, each followed by a learned
            LU-decomposed linear map that mixes the coordinates, conditioners residual
            networks of ``hidden_layers`` blocks whose context gates every block; Durkan et
            al. 2019, "Neural Spline Flows"; always coupling), or ``"auto"``: zuko's NSF
            for up to 4 parameters (multimodal, curved posteriors); above, for NPE when
            every prior marginal is bounded, ``nsf_lu`` (posteriors cut by the prior's box,
            which an affine flow cannot draw: at 10,000 simulations its strict C2ST was
            0.592 against zuko NSF's 0.636 and MAF's 0.680 on gaussian_linear_uniform,
            0.826 against 0.849 and 0.860 on SLCP, 0.879 against 0.899 and 0.947 on
            slcp_distractors; docs/inference.md); affine MAF
            otherwise (as accurate on the near-Gaussian posteriors of unbounded priors,
            and cheaper to sample on CPU, where zuko's spline inverse dominates the
            cost).  The resolved family is what a run saves.
        hidden_features: width of the flow's (or classifier's) hidden layers.
        hidden_layers: hidden layers of each flow transform's conditioner network
            (``nsf_lu``: residual blocks).
        num_transforms: number of flow transforms.
        num_bins: spline bins (NSF, ``nsf_lu``).
        coupling: ``True``: coupling flows (``passes=2``), one network pass to sample;
            ``False``: autoregressive, one pass per dimension to sample (training and
            ``log_prob`` cost one pass either way); ``None`` (default): coupling for NSF,
            whose autoregressive inverse also inverts a spline per pass, autoregressive
            for MAF.  Measured with NPE at 10,000 simulations (the 10 sbibm observations,
            the same simulations), autoregressive against coupling MAF: C2ST 0.860 vs
            0.898 on SLCP, 0.688 vs 0.728 on bernoulli_glm, 0.680 vs 0.679 on
            gaussian_linear_uniform and 0.596 vs 0.589 on gaussian_linear; with NLE
            0.709 vs 0.887 on SLCP (docs/inference.md).
        embedding: ``"default"`` (the simulator's), ``"none"``, or a dict
            ``{"kind": ..., "kwargs": {...}}`` (see :mod:`sbi_astro.embeddings`).
        batch_size: training batch; ``None`` picks 128 for MAF (gaussian_linear at 10,000
            simulations: C2ST 0.575 at 128 vs 0.586 at 64) and, for NSF, about 50 batches
            per epoch: ``num_simulations // 50`` between 64 and 200 (sbi's default).  On
            two_moons at 10,000 simulations (the 10 sbibm observations, one quiet core),
            200 trained in 95 s to C2ST 0.539, against 364 s and 0.534 at 64 with 30
            epochs of patience: NSF's cost is per batch, not per row (docs/inference.md).
        learning_rate, max_epochs, stop_after_epochs, validation_fraction: the training
            loop (Adam, early stopping after ``stop_after_epochs`` epochs without a lower
            validation loss: 20 by default, as in sbi).
        lr_schedule: ``"constant"`` (sbi's loop as it is), or ``"plateau"``: halve the
            learning rate whenever the validation loss has not improved for
            ``lr_patience`` epochs (down to 1/64 of ``learning_rate``); early stopping
            still ends training after ``stop_after_epochs`` epochs without improvement, so
            set ``stop_after_epochs`` above ``lr_patience`` to let a lower rate help.
            ``"cosine"``: anneal the learning rate from ``learning_rate`` to 1/64 of it
            along a half cosine over ``max_epochs`` (Loshchilov & Hutter 2017, ICLR), e.g.
            for a last stage, whose final weights then come from a small learning rate
            (set ``stop_after_epochs`` >= ``max_epochs`` to run the whole schedule).
        lr_patience: epochs without improvement before the ``"plateau"`` schedule halves
            the learning rate.
        theta_transform: ``"auto"`` (default): the simulator's ``default_theta_transform``
            for NPE on a bounded prior without ``balance``, ``"none"`` otherwise (made
            concrete in the saved config); ``"none"``, or ``"logit"`` (NPE only): train the flow on
            ``logit((theta - low) / (high - low))`` over the prior's box, so posteriors that
            pile up against a bound are fitted without leakage (see
            :mod:`sbi_astro.inference.transforms`; needs finite prior bounds), or
            ``"logit_cdf"``: the same on the scale of each marginal's prior CDF, i.e. on
            ``log theta`` for log-uniform marginals, whose posteriors then have similar
            widths across the prior.
        balance: NPE only: the weight ``lambda`` of balanced NPE (Delaunoy et al. 2023,
            "Balancing simulation-based inference for conservative posteriors",
            arXiv:2304.10978), ``0`` (default) for plain NPE.  The loss adds
            ``lambda * (E_joint[d] + E_marginal[d] - 1)^2`` with the classifier
            ``d = sigmoid(log q(theta | x) - log p(theta))``, the marginal pairs made by
            shifting theta by one row within each batch.  Balanced estimators lean
            conservative rather than overconfident; the paper uses ``lambda = 100``.  Needs
            ``theta_transform: none`` (the prior density is that of theta).
        ensemble: NPE only: train this many flows (seeds ``seed, seed + 1, ...``) on the
            same simulations and use their equal-weight mixture
            (:mod:`sbi_astro.inference.ensemble`); costs that many trainings.
        init_from: a run directory (``est.save(run_dir)``) whose weights start the training
            instead of a fresh initialisation: continue or fine-tune a run, e.g. one that hit
            ``max_epochs`` with its validation loss still falling.  The architecture (method,
            flow, sizes, embedding) must be the same, and the saved run one flow.  With
            ``ensemble: K`` every member starts from these weights and differs by its seed
            (batch order and validation split).
        seed: seeds initialisation and batching (global RNG state is restored afterwards).
        device: ``None`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
        mcmc_method, num_chains, warmup_steps, thin: posterior sampling for NLE/NRE:
            ``"ensemble"`` (the default: this project's vectorised ensemble MCMC over all
            chains and observations, started from an importance resample of prior draws,
            ``warmup_steps`` warm-up steps (four times as many where that start is poor)
            and a thinning of at least 2; see ``benchmarks/bench_mcmc.py`` for its speed
            against sbi's default at the same C2ST) or one of sbi's
            samplers (``"slice_np_vectorized"``, sbi's default, and the others sbi takes).
    """

    method: str = "npe"
    flow: str = "auto"
    hidden_features: int = 64
    hidden_layers: int = 2
    num_transforms: int = 5
    num_bins: int = 10
    coupling: bool | None = None
    embedding: Any = "default"
    batch_size: int | None = None
    learning_rate: float = 5e-4
    max_epochs: int = 1000
    stop_after_epochs: int = 20
    validation_fraction: float = 0.1
    lr_schedule: str = "constant"
    lr_patience: int = 5
    theta_transform: str = "auto"
    balance: float = 0.0
    ensemble: int = 1
    init_from: str | None = None
    seed: int = 0
    device: str | None = None
    mcmc_method: str = "ensemble"
    num_chains: int = 20
    warmup_steps: int = 50
    thin: int = 1

    def __post_init__(self) -> None:
        self._check_types()
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.flow not in FLOWS:
            raise ConfigError(f"flow must be one of {FLOWS}, got {self.flow!r}")
        if self.flow == "nsf_lu" and self.coupling is False:
            raise ConfigError("flow 'nsf_lu' is a coupling flow: leave coupling unset (or "
                              "true), or use flow 'nsf' for an autoregressive spline flow")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in _POSITIVE_INTS:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ConfigError("validation_fraction must be in (0, 0.5), got "
                              f"{self.validation_fraction}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {LR_SCHEDULES}, got "
                              f"{self.lr_schedule!r}")
        if self.theta_transform not in THETA_TRANSFORMS:
            raise ConfigError(f"theta_transform must be one of {THETA_TRANSFORMS}, got "
                              f"{self.theta_transform!r}")
        if self.theta_transform not in ("none", "auto") and self.method != "npe":
            raise ConfigError("theta_transform applies to NPE only (NLE/NRE sample with MCMC "
                              "inside the prior); set method: npe or theta_transform: none")
        if self.balance < 0:
            raise ConfigError(f"balance must be a number >= 0, got {self.balance!r}")
        if self.balance and (self.method != "npe" or
                             self.theta_transform not in ("none", "auto")):
            raise ConfigError("balance applies to NPE with theta_transform: none; set "
                              "balance: 0 or method: npe, theta_transform: none")
        if self.ensemble < 1:
            raise ConfigError(f"ensemble must be an integer >= 1, got {self.ensemble!r}")
        if self.ensemble > 1 and self.method != "npe":
            raise ConfigError("ensemble applies to NPE only; set method: npe or ensemble: 1")
        if not (self.embedding in ("default", "none", None) or isinstance(self.embedding, dict)):
            raise ConfigError("embedding must be 'default', 'none' or a {kind, kwargs} mapping")

    def _check_types(self) -> None:
        """Every field of the type it is declared with (YAML, ``--set`` and ``run.json``
        values arrive untyped): integers are integers, numbers finite numbers."""
        for name in (*_POSITIVE_INTS, "ensemble", "warmup_steps"):
            _require_int(name, getattr(self, name))
        if self.batch_size is not None:
            _require_int("batch_size", self.batch_size)
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        for name in ("learning_rate", "validation_fraction", "balance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        for name in ("method", "flow", "lr_schedule", "theta_transform", "mcmc_method"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.coupling is not None and not isinstance(self.coupling, bool):
            raise ConfigError(f"coupling must be true, false or null (coupling for NSF, "
                              f"autoregressive for MAF), got {self.coupling!r}")
        check_seed(self.seed, "seed")
        for name in ("device", "init_from"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{name} must be a non-empty string or null, got {value!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Builds a config from a mapping, naming unknown keys in the error."""
        if not isinstance(values, dict):
            raise ConfigError(f"training options must be a mapping of option: value, got "
                              f"{type(values).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; valid: {sorted(fields)}")
        try:
            return cls(**values)
        except TypeError as err:
            raise ConfigError(f"invalid training options: {err}") from err

    def resolved(self, num_params: int, num_simulations: int | None = None, *,
                 bounded_prior: bool = False, theta_transform: str = "none"
                 ) -> TrainingConfig:
        """This config with ``flow="auto"``, ``coupling=None``, ``batch_size=None`` and
        ``theta_transform="auto"`` made concrete (the NSF batch grows with
        ``num_simulations``; ``bounded_prior``: every prior marginal has finite bounds;
        ``theta_transform``: the simulator's ``default_theta_transform``; see the class
        docstring)."""
        if theta_transform not in CONCRETE_THETA_TRANSFORMS:
            raise ConfigError(f"a simulator's default_theta_transform must be one of "
                              f"{CONCRETE_THETA_TRANSFORMS}, got {theta_transform!r}")
        transform = self.theta_transform
        if transform == "auto":
            npe = self.method == "npe" and not self.balance and bounded_prior
            transform = theta_transform if npe else "none"
        flow = self.flow
        if flow == "auto":
            box = bounded_prior and self.method == "npe"
            flow = ("nsf" if num_params <= AUTO_NSF_MAX_DIM
                    else "nsf_lu" if box else "maf")
        coupling = self.coupling if self.coupling is not None else flow in ("nsf", "nsf_lu")
        batch = self.batch_size
        if batch is None:
            if flow in ("nsf", "nsf_lu"):
                n = 0 if num_simulations is None else int(num_simulations)
                batch = min(NSF_MAX_BATCH, max(64, n // 50))
            else:
                batch = 128
        return dataclasses.replace(self, flow=flow, coupling=coupling, batch_size=batch,
                                   theta_transform=transform)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
