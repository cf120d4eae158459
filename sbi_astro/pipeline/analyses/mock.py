"""Study analysis ``mock``: the posterior of one simulated observation at chosen parameters.

A fixed, named mock (e.g. a typical lens: every parameter at the centre of its prior) makes
"the Einstein radius is recovered to 2 %" a reproducible statement.  The section shows the
mock itself (an image for 2-D events, the data vector otherwise), the marginal posteriors
with the truth, and a table per parameter: truth, posterior mean and standard deviation,
``std / |truth|`` and the truth's distance from the mean in posterior standard deviations.

Options (study YAML): ``theta`` (required: a mapping parameter name -> value, every
parameter of the simulator), ``num_samples`` (5000), ``label`` ("mock").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...analysis import Section, check_int_option
from ...errors import ConfigError
from ...report.figures import figure

_SALT = 0x3A0C


def _plot(x: torch.Tensor, samples: torch.Tensor, truth: torch.Tensor, names, units) -> Any:
    d = len(names)
    cols = 4
    rows = 1 + (d + cols - 1) // cols
    fig, axes = figure(rows, cols, size=(2.3 * cols, 2.0 * rows + 0.4))
    for ax in axes.flat:
        ax.set_axis_off()
    ax = axes[0, 0]
    ax.set_axis_on()
    xv = x.double().cpu()
    if xv.dim() == 2:
        ax.imshow(xv.numpy(), origin="lower", cmap="magma")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.plot(xv.reshape(-1).numpy(), lw=0.7)
        ax.tick_params(labelsize=6)
    ax.set_title("mock observation", fontsize=8)
    s = samples.double().cpu().numpy()
    for k in range(d):
        ax = axes[1 + k // cols, k % cols]
        ax.set_axis_on()
        ax.hist(s[:, k], bins=40, density=True, histtype="step", color="C0")
        ax.axvline(float(truth[k]), color="C3", lw=1.0)
        ax.set_yticks([])
        ax.set_xlabel(f"{names[k]} [{units[k]}]" if units[k] else names[k], fontsize=7)
        ax.tick_params(labelsize=6)
    return fig


def mock_analysis(est: Any, out_dir: Path, *, seed: int, log=print,
                  theta: dict[str, float] | None = None, num_samples: int = 5000,
                  label: str = "mock") -> Section:
    """Posterior of one mock observation simulated at ``theta``."""
    sim = est.simulator
    names = tuple(sim.param_names)
    if not isinstance(theta, dict) or set(theta) != set(names):
        given = sorted(theta) if isinstance(theta, dict) else theta
        raise ConfigError(f"analysis 'mock' needs 'theta': a mapping with a value for every "
                          f"parameter of {sim.name!r} {list(names)}, got {given!r}")
    check_int_option("mock", "num_samples", num_samples, 100)
    truth = torch.tensor([[float(theta[n]) for n in names]], dtype=sim.prior.low.dtype,
                         device=sim.device)
    log(f"      mock '{label}': {num_samples} posterior samples")
    gen = torch.Generator().manual_seed(seed ^ _SALT)
    with torch.no_grad():
        x = sim.simulate(truth, generator=gen)  # (1, *E); raises if theta is off-support
        s = est.sample(num_samples, x, generator=gen)[:, 0].to(truth)  # (S, D)
    mean, std = s.double().mean(0), s.double().std(0)
    t = truth[0].double()
    rows = []
    for k, name in enumerate(names):
        rel = (std[k] / t[k].abs()).item() if t[k] != 0 else None
        rows.append({"parameter": name, "unit": sim.param_units[k] or "-",
                     "truth": t[k].item(), "posterior mean": mean[k].item(),
                     "posterior std": std[k].item(), "std / |truth|": rel,
                     "(mean - truth) / std": ((mean[k] - t[k]) / std[k]).item()})
    text = (f"Posterior of one observation simulated at fixed parameters ('{label}', "
            f"{num_samples} samples; noise seeded by the study's calibration seed).  "
            "std / |truth| is the fractional precision; it is undefined for a truth of 0.")
    fig = _plot(x[0], s, t, names, sim.param_units)
    return Section(title=f"Mock observation: {label}", text=text,
                   figures=[(fig, f"The mock '{label}' and its marginal posteriors "
                                        "(truth in red).")],
                         metrics={"label": label, "num_samples": num_samples,
                                  "parameters": rows}, table=rows)
