"""The likelihood a RIM consumes for X-ray deconvolution, through the real Chandra response.

The signal is the intrinsic photon flux density [photons cm^-2 s^-1 keV^-1] on the live
input bins of the shipped 3C 273 response; the counts are Poisson with mean
``(s * dE) @ fold + background`` (what ``xray_powerlaw.expected`` computes from its
parameters, checked here), and the RIM sees the gradient of the Poisson log-likelihood with
respect to ``ln s``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sbi_astro import load_simulator
from sbi_astro.solvers.rim import likelihood_gradient, poisson_log_likelihood


@pytest.fixture(scope="module")
def response():
    sim = load_simulator("xray_powerlaw", device="cpu", observation="chandra_3c273",
                         grouping="none")
    width = torch.as_tensor(np.diff(sim.model_edges))
    fold = torch.as_tensor(sim.response.fold_matrix[sim.model_bins]) * width[:, None]
    return sim, width, fold, torch.as_tensor(sim.response.background)


def test_the_forward_model_reproduces_the_simulator(response):
    sim, width, fold, bkg = response
    theta = sim.prior.sample((6,), generator=torch.Generator().manual_seed(0))
    density = sim.photon_flux(theta) / width  # photons cm^-2 s^-1 keV^-1
    assert density.shape == (6, fold.shape[0]) and bool((density > 0).all())
    # float32 model vs the float64 fold of the same flux: 1e-6 relative
    torch.testing.assert_close(density @ fold + bkg, sim.expected(theta).double(),
                               rtol=1e-6, atol=1e-6)


def test_poisson_gradient_through_the_real_response_matches_finite_differences(response):
    sim, width, fold, bkg = response
    theta = sim.prior.sample((2,), generator=torch.Generator().manual_seed(1))
    z = torch.log(sim.photon_flux(theta) / width)
    counts = torch.poisson(z.exp() @ fold + bkg, generator=torch.Generator().manual_seed(2))
    ll = poisson_log_likelihood(lambda s: s @ fold + bkg)
    grad, _ = likelihood_gradient(ll, z, counts, "log")
    # central differences on 12 bins spread over the band (float64; error O(eps^2) ~ 1e-8
    # of the log-likelihood's curvature scale)
    for j in np.linspace(0, z.shape[1] - 1, 12).astype(int):
        dz = torch.zeros_like(z)
        dz[:, j] = 1e-5
        fd = (ll((z + dz).exp(), counts) - ll((z - dz).exp(), counts)) / 2e-5
        torch.testing.assert_close(grad[:, j], fd, rtol=1e-5, atol=1e-6)
    # the analytic form s * F (n / mu - 1), and far above the tolerance of the comparison
    mu = z.exp() @ fold + bkg
    torch.testing.assert_close(grad, z.exp() * ((counts / mu - 1.0) @ fold.T))
    assert float(grad.abs().max()) > 0.1
