"""Renders a calibration report in headless Chromium and saves a PNG screenshot.

Usage::

    python docs/render_report.py [OUT_DIR]

Builds the report of the exact ``gaussian_linear`` posterior (calibrated) with
:func:`sbi_astro.pipeline.calibrate` into ``OUT_DIR`` (default ``reports/example``), then runs
``chromium --headless --screenshot`` on ``report.html`` (offline: the page needs no network)
and writes ``OUT_DIR/screenshot.png``.  Needs Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from sbi_astro import load_simulator
from sbi_astro.pipeline.calibration import calibrate


class ExactPosterior:
    """The conjugate posterior of a ``gaussian_linear`` simulator, as a report protocol."""

    def __init__(self, simulator, scale: float = 1.0, seed: int = 1):
        self.sim, self.scale, self.seed = simulator, scale, seed

    def sample(self, num_samples: int, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.sim.posterior_mean_std(x)
        z = torch.randn(num_samples, *x.shape, generator=torch.Generator().manual_seed(self.seed))
        return mean + self.scale * std * z

    def log_prob(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.sim.posterior_mean_std(x)
        sd = self.scale * std
        return (-0.5 * ((theta - mean) / sd) ** 2).sum(-1) - theta.shape[-1] * torch.log(sd)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, png: Path, *, width: int = 1200, height: int = 4300,
               timeout: float = 120.0) -> None:
    """Headless Chromium screenshot of ``html`` (no network, no GPU, throwaway profile)."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found; install it with apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
               "--hide-scrollbars", f"--window-size={width},{height}",
               f"--screenshot={png}", html.resolve().as_uri()]
        subprocess.run(cmd, check=True, timeout=timeout, capture_output=True)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot to {png}")


def main(out_dir: str = "reports/example") -> Path:
    out = Path(out_dir)
    sim = load_simulator("gaussian_linear", device="cpu")
    res = calibrate(ExactPosterior(sim), sim, out, n_test=200, num_samples=1000, seed=0,
                    provenance={"posterior": "exact conjugate posterior (docs example)"})
    png = out / "screenshot.png"
    screenshot(res.report_path, png)
    print(f"verdict: {res.verdict}\nreport: {res.report_path}\nscreenshot: {png}")
    return png


if __name__ == "__main__":
    main(*sys.argv[1:2])
