"""Inverse problems for learned solvers, found through entry points.

A recurrent inference machine (:mod:`sbi_astro.solvers.rim`) learns to recover a signal (a
spectrum, a pair of maps) from data through a physical forward model.  A plugin contributes
such a problem as a function of keyword options returning an object with:

* ``signal_shape``: the shape of one signal, ``(n,)`` or ``(C, H, W)``;
* ``link``: the RIM's link, ``"identity"``, ``"log"`` or one per map channel;
* ``units``: a short string naming the signal's units (for reports);
* ``sample_signals(n, seed) -> (n, *signal_shape)``: true signals drawn from the plugin's
  priors (float32, CPU), the same for the same ``n`` and seed;
* ``log_likelihood(signal, data) -> (B,)``: differentiable in ``signal``;
* ``observe(signal, rng) -> data``: noisy data of each row from its stream of ``rng`` (a
  :class:`~sbi_astro.random.RowRandom`);
* ``misfit(signal, data) -> (B,)``: the reduced goodness of fit of a signal to data (1 for a
  fit at the noise level; e.g. chi^2 or C-stat per data value);
* ``errors(estimate, truth) -> {name: (B,)}``: the per-row errors the problem reports;
* ``baselines() -> {name: fn(data, tune_truth, tune_data) -> estimate}``: classical
  solvers through the same forward model, each tuning its own setting on the pairs given;
* ``groups(truth) -> (labels (B,) int, names list)``: how results are broken down (e.g. by
  total counts; one group is fine);
* optionally ``signal_axis() -> (label, values)``: the coordinate of a 1-D signal's bins
  for figures (e.g. energy in keV);
* optionally ``observed() -> data (1, ...)``: a real observation to reconstruct, and
  ``observed_reference() -> (label, signal (1, ...))``: a classical answer for it (e.g. the
  best-fitting physical model's signal) to show beside the reconstruction;
* optionally ``polish(estimate, data) -> signal``: a step that brings a learned solver's
  answer to the data's noise level (studies apply it with ``test.polish: true``).

They are found only through the entry-point group ``sbi_astro.inverse_problems``, the
built-in ones exactly like a third party's::

    [project.entry-points."sbi_astro.inverse_problems"]
    xray_deconvolution = "simulators.xray.inverse:xray_deconvolution"

Example:
    >>> "lensing_maps" in list_inverse_problems()
    True
    >>> check_inverse_problem_options("lensing_maps", {"warp": 2})
    Traceback (most recent call last):
    ...
    sbi_astro.errors.ConfigError: inverse problem 'lensing_maps': unknown or missing ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import PluginError
from .plugins import check_call, function_names, load_function

GROUP = "sbi_astro.inverse_problems"
REQUIRED = ("signal_shape", "link", "units", "sample_signals", "log_likelihood", "observe",
            "misfit", "errors", "baselines", "groups")


def list_inverse_problems() -> list[str]:
    """Names of the registered inverse problems."""
    return function_names(GROUP)


def inverse_problem_factory(name: str) -> Callable[..., Any]:
    """The function registered as ``name`` (errors as :func:`~sbi_astro.plugins.load_function`)."""
    return load_function(GROUP, name, what="inverse problem")


def check_inverse_problem_options(name: str, options: dict[str, Any]) -> None:
    """Checks that ``options`` fit the signature of problem ``name`` (before any work).

    Raises:
        ConfigError: unknown problem, or options it does not take.
    """
    check_call(inverse_problem_factory(name), f"inverse problem '{name}'", options)


def get_inverse_problem(name: str, **options: Any) -> Any:
    """The problem ``name`` built with ``options`` (checked against its signature).

    Raises:
        PluginError: the returned object lacks part of the protocol.
    """
    check_inverse_problem_options(name, options)
    problem = inverse_problem_factory(name)(**options)
    missing = [attr for attr in REQUIRED if not hasattr(problem, attr)]
    if missing:
        raise PluginError(f"inverse problem {name!r} returned a {type(problem).__name__}, "
                          f"which lacks {missing} (see sbi_astro.inverse_problems)")
    return problem
