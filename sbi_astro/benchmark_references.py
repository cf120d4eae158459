"""Benchmark tasks of simulator plugins: numbered observations with converged, cached MCMC
reference posteriors (the astrophysical tasks of ``sbi-astro benchmark``, issue 24).

A task needs fixed, numbered observations and reference posterior samples for each
(:mod:`sbi_astro.pipeline.benchmark`).  A plugin gets them by mixing
:class:`BenchmarkReferences` into its simulator class, naming the folder of its references
file (``references_dir``) and giving its exact log posterior (``_log_posterior_fn``); the
class then joins ``sbi-astro benchmark --suite astro``.  For the simulator with its default
options and prior:

* the observations are rows of a campaign with seed :data:`BENCHMARK_SEED`
  (:func:`sbi_astro.rows.simulate_rows`): parameters drawn from the prior, noise from the
  simulator; re-simulating a row gives the stored observation exactly (the plugins' tests
  check this, so a change of the simulator cannot silently leave stale references);
* its reference posterior is emcee on the exact likelihood
  (:func:`sbi_astro.reference_mcmc.emcee_posterior`) with :data:`REFERENCE_SETTINGS`:
  64 walkers, chains of at least 160 integrated autocorrelation times after 2,000 burn-in
  steps, hence at least 64 x 160 = 10,240 effective samples; accepted only when the
  split-R-hat over the 128 half-chains is below :data:`RHAT_MAX` (1.01) and the effective
  sample size at least :data:`ESS_MIN` (10,000), else the chain is run twice as long (at
  most twice; with 80 autocorrelation times the split-R-hat was 1.01-1.02; not when the
  chain hit the step budget, or its autocorrelation time says it cannot get there).  The
  walkers start at the best of 4,000 prior draws, or where the plugin's
  :meth:`BenchmarkReferences.reference_start` says (e.g. around an optimum found by
  gradient descent, for a posterior far narrower than the prior);
* a row whose chain still fails these tests (e.g. a posterior with separated modes,
  which the ensemble's stretch move does not cross reliably) is not an observation of the
  task: the next row is tried, and the skipped rows are stored (``skipped_rows``) with
  their split-R-hat, so the task's observations are the first ten rows whose reference is
  demonstrably converged;
* 10,000 draws taken evenly from the post-burn-in chain (stored in a seeded random order,
  :func:`sample_order`, so that any prefix spreads over the whole chain), the true
  parameters, the observations, the campaign rows and every chain's diagnostics (tau, ESS,
  split-R-hat, steps, acceptance) are stored in the plugin's ``references_dir`` as
  ``<simulator>[_<observation>].npz`` (float32 samples; no pickles), with the simulator's
  spec and data files' SHA-256 it was built for.  A build keeps each finished row in
  ``<file>.rows/`` and resumes from there.

The references only apply to the simulator they were built for: an instance with other
options (except those named in ``reference_ignored_options``, which do not change the
numbers), another observation or a user prior gets a :class:`NotAvailableError` naming the
difference.  Rebuild with ``python -m sbi_astro.benchmark_references NAME --overwrite``
(times per plugin in docs/benchmark.md; without ``--overwrite`` an existing file is refused
with exit code 2, as is ``--observations`` below 1, before any chain runs).

Example:
    >>> from sbi_astro.registry import list_simulators, simulator_class
    >>> tasks = [n for n in list_simulators()
    ...          if issubclass(simulator_class(n), BenchmarkReferences)]
    >>> all(simulator_class(n).benchmark_suite == "astro" for n in tasks)
    True
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .atomic import atomic_write
from .errors import ConfigError, DataFormatError, NotAvailableError
from .outputs import check_output_file
from .reference_mcmc import EmceeSettings, emcee_posterior
from .rows import simulate_rows

BENCHMARK_SEED = 24  # the campaign whose first rows are the benchmark observations
NUM_OBSERVATIONS = 10
NUM_REFERENCE_SAMPLES = 10_000
REFERENCE_SETTINGS = EmceeSettings(walkers=64, burn=2000, thin=1, min_tau=160,
                                   max_steps=200_000)
RHAT_MAX = 1.01
ESS_MIN = 10_000
DIAGNOSTICS = ("tau", "ess", "split_rhat", "steps", "acceptance", "chain_over_tau", "seconds")


REBUILD = "python -m sbi_astro.benchmark_references"


def reference_path(sim: Any) -> Path:
    """The references file of ``sim`` (see :meth:`BenchmarkReferences.references_file`)."""
    return sim.references_file()


def fingerprint(sim: Any) -> dict[str, Any]:
    """What the references depend on: options (but those in ``reference_ignored_options``),
    prior overrides, data files' SHA-256."""
    ignored = set(getattr(sim, "reference_ignored_options", ()))
    options = {k: v for k, v in sim.options_dict().items() if k not in ignored}
    return {"name": sim.name, "options": options, "prior": dict(sim.prior_overrides),
            "data_sha256": {k: v["sha256"] for k, v in sorted(sim.data_files().items())}}


@functools.cache
def _load(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a references file, checked (keys, matching shapes, finite values)."""
    rebuild = f"rebuild it with `{REBUILD} NAME`"
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DataFormatError(f"{path} is not a readable references file ({err}); "
                              f"{rebuild}") from None
    need = {"observations", "true_parameters", "samples", "fingerprint", "rows",
            "skipped_rows", *DIAGNOSTICS}
    if not need <= set(data):
        raise DataFormatError(f"{path} lacks {sorted(need - set(data))}; {rebuild}")
    n = data["observations"].shape[0]
    s = data["samples"]
    if (s.ndim != 3 or s.shape[0] != n or data["true_parameters"].shape != (n, s.shape[2])
            or data["rows"].shape != (n,) or not np.isfinite(s).all()):
        raise DataFormatError(f"{path} holds inconsistent or non-finite arrays; {rebuild}")
    return data


def _difference(built: dict[str, Any], mine: dict[str, Any]) -> str:
    """What differs between two fingerprints, in words."""
    opts = [f"{k}={v!r} (references: {built['options'].get(k)!r})"
            for k, v in mine["options"].items() if built["options"].get(k) != v]
    if mine["prior"] != built["prior"]:
        opts.append(f"your prior {sorted(mine['prior'])}")
    if mine["data_sha256"] != built["data_sha256"]:
        opts.append("other data files")
    return "; ".join(opts) or "another simulator version"


class BenchmarkReferences:
    """Mixin of a simulator with benchmark references: :meth:`reference_observation`,
    :meth:`reference_parameters`, :meth:`reference_samples` and
    :meth:`reference_diagnostics` of the numbered benchmark observations; the class is a
    task of ``sbi-astro benchmark --suite astro``.

    A plugin sets ``references_dir`` (the folder of its shipped file) and implements
    ``_log_posterior_fn(x_row)``: numpy ``(W, D) -> (W,)`` float64 unnormalised log
    posterior of one observation, ``-inf`` outside the prior's support."""

    benchmark_suite = "astro"
    #: the folder of the plugin's references file
    references_dir: Path
    #: options that do not change the numbers (e.g. compiling), left out of the fingerprint
    reference_ignored_options: tuple[str, ...] = ()

    def references_file(self) -> Path:
        """The references file: ``references_dir / "<name>.npz"``."""
        return self.references_dir / f"{self.name}.npz"  # type: ignore[attr-defined]

    def references_refusal(self) -> str | None:
        """Why this instance can have no references whatever its options (e.g. it holds the
        user's own data), or ``None``."""
        return None

    def reference_builder(self) -> Any:
        """The simulator whose likelihood the reference chains evaluate: this one by
        default; a plugin may return a faster twin with the same numbers (e.g. compiled)."""
        return self

    def reference_start(self, log_post: Any, x_row: Tensor, walkers: int, seed: int
                        ) -> np.ndarray | None:
        """The walkers' starting points ``(walkers, D)``, or ``None`` for the best of 4,000
        prior draws (:func:`~sbi_astro.reference_mcmc.emcee_posterior`)."""
        return None

    def _references(self) -> dict[str, np.ndarray]:
        name = self.name  # type: ignore[attr-defined]
        refusal = self.references_refusal()
        if refusal is not None:
            raise NotAvailableError(f"{name}: {refusal}")
        path = reference_path(self)
        if not path.is_file():
            raise NotAvailableError(
                f"{name} has no benchmark references for this set-up ({path} is missing); "
                f"build them with `{REBUILD} {name}`")
        data = _load(path)
        built = json.loads(str(data["fingerprint"]))
        mine = fingerprint(self)
        if built != mine:
            raise NotAvailableError(f"{name}: the benchmark references were built for "
                                    f"another set-up ({_difference(built, mine)}); use the "
                                    "simulator's default options and prior, or rebuild them")
        return data

    def _row(self, key: str, i: int) -> np.ndarray:
        data = self._references()
        n = data["observations"].shape[0]
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 1 <= i <= n:
            raise ConfigError(f"observation number must be an integer in 1..{n}, got {i!r}")
        return data[key][i - 1]

    def _tensor(self, a: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)  # type: ignore[attr-defined]

    def reference_observation(self, i: int) -> Tensor:
        """Benchmark observation ``i`` (1..10), of the simulator's ``event_shape``."""
        return self._tensor(self._row("observations", i))

    def reference_parameters(self, i: int) -> Tensor:
        """The parameters ``(D,)`` that generated benchmark observation ``i``."""
        return self._tensor(self._row("true_parameters", i))

    def reference_samples(self, i: int, num_samples: int | None = None) -> Tensor:
        """The first ``num_samples`` (default all 10,000) reference posterior samples
        ``(S, D)`` of benchmark observation ``i``."""
        samples = self._row("samples", i)
        if num_samples is not None:
            if not 1 <= num_samples <= samples.shape[0]:
                raise ConfigError(f"num_samples must be in 1..{samples.shape[0]}, got "
                                  f"{num_samples}")
            samples = samples[:num_samples]
        return self._tensor(samples)

    def reference_diagnostics(self, i: int) -> dict[str, float]:
        """The MCMC diagnostics of observation ``i``'s reference chain, and its campaign
        row."""
        return {**{k: float(self._row(k, i)) for k in DIAGNOSTICS},
                "row": int(self._row("rows", i))}


def converged_posterior(sim: Any, x: Tensor, seed: int, *,
                        settings: EmceeSettings = REFERENCE_SETTINGS, retries: int = 2,
                        num_samples: int = NUM_REFERENCE_SAMPLES, rhat_max: float = RHAT_MAX,
                        ess_min: float = ESS_MIN) -> tuple[Tensor, dict[str, Any]]:
    """``num_samples`` draws of the exact posterior of one observation ``x`` and their
    chain's diagnostics, the chain lengthened (``min_tau`` doubled, at most ``retries``
    times, not when the chain already hit ``max_steps`` or could not reach it) until
    split-R-hat < ``rhat_max`` and ESS >= ``ess_min``; ``diag["converged"]`` says whether it
    got there."""
    builder = sim.reference_builder()
    log_post = builder._log_posterior_fn(x.cpu())
    start = builder.reference_start(log_post, x.cpu(), settings.walkers, seed)
    for attempt in range(retries + 1):
        t0 = time.perf_counter()
        samples, diag = emcee_posterior(log_post, sim.prior, num_samples, seed, settings,
                                        start=start)
        diag = {**diag, "seconds": time.perf_counter() - t0,
                "converged": diag["split_rhat"] < rhat_max and diag["ess"] >= ess_min}
        if diag["converged"] or diag["hopeless"] or diag["steps"] >= settings.max_steps:
            break  # converged, or a longer chain cannot be run
        if attempt < retries:
            settings = dataclasses.replace(settings, min_tau=2 * settings.min_tau)
    return samples, diag


def build_references(sim: Any, path: Path | None = None, *,
                     num_observations: int = NUM_OBSERVATIONS,
                     settings: EmceeSettings = REFERENCE_SETTINGS,
                     num_samples: int = NUM_REFERENCE_SAMPLES, max_rows: int = 30,
                     rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN,
                     log: Any = print) -> Path:
    """Simulates the benchmark observations of ``sim`` (rows of the campaign with seed
    :data:`BENCHMARK_SEED`), runs their converged reference chains, skipping rows whose
    chain does not converge, and writes the file atomically (default
    :func:`reference_path`).  Each finished row is kept in ``<file>.rows/`` (atomically) and
    reused by a re-run (with the decision taken then: delete the folder to start over); the
    folder is removed once the file is written.  ``rhat_max`` and ``ess_min`` are the
    convergence test (the shipped files use the module's values).

    Raises:
        NotAvailableError: fewer than ``num_observations`` of the first ``max_rows`` rows
        converged.
    """
    path = reference_path(sim) if path is None else Path(path)
    parts = path.with_name(path.name + ".rows")
    parts.mkdir(parents=True, exist_ok=True)
    kept: list[dict[str, Any]] = []
    skipped: list[tuple[int, float]] = []
    for row in range(max_rows):
        if len(kept) == num_observations:
            break
        part = parts / f"row-{row}.npz"
        item = _read_part(part)
        if item is None:
            theta, x = simulate_rows(sim, BENCHMARK_SEED, row, row + 1)
            s, d = converged_posterior(sim, x[0], seed=BENCHMARK_SEED * 1000 + row,
                                       settings=settings, num_samples=num_samples,
                                       rhat_max=rhat_max, ess_min=ess_min)
            if d["converged"]:
                item = {"converged": np.array(True), "x": x[0].cpu().numpy(),
                        "theta": theta[0].cpu().numpy(),
                        "samples": s.numpy().astype(np.float32),
                        **{k: np.array(d[k], dtype=np.float64) for k in DIAGNOSTICS}}
            else:
                reason = (f"{sim.name}: the reference chain did not converge (split-R-hat "
                          f"{d['split_rhat']:.4f}, ESS {d['ess']:.0f}, tau {d['tau']:.0f}) "
                          f"after {d['steps']} steps")
                item = {"converged": np.array(False), "reason": np.array(reason),
                        "split_rhat": np.array(d["split_rhat"])}
            with atomic_write(part) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **item)
        if bool(item["converged"]):
            kept.append({"row": row, **item})
            log(f"  {sim.name} row {row} (observation {len(kept)}): tau {float(item['tau']):.0f}, "
                f"ESS {float(item['ess']):.0f}, split-R-hat {float(item['split_rhat']):.4f}, "
                f"{float(item['steps']):.0f} steps, {float(item['seconds']):.0f} s")
        else:
            skipped.append((row, float(item["split_rhat"])))
            log(f"  {sim.name} row {row} skipped: {item['reason']}")
    if len(kept) < num_observations:
        raise NotAvailableError(f"{sim.name}: only {len(kept)} of the first {max_rows} rows have "
                                "a converged reference chain")
    # the draws in a seeded random order, so that any prefix (reference_samples(i, n))
    # spreads over the whole chain
    order = sample_order(num_samples)
    arrays = {"observations": np.stack([k["x"] for k in kept]),
              "true_parameters": np.stack([k["theta"] for k in kept]),
              "samples": np.stack([k["samples"][order] for k in kept]),
              "rows": np.array([k["row"] for k in kept], dtype=np.int64),
              "skipped_rows": np.array([r for r, _ in skipped], dtype=np.int64),
              "skipped_split_rhat": np.array([h for _, h in skipped], dtype=np.float64),
              "fingerprint": np.array(json.dumps(fingerprint(sim), sort_keys=True)),
              "settings": np.array(json.dumps(dataclasses.asdict(settings))),
              **{k: np.array([float(item[k]) for item in kept], dtype=np.float64)
                 for k in DIAGNOSTICS}}
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    _load.cache_clear()
    for part in parts.glob("row-*.npz"):
        part.unlink()
    parts.rmdir()
    return path


def sample_order(num_samples: int) -> np.ndarray:
    """The seeded order in which a file stores each chain's evenly spaced draws."""
    return np.random.default_rng(BENCHMARK_SEED).permutation(num_samples)


def _read_part(path: Path) -> dict[str, np.ndarray] | None:
    """A finished row kept by an earlier build, or ``None`` when absent or unreadable (then
    the row is computed again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            item = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    need = {"converged", "split_rhat"} | ({"x", "theta", "samples", *DIAGNOSTICS}
                                         if item.get("converged", False) else {"reason"})
    return item if need <= set(item) else None


def main(argv: list[str] | None = None) -> int:
    """``python -m sbi_astro.benchmark_references NAME [--overwrite] [--output F]``: builds the
    references of a registered simulator that has them, with its default options."""
    from . import benchmark_references as module  # the plugins' mixin, not __main__'s copy
    from .registry import list_simulators, load_simulator, simulator_class

    names = [n for n in list_simulators()
             if issubclass(simulator_class(n), module.BenchmarkReferences)]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=names)
    parser.add_argument("--observations", type=int, default=NUM_OBSERVATIONS)
    parser.add_argument("--output", type=Path, default=None,
                        help="where to write (default: the file the plugin ships)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing references file")
    args = parser.parse_args(argv)
    if args.observations < 1:  # checked before any chain runs (hours of work)
        parser.error(f"--observations must be at least 1, got {args.observations}")
    sim = load_simulator(args.name, device="cpu")
    try:  # not a folder, in a writable folder, absent unless --overwrite
        path = check_output_file(module.reference_path(sim) if args.output is None
                                 else args.output, overwrite=args.overwrite, flag="--output")
    except ConfigError as err:
        parser.error(str(err))
    torch.set_num_threads(1)
    path = module.build_references(sim, path, num_observations=args.observations)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
