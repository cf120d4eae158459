"""Builds ``data/<task>.npz`` from the sbibm 1.1.0 wheel (run once; the output is committed).

Usage::

    pip download --no-deps sbibm==1.1.0 -d /tmp/sbibm
    python simulators/sbibm/build_data.py /tmp/sbibm/sbibm-1.1.0-py2.py3-none-any.whl

Reads, for each task and observation ``n = 1..10``, the files
``sbibm/tasks/<task>/files/num_observation_<n>/{observation.csv, true_parameters.csv,
observation_seed.csv, reference_posterior_samples.csv.bz2}`` straight from the wheel
(a zip), plus the task extras named in ``EXTRAS``, and writes:

* ``observations (10, E)`` and ``true_parameters (10, D)``: sbibm's float32 values;
* ``reference_codes (10, 10000, D)`` uint16 with ``reference_lo``/``reference_hi (10, D)``
  float64: ``value = lo + code * (hi - lo) / 65535`` (see ``reference.dequantize``);
* ``observation_seeds (10,)``;
* extras: ``observations_distractors (10, 100)`` and ``permutation (100,)`` for SLCP,
  ``observations_raw (10, 100)`` and ``stimulus (100,)`` for the Bernoulli GLM.

Prints the largest rounding error of the 16-bit codes in units of the posterior standard
deviation, per task.
"""

from __future__ import annotations

import bz2
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

TASKS = ("gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "two_moons",
         "slcp", "bernoulli_glm", "sir", "lotka_volterra")
OUT = Path(__file__).resolve().parent / "data"


def _csv(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    raw = zf.read(name)
    if name.endswith(".bz2"):
        raw = bz2.decompress(raw)
    return np.loadtxt(io.StringIO(raw.decode()), delimiter=",", skiprows=1, ndmin=2,
                      dtype=np.float32)


def _torch_tensor(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    import torch  # tensors only: weights_only=True refuses anything else

    return torch.load(io.BytesIO(zf.read(name)), weights_only=True).numpy()


def quantize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``values (S, D)`` -> uint16 codes, ``lo (D,)``, ``hi (D,)`` (float64)."""
    v = values.astype(np.float64)
    lo, hi = v.min(0), v.max(0)
    width = np.where(hi > lo, hi - lo, 1.0)
    codes = np.rint((v - lo) / width * 65535.0).astype(np.uint16)
    return codes, lo, np.where(hi > lo, hi, lo + 1.0)


def build_task(zf: zipfile.ZipFile, task: str) -> dict[str, np.ndarray]:
    base = f"sbibm/tasks/{task}/files"
    obs, theta, seeds, codes, los, his, extra = [], [], [], [], [], [], {}
    worst = 0.0
    for n in range(1, 11):
        d = f"{base}/num_observation_{n}"
        obs.append(_csv(zf, f"{d}/observation.csv")[0])
        theta.append(_csv(zf, f"{d}/true_parameters.csv")[0])
        seeds.append(int(_csv(zf, f"{d}/observation_seed.csv")[0, 0]))
        ref = _csv(zf, f"{d}/reference_posterior_samples.csv.bz2")
        assert ref.shape[0] == 10_000, ref.shape
        c, lo, hi = quantize(ref)
        back = lo + c.astype(np.float64) * ((hi - lo) / 65535.0)
        worst = max(worst, float((np.abs(back - ref) / ref.std(0)).max()))
        codes.append(c), los.append(lo), his.append(hi)
        if task == "slcp":
            extra.setdefault("observations_distractors", []).append(
                _csv(zf, f"{d}/observation_distractors.csv")[0])
        if task == "bernoulli_glm":
            extra.setdefault("observations_raw", []).append(
                _csv(zf, f"{d}/observation_raw.csv")[0].astype(np.uint8))
    out = {"observations": np.stack(obs), "true_parameters": np.stack(theta),
           "observation_seeds": np.array(seeds, dtype=np.int64),
           "reference_codes": np.stack(codes), "reference_lo": np.stack(los),
           "reference_hi": np.stack(his)}
    out.update({k: np.stack(v) for k, v in extra.items()})
    if task == "slcp":
        out["permutation"] = _torch_tensor(zf, f"{base}/permutation_idx.torch").astype(np.uint8)
    if task == "bernoulli_glm":
        out["stimulus"] = _torch_tensor(zf, f"{base}/stimulus_I.pt").astype(np.float32)
    print(f"{task:26s} obs {out['observations'].shape} theta {out['true_parameters'].shape} "
          f"ref {out['reference_codes'].shape}  max rounding error {worst:.2e} posterior std")
    return out


def main(wheel: str) -> None:
    OUT.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        version = zf.read("sbibm/__version__.py").decode()
        assert '"1.1.0"' in version or "'1.1.0'" in version or "1, 1, 0" in version, version
        for task in TASKS:
            np.savez_compressed(OUT / f"{task}.npz", **build_task(zf, task))
    total = sum(p.stat().st_size for p in OUT.glob("*.npz"))
    print(f"total {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
