"""The lensing of a pixelated source by a known lens, as a linear operator: ``image = A source``.

For a fixed lens (SIE + external shear) the image is linear in the source map: every
(sub-)pixel ray is traced back to the source plane (``beta = theta - alpha(theta)``) and
reads the source by bilinear interpolation, the sub-pixel rays of an image pixel are
averaged, and the PSF is a convolution.  :func:`lensing_operator` builds that map once:
the ray tracing and interpolation as a sparse matrix ``(H' W', S^2)`` (four weights per
ray, on an image grid extended by half the PSF so that edge pixels see light from outside
the field), the PSF as a "valid" convolution back to ``(H, W)``.  :class:`LensingOperator`
applies it (``op(source)``), its adjoint (``op.adjoint(image)``) and gives the dense matrix
for small problems (``op.dense()``), so that a score-based source reconstruction
(``sbi_astro.solvers.LinearOperatorLikelihood`` or ``GaussianLinearLikelihood``) can use it.

Conventions: those of :mod:`simulators.lensing._physics` (arcsec, ``[..., iy, ix]``
indexing, pixel centres at ``(i - (n - 1) / 2) * pixel_scale``); source maps are surface
brightness per pixel, zero outside the source grid; shapes ``(N, 1, S, S)`` -> ``(N, 1, H, W)``.

Example:
    >>> import torch
    >>> op = lensing_operator(theta_E=1.0, e1=0.1, e2=0.0, gamma1=0.02, gamma2=0.0,
    ...                       num_pix=16, pixel_scale=0.2, source_num_pix=12,
    ...                       source_pixel_scale=0.1, psf_fwhm=0.2)
    >>> op(torch.ones(2, 1, 12, 12)).shape
    torch.Size([2, 1, 16, 16])
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from sbi_astro.errors import ConfigError, ShapeError

from . import _physics as ph


@dataclasses.dataclass
class LensingOperator:
    """``image = PSF * (M source)``: apply, adjoint and dense form.

    Attributes:
        matrix: sparse ``(H' W', S S)`` ray-tracing and interpolation matrix (COO), ``H' =
            H + k - 1`` with ``k`` the PSF size (1 without a PSF).
        kernel: PSF ``(k, k)``, normalised, or ``None``.
        num_pix: ``H = W``.
        source_num_pix: ``S``.
    """

    matrix: Tensor
    kernel: Tensor | None
    num_pix: int
    source_num_pix: int

    @property
    def k(self) -> int:
        return 1 if self.kernel is None else self.kernel.shape[-1]

    def to(self, device: str | torch.device) -> LensingOperator:
        """This operator on ``device``."""
        kernel = None if self.kernel is None else self.kernel.to(device)
        return dataclasses.replace(self, matrix=self.matrix.to(device), kernel=kernel)

    def _check(self, x: Tensor, n: int, what: str) -> None:
        if x.dim() != 4 or x.shape[1:] != (1, n, n):
            raise ShapeError(f"{what} must have shape (N, 1, {n}, {n}), got {tuple(x.shape)}")

    def __call__(self, source: Tensor) -> Tensor:
        """Image ``(N, 1, H, W)`` of source maps ``(N, 1, S, S)``."""
        self._check(source, self.source_num_pix, "source")
        n, big = source.shape[0], self.num_pix + self.k - 1
        m = self.matrix.to(source.dtype)
        ext = (m @ source.reshape(n, -1).T).T.reshape(n, 1, big, big)
        if self.kernel is None:
            return ext
        return F.conv2d(ext, self.kernel.flip(-1, -2).to(source)[None, None])

    def adjoint(self, image: Tensor) -> Tensor:
        """``A^T image``: ``(N, 1, H, W)`` -> ``(N, 1, S, S)``."""
        self._check(image, self.num_pix, "image")
        n, s = image.shape[0], self.source_num_pix
        ext = image
        if self.kernel is not None:
            ext = F.conv_transpose2d(image, self.kernel.flip(-1, -2).to(image)[None, None])
        mt = self.matrix.to(image.dtype).t()
        return (mt @ ext.reshape(n, -1).T).T.reshape(n, 1, s, s)

    def dense(self) -> Tensor:
        """The matrix ``(H W, S S)`` (for small problems)."""
        eye = torch.eye(self.source_num_pix**2, dtype=self.matrix.dtype,
                        device=self.matrix.device)
        cols = self(eye.reshape(-1, 1, self.source_num_pix, self.source_num_pix))
        return cols.reshape(cols.shape[0], -1).T


def _bilinear_weights(bx: Tensor, by: Tensor, s: int, scale: float
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """Rays ``(R,)`` at source positions -> (ray index, source pixel index, weight) of the
    four neighbouring source pixels inside the grid (zero light outside)."""
    fx = bx / scale + 0.5 * (s - 1)
    fy = by / scale + 0.5 * (s - 1)
    x0, y0 = torch.floor(fx), torch.floor(fy)
    dx, dy = fx - x0, fy - y0
    rays = torch.arange(bx.shape[0], device=bx.device)
    out = []
    for ox, oy, w in ((0, 0, (1 - dx) * (1 - dy)), (1, 0, dx * (1 - dy)),
                      (0, 1, (1 - dx) * dy), (1, 1, dx * dy)):
        ix, iy = (x0 + ox).long(), (y0 + oy).long()
        ok = (ix >= 0) & (ix < s) & (iy >= 0) & (iy < s) & (w > 0)
        out.append((rays[ok], (iy * s + ix)[ok], w[ok]))
    return tuple(torch.cat(parts) for parts in zip(*out, strict=True))


def lensing_operator(*, theta_E: float, e1: float, e2: float, gamma1: float = 0.0,
                     gamma2: float = 0.0, center_x: float = 0.0, center_y: float = 0.0,
                     num_pix: int = 64, pixel_scale: float = 0.08, source_num_pix: int = 64,
                     source_pixel_scale: float = 0.04, supersampling: int = 2,
                     psf_fwhm: float | None = 0.1, dtype: torch.dtype = torch.float32,
                     device: str | torch.device = "cpu") -> LensingOperator:
    """The linear operator of an SIE + external shear lens on a pixelated source.

    Args:
        theta_E, e1, e2, center_x, center_y: SIE (arcsec; lenstronomy conventions).
        gamma1, gamma2: external shear.
        num_pix, pixel_scale: image grid (pixels, arcsec per pixel).
        source_num_pix, source_pixel_scale: source grid.
        supersampling: rays per image pixel side.
        psf_fwhm: Gaussian PSF FWHM (arcsec), ``None`` for none.
        dtype, device: of the operator.

    Raises:
        ConfigError: non-positive sizes or scales.
    """
    if min(num_pix, source_num_pix, supersampling) < 1 or not (pixel_scale > 0
                                                                and source_pixel_scale > 0):
        raise ConfigError("num_pix, source_num_pix, supersampling must be >= 1 and the pixel "
                          "scales positive")
    kernel = None
    if psf_fwhm is not None:
        kernel = ph.gaussian_psf_kernel(psf_fwhm, pixel_scale)
    k = 1 if kernel is None else kernel.shape[-1]
    x, y = ph.pixel_grid(num_pix, pixel_scale, supersampling, (k - 1) // 2)
    t = torch.tensor
    ax, ay = ph.sie(x, y, t(theta_E), t(e1), t(e2), center_x, center_y)
    gx, gy = ph.shear(x, y, t(gamma1), t(gamma2))
    bx, by = (x - ax - gx).reshape(-1), (y - ay - gy).reshape(-1)
    ray, col, w = _bilinear_weights(bx, by, source_num_pix, source_pixel_scale)
    big = num_pix + k - 1
    side = big * supersampling
    iy, ix = ray // side, ray % side
    row = (iy // supersampling) * big + ix // supersampling
    m = torch.sparse_coo_tensor(torch.stack([row, col]), w / supersampling**2,
                                (big * big, source_num_pix**2), check_invariants=True).coalesce()
    return LensingOperator(m.to(dtype).to(device),
                           None if kernel is None else kernel.to(dtype).to(device),
                           num_pix, source_num_pix)
