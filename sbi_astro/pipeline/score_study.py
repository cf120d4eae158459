"""Score-prior studies: a pixel-level inverse problem solved with a learned diffusion prior,
from a YAML file to a report with high-dimensional calibration.

Schema (``solver: score`` marks it; unknown keys are errors)::

    name: lensing-source-score
    solver: score
    sources: {simulator: galsim_sources, options: {num_pix: 32}, num_simulations: 2000,
              seed: 0, chunk_size: 250}         # the prior's training images (a campaign)
    # or your own: sources: {images: my_galaxies.npy}  (N, H, H), .npy or a FITS cube,
    # relative to the YAML; its last test.num_images (and the test.num_validation before
    # them) are held out
    prior: {sde: ve, sigma_min: 0.01, sigma_max: 10.0, channels: [16, 32, 64],
            data_std: 0.2, steps: 800, batch_size: 16, lr: 0.002, seed: 0}
    operator: {name: lensing, options: {...}}  # y = A x + noise; A from sbi_astro.operators
    noise_sigma: 0.05                           # Gaussian noise of y, in normalised units
    test: {num_images: 8, seed: 200, chains: 16, steps: 300, final_steps: 100,
           t_min: 0.01, likelihood: auto, cg_iters: 20, num_validation: 5,
           validation_seed: 100}
    device: null
    output: lensing-source-score-output

Stages (each reused when a re-run finds it): ``sources.h5`` (a campaign of the source
simulator; each image divided by its peak), ``prior/`` (a U-Net score model trained by
streaming the store, :func:`~sbi_astro.solvers.train_score_model`), ``test.h5`` (held-out
images from another seed), then the posterior of every test image given ``y = A x + n`` by
reverse-diffusion sampling with the convolved likelihood and the report: TARP over all pixels,
z-scores, maps, reduced chi^2 (:func:`~sbi_astro.diagnostics.images.image_calibration`), and
the posterior mean's RMS error against gradient-regularised least squares through the same
operator, its strength tuned on ``num_validation`` images of a third seed
(:mod:`sbi_astro.solvers.baseline`).

The convolved likelihood is evaluated either with the operator's matrix, built once by
applying it to every basis image and diagonalised
(:class:`~sbi_astro.solvers.GaussianLinearLikelihood`: exact; on the 32 x 32 lensing
problem 0.14 ms per chain and step against 3.3 ms for 20 CG iterations), or matrix free
by conjugate gradients (:class:`~sbi_astro.solvers.LinearOperatorLikelihood`,
``cg_iters`` iterations).
``test.likelihood: auto`` (the default) takes the matrix when it holds at most
``DENSE_MAX_ENTRIES`` numbers (a 64 x 64 image from a 64 x 64 source), ``dense`` or ``cg``
force one.  The prior's ``sigma_min`` must lie below the posterior's pixel standard
deviation (``t_min``'s noise level ``sigma_min (sigma_max / sigma_min)^t_min`` is added to
every sample): with ``sigma_min`` 0.01 on a lensing problem whose posterior pixel std is
0.018, samples come out 25 % too wide (``python -m benchmarks score_lensing_exact``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..campaign import run_campaign
from ..device import resolve_device
from ..diagnostics.images import image_calibration
from ..errors import ConfigError, DataFormatError
from ..operators import check_operator_options, get_operator
from ..outputs import check_output_dir
from ..provenance import package_versions
from ..random import RowRandom, check_seed, fold, key_from_seed
from ..registry import load_simulator
from ..report import image_calibration_section, write_sections_report
from ..solvers import (
    VESDE,
    VPSDE,
    GaussianLinearLikelihood,
    LinearOperatorLikelihood,
    ScoreModel,
    regularised_least_squares,
    sample_posterior,
    train_score_model,
    tune_regularisation,
)
from ..solvers.io import load_score_model, save_score_model
from ..store import SimulationStore
from ..store_batches import StoreBatches
from ..user_arrays import read_user_array
from .study import _check_keys, _dataclass_section, _solver_top_level, read_study_yaml

#: held-out images whose chains are integrated (and checkpointed) together
IMAGES_PER_CHUNK = 4
DENSE_MAX_ENTRIES = 1 << 24  # the operator's matrix (M x D) in float32: 64 MiB
LIKELIHOODS = ("auto", "dense", "cg")
TOP_KEYS = {"name", "solver", "sources", "prior", "operator", "noise_sigma", "test", "device",
            "output"}


@dataclasses.dataclass(frozen=True)
class SourcesSection:
    simulator: str = "galsim_sources"
    images: str | None = None  # your own training images (.npy or FITS cube) instead
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    num_simulations: int = 2000
    seed: int = 0
    chunk_size: int = 250


@dataclasses.dataclass(frozen=True)
class PriorSection:
    sde: str = "ve"
    sigma_min: float = 0.01
    sigma_max: float = 10.0
    channels: tuple[int, ...] = (16, 32, 64)
    data_std: float = 0.2
    ema_decay: float = 0.999
    steps: int = 800
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class TestSection:
    num_images: int = 8
    seed: int = 200
    chains: int = 16
    steps: int = 300
    final_steps: int = 100
    t_min: float = 0.01
    likelihood: str = "auto"
    cg_iters: int = 20
    num_validation: int = 5
    validation_seed: int = 100


@dataclasses.dataclass(frozen=True)
class ScoreStudy:
    """A validated score-prior study (see the module docstring)."""

    name: str
    sources: SourcesSection
    prior: PriorSection
    operator: str
    operator_options: dict[str, Any]
    noise_sigma: float
    test: TestSection
    device: str | None = None
    output: str = "score-study-output"

    @classmethod
    def from_dict(cls, doc: Any, *, source: str = "study") -> ScoreStudy:
        """Validates ``doc`` (every section, the operator's options) before any work.

        Raises:
            ConfigError: naming the section and key.
        """
        top = _solver_top_level(doc, source, "score", TOP_KEYS)
        sections = {key: _dataclass_section(source, key, top.get(key), kind)
                    for key, kind in (("sources", SourcesSection), ("prior", PriorSection),
                                      ("test", TestSection))}
        op = _check_keys("operator", top.get("operator"), {"name", "options"})
        if "name" not in op:
            raise ConfigError(f"{source}: 'operator' needs a name (e.g. lensing)")
        options = dict(op.get("options") or {})
        check_operator_options(op["name"], options)
        sigma = top.get("noise_sigma", 0.05)
        if not isinstance(sigma, int | float) or isinstance(sigma, bool) or not sigma > 0:
            raise ConfigError(f"{source}: 'noise_sigma' must be a positive number, got "
                              f"{sigma!r}")
        study = cls(name=str(top.get("name", "score-study")), sources=sections["sources"],
                    prior=dataclasses.replace(sections["prior"], channels=tuple(
                        sections["prior"].channels) if isinstance(
                        sections["prior"].channels, list | tuple) else sections["prior"].channels),
                    operator=op["name"], operator_options=options, noise_sigma=float(sigma),
                    test=sections["test"], device=top.get("device"),
                    output=str(top.get("output", "score-study-output")))
        study._check(source)
        return study

    def _check(self, source: str) -> None:
        positive = [("sources.num_simulations", self.sources.num_simulations),
                    ("sources.chunk_size", self.sources.chunk_size),
                    ("prior.steps", self.prior.steps), ("prior.batch_size", self.prior.batch_size),
                    ("test.num_images", self.test.num_images), ("test.chains", self.test.chains),
                    ("test.steps", self.test.steps), ("test.cg_iters", self.test.cg_iters),
                    ("test.num_validation", self.test.num_validation)]
        for key, value in positive:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{source}: '{key}' must be a positive integer, got {value!r}")
        if self.test.num_images < 2 or self.test.chains < 2:
            raise ConfigError(f"{source}: 'test.num_images' and 'test.chains' must be >= 2 "
                              "(calibration compares several images and samples)")
        if self.prior.sde not in ("ve", "vp"):
            raise ConfigError(f"{source}: 'prior.sde' must be 've' or 'vp', got "
                              f"{self.prior.sde!r}")
        numbers = [("prior.sigma_min", self.prior.sigma_min),
                   ("prior.sigma_max", self.prior.sigma_max),
                   ("prior.data_std", self.prior.data_std), ("prior.lr", self.prior.lr),
                   ("test.t_min", self.test.t_min)]
        for key, value in numbers:
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"{source}: '{key}' must be a positive number, got {value!r}")
        if not self.test.t_min < 1:
            raise ConfigError(f"{source}: 'test.t_min' must be below 1, got {self.test.t_min}")
        if self.test.likelihood not in LIKELIHOODS:
            raise ConfigError(f"{source}: 'test.likelihood' must be one of "
                              f"{', '.join(LIKELIHOODS)}, got {self.test.likelihood!r}")
        if not isinstance(self.test.final_steps, int) or self.test.final_steps < 0:
            raise ConfigError(f"{source}: 'test.final_steps' must be an integer >= 0, got "
                              f"{self.test.final_steps!r}")
        for key in ("seed", "validation_seed"):
            check_seed(getattr(self.test, key), f"{source}: 'test.{key}'")
        check_seed(self.prior.seed, f"{source}: 'prior.seed'")
        check_seed(self.sources.seed, f"{source}: 'sources.seed'")
        if not isinstance(self.sources.options, dict):
            raise ConfigError(f"{source}: 'sources.options' must be a mapping")
        try:  # the prior's network and SDE, built once to check them (cheap)
            _new_prior(self.prior)
        except ConfigError as err:
            raise ConfigError(f"{source}: section 'prior': {err}") from None
        if self.sources.num_simulations < 2 * self.prior.batch_size:
            raise ConfigError(f"{source}: 'sources.num_simulations' must be at least twice "
                              "'prior.batch_size' (some images validate)")
        if self.sources.images is None:
            load_simulator(self.sources.simulator, device="cpu", **self.sources.options)
        else:
            read_images(self.sources.images)  # checked before any work

    @classmethod
    def from_yaml(cls, path: str | Path) -> ScoreStudy:
        """The study in ``path``; a relative ``sources.images`` is found beside it."""
        doc = read_study_yaml(path)
        images = doc.get("sources", {}).get("images") if isinstance(doc, dict) and \
            isinstance(doc.get("sources"), dict) else None
        if isinstance(images, str) and not Path(images).expanduser().is_absolute():
            doc = {**doc, "sources": {**doc["sources"],
                                      "images": str(Path(path).resolve().parent / images)}}
        return cls.from_dict(doc, source=str(path))


def is_score_study(path: str | Path) -> bool:
    """Whether the YAML at ``path`` is a score-prior study (``solver: score``)."""
    doc = read_study_yaml(path)
    return isinstance(doc, dict) and doc.get("solver") == "score"


def _peak_normalised(x: torch.Tensor) -> torch.Tensor:
    """Images ``(B, H, W)`` divided by their peak, with a channel axis: ``(B, 1, H, W)``."""
    return (x / x.amax((-1, -2), keepdim=True).clamp_min(1e-30))[:, None].float()


def run_score_study(study: ScoreStudy, *, output: str | Path | None = None,
                    progress: bool = True, log: Callable[[str], Any] = print
                    ) -> dict[str, Any]:
    """Runs a score-prior study; returns the paths of its report and metrics, and the
    headline numbers."""
    out = check_output_dir(output if output is not None else study.output, kind="study",
                           overwrite=True)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(study.device)
    src, t = study.sources, study.test
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if src.images is not None:  # the user's images: the last ones are held out
        images = _peak_normalised(torch.from_numpy(read_images(src.images)))
        n_train = images.shape[0] - t.num_images - t.num_validation
        if n_train < 2 * study.prior.batch_size:
            raise ConfigError(f"{src.images} holds {images.shape[0]} images; after holding "
                              f"out {t.num_images} test and {t.num_validation} validation "
                              f"images, fewer than 2 x prior.batch_size remain to train on; "
                              "give more images or lower those numbers")
        log(f"[1/4] {images.shape[0]} images from {src.images}: {n_train} train the prior, "
            f"{t.num_validation} tune the baseline, {t.num_images} are held out")
        data: Any = images[:n_train]
        x_val = images[n_train:n_train + t.num_validation].to(dev)
        truth = images[n_train + t.num_validation:].to(dev)
        what, example = f"images of {Path(src.images).name}", None
    else:
        sim = load_simulator(src.simulator, device="cpu", **src.options)
        log(f"[1/4] simulating {src.num_simulations} x {sim.name} -> {out / 'sources.h5'}")
        run_campaign(out / "sources.h5", sim, num_simulations=src.num_simulations,
                     seed=src.seed, chunk_size=src.chunk_size, progress=progress).close()
        data = StoreBatches(out / "sources.h5", batch_size=study.prior.batch_size,
                            validation_fraction=0.01, seed=study.prior.seed)
        x_val = _campaign_images(out / "validation.h5", sim, t.num_validation,
                                 t.validation_seed, dev)
        truth = _campaign_images(out / "test.h5", sim, t.num_images, t.seed, dev)
        what, example = f"{sim.name} images", (lambda theta, x: _peak_normalised(x))
    timings["sources_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    prior, training = _prior(study, data, example, out / "prior", dev, log)
    timings["prior_s"] = time.perf_counter() - t0
    log(f"[3/4] {t.num_images} held-out images through '{study.operator}', "
        f"{t.chains} posterior chains each")
    op = get_operator(study.operator, **study.operator_options)
    op = op.to(dev) if hasattr(op, "to") else op
    y = _observe(op, truth, t.seed, study.noise_sigma)
    likelihood, how = _likelihood(op, t, tuple(truth.shape[1:]), tuple(y.shape[1:]),
                                  study.noise_sigma, dev)
    log(f"      convolved likelihood: {how}")
    t0 = time.perf_counter()
    chains_ckpt = out / "samples-checkpoint"  # a killed run resumes from the images done
    samples = sample_posterior(prior, likelihood, y, num_samples=t.chains, steps=t.steps,
                               corrector_steps=0, final_steps=t.final_steps, t_min=t.t_min,
                               event_shape=tuple(truth.shape[1:]), seed=t.seed, device=dev,
                               chunk_size=t.chains * IMAGES_PER_CHUNK, checkpoint=chains_ckpt,
                               log=lambda line: log(f"      {line}"))
    timings["sample_s"] = time.perf_counter() - t0
    log("[4/4] calibrating and writing the report")
    mean = samples.mean(0)
    with torch.no_grad():
        model = op(mean)
    res = image_calibration(samples[:, :, 0], truth[:, 0], data=y[:, 0], model=model[:, 0],
                            noise_sigma=study.noise_sigma, seed=t.seed)
    rmse = float((mean - truth).pow(2).mean().sqrt())
    # the baseline: gradient-regularised least squares, its strength tuned on the
    # validation images, through the same operator
    y_val = _observe(op, x_val, t.validation_seed, study.noise_sigma)
    lams = [10.0**k for k in range(-2, 6)]
    with torch.no_grad():
        lam, val_errors = tune_regularisation(op, op.adjoint, y_val, x_val, study.noise_sigma,
                                              lams)
        base = regularised_least_squares(op, op.adjoint, y, study.noise_sigma, lam)
    rmse_base = float((base - truth).pow(2).mean().sqrt())
    baseline = {"rmse_regularised_ls": rmse_base, "lambda": lam,
                "validation_rmse_per_lambda": dict(zip(map(str, lams), val_errors,
                                                       strict=True)),
                "rmse_ratio_posterior_mean_to_baseline": rmse / rmse_base}
    section = image_calibration_section(
        res, title="Source pixels",
        text=f"Posterior of {t.num_images} held-out {what} (peak-normalised) given "
             f"y = A x + n through the '{study.operator}' operator, noise sigma "
             f"{study.noise_sigma:g}: {t.chains} reverse-diffusion chains each. Pixel RMS error "
             f"of the posterior mean: {rmse:.4f}, against {rmse_base:.4f} for "
             f"gradient-regularised least squares through the same operator (strength "
             f"{lam:g}, tuned on {t.num_validation} validation images): a ratio of "
             f"{rmse / rmse_base:.2f}.")
    files = {}
    if src.images is not None:
        files["images"] = {"path": str(src.images), "sha256": _sha256(Path(src.images))}
    metrics = {"name": study.name, "rmse_posterior_mean": rmse, **baseline, **res.to_dict(),
               "likelihood": how,
               "training": training, "timings": timings,
               "provenance": {
                   "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                   "study": dataclasses.asdict(study), "data_files": files,
                   "device": str(dev), "packages": package_versions(),
                   "platform": platform.platform()}}
    report, metrics_path = write_sections_report(
        [section], out / "report", title=f"Score-prior study: {study.name}",
        subtitle=f"{t.num_images} held-out images, {t.chains} posterior samples each, "
                 f"prior trained on {what}", metrics=metrics)
    shutil.rmtree(chains_ckpt, ignore_errors=True)  # the report is written: not needed
    return {"report": str(report), "metrics": str(metrics_path), "rmse": rmse,
            "rmse_baseline": rmse_base, "tarp_ks_pvalue": res.tarp.ks_pvalue,
            "z_std": res.z_std}


def _prior(study: ScoreStudy, data: Any, example: Any, prior_dir: Path, dev: torch.device,
           log: Callable[[str], Any]) -> tuple[ScoreModel, dict[str, Any]]:
    """The score prior saved in ``prior_dir``, or one trained on ``data`` (a tensor of
    images or a store's batches) and saved there."""
    if (prior_dir / "score_model.json").exists():
        log(f"[2/4] reusing the score prior in {prior_dir}")
        return load_score_model(prior_dir, device=dev), prior_metadata(prior_dir)
    p = study.prior
    how = "streamed from the store" if isinstance(data, StoreBatches) else "in memory"
    log(f"[2/4] training the score prior ({p.steps} steps of {p.batch_size} images, {how})")
    torch.manual_seed(p.seed)  # the network's initial weights
    prior = _new_prior(p)
    checkpoint = prior_dir.parent / "prior-checkpoint"  # a killed run resumes from it
    summary = train_score_model(prior, data, steps=p.steps, batch_size=p.batch_size, lr=p.lr,
                                seed=p.seed, device=dev, example=example, log=log,
                                log_every=max(1, p.steps // 10), checkpoint=checkpoint,
                                checkpoint_every=max(1, min(500, p.steps // 10)))
    tail = summary["loss"][-max(1, p.steps // 10):]
    training = {"steps": p.steps, "seconds": summary["seconds"],
                "final_loss": sum(tail) / len(tail)}
    save_score_model(prior, prior_dir, metadata=training, overwrite=True)
    shutil.rmtree(checkpoint, ignore_errors=True)  # the prior is saved: no longer needed
    return prior, training


def _new_prior(p: PriorSection) -> ScoreModel:
    """An untrained U-Net score prior of the ``prior`` section."""
    if not isinstance(p.channels, tuple) or not p.channels or not all(
            isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in p.channels):
        raise ConfigError(f"channels must be a list of positive integers, got {p.channels!r}")
    sde = VESDE(p.sigma_min, p.sigma_max) if p.sde == "ve" else VPSDE()
    return ScoreModel(sde, {"kind": "unet", "in_channels": 1, "channels": list(p.channels)},
                      data_std=p.data_std, ema_decay=p.ema_decay)


def _likelihood(op: Any, t: TestSection, event_shape: tuple[int, ...],
                obs_shape: tuple[int, ...], sigma: float, dev: torch.device
                ) -> tuple[Any, str]:
    """The convolved likelihood of ``y = op(x) + N(0, sigma^2)`` (see the module docstring)
    and a line saying which form it takes."""
    d, m = math.prod(event_shape), math.prod(obs_shape)
    dense = t.likelihood == "dense" or (t.likelihood == "auto" and d * m <= DENSE_MAX_ENTRIES)
    if not dense:
        return (LinearOperatorLikelihood(op, sigma, obs_shape, adjoint=op.adjoint,
                                         cg_iters=t.cg_iters, cg_tol=1e-3),
                f"matrix free, {t.cg_iters} conjugate-gradient iterations at most")
    return (GaussianLinearLikelihood(operator_matrix(op, event_shape, device=dev), sigma,
                                     obs_shape=obs_shape),
            f"the operator's {m} x {d} matrix, diagonalised once")


def operator_matrix(op: Any, event_shape: tuple[int, ...], *, device: torch.device,
                    batch: int = 256) -> torch.Tensor:
    """The matrix ``(M, D)`` of a linear operator, column ``j`` being ``op`` of the
    ``j``-th basis image (applied ``batch`` columns at a time)."""
    d = math.prod(event_shape)
    cols = []
    with torch.no_grad():
        for start in range(0, d, batch):
            idx = torch.arange(start, min(d, start + batch), device=device)
            basis = torch.zeros(idx.numel(), d, device=device)
            basis[torch.arange(idx.numel(), device=device), idx] = 1.0
            cols.append(op(basis.reshape(-1, *event_shape)).reshape(idx.numel(), -1))
    return torch.cat(cols).T.contiguous()


def _campaign_images(path: Path, sim: Any, n: int, seed: int, dev: torch.device
                     ) -> torch.Tensor:
    """``n`` peak-normalised images of a campaign with ``seed``."""
    run_campaign(path, sim, num_simulations=n, seed=seed, chunk_size=n, progress=False).close()
    with SimulationStore.open(path) as store:
        return _peak_normalised(store.load()[1]).to(dev)


def _observe(op: Any, truth: torch.Tensor, seed: int, sigma: float) -> torch.Tensor:
    """``op(truth) + sigma * noise``, the noise of image ``i`` keyed by ``(seed, i)``."""
    with torch.no_grad():
        clean = op(truth)
    keys = fold(key_from_seed(seed).to(truth.device),
                torch.arange(truth.shape[0], device=truth.device))
    noise = RowRandom(fold(keys, 7)).normal(tuple(clean.shape[1:]), dtype=clean.dtype)
    return clean + sigma * noise


def read_images(path: str | Path) -> np.ndarray:
    """Training images ``(N, H, W)`` from a ``.npy`` file or a FITS cube (the first HDU
    with 3-D data), as float32.

    Raises:
        FileNotFoundError, DataFormatError: a missing or unreadable file, or not a stack of
        square images with a side divisible by 4 (the U-Net halves it twice).
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".fits", ".fits.gz", ".fit", ".fts")):
        if not path.is_file():
            raise FileNotFoundError(f"training images file {path} does not exist")
        from astropy.io import fits

        try:
            with fits.open(path, memmap=False) as hdus:
                cubes = [h.data for h in hdus if h.data is not None and h.data.ndim == 3]
        except OSError as err:
            raise DataFormatError(f"{path} is not a readable FITS file ({err})") from None
        if not cubes:
            raise DataFormatError(f"{path} holds no 3-D image cube (N, H, W) in any HDU")
        arr = np.asarray(cubes[0], dtype=np.float32)
        if not np.isfinite(arr).all():
            raise DataFormatError(f"{path}: the images contain NaN or infinite values")
    else:
        arr = read_user_array(path, what="training images")
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] % 4:
        raise DataFormatError(f"{path} holds an array of shape {arr.shape}; give a stack of "
                              "square images (N, H, H) with H divisible by 4")
    if not (arr.reshape(arr.shape[0], -1).max(1) > 0).all():
        raise DataFormatError(f"{path}: some images have no positive pixel; images are "
                              "divided by their peak")
    return arr


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def prior_metadata(path: Path) -> dict[str, Any]:
    """The training summary saved with a score prior."""
    import json

    return json.loads((path / "score_model.json").read_text()).get("metadata", {})
