"""``lensing_maps``: a lensed source and the lens's convergence map together, from one
image: an inverse problem for learned solvers (``sbi_astro.inverse_problems``; Adam et al.
2023, ApJ 951, 6).

* **Image**: ``num_pix`` square pixels of ``pixel_scale`` arcsec (64 x 0.08 by default),
  Gaussian PSF (FWHM ``psf_fwhm``), noise ``N(0, background_rms^2 + mu / exposure_time)``
  per pixel: ``lensing_pixelated`` with ``noise="gaussian"``, through its
  :meth:`~simulators.lensing.pixelated.LensingPixelated.lens_maps` (the forward model of
  any two maps) and ``variance``.
* **Convergence**: ``kappa_num_pix`` square pixels over the image's field (32 by default,
  0.16 arcsec), from ``lensing_pixelated``'s prior: an SIE (Einstein radius 0.6-1.6
  arcsec, ellipticity up to 0.3) plus a Gaussian subhalo.  No external shear: a convergence
  map on a finite field cannot hold a shear that comes from outside it.
* **Source**: ``source_num_pix`` square pixels of ``source_pixel_scale`` arcsec (32 x 0.04
  by default), GalSim galaxies (bulge + disk + 15 RandomKnots, the ``galsim_sources``
  plugin) drawn on pixels ``galaxy_pixel_scale`` arcsec wide (0.08: placed on the source
  grid at half their drawn size) and scaled to ``flux_scale`` electrons/s per GalSim count
  (1-10 electrons/s in total by default): surface brightness in electrons/s per arcsec^2.

The signal is ``(2, n, n)``: channel 0 the source, channel 1 the convergence (link
``("identity", "log")``: a RIM estimates ``log kappa``).  The peer (``baselines``) is a
regularised MAP of the same likelihood, a smoothness penalty on the source and on
``log kappa``, weights tuned, by Adam from the priors' mean maps.

Example:
    >>> problem = lensing_maps(num_pix=32, kappa_num_pix=16, source_num_pix=16)
    >>> problem.signal_shape
    (2, 16, 16)
    >>> maps = problem.sample_signals(2, seed=0)
    >>> tuple(maps.shape), tuple(problem.expected(maps).shape)
    ((2, 2, 16, 16), (2, 32, 32))
"""

from __future__ import annotations

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError
from sbi_astro.random import RowRandom
from sbi_astro.registry import load_simulator

MAP_WEIGHTS = ((0.1, 1.0), (1.0, 1.0), (1.0, 10.0), (10.0, 10.0), (10.0, 100.0))


class LensingMaps:
    """The source + convergence reconstruction (float32 maps ``(B, 2, n, n)``)."""

    link = ("identity", "log")
    units = "source: electrons/s per arcsec^2; convergence: dimensionless"

    def __init__(self, *, num_pix: int, pixel_scale: float, kappa_num_pix: int,
                 source_num_pix: int, source_pixel_scale: float, psf_fwhm: float,
                 galaxy_pixel_scale: float, flux_scale: float, map_steps: int,
                 device: str | None):
        if kappa_num_pix != source_num_pix:
            raise ConfigError(f"lensing_maps estimates both maps on one grid: kappa_num_pix "
                              f"({kappa_num_pix}) must equal source_num_pix ({source_num_pix})")
        if not flux_scale > 0 or map_steps < 1:
            raise ConfigError(f"lensing_maps needs flux_scale > 0 and map_steps >= 1, got "
                              f"{flux_scale} and {map_steps}")
        image = {"num_pix": num_pix, "pixel_scale": pixel_scale, "psf_fwhm": psf_fwhm,
                 "kappa_num_pix": kappa_num_pix, "source_num_pix": source_num_pix,
                 "source_pixel_scale": source_pixel_scale, "noise": "gaussian"}
        self.lens = load_simulator("lensing_pixelated", device=device, **image)
        self._maps_lens = load_simulator("lensing_pixelated", device="cpu", **image)
        self.galaxies = load_simulator("galsim_sources", device="cpu", num_pix=source_num_pix,
                                       pixel_scale=galaxy_pixel_scale, n_knots=15)
        self.flux_scale, self.map_steps = float(flux_scale), int(map_steps)
        self.signal_shape = (2, source_num_pix, source_num_pix)

    # -- the protocol ----------------------------------------------------------------------
    def expected(self, maps: Tensor) -> Tensor:
        """Noise-free images ``(B, num_pix, num_pix)`` [electrons/s per pixel]."""
        return self.lens.lens_maps(maps[:, 1], maps[:, 0])

    def log_likelihood(self, maps: Tensor, image: Tensor) -> Tensor:
        """``log N(image | mu, var(mu))`` per row, without the ``2 pi``."""
        return self._fit(maps, image)[0]

    def _fit(self, maps: Tensor, image: Tensor) -> tuple[Tensor, Tensor]:
        """The log-likelihood (without the ``2 pi``) and the reduced chi^2, per row."""
        mu = self.expected(maps)
        var = self.lens.variance(mu)
        r2 = (image - mu) ** 2 / var
        return -0.5 * (r2 + var.log()).sum((-2, -1)), r2.mean((-2, -1))

    def observe(self, maps: Tensor, rng: RowRandom) -> Tensor:
        mu = self.expected(maps)
        return mu + self.lens.variance(mu).sqrt() * rng.normal(tuple(mu.shape[1:]))

    def misfit(self, maps: Tensor, image: Tensor) -> Tensor:
        """Reduced chi^2 ``mean((image - mu)^2 / var(mu))`` per row."""
        with torch.no_grad():
            dev = self.lens.device
            return self._fit(maps.to(dev), image.to(dev))[1].cpu()

    def sample_signals(self, n: int, seed: int) -> Tensor:
        """``n`` true map pairs (lens and galaxy parameters from the plugins' priors, knot
        positions from the rows' streams), on the CPU."""
        gen = torch.Generator().manual_seed(seed)
        theta = self._maps_lens.prior.sample((n,), generator=gen)
        kappa, _ = self._maps_lens.maps(theta)
        gtheta = self.galaxies.prior.sample((n,), generator=gen)
        counts = self.galaxies.simulate(gtheta, generator=gen)
        source = counts * self.flux_scale / self.lens.options.source_pixel_scale ** 2
        return torch.stack([source, kappa], 1).float()

    def errors(self, est: Tensor, truth: Tensor) -> dict[str, Tensor]:
        """``source``: RMS error of the source over the truth's peak; ``log_kappa``: RMS
        error of ``log kappa`` (the estimate floored at 1e-6)."""
        est, truth = est.cpu(), truth.cpu()
        peak = truth[:, 0].amax((-2, -1))
        return {"source": (est[:, 0] - truth[:, 0]).pow(2).mean((-2, -1)).sqrt() / peak,
                "log_kappa": (est[:, 1].clamp_min(1e-6).log() - truth[:, 1].log()
                              ).pow(2).mean((-2, -1)).sqrt()}

    def groups(self, truth: Tensor) -> tuple[Tensor, list[str]]:
        return torch.zeros(truth.shape[0], dtype=torch.long), ["all"]

    def baselines(self) -> dict:
        return {"regularised-map": self._tuned_map}

    def polish(self, estimate: Tensor, images: Tensor, *, tolerance: float = 1.0,
               steps: int = 300, lr: float = 3e-3) -> Tensor:
        """A reconstruction brought to the data's noise level (the discrepancy principle,
        Morozov 1966): Adam on the negative log-likelihood alone, in ``z = [s / s_0, log
        kappa]`` (``s_0`` each row's peak), from ``estimate``; each row is taken at the
        first step where its reduced chi^2 is within ``tolerance`` standard deviations
        (``sqrt(2 / N)`` for ``N`` pixels) of 1, so rows already there are unchanged, and
        rows that never get there after ``steps`` steps are taken at the last.  Without a
        prior the step fits noise into the source: it trades source accuracy for a
        consistent fit (see docs/solvers_rim.md)."""
        dev = self.lens.device
        est, images = estimate.to(dev).float(), images.to(dev)
        s0 = est[:, 0].abs().amax((-2, -1)).clamp_min(1e-6)[:, None, None]  # per row
        z = torch.stack([est[:, 0] / s0, est[:, 1].clamp_min(1e-6).log()], 1)
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        target = 1.0 + tolerance * (2.0 / images[0].numel()) ** 0.5  # sd of chi^2 / N
        out = est.clone()
        with torch.no_grad():
            done = self._fit(est, images)[1] <= target  # already there: returned as they are
        for _ in range(steps + 1):
            maps = torch.stack([z[:, 0] * s0, z[:, 1].exp()], 1)
            ll, chi2 = self._fit(maps, images)
            with torch.no_grad():
                now = (chi2 <= target) & ~done
                out[now] = maps[now]
                done |= now
            if bool(done.all()):
                break
            opt.zero_grad()
            (-(ll * (~done).float()).sum()).backward()
            opt.step()
        out[~done] = maps[~done].detach()
        return out

    def _tuned_map(self, images: Tensor, tune_truth: Tensor, tune_images: Tensor) -> Tensor:
        return self.regularised_map(images, self.mean_start(),
                                    self.tune_map_weights(tune_truth, tune_images))

    def tune_map_weights(self, tune_truth: Tensor, tune_images: Tensor
                         ) -> tuple[float, float]:
        """The weights of :data:`MAP_WEIGHTS` whose MAP has the lowest summed mean errors
        (source + log kappa) on the tuning pairs."""
        start = self.mean_start()
        def score(w: tuple[float, float]) -> float:
            e = self.errors(self.regularised_map(tune_images, start, w), tune_truth)
            return float(e["source"].mean() + e["log_kappa"].mean())
        return min(MAP_WEIGHTS, key=score)

    _mean = None

    def mean_start(self) -> Tensor:
        """The link-space mean ``(2, n, n)`` of 256 maps from the priors (seed 9999): the
        MAP's starting point, as a RIM starts from its training set's mean."""
        if self._mean is None:
            truth = self.sample_signals(256, seed=9999)
            self._mean = torch.stack([truth[:, 0].mean(0), truth[:, 1].log().mean(0)])
        return self._mean

    # -- the peer --------------------------------------------------------------------------
    def regularised_map(self, images: Tensor, start: Tensor, weights: tuple[float, float], *,
                        steps: int | None = None, lr: float = 0.05) -> Tensor:
        """Regularised MAP of the same likelihood: minimises ``-log L + w_s |grad s|^2 /
        s_0^2 + w_k |grad log kappa|^2`` over ``z = [s / s_0, log kappa]`` by Adam
        (``steps``, default ``map_steps``) from ``start`` (link space), ``s_0`` the
        largest source value there; returns the maps."""
        dev = self.lens.device
        images, start = images.to(dev), start.to(dev)
        s0 = float(start[0].abs().max().clamp_min(1e-6))
        z = start.expand(images.shape[0], *start.shape).clone()
        z[:, 0] = z[:, 0] / s0
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], lr=lr)
        w = torch.tensor(weights, dtype=z.dtype, device=dev)

        def maps() -> Tensor:
            return torch.stack([z[:, 0] * s0, z[:, 1].exp()], 1)

        for _ in range(self.map_steps if steps is None else steps):
            loss = -self.log_likelihood(maps(), images).sum() + (w * smoothness(z)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return maps().detach()


def smoothness(z: Tensor) -> Tensor:
    """``sum |grad z|^2`` per row and channel ``(B, C)`` (finite differences)."""
    return z.diff(dim=-1).pow(2).sum((-2, -1)) + z.diff(dim=-2).pow(2).sum((-2, -1))


def lensing_maps(num_pix: int = 64, pixel_scale: float = 0.08, kappa_num_pix: int = 32,
                 source_num_pix: int = 32, source_pixel_scale: float = 0.04,
                 psf_fwhm: float = 0.1, galaxy_pixel_scale: float = 0.08,
                 flux_scale: float = 0.01, map_steps: int = 1500,
                 device: str | None = None) -> LensingMaps:
    """The source + convergence problem (see the module docstring); ``device`` is where
    the peer's optimisation runs (``None``: CUDA if available); the forward model follows
    the device of the maps it is given, and true maps are drawn on the CPU."""
    return LensingMaps(num_pix=num_pix, pixel_scale=pixel_scale, kappa_num_pix=kappa_num_pix,
                       source_num_pix=source_num_pix, source_pixel_scale=source_pixel_scale,
                       psf_fwhm=psf_fwhm, galaxy_pixel_scale=galaxy_pixel_scale,
                       flux_scale=flux_scale, map_steps=map_steps, device=device)
