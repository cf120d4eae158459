"""Your own imaging data for the lensing simulators: a FITS image (or a cutout of one), its
PSF, noise map and mask, read and checked once.

Conventions (those of :mod:`simulators.lensing.base`): images in electrons per second per
pixel, ``[iy, ix]`` indexed with ``y`` upwards (FITS order: the first row is the bottom
one), the lens at the centre of the cutout.  The pixel scale comes from the image's WCS
(``CDELT``/``CD``/``PC``; square pixels), the exposure time from its ``EXPTIME`` keyword.

* **PSF**: a FITS kernel with an odd side, normalised to unit sum here; when sampled
  ``psf_supersampling`` times finer than the image, it is binned in blocks of
  ``psf_supersampling x psf_supersampling`` pixels (its side must then be an odd multiple
  of the factor, so the binned kernel stays centred).
* **Noise map**: per-pixel standard deviation of the background (sky, read noise) in the
  image's units; the source's own Poisson noise is added from the exposure time, as with
  ``background_rms``.  Zeros, negatives and NaN are refused.
* **Mask**: non-zero where a pixel is used; masked pixels are zero in the simulations and
  in :meth:`observed`, and do not enter the likelihood.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from astropy.io import fits
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> fits.PrimaryHDU(np.ones((4, 4)) / 16).writeto(folder / "psf.fits")
    >>> read_psf(folder / "psf.fits")
    Traceback (most recent call last):
        ...
    sbi_astro.errors.DataFormatError: .../psf.fits: the PSF kernel is 4 x 4 pixels; its side must be odd so that it has a centre pixel (crop or pad it by one row and column)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from pathlib import Path

import numpy as np

from sbi_astro.errors import DataFormatError


@dataclasses.dataclass(frozen=True)
class ImageData:
    """A science image read from FITS.

    Attributes:
        image: ``(n, n)`` float64 pixel values [e-/s per pixel].
        pixel_scale: arcsec per pixel from the WCS (``None``: the header has none).
        exposure_time: ``EXPTIME`` [s] (``None``: absent).
    """

    image: np.ndarray
    pixel_scale: float | None
    exposure_time: float | None


def _primary_array(path: Path, what: str) -> tuple[np.ndarray, object]:
    """The first image HDU's data (float64) and header."""
    from astropy.io import fits

    if not path.is_file():
        raise DataFormatError(f"{path}: the {what} file does not exist; check the path")
    try:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if getattr(hdu, "is_image", False) and hdu.data is not None:
                    return np.asarray(hdu.data, dtype=np.float64), hdu.header.copy()
    except (OSError, ValueError, TypeError) as err:
        raise DataFormatError(f"{path}: not a readable FITS file for the {what} ({err}); "
                              "give a FITS image") from None
    raise DataFormatError(f"{path}: no image HDU with data in the {what} file; give a FITS "
                          "image (a 2-D array in the primary HDU or an image extension)")


def _square_2d(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    arr = np.squeeze(arr)
    if arr.ndim != 2:
        raise DataFormatError(f"{path}: the {what} has shape {arr.shape}; a 2-D image is "
                              "needed")
    return arr


def _pixel_scale(header: object, path: Path) -> float | None:
    """Arcsec per pixel from the header's celestial WCS; ``None`` without one."""
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import proj_plane_pixel_scales

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as err:  # astropy raises many kinds on a broken WCS
            raise DataFormatError(f"{path}: its WCS cannot be read ({err}); fix the header or "
                                  "give pixel_scale") from None
    if not wcs.has_celestial:
        return None
    scales = proj_plane_pixel_scales(wcs.celestial) * 3600.0
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        return None
    if abs(scales[0] / scales[1] - 1.0) > 1e-3:
        raise DataFormatError(f"{path}: the pixels are not square ({scales[0]:.6g} x "
                              f"{scales[1]:.6g} arcsec); resample the image to square pixels")
    # 12 significant digits: a header's CDELT converted to degrees and back is exact to
    # ~1e-16, and the rounding gives back the value it was written from
    return float(f"{scales.mean():.12g}")


def read_image(path: str | Path, *, center: tuple[float, ...] | None = None,
               size: int | None = None) -> ImageData:
    """The science image, or a ``size x size`` cutout of it centred on ``center``.

    Args:
        path: FITS file; the first image HDU is used.
        center: ``(RA, Dec)`` [deg] of the lens, converted to pixels with the WCS.
        size: cutout side [pixels], with ``center``.

    Raises:
        DataFormatError: not a 2-D image, not square (without a cutout), non-finite pixels,
            a cutout outside the image.
    """
    path = Path(path)
    return _read_image(path, *_stat(path), center=tuple(center) if center else None,
                       size=size)


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _read_image(path: Path, _size: int, _mtime: int, *, center: tuple[float, ...] | None,
                size: int | None) -> ImageData:
    arr, header = _primary_array(path, "image")
    arr = _square_2d(arr, path, "image")
    scale = _pixel_scale(header, path)
    if center is not None:
        arr = _cutout(arr, header, center, size, path)
    elif arr.shape[0] != arr.shape[1]:
        raise DataFormatError(f"{path}: the image is {arr.shape[1]} x {arr.shape[0]} pixels; "
                              "give a square cutout, or center=[RA, Dec] and cutout_pix=N")
    if not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).sum())
        raise DataFormatError(f"{path}: the image holds {bad} NaN or infinite pixel(s); "
                              "replace them (and mask them with mask=PATH)")
    exptime = header.get("EXPTIME")
    try:
        exptime = float(exptime) if exptime is not None else None
    except (TypeError, ValueError):
        raise DataFormatError(f"{path}: EXPTIME is {exptime!r}, not a number; fix the header "
                              "or give exposure_time") from None
    if exptime is not None and not (math.isfinite(exptime) and exptime > 0):
        raise DataFormatError(f"{path}: EXPTIME is {exptime}; it must be a positive number of "
                              "seconds (fix the header or give exposure_time)")
    arr.setflags(write=False)
    return ImageData(arr, scale, exptime)


def _cutout(arr: np.ndarray, header: object, center: tuple[float, ...], size: int | None,
            path: Path) -> np.ndarray:
    from astropy.coordinates import SkyCoord
    from astropy.nddata import Cutout2D, NoOverlapError, PartialOverlapError
    from astropy.wcs import WCS

    if size is None or len(center) != 2:
        raise DataFormatError(f"{path}: a cutout needs center=[RA, Dec] in degrees and "
                              "cutout_pix=N pixels")
    wcs = WCS(header, naxis=2)
    if not wcs.has_celestial:
        raise DataFormatError(f"{path}: center=[RA, Dec] needs a celestial WCS in the header, "
                              "which it lacks; cut the image yourself or fix its header")
    try:
        cut = Cutout2D(arr, SkyCoord(center[0], center[1], unit="deg"), size, wcs=wcs,
                       mode="strict")
    except (NoOverlapError, PartialOverlapError):
        raise DataFormatError(f"{path}: a {size}-pixel cutout around RA, Dec = {center[0]}, "
                              f"{center[1]} deg does not lie inside the image; check the "
                              "centre or take a smaller cutout_pix") from None
    return np.array(cut.data, dtype=np.float64)


def read_psf(path: str | Path, supersampling: int = 1) -> np.ndarray:
    """The PSF kernel ``(k, k)`` float64 normalised to unit sum (to 1e-12; binned to the image's
    pixels when sampled ``supersampling`` times finer).

    Raises:
        DataFormatError: not 2-D and square, an even side (after binning), non-finite
            values, a sum that is not positive.
    """
    path = Path(path)
    arr, _ = _primary_array(path, "PSF")
    arr = _square_2d(arr, path, "PSF")
    k = arr.shape[0]
    if arr.shape[0] != arr.shape[1]:
        raise DataFormatError(f"{path}: the PSF kernel is {arr.shape[1]} x {arr.shape[0]} "
                              "pixels; it must be square with an odd side")
    if not np.all(np.isfinite(arr)):
        raise DataFormatError(f"{path}: the PSF kernel holds NaN or infinite values")
    if supersampling > 1:
        if k % supersampling or (k // supersampling) % 2 == 0:
            raise DataFormatError(
                f"{path}: the PSF kernel is {k} x {k} pixels at psf_supersampling="
                f"{supersampling}; its side must be an odd multiple of {supersampling} so that "
                "the binned kernel has a centre pixel (crop or pad it)")
        m = k // supersampling
        arr = arr.reshape(m, supersampling, m, supersampling).sum(axis=(1, 3))
        k = m
    if k % 2 == 0:
        raise DataFormatError(f"{path}: the PSF kernel is {k} x {k} pixels; its side must be "
                              "odd so that it has a centre pixel (crop or pad it by one row "
                              "and column)")
    total = float(arr.sum())
    if not total > 0:
        raise DataFormatError(f"{path}: the PSF kernel sums to {total:g}; it must have a "
                              "positive sum (it is normalised to 1 here); check the file")
    # a kernel already normalised (to round-off) is used as written
    return arr if abs(total - 1.0) < 1e-12 else arr / total


def _like_image(path: Path, what: str, shape: tuple[int, int]) -> np.ndarray:
    """A 2-D array of the image's ``shape`` read from ``path``."""
    arr = _square_2d(_primary_array(path, what)[0], path, what)
    if arr.shape != tuple(shape):
        raise DataFormatError(f"{path}: the {what} is {arr.shape[1]} x {arr.shape[0]} pixels "
                              f"but the image is {shape[1]} x {shape[0]}; give the {what} of "
                              "the same pixels (cut it like the image)")
    return arr


def read_noise_map(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel background standard deviation, ``shape`` float64.

    Raises:
        DataFormatError: another shape than the image's, zeros, negatives or non-finite.
    """
    path = Path(path)
    arr = _like_image(path, "noise map", shape)
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        iy, ix = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}: the noise map holds {int(bad.sum())} zero, negative, NaN or infinite "
            f"value(s) (first at pixel x={ix}, y={iy}: {arr[iy, ix]}); a standard deviation "
            "must be positive: replace them and mask those pixels with mask=PATH")
    return arr


def read_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape``: ``True`` where a pixel is used (non-zero in the file).

    Raises:
        DataFormatError: another shape than the image's, non-finite values, or every pixel
            masked.
    """
    path = Path(path)
    arr = _like_image(path, "mask", shape)
    if not np.all(np.isfinite(arr)):
        raise DataFormatError(f"{path}: the mask holds NaN or infinite values; use 1 for a "
                              "pixel to use and 0 for one to ignore")
    used = arr != 0
    if not used.any():
        raise DataFormatError(f"{path}: the mask hides every pixel (all zero); 1 marks a "
                              "pixel to use, 0 one to ignore")
    return used


def background_rms(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """A robust background standard deviation of ``image``: 1.4826 x the median absolute
    deviation of the pixels in the outer ring of width ``n / 8`` (the lens sits at the
    centre of the cutout), masked pixels excluded."""
    n = image.shape[0]
    w = max(1, n // 8)
    ring = np.ones_like(image, dtype=bool)
    ring[w:n - w, w:n - w] = False
    if mask is not None:
        ring &= mask
    values = image[ring] if ring.any() else image.ravel()
    return float(1.4826 * np.median(np.abs(values - np.median(values))))
