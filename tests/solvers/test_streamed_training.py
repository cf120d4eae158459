"""The learned solvers trained from simulation stores streamed from disk
(:class:`~sbi_astro.store_batches.StoreBatches`), held to the same exact answers as in
memory: a score model of a Gaussian store against the exact score, a RIM on a store of
Gaussian-process signals against the Wiener filter, and a score prior of GalSim galaxies
from a campaign store, end to end."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import Tensor

from sbi_astro.campaign import run_campaign
from sbi_astro.errors import ConfigError
from sbi_astro.priors import Normal, Prior
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator
from sbi_astro.solvers import VPSDE, GaussianScore, ScoreModel, train_score_model
from sbi_astro.solvers.io import load_score_model, save_score_model
from sbi_astro.solvers.rim import RIM, RIMConfig, TrainingConfig, fit
from sbi_astro.store_batches import StoreBatches

from .test_rim import SIGMA, TOY_TRAINING, N, deconvolution_toy, toy_likelihood
from .test_score_model import _gaussian


@dataclasses.dataclass(frozen=True)
class CorrelatedOptions:
    """Attributes:
    kind: ``"ou16"`` (the score tests' Ornstein-Uhlenbeck covariance, 16 values) or
        ``"se32"`` (the RIM toy's squared-exponential prior, 32 values).
    """

    kind: str = "ou16"


class CorrelatedGaussian(Simulator):
    """Signals ``x = L z`` with ``z ~ N(0, I)`` the parameters and ``L L^T`` a known
    covariance: a store of correlated Gaussian vectors whose exact answers are known."""

    name = "correlated_gaussian"
    Options = CorrelatedOptions

    def _cov(self) -> Tensor:
        if self.options.kind == "ou16":
            return _gaussian()[1].double()
        return deconvolution_toy()[0]

    def build_prior(self) -> Prior:
        d = self._cov().shape[0]
        return Prior([Normal(f"z{i}", 0.0, 1.0) for i in range(d)])

    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self._cov().shape[0],)

    def default_embedding(self) -> EmbeddingSpec:
        return EmbeddingSpec("mlp", {"in_shape": list(self.event_shape), "out_features": 8})

    def _expected(self, theta: Tensor) -> Tensor:
        chol = self.constant("L", torch.linalg.cholesky(self._cov()), theta)
        return (theta @ chol.T).to(self.dtype)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        return self._expected(theta)


def test_score_model_streamed_from_a_store_matches_the_exact_score(tmp_path):
    """As ``test_learned_score_of_a_gaussian_matches_the_exact_score``, the 20,000 examples
    streamed from a store instead of held in memory: relative error below 0.1 at every
    noise level std(t) >= 0.17."""
    path = tmp_path / "ou.h5"
    sim = CorrelatedGaussian(device="cpu", dtype=torch.float32)
    run_campaign(path, sim, num_simulations=20_200, seed=1, chunk_size=1000,
                 progress=False).close()
    data = StoreBatches(path, batch_size=256, validation_fraction=0.01, seed=0,
                        block_bytes=256 * 1024)  # ~4,000 rows per block: many blocks
    torch.manual_seed(0)
    model = ScoreModel(VPSDE(), {"kind": "mlp", "dim": 16, "hidden": 128, "depth": 3},
                       ema_decay=0.99)
    train_score_model(model, data, steps=1000, batch_size=256, lr=2e-3, device="cpu")
    assert data.num_train == 19_998 and data.wait_seconds >= 0
    mean, cov = _gaussian()
    exact = GaussianScore(mean, cov, model.sde)
    g = torch.Generator().manual_seed(2)
    chol = torch.linalg.cholesky(cov)
    for t in (0.05, 0.1, 0.3, 0.6, 1.0):
        tt = torch.full((4000,), t)
        x0 = torch.randn(4000, 16, generator=g) @ chol.T
        xt = model.sde.mean_scale(tt)[:, None] * x0 + model.sde.std(tt)[:, None] * torch.randn(
            4000, 16, generator=g)
        with torch.no_grad():
            err = ((model.score(tt, xt) - exact.score(tt, xt)) ** 2).sum(1).mean()
        rel = float(err / (exact.score(tt, xt) ** 2).sum(1).mean())
        assert rel < 0.1, (t, rel)


def test_rim_streamed_from_a_store_within_10_percent_of_the_wiener_filter(tmp_path):
    """The RIM toy of test_rim.py with its 4,000 training signals streamed from a store
    (444 more rows hold out the validation set): MSE within 10 % of the Wiener filter's."""
    cov, blur, wiener = deconvolution_toy()
    path = tmp_path / "gp.h5"
    run_campaign(path, CorrelatedGaussian(device="cpu", dtype=torch.float32, kind="se32"),
                 num_simulations=4444, seed=3, chunk_size=500, progress=False).close()
    data = StoreBatches(path, batch_size=64, validation_fraction=0.1, seed=0)
    assert data.num_train == 3999
    ll, observe = toy_likelihood(blur)
    rim = RIM(RIMConfig(signal_shape=(N,), steps=8, hidden=128, seed=1), device="cpu")
    summary = fit(rim, data, ll, observe=observe, config=TOY_TRAINING, log=None)
    assert summary.validation_loss[summary.best_epoch] < 0.5 * summary.validation_loss[0]
    gen = torch.Generator().manual_seed(5)
    test = (torch.linalg.cholesky(cov) @ torch.randn(N, 2000, generator=gen,
                                                      dtype=torch.float64)).T
    y = test @ blur.T + SIGMA * torch.randn(test.shape, generator=gen, dtype=torch.float64)
    mse_wiener = float(((y @ wiener.T - test) ** 2).mean())
    mse_rim = float(((rim.reconstruct(y.float(), ll).double() - test) ** 2).mean())
    assert mse_rim <= 1.10 * mse_wiener, (mse_rim, mse_wiener)
    # signal= makes the truth from a row's parameters: here the same signals, L z, so one
    # epoch trains to the same validation loss (to float32 rounding of L z)
    chol = torch.linalg.cholesky(cov).float()
    one = TrainingConfig(epochs=1, batch_size=64, lr=3e-3, seed=2)
    losses = [fit(RIM(RIMConfig(signal_shape=(N,), steps=8, hidden=128, seed=1), device="cpu"),
                  data, ll, observe=observe, signal=signal, config=one,
                  log=None).validation_loss[0]
              for signal in (None, lambda theta, x: theta @ chol.T)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


def test_streamed_training_refuses_mismatched_batches(tmp_path):
    path = tmp_path / "gp.h5"
    run_campaign(path, CorrelatedGaussian(device="cpu", dtype=torch.float32), num_simulations=300,
                 seed=3, chunk_size=100, progress=False).close()
    data = StoreBatches(path, batch_size=32, validation_fraction=0.1, seed=0)
    model = ScoreModel(VPSDE(), {"kind": "mlp", "dim": 16, "hidden": 8})
    with pytest.raises(ConfigError, match="batches hold 32 rows but batch_size is 64"):
        train_score_model(model, data, steps=2, batch_size=64)
    rim = RIM(RIMConfig(signal_shape=(16,), steps=2, hidden=8), device="cpu")
    with pytest.raises(ConfigError, match="needs observe="):
        fit(rim, data, lambda s, d: -(s - d).pow(2).sum(1), data=torch.zeros(300, 16))


def test_galsim_campaign_store_trains_a_source_prior(tmp_path):
    """GalSim galaxies written by a campaign into a store, a U-Net score prior trained from
    it by streaming (224 training images, visited epoch after epoch), saved and loaded: the
    denoising loss falls by more than a third over 120 steps (measured: by 63 %, 140 -> 52)
    and the reloaded model scores identically."""
    pytest.importorskip("galsim")
    from sbi_astro import load_simulator

    sim = load_simulator("galsim_sources", device="cpu", num_pix=16, n_knots=5)
    path = tmp_path / "galaxies.h5"
    run_campaign(path, sim, num_simulations=256, seed=4, chunk_size=64,
                 progress=False).close()
    data = StoreBatches(path, batch_size=32, validation_fraction=0.125, seed=0)
    torch.manual_seed(0)
    model = ScoreModel(VPSDE(), {"kind": "unet", "in_channels": 1, "channels": [8, 16, 16]},
                       ema_decay=0.99)
    summary = train_score_model(model, data, steps=120, batch_size=32, lr=2e-3, device="cpu",
                                example=lambda theta, x: x / 2)  # counts to order one
    losses = torch.tensor(summary["loss"])
    assert losses[-30:].mean() < 0.66 * losses[:30].mean(), (losses[:30].mean(),
                                                               losses[-30:].mean())
    saved = save_score_model(model, tmp_path / "prior")
    again = load_score_model(saved)
    x = torch.randn(4, 1, 16, 16)
    t = torch.full((4,), 0.5)
    with torch.no_grad():
        assert torch.equal(again.score(t, x), model.score(t, x))


class _Killed(Exception):
    pass


@pytest.mark.parametrize("source", ["tensor", "store"])
def test_a_killed_training_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, source):
    """30 steps straight, against 30 steps killed at step 13 (last checkpoint: step 10) and
    started again with the same settings: the same weights, EMA and losses, bit for bit,
    whether the examples are a tensor or a store's streamed batches."""
    torch.manual_seed(0)
    x = torch.randn(500, 16) @ torch.randn(16, 16) * 0.3
    path = tmp_path / "ou.h5"
    if source == "store":
        run_campaign(path, CorrelatedGaussian(device="cpu", dtype=torch.float32),
                     num_simulations=600, seed=1, chunk_size=200, progress=False).close()

    def data():
        if source == "tensor":
            return x
        return StoreBatches(path, batch_size=32, validation_fraction=0.01, seed=0)

    def model():
        torch.manual_seed(1)  # the same initial weights each time
        return ScoreModel(VPSDE(), {"kind": "mlp", "dim": 16, "hidden": 32})

    def kill_at_13(line):
        if line.startswith("step 13/"):
            raise _Killed

    kw = dict(steps=30, batch_size=32, lr=1e-3, seed=3, device="cpu")
    straight = model()
    ref = train_score_model(straight, data(), **kw)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Killed):
        train_score_model(model(), data(), checkpoint=ckpt, checkpoint_every=5,
                          log=kill_at_13, log_every=1, **kw)
    assert json.loads((ckpt / "checkpoint.json").read_text())["step"] == 10
    lines = []
    again = model()
    out = train_score_model(again, data(), checkpoint=ckpt, checkpoint_every=5,
                            log=lines.append, log_every=100, **kw)
    assert lines == [f"resuming from the checkpoint in {ckpt}: step 10/30"]
    assert out["loss"] == ref["loss"] and len(out["loss"]) == 30
    for a, b in zip(again.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(next(again.parameters()), next(model().parameters()))  # trained
    # a checkpoint of another training is refused, not trained on
    with pytest.raises(ConfigError, match="differs in lr"):
        train_score_model(model(), data(), checkpoint=ckpt, **{**kw, "lr": 2e-3})
    with pytest.raises(ConfigError, match="differs in data"):
        train_score_model(model(), x[:400] if source == "tensor" else x, checkpoint=ckpt,
                          **kw)
    # nor trusted when damaged: refused, and left as it is
    weights = next(ckpt.glob("weights-*.pt"))
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ConfigError, match="damaged or incomplete .* from the beginning"):
        train_score_model(model(), data(), checkpoint=ckpt, **kw)
    assert (ckpt / "checkpoint.json").exists() and weights.exists()


def test_a_checkpoint_path_that_cannot_hold_one_is_refused_before_any_step(tmp_path):
    """A file, or a directory holding other things, is refused before the first step (a
    ``data`` function that fails if called shows no step ran); the sampler's checkpoint
    directory holds one checkpoint per chunk, so only a file is refused there."""
    def never(n, gen):
        raise AssertionError("a step ran")

    model = ScoreModel(VPSDE(), {"kind": "mlp", "dim": 4, "hidden": 8})
    afile = tmp_path / "f"
    afile.write_text("mine")
    other = tmp_path / "d"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for path, words in ((afile, "is a file"), (other, "holds no checkpoint")):
        with pytest.raises(ConfigError, match=words):
            train_score_model(model, never, steps=5, batch_size=2, checkpoint=path)
    assert afile.read_text() == "mine" and (other / "notes.txt").read_text() == "mine"
    prior = GaussianScore(torch.zeros(4), torch.eye(4), VPSDE())
    from sbi_astro.solvers import GaussianLinearLikelihood, sample_posterior

    with pytest.raises(ConfigError, match="is a file"):
        sample_posterior(prior, GaussianLinearLikelihood(torch.eye(4), 0.1), torch.zeros(1, 4),
                         num_samples=2, steps=3, device="cpu", checkpoint=afile)
