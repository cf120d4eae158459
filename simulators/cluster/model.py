"""``cluster_gravothermal``: post-core-collapse dynamics of a star cluster (gas model).

An isolated, single-mass star cluster starts as a Plummer sphere, undergoes core collapse
at ~15-18 initial half-mass relaxation times, and is then powered by three-body binaries.
Above ``N ~ 7,000`` stars the post-collapse core does not expand smoothly but oscillates
chaotically (gravothermal oscillations; Bettwieser & Sugimoto 1984; Goodman 1987).  The
model is the conducting gas sphere of Lynden-Bell & Eggleton (1980) with binary heating
(Heggie & Ramamani 1989; Breen & Heggie 2012; :mod:`simulators.cluster._physics`), solved
with a fully implicit Newton scheme on Lagrangian shells (:mod:`simulators.cluster.solver`).
Binary heating in a real cluster comes in discrete events: a stochastic modulation of the
heating rate, of amplitude ``noise_amp``, spans deterministic (0) to noisy dynamics.

Parameters (prior):
    ``log10_N``: number of stars, ``U(3, 5)``.
    ``noise_amp``: stochastic heating amplitude ``a`` (dimensionless, ~1/sqrt(events per
    central relaxation time)), ``U(0, 1)``.
    ``heat_scale``: multiplier of the binary heating coefficient ``alpha = 90``,
    ``LogUniform(0.5, 2)``.

Observation ``x``, shape ``(3, n_times)``: ``log10`` central density, ``log10`` central
one-dimensional velocity dispersion and ``log10`` King core radius (N-body units, ``G = M
= 1``, virial radius 1), on a uniform time grid from ``t_start`` to ``t_end`` in units of
the initial half-mass relaxation time.

Presets (option ``preset``): ``"fast"`` (default; 24 shells from 1e-3 of the mass, coarse
steps, 0-25 t_rh: the collapse (at ~21 t_rh there) and the start of the post-collapse
phase, 1-2 s for 6 rows on one core, used by the contract tests and smoke runs; core
sizes below 1e-3 of the mass are unresolved and oscillations are damped there) and
``"science"`` (60 shells, steps of at most 30 central relaxation times, 15-65 t_rh:
resolves the gravothermal oscillations; minutes per batch on a CPU).

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("cluster_gravothermal", device="cpu", n_times=16)
    >>> theta = torch.tensor([[4.0, 0.0, 1.0]])
    >>> x = sim.simulate(theta, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape)
    (1, 3, 16)

References:
    Lynden-Bell & Eggleton (1980), MNRAS 191, 483.
    Bettwieser & Sugimoto (1984), MNRAS 208, 493.
    Goodman (1987), ApJ 313, 576.
    Heggie & Ramamani (1989), MNRAS 237, 757.
    Breen & Heggie (2012), MNRAS 420, 309.
    Pasquato et al. (2023), arXiv:2311.16306.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError
from sbi_astro.priors import LogUniform, Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator

from .solver import SolverSettings, evolve

PRESETS: dict[str, dict[str, float | int]] = {
    "fast": {"n_shells": 24, "m_inner": 1e-3, "target_change": 0.4, "dt_max": 0.5,
             "dt_trc": 1000.0, "t_start": 0.0, "t_end": 25.0},
    "science": {"n_shells": 60, "m_inner": 1e-5, "target_change": 0.08, "dt_max": 0.2,
                "dt_trc": 30.0, "t_start": 15.0, "t_end": 65.0},
}


@dataclass(frozen=True)
class ClusterOptions:
    """Options of :class:`ClusterGravothermal`.

    Attributes:
        preset: ``"fast"`` or ``"science"`` (see the module docstring); the fields below
            set to ``None`` take the preset's value.
        n_times: number of output times.
        t_start, t_end: output window in initial half-mass relaxation times.
        n_shells: Lagrangian shells.
        m_inner: mass fraction inside the innermost shell.
        target_change: wanted largest change of a log variable per step.
        dt_max: largest step (initial half-mass relaxation times).
        dt_trc: largest step in central relaxation times.
        max_steps: step cap per batch (an error names it when reached).
    """

    preset: str = "fast"
    n_times: int = 64
    t_start: float | None = None
    t_end: float | None = None
    n_shells: int | None = None
    m_inner: float | None = None
    target_change: float | None = None
    dt_max: float | None = None
    dt_trc: float | None = None
    max_steps: int = 40000

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; use one of {sorted(PRESETS)}")
        if self.n_times < 2:
            raise ConfigError(f"n_times must be >= 2, got {self.n_times}")
        if self.resolved("n_shells") < 8:
            raise ConfigError("n_shells must be >= 8")
        if not 0 < self.resolved("m_inner") < 0.1:
            raise ConfigError(f"m_inner must be in (0, 0.1), got {self.resolved('m_inner')}")
        if not 0 <= self.resolved("t_start") < self.resolved("t_end"):
            raise ConfigError("need 0 <= t_start < t_end (initial half-mass relaxation times)")

    def resolved(self, name: str) -> float | int:
        value = getattr(self, name)
        return PRESETS[self.preset][name] if value is None else value


class ClusterGravothermal(Simulator):
    """Conducting gas-sphere star cluster through core collapse and post-collapse."""

    name = "cluster_gravothermal"
    Options = ClusterOptions

    def build_prior(self) -> Prior:
        return Prior([
            Uniform("log10_N", 3.0, 5.0, description="log10 number of stars"),
            Uniform("noise_amp", 0.0, 1.0,
                    description="stochastic binary-heating amplitude (0: deterministic)"),
            LogUniform("heat_scale", 0.5, 2.0,
                       description="multiplier of the binary heating coefficient 90"),
        ])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (3, self.options.n_times)

    @property
    def settings(self) -> SolverSettings:
        o = self.options
        return SolverSettings(
            n_shells=int(o.resolved("n_shells")),
            m_inner=float(o.resolved("m_inner")),
            target_change=float(o.resolved("target_change")),
            dt_max=float(o.resolved("dt_max")),
            dt_trc=float(o.resolved("dt_trc")),
            max_steps=o.max_steps,
        )

    @property
    def times(self) -> Tensor:
        """Output times ``(n_times,)`` in initial half-mass relaxation times."""
        o = self.options
        return torch.linspace(float(o.resolved("t_start")), float(o.resolved("t_end")),
                              o.n_times, dtype=torch.float64)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        th = theta.to(torch.float64)
        settings = self.settings
        noise = rng.normal((settings.max_steps,), dtype=torch.float64)
        obs, _, _ = evolve(10.0 ** th[:, 0], th[:, 2], th[:, 1], noise,
                           self.times.to(theta.device), settings)
        return obs.to(self.dtype)

    def default_embedding(self) -> EmbeddingSpec:
        return EmbeddingSpec("timeseries", {"in_channels": 3, "length": self.options.n_times,
                                            "out_features": 16})

    def options_dict(self) -> dict:
        out = super().options_dict()
        for f in dataclasses.fields(ClusterOptions):
            if out.get(f.name) is None:
                out[f.name] = self.options.resolved(f.name)
        return out
