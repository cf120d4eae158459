"""Study analysis ``observed``: the posterior of the simulator's real observation.

For a simulator that has a real observation (:meth:`Simulator.observed`, e.g. an X-ray
spectrum), this section shows

* the amortised posterior of the data, next to the simulator's reference posterior (MCMC on
  the exact likelihood) when it has one, with a C2ST between the two (0.5: indistinguishable);
* a per-parameter table (posterior mean, standard deviation, 5 / 95 % quantiles of both);
* the posterior predictive distribution of the data: ``ppc_draws`` re-simulations from
  posterior draws, their 5-95 % band per bin against the observed values, the fraction of bins
  inside the band, and, when the simulator has a likelihood, the posterior predictive p-value
  of the deviance ``-2 log L(theta | x)`` (Gelman, Meng & Stern 1996): the probability that a
  replicated data set fits its own parameters worse than the data fit theirs (near 0 flags a
  misfit).

Options (study YAML): ``num_samples`` (5000), ``reference`` (true), ``ppc_draws`` (500).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...diagnostics.c2st import c2st
from ...analysis import Section, check_int_option
from ...errors import ConfigError
from ...report.figures import figure, plot_corner

_SALT_REF, _SALT_PPC = 0x5EED01, 0x5EED02


def _summary(samples: Tensor) -> dict[str, Tensor]:
    q = torch.quantile(samples.double(), torch.tensor([0.05, 0.95], dtype=torch.float64), dim=0)
    return {"mean": samples.double().mean(0), "std": samples.double().std(0),
            "q05": q[0], "q95": q[1]}


def _plot_ppc(x_obs: Tensor, x_rep: Tensor) -> Any:
    obs = x_obs.reshape(-1).double().cpu()
    rep = x_rep.reshape(x_rep.shape[0], -1).double().cpu()
    q = torch.quantile(rep, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64), dim=0)
    fig, axes = figure(2, 1, size=(8.5, 5.2))
    ax = axes[0, 0]
    idx = torch.arange(obs.numel()).numpy()
    ax.fill_between(idx, q[0].numpy(), q[2].numpy(), step="mid", color="C0", alpha=0.3,
                    label="posterior predictive 5-95 %")
    ax.step(idx, q[1].numpy(), where="mid", color="C0", lw=0.8, label="predictive median")
    ax.plot(idx, obs.numpy(), ".", color="black", ms=3, label="observed")
    ax.set_ylabel("value per bin", fontsize=8)
    if float(obs.min()) >= 0 and float(q[2].max()) > 100 * max(float(q[1].min()), 1e-3):
        ax.set_yscale("symlog", linthresh=1.0)
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    scale = rep.std(0).clamp_min(1e-12)
    ax.plot(idx, ((obs - q[1]) / scale).numpy(), ".", color="black", ms=3)
    ax.axhline(0, color="C0", lw=0.8)
    for s in (-2, 2):
        ax.axhline(s, color="grey", lw=0.5, ls="--")
    ax.set_ylabel("(observed - median) / std", fontsize=8)
    ax.set_xlabel("bin (channel group)", fontsize=8)
    for a in axes[:, 0]:
        a.tick_params(labelsize=7)
    return fig


def _parameter_rows(npe: Tensor, ref: Tensor | None, names: tuple[str, ...],
                    units: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per parameter: mean, std and 5-95 % of the NPE samples (and of the reference)."""
    s_npe = _summary(npe)
    s_ref = _summary(ref) if ref is not None else None
    rows = []
    for k, name in enumerate(names):
        row: dict[str, Any] = {
            "parameter": name, "unit": units[k] or "-",
            "NPE mean": s_npe["mean"][k].item(), "NPE std": s_npe["std"][k].item(),
            "NPE 5-95 %": f"{s_npe['q05'][k].item():.4g} - {s_npe['q95'][k].item():.4g}"}
        if s_ref is not None:
            row.update({
                "reference mean": s_ref["mean"][k].item(),
                "reference std": s_ref["std"][k].item(),
                "reference 5-95 %": f"{s_ref['q05'][k].item():.4g} - "
                                    f"{s_ref['q95'][k].item():.4g}",
                "mean shift / reference std": ((s_npe["mean"][k] - s_ref["mean"][k])
                                               / s_ref["std"][k]).item()})
        rows.append(row)
    return rows


def observed_analysis(est: Any, out_dir: Path, *, seed: int, log=print, num_samples: int = 5000,
                      reference: bool = True, ppc_draws: int = 500) -> Section:
    """Posterior of the shipped real observation, its reference, and its predictive check."""
    sim = est.simulator
    if not sim.has_observation:
        raise ConfigError(f"study analysis 'observed' needs a simulator with a shipped real "
                          f"observation; {sim.name!r} has none (remove the analysis or pick "
                          "a simulator option that selects an observation)")
    check_int_option("observed", "num_samples", num_samples, 100)
    check_int_option("observed", "ppc_draws", ppc_draws, 10)
    ppc_draws = min(ppc_draws, num_samples)
    x_obs = sim.observed().to(est.device)
    with torch.no_grad():
        npe = est.sample(num_samples, x_obs[None])[:, 0].to(sim.prior.low)
    names, units = sim.param_names, sim.param_units
    ref = None
    metrics: dict[str, Any] = {"num_samples": num_samples}
    if reference and sim.has_reference_posterior:
        log(f"      observed: reference posterior ({num_samples} MCMC draws)")
        gen = torch.Generator().manual_seed(seed ^ _SALT_REF)
        ref = sim.reference_posterior(x_obs[None], num_samples, generator=gen)[:, 0]
        ref = ref.to(npe)
        metrics["c2st_vs_reference"] = c2st(npe, ref, seed=seed)
    rows = _parameter_rows(npe, ref, names, units)
    metrics["parameters"] = rows

    # posterior predictive check over the data
    log(f"      observed: {ppc_draws} posterior predictive re-simulations")
    theta_rep = npe[:ppc_draws]
    theta_rep = theta_rep[sim.prior.within_support(theta_rep)]
    gen = torch.Generator().manual_seed(seed ^ _SALT_PPC)
    with torch.no_grad():
        x_rep = sim.simulate(theta_rep.to(sim.device), generator=gen)
    flat_rep = x_rep.reshape(x_rep.shape[0], -1).double()
    flat_obs = x_obs.reshape(-1).double().to(flat_rep.device)
    q = torch.quantile(flat_rep, torch.tensor([0.05, 0.95], dtype=torch.float64,
                                              device=flat_rep.device), dim=0)
    inside = ((flat_obs >= q[0]) & (flat_obs <= q[1])).double().mean().item()
    metrics["ppc"] = {"draws": int(x_rep.shape[0]), "bins": int(flat_obs.numel()),
                      "fraction_of_bins_in_90pct_band": inside}
    text = [f"Posterior of the real observation shipped with {sim.name} "
            f"({num_samples} NPE samples)."]
    if sim.has_likelihood:
        with torch.no_grad():
            t_obs = -2 * sim.log_likelihood(theta_rep, x_obs.expand(theta_rep.shape[0],
                                                                     *x_obs.shape))
            t_rep = -2 * sim.log_likelihood(theta_rep, x_rep)
        p = (t_rep >= t_obs).double().mean().item()
        metrics["ppc"]["deviance_pvalue"] = p
        metrics["ppc"]["deviance_observed_median"] = t_obs.median().item()
        text.append(f"Posterior predictive p-value of the deviance: {p:.3f} "
                    f"({'no evidence of misfit' if 0.01 < p < 0.99 else 'the model misfits the data'}"
                    "; values near 0 mean the data fit worse than replicated data do).")
    text.append(f"{100 * inside:.1f} % of the {flat_obs.numel()} bins lie inside the 90 % "
                "posterior predictive band (about 90 % expected for a good fit; Poisson bins "
                "with few counts make the band discrete).")
    if ref is not None:
        c = metrics["c2st_vs_reference"]
        text.append(f"C2ST between the NPE and the reference posterior: {c:.3f} (0.5 means "
                    "indistinguishable, 1 fully separable).")
    figures = [(plot_corner(npe, None, names, units, reference=ref,
                            title="Posterior of the observed data: NPE (blue) vs reference "
                                  "(red)"),
                "Observed-data posterior: NPE (blue) and reference MCMC (red)."),
               (_plot_ppc(x_obs, x_rep), "Posterior predictive check over the observed data: "
                "5-95 % band of re-simulated data and the observed values; bottom: "
                "standardised residuals.")]
    return Section(title="Real observation", text="\n\n".join(text), figures=figures,
                         metrics=metrics, table=rows)
