"""Strong-lensing physics as pure, batched, differentiable torch functions.

Conventions (those of lenstronomy, Birrer & Amara 2018, unless stated):

* Angles in arcsec.  ``x`` grows to the right, ``y`` upwards; an image array is indexed
  ``[..., iy, ix]`` with pixel ``(iy, ix)`` centred on
  ``((ix - (nx - 1) / 2) * pixel_scale, (iy - (ny - 1) / 2) * pixel_scale)``.
* Ellipticity ``e1 = (1 - q) / (1 + q) cos 2phi``, ``e2 = (1 - q) / (1 + q) sin 2phi``
  with ``q`` the minor/major axis ratio and ``phi`` the position angle of the major axis,
  counter-clockwise from +x.
* Mass profiles return the (reduced) deflection ``(alpha_x, alpha_y)`` in arcsec; the lens
  equation is ``beta = theta - alpha(theta)``.

Shapes: every function broadcasts its coordinate tensors ``x, y`` against its parameter
tensors.  For a batch of ``N`` lenses on an image grid, pass ``x, y`` of shape ``(H, W)``
and parameters of shape ``(N, 1, 1)`` (see :func:`bcast`); the result is ``(N, H, W)``.

Modules (every public name is re-exported here): :mod:`.geometry` (parameter broadcasting,
ellipticity), :mod:`.mass` (deflections of mass profiles and of pixelated convergence
maps), :mod:`.light` (surface-brightness profiles), :mod:`.pixels` (pixel grids,
supersampling, interpolation, PSF convolution).

References:
    Kormann, Schneider & Bartelmann (1994), A&A 284, 285 (SIE);
    Keeton (2001), arXiv:astro-ph/0102341 (cored SIE, NFW);
    Tessore & Metcalf (2015), A&A 580, A79 (elliptical power law);
    Wright & Brainerd (2000), ApJ 534, 34 (NFW lensing);
    Birrer & Amara (2018), Phys. Dark Univ. 22, 189 (lenstronomy conventions).

Example:
    >>> import torch
    >>> from simulators.lensing import _physics as ph
    >>> x, y = ph.pixel_grid(4, 0.5)
    >>> ax, ay = ph.sis(x, y, torch.tensor(1.0))
    >>> bool(torch.allclose(torch.hypot(ax, ay), torch.ones(4, 4, dtype=torch.float64)))
    True
"""

from .geometry import bcast, ellipse_angles
from .light import SERSIC_SMOOTHING, gaussian_light, sersic
from .mass import (
    SIE_CORE,
    epl,
    epl_convergence,
    nfw,
    nfw_convergence,
    pixelated_deflection,
    pixelated_deflection_kernel_fft,
    shear,
    sie,
    sie_convergence,
    sis,
)
from .pixels import (
    bilinear,
    bin_pixels,
    convolve_valid,
    gaussian_psf_kernel,
    kernel_fft,
    pixel_grid,
)

__all__ = [
    "SERSIC_SMOOTHING", "SIE_CORE",
    "bcast", "ellipse_angles", "sis", "sie", "sie_convergence", "epl", "epl_convergence",
    "nfw", "nfw_convergence", "shear", "pixelated_deflection_kernel_fft",
    "pixelated_deflection", "sersic", "gaussian_light", "bilinear", "pixel_grid",
    "bin_pixels", "gaussian_psf_kernel", "kernel_fft", "convolve_valid",
]
