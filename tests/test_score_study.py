"""`sbi-astro run` on a score-prior study (solver: score): GalSim sources through a campaign
store, a U-Net prior trained by streaming it, held-out lensed sources reconstructed through
the lensing operator, and the report's pixel calibration; bad studies exit 2 before work."""

from __future__ import annotations

import json

import pytest
import yaml

from sbi_astro.cli import main

STUDY = {
    "name": "tiny-lensing-source", "solver": "score",
    "sources": {"simulator": "galsim_sources",
                "options": {"num_pix": 16, "pixel_scale": 0.08, "n_knots": 5},
                "num_simulations": 64, "seed": 0, "chunk_size": 32},
    "prior": {"channels": [8, 16, 16], "steps": 30, "batch_size": 16, "seed": 0},
    "operator": {"name": "lensing",
                 "options": {"theta_E": 0.5, "e1": 0.1, "e2": -0.05, "gamma1": 0.02,
                             "gamma2": 0.01, "num_pix": 16, "pixel_scale": 0.1,
                             "source_num_pix": 16, "source_pixel_scale": 0.05,
                             "psf_fwhm": 0.15}},
    "noise_sigma": 0.05,
    "test": {"num_images": 4, "seed": 200, "chains": 4, "steps": 20, "final_steps": 10},
    "device": "cpu",
}


def test_score_study_runs_end_to_end_and_resumes(tmp_path, capsys, one_torch_thread):
    pytest.importorskip("galsim")
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "output": str(tmp_path / "out")}))
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert "training the score prior (30 steps of 16 images, streamed" in out
    m = json.loads((tmp_path / "out" / "report" / "metrics.json").read_text())
    assert m["num_images"] == 4 and m["num_pixels"] == 256
    # the posterior mean, put through the operator, fits the data at the noise level
    # (reduced chi^2 ~1) even with this barely trained prior: the likelihood works
    assert 0.5 < m["reduced_chi2_mean"] < 2.0, m["reduced_chi2_mean"]
    # the baseline: its strength is the best of the grid on the validation images, and
    # the ratio is the two RMS errors'
    lam = str(m["lambda"])
    assert m["validation_rmse_per_lambda"][lam] == min(m["validation_rmse_per_lambda"].values())
    assert m["rmse_ratio_posterior_mean_to_baseline"] == pytest.approx(
        m["rmse_posterior_mean"] / m["rmse_regularised_ls"])
    page = (tmp_path / "out" / "report" / "report.html").read_text()
    assert "Source pixels" in page and page.count("<img") == 3
    assert m["provenance"]["study"]["operator"] == "lensing"
    # a re-run reuses the store and the trained prior
    assert main(["run", str(path)]) == 0
    assert "reusing the score prior" in capsys.readouterr().out


def test_a_score_study_killed_while_training_its_prior_resumes_there(tmp_path, capsys,
                                                                     one_torch_thread):
    """Killed at step 12 of the prior's 30 (checkpoints every 3 steps), the study started
    again resumes at step 9 and saves the prior an uninterrupted study saves (the same
    weights file, named by its hash); the checkpoints are gone once the prior and the
    report are saved."""
    pytest.importorskip("galsim")
    from sbi_astro.pipeline.score_study import ScoreStudy, run_score_study

    study = ScoreStudy.from_dict(STUDY)

    def kill_at_12(line):
        if line.startswith("step 12/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_score_study(study, output=tmp_path / "killed", progress=False, log=kill_at_12)
    assert (tmp_path / "killed" / "prior-checkpoint" / "checkpoint.json").exists()
    assert not (tmp_path / "killed" / "prior").exists()
    # started again with another learning rate: refused with exit 2 before any training,
    # the checkpoint kept as it was
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**STUDY, "prior": {**STUDY["prior"], "lr": 0.01},
                                     "output": str(tmp_path / "killed")}))
    kept = (tmp_path / "killed" / "prior-checkpoint" / "checkpoint.json").read_bytes()
    assert main(["run", str(other)]) == 2
    err = capsys.readouterr().err
    assert "holds the checkpoint of another score-model training (it differs in lr)" in err
    assert "Traceback" not in err
    assert (tmp_path / "killed" / "prior-checkpoint" / "checkpoint.json").read_bytes() == kept
    lines = []
    run_score_study(study, output=tmp_path / "killed", progress=False, log=lines.append)
    assert any(line.startswith("resuming from the checkpoint") and line.endswith("step 9/30")
               for line in lines)
    assert not (tmp_path / "killed" / "prior-checkpoint").exists()
    run_score_study(study, output=tmp_path / "straight", progress=False, log=lambda s: None)
    saved = [json.loads((tmp_path / d / "prior" / "score_model.json").read_text())["weights"]
             for d in ("killed", "straight")]
    assert saved[0]["sha256"] == saved[1]["sha256"]
    # the chains' checkpoint (tests/solvers/test_sampler.py) is gone once the report is
    assert not (tmp_path / "straight" / "samples-checkpoint").exists()


@pytest.mark.parametrize("change, words", [
    ({"sources": {"simulator": "galsim_sources", "colour": 1}}, "unknown key(s) ['colour']"),
    ({"operator": {"name": "lensing", "options": {"theta_E": 1.0, "warp": 2}}},
     "operator 'lensing': unknown or missing options ['theta_E', 'warp']"),
    ({"operator": {"name": "microlensing"}}, "unknown operator 'microlensing'"),
    ({"noise_sigma": -1}, "'noise_sigma' must be a positive number"),
    ({"test": {"num_images": 1}}, "'test.num_images' and 'test.chains' must be >= 2"),
    ({"prior": {"sde": "sub-vp"}}, "'prior.sde' must be 've' or 'vp'"),
    ({"prior": {"lr": "fast"}}, "'prior.lr' must be a positive number"),
    ({"prior": {"sigma_min": 5.0, "sigma_max": 1.0}}, "section 'prior'"),
    ({"prior": {"channels": [8, -1]}}, "channels must be a list of positive integers"),
    ({"test": {"seed": -3}}, "'test.seed'"),
    ({"test": {"likelihood": "exact"}}, "'test.likelihood' must be one of auto, dense, cg"),
])
def test_bad_score_studies_exit_2_before_any_work(tmp_path, capsys, change, words):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **change, "output": str(tmp_path / "out")}))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def _blobs(n: int, side: int = 16):
    """Elliptical Gaussian blobs of random position, size and orientation: (n, side, side)."""
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side] - (side - 1) / 2
    out = []
    for _ in range(n):
        x0, y0 = rng.uniform(-2, 2, 2)
        a, b, phi = rng.uniform(1.5, 3.5), rng.uniform(0.8, 2.0), rng.uniform(0, np.pi)
        u = (xx - x0) * np.cos(phi) + (yy - y0) * np.sin(phi)
        v = -(xx - x0) * np.sin(phi) + (yy - y0) * np.cos(phi)
        out.append(np.exp(-0.5 * ((u / a) ** 2 + (v / b) ** 2)))
    return np.stack(out).astype(np.float32)


@pytest.mark.parametrize("fmt", ["npy", "fits"])
def test_score_study_on_your_own_images(tmp_path, capsys, one_torch_thread, fmt):
    import hashlib

    import numpy as np
    from astropy.io import fits

    project = tmp_path / "project"
    project.mkdir()
    images = _blobs(48)
    name = f"blobs.{fmt}"
    if fmt == "npy":
        np.save(project / name, images)
    else:
        fits.PrimaryHDU(images).writeto(project / name)
    sources = {"images": name}  # relative to the YAML
    study = {**STUDY, "sources": sources, "output": str(tmp_path / "out"),
             "prior": {**STUDY["prior"], "steps": 20}}
    (project / "s.yaml").write_text(yaml.safe_dump(study))
    assert main(["run", str(project / "s.yaml")]) == 0
    out = capsys.readouterr().out
    assert "48 images from" in out and "39 train the prior, 5 tune the baseline, 4 are held" in out
    assert "in memory" in out
    m = json.loads((tmp_path / "out" / "report" / "metrics.json").read_text())
    f = m["provenance"]["data_files"]["images"]
    assert f["sha256"] == hashlib.sha256((project / name).read_bytes()).hexdigest()
    assert m["num_images"] == 4 and 0.5 < m["reduced_chi2_mean"] < 2.0


@pytest.mark.parametrize("array, words", [
    ((10, 16), "give a stack of square images (N, H, H)"),
    ((10, 18, 18), "H divisible by 4"),
])
def test_bad_training_images_exit_2(tmp_path, capsys, array, words):
    import numpy as np

    np.save(tmp_path / "bad.npy", np.ones(array, dtype=np.float32))
    study = {**STUDY, "sources": {"images": "bad.npy"}, "output": str(tmp_path / "out")}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(study))
    assert main(["run", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and not (tmp_path / "out").exists()


def test_dense_and_matrix_free_likelihoods_agree(one_torch_thread):
    """The operator's matrix reproduces the operator, and the convolved likelihood's score
    through it (diagonalised) equals the matrix-free one (CG run to convergence) at every
    noise level (to 1e-5 of its size; 1e-3 at t = 0.9, where the float32 CG of the
    ill-conditioned system stalls near 1.5e-4)."""
    import torch

    from sbi_astro.operators import get_operator
    from sbi_astro.pipeline.score_study import operator_matrix
    from sbi_astro.solvers import VESDE, GaussianLinearLikelihood, LinearOperatorLikelihood

    op = get_operator("lensing", **STUDY["operator"]["options"])
    shape = (1, 16, 16)
    A = operator_matrix(op, shape, device=torch.device("cpu"), batch=100)
    assert A.shape == (256, 256)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, *shape, generator=gen)
    torch.testing.assert_close((x.reshape(3, -1) @ A.T).reshape(3, 1, 16, 16), op(x),
                               rtol=1e-5, atol=1e-6)
    y = op(torch.rand(3, *shape, generator=gen)) + 0.05 * torch.randn(3, 1, 16, 16,
                                                                          generator=gen)
    dense = GaussianLinearLikelihood(A, 0.05, obs_shape=(1, 16, 16))
    free = LinearOperatorLikelihood(op, 0.05, (1, 16, 16), adjoint=op.adjoint, cg_iters=500,
                                    cg_tol=1e-7)
    sde = VESDE(0.001, 10.0)
    for t, tol in ((0.05, 1e-5), (0.4, 1e-5), (0.9, 1e-3)):
        tt = torch.full((3,), t)
        a = dense.score(tt, x, y, sde=sde)
        b = free.score(tt, x, y, sde=sde)
        assert float((a - b).abs().max() / b.abs().max()) < tol, t
