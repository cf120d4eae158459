"""A third-party plugin, installed from outside the package, is found through entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PLUGIN_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "sbi-astro-exponential-decay"
version = "0.1.0"

[project.entry-points."sbi_astro.simulators"]
exponential_decay = "exponential_decay:ExponentialDecay"
"""

PLUGIN_MODULE = '''
"""A third-party plugin: radioactive decay counts in 20 time bins."""
import dataclasses
import torch
from sbi_astro import Simulator, Prior, LogUniform, Uniform


@dataclasses.dataclass(frozen=True)
class Options:
    num_bins: int = 20


class ExponentialDecay(Simulator):
    name = "exponential_decay"
    Options = Options

    def build_prior(self):
        return Prior([LogUniform("rate0", 10.0, 1000.0, unit="count / s"),
                      Uniform("tau", 0.5, 5.0, unit="s")])

    @property
    def event_shape(self):
        return (self.options.num_bins,)

    def _expected(self, theta):
        t = torch.arange(self.options.num_bins, device=theta.device, dtype=theta.dtype) + 0.5
        return theta[:, :1] * torch.exp(-t / theta[:, 1:])

    def _simulate(self, theta, rng):
        return rng.poisson(self._expected(theta)).to(self.dtype)

    def _log_likelihood(self, theta, x):
        mu = self._expected(theta)
        return (x * torch.log(mu) - mu - torch.lgamma(x + 1)).sum(-1)
'''


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugin")
    (d / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (d / "exponential_decay.py").write_text(PLUGIN_MODULE)
    return d


def test_install_register_and_use_third_party_plugin(plugin_dir, tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                          "--no-build-isolation", "-q", "--target", str(target), str(plugin_dir)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    script = textwrap.dedent("""
        import sys, torch
        sys.path.insert(0, %r)
        import sbi_astro
        assert "exponential_decay" in sbi_astro.list_simulators(), sbi_astro.list_simulators()
        sim = sbi_astro.load_simulator("exponential_decay", device="cpu", num_bins="8")
        theta = torch.tensor([[100.0, 2.0]])
        x = sim.simulate(theta.expand(4000, 2), generator=torch.Generator().manual_seed(0))
        # Poisson mean of bin 0 is 100 exp(-0.25) = 77.88; 4000 draws: se = sqrt(77.88/4000)
        assert abs(x[:, 0].mean().item() - 77.88) < 4 * (77.88 / 4000) ** 0.5
        ll = sim.log_likelihood(theta, x[:3])
        assert ll.shape == (3,)
        print("ok", sim.event_shape)
    """) % str(target)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "ok (8,)" in run.stdout
    # and without the plugin on the path it is unknown, with the known names listed
    from sbi_astro import UnknownSimulatorError, load_simulator

    with pytest.raises(UnknownSimulatorError, match="gaussian_linear"):
        load_simulator("exponential_decay")
