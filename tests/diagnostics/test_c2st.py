"""C2ST: null and disjoint cases, Bayes-optimal accuracy on shifted Gaussians, and sbi."""

from __future__ import annotations

import math

import pytest
import torch

from sbi_astro.diagnostics import c2st, c2st_sbibm, c2st_scores
from sbi_astro.errors import ConfigError, ShapeError


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _gauss(n, d, seed, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + shift


def test_identical_distributions_give_one_half():
    acc = c2st(_gauss(1000, 5, 1), _gauss(1000, 5, 2), steps=150)
    # Under the null the mean held-out accuracy over 2000 points has sd sqrt(.25/2000) =
    # 0.011; 0.04 is ~3.5 sd (and overfitting can only push it *below* 0.5).
    assert abs(acc - 0.5) < 0.04


def test_disjoint_distributions_give_one():
    assert c2st(_gauss(500, 5, 1), _gauss(500, 5, 2, shift=20.0)) > 0.99


def test_shifted_gaussian_reaches_the_bayes_accuracy_and_is_deterministic():
    d, delta = 10, 0.3
    X, Y = _gauss(1000, d, 3), _gauss(1000, d, 4, shift=delta)
    scores = c2st_scores(X, Y, seed=0)
    acc = scores.mean().item()
    # Bayes-optimal accuracy for N(0, I) vs N(delta 1, I): Phi(|delta 1| / 2) = 0.683.
    # Finite-sample sd over 2000 test points is 0.01; the boundary learned from 1600 points
    # loses a little: require within 0.05 of the optimum, and not above it beyond ~2 sd.
    best = _phi(delta * math.sqrt(d) / 2)
    assert best - 0.05 < acc < best + 0.02
    assert scores.shape == (5,)
    small = dict(seed=3, steps=50, hidden=16)
    assert c2st(X[:200], Y[:200], **small) == c2st(X[:200], Y[:200], **small)  # seeded


def test_10d_and_10000_samples_near_the_bayes_accuracy():
    """sbibm's size (10,000 per side, 10-D): a mean shift of 0.1 per dimension has Bayes
    accuracy Phi(0.1 sqrt(10) / 2) = 0.563; the accuracy over 20,000 samples has a standard
    error of 0.0035 (measured 0.570).  Its speed is a benchmark's business, not a test's."""
    X, Y = _gauss(10000, 10, 5), _gauss(10000, 10, 6, shift=0.1)
    bayes = 0.5 * (1 + math.erf(0.1 * math.sqrt(10) / 2 / math.sqrt(2)))
    assert abs(c2st(X, Y) - bayes) < 0.02


def test_sbibm_protocol_reaches_the_bayes_accuracy_of_a_shift_and_is_seeded():
    """sbibm's own classifier (scikit-learn): N(0, I) against N(0.4, I) in 2-D has Bayes
    accuracy Phi(0.4 sqrt(2) / 2) = 0.611; over 2,000 points the accuracy's sd is 0.011
    (measured 0.595).  Null case: 0.5 within 3.5 sd."""
    X, Y = _gauss(1000, 2, 11), _gauss(1000, 2, 12, shift=0.4)
    best = _phi(0.4 * math.sqrt(2) / 2)
    acc = c2st_sbibm(X, Y)
    assert best - 0.04 < acc < best + 0.025
    assert acc == c2st_sbibm(X, Y)  # sbibm's seeds: the same number again
    assert acc == c2st_sbibm(X, Y, n_jobs=2)  # folds in two processes: the same number
    with pytest.raises(ConfigError, match="n_jobs must be a positive integer"):
        c2st_sbibm(X, Y, n_jobs=0)
    assert abs(c2st_sbibm(X, _gauss(1000, 2, 13)) - 0.5) < 0.04
    with pytest.raises(ShapeError):
        c2st_sbibm(X, Y[:, :1])


def test_rejects_bad_shapes():
    with pytest.raises(ShapeError):
        c2st(torch.zeros(10, 2), torch.zeros(10, 3))


@pytest.mark.slow
def test_agrees_with_sbi_mlp_c2st_on_shifted_gaussians():
    sbi_metrics = pytest.importorskip("sbi.utils.metrics")
    d = 5
    X, Y = _gauss(1000, d, 7), _gauss(1000, d, 8, shift=0.4)
    ours = c2st(X, Y, seed=0)
    theirs = float(sbi_metrics.c2st(X, Y, seed=1, classifier="mlp"))
    # Two estimates of the same accuracy (optimum Phi(0.4 sqrt 5 / 2) = 0.673) on 2000
    # points each (sd ~0.01 apiece) with different classifiers/training: agree within 0.05.
    print(f"c2st ours {ours:.3f} sbi {theirs:.3f}")
    assert abs(ours - theirs) < 0.05, (ours, theirs)
