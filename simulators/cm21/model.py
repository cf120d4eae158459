"""``cm21``: semi-numerical 21 cm boxes and lightcones of the epoch of reionisation.

A torch re-implementation of the 21cmFAST ionisation model (Mesinger, Furlanetto & Cen 2011)
in the ``T_S >> T_CMB`` limit, batched over redshifts and usable on any torch device:

1. a Gaussian random field with the Eisenstein & Hu (1998) linear power spectrum
   (normalised to ``sigma_8``) drawn from the row's random stream;
2. Zel'dovich displacements and cloud-in-cell deposition at each coeval redshift;
3. the excursion-set ionisation criterion ``zeta f_coll(R) >= 1`` for top-hat radii from
   ``R_mfp`` down to the cell (steps of 1.1), conditional Press-Schechter ``f_coll`` above
   the halo mass of virial temperature ``T_vir`` normalised to the Sheth-Tormen mean,
   partial ionisation of the last cell;
4. ``dT_b = 27 x_HI (1 + delta) (...) mK`` per coeval box, interpolated in redshift along
   the line of sight into a lightcone (the periodic box is tiled along the line of sight).

Parameters: ``zeta`` (ionising efficiency), ``log10_Tvir`` [log10 K], ``R_mfp`` [Mpc] and,
with ``vary_omega_m=True``, ``Omega_m``.

Outputs (option ``output``):
    ``"lightcone"`` (default): ``(n, n, n_chunks n)`` brightness temperature [mK], line of
    sight last, redshift increasing along it from ``z_min``.
    ``"coeval"``: ``(n_redshifts, n, n, n)`` [mK] at :attr:`Cm21.redshifts`.
    ``"power_spectrum"``: ``log10(1 + Delta^2(k) / mK^2)`` of each lightcone chunk
    (``n_chunks x n_k_bins``) followed by the neutral fraction at each coeval redshift.

Presets (option ``preset``): ``"fast"`` (default: 32^3 cells, 128 Mpc, z = 6 to 8.2, keeps
one call on six rows near a second on a laptop core), ``"ska64"`` (64^3, 128 Mpc, z = 6 to
11.65, the resolution of the benchmark) and ``"ska128"`` (128^3, 256 Mpc).  Explicit options
override the preset's values.

Example:
    >>> import torch
    >>> from sbi_astro import load_simulator
    >>> sim = load_simulator("cm21", device="cpu", output="power_spectrum")
    >>> theta = torch.tensor([[30.0, 4.7, 15.0]])
    >>> x = sim.simulate(theta, generator=torch.Generator().manual_seed(0))
    >>> tuple(x.shape) == (1, *sim.event_shape)
    True

References:
    Mesinger, Furlanetto & Cen (2011), MNRAS 411, 955 (21cmFAST).
    Greig & Mesinger (2015), MNRAS 449, 4246 (21CMMC; parameters and ranges).
    Neutsch et al. (2022), arXiv:2201.07587 (21cmPIE-Net: 3-D CNN on lightcones).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from sbi_astro.errors import ConfigError
from sbi_astro.priors import Prior, Uniform
from sbi_astro.random import RowRandom
from sbi_astro.simulator import EmbeddingSpec, Simulator

from . import _physics as ph
from .summaries import log_k_edges, neutral_fraction, power_spectrum

OMEGA_M_FIDUCIAL = 0.3111  # Planck 2018 (TT,TE,EE+lowE+lensing)
OMEGA_M_RANGE = (0.2, 0.4)
R_MFP_MAX = 50.0
OUTPUTS = ("lightcone", "coeval", "power_spectrum")
IONISATION_FIELDS = ("evolved", "linear")

#: Named resolutions: cells per side, box side [Mpc], lightcone length in boxes, coeval boxes.
PRESETS: dict[str, dict[str, float | int]] = {
    "fast": {"n_cells": 32, "box_mpc": 128.0, "n_chunks": 6, "n_redshifts": 7},
    "ska64": {"n_cells": 64, "box_mpc": 128.0, "n_chunks": 12, "n_redshifts": 13},
    "ska128": {"n_cells": 128, "box_mpc": 256.0, "n_chunks": 6, "n_redshifts": 13},
}


@dataclasses.dataclass(frozen=True)
class Cm21Options:
    """Options of :class:`Cm21`.

    Attributes:
        preset: ``"fast"``, ``"ska64"`` or ``"ska128"`` (see :data:`PRESETS`).
        n_cells: cells per box side (overrides the preset); even, >= 8.
        box_mpc: comoving box side [Mpc] (overrides the preset).
        n_chunks: lightcone length in box sides (overrides the preset).
        n_redshifts: number of coeval boxes, evenly spaced in z over the lightcone
            (overrides the preset); lightcone slices interpolate linearly between them.
        z_min: redshift of the near end of the lightcone (and the lowest coeval box).
        output: ``"lightcone"``, ``"coeval"`` or ``"power_spectrum"``.
        vary_omega_m: add ``Omega_m`` (0.2-0.4) as a fourth parameter.
        ionisation_field: ``"evolved"`` (21cmFAST: excursion set on the Zel'dovich density
            at each redshift) or ``"linear"`` (the linear field, smoothed once and shared by
            all redshifts: ~n_redshifts times fewer FFTs).
        noise_mk: rms of white thermal noise per voxel [mK] added to the signal (0: none).
        wedge: remove the horizon foreground wedge from each lightcone chunk / coeval box.
        n_k_bins: power-spectrum bins per chunk (``output="power_spectrum"``).
        row_batch: rows simulated together in one vectorised call.  ``1`` (default) makes
            each row bitwise independent of the batch it is simulated in; larger values are
            faster on GPUs, where outputs then agree across batchings to float round-off.
    """

    preset: str = "fast"
    n_cells: int | None = None
    box_mpc: float | None = None
    n_chunks: int | None = None
    n_redshifts: int | None = None
    z_min: float = 6.0
    output: str = "lightcone"
    vary_omega_m: bool = False
    ionisation_field: str = "evolved"
    noise_mk: float = 0.0
    wedge: bool = False
    n_k_bins: int = 8
    row_batch: int = 1

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"cm21 option preset={self.preset!r} is unknown; "
                              f"choose one of {sorted(PRESETS)}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"cm21 option output={self.output!r} is unknown; choose one of "
                              f"{list(OUTPUTS)}")
        if self.ionisation_field not in IONISATION_FIELDS:
            raise ConfigError(f"cm21 option ionisation_field={self.ionisation_field!r} is "
                              f"unknown; choose one of {list(IONISATION_FIELDS)}")
        n = self.resolved("n_cells")
        if n < 8 or n % 2:
            raise ConfigError(f"cm21 option n_cells must be an even number >= 8, got {n}")
        if self.resolved("box_mpc") <= 0:
            raise ConfigError("cm21 option box_mpc must be positive")
        if self.resolved("n_chunks") < 1:
            raise ConfigError("cm21 option n_chunks must be >= 1")
        if self.resolved("n_redshifts") < 2:
            raise ConfigError("cm21 option n_redshifts must be >= 2 (lightcone interpolation)")
        if not 3.0 <= self.z_min <= 30.0:
            raise ConfigError(f"cm21 option z_min must lie in [3, 30], got {self.z_min}")
        if self.noise_mk < 0:
            raise ConfigError("cm21 option noise_mk must be >= 0")
        if self.n_k_bins < 1 or self.row_batch < 1:
            raise ConfigError("cm21 options n_k_bins and row_batch must be >= 1")

    def resolved(self, name: str) -> float | int:
        """The option's value, or the preset's where the option is ``None``."""
        value = getattr(self, name)
        return PRESETS[self.preset][name] if value is None else value


class Cm21(Simulator):
    """21 cm brightness-temperature lightcones/boxes of reionisation (21cmFAST-like)."""

    name = "cm21"
    Options = Cm21Options

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        o = self.options
        self.cosmo = ph.Cosmology()
        self.n = int(o.resolved("n_cells"))
        self.box = float(o.resolved("box_mpc"))
        self.n_chunks = int(o.resolved("n_chunks"))
        self.n_redshifts = int(o.resolved("n_redshifts"))
        self.cell = self.box / self.n
        self.n_los = self.n_chunks * self.n
        self.radii = ph.filter_radii(self.cell, R_MFP_MAX)
        # the coeval grid must reach the far end of the lightcone for every Omega_m
        om_far = torch.tensor([OMEGA_M_RANGE[1] if o.vary_omega_m else OMEGA_M_FIDUCIAL],
                              dtype=torch.float64)
        d0 = ph.comoving_distance(torch.tensor([o.z_min], dtype=torch.float64), om_far,
                                  self.cosmo.h)
        z_far = ph.redshift_at_distance((d0 + self.n_los * self.cell)[:, None], om_far,
                                        self.cosmo.h)
        self.z_max = float(z_far) * (1 + 1e-6)
        self.redshifts = torch.linspace(o.z_min, self.z_max, self.n_redshifts,
                                        dtype=torch.float64)
        self.k_edges = log_k_edges(self.n, self.box, o.n_k_bins)

    # -- metadata -------------------------------------------------------------------------
    def build_prior(self) -> Prior:
        params = [
            Uniform("zeta", 10.0, 250.0),
            Uniform("log10_Tvir", 4.0, 5.3, unit="log10 K"),
            Uniform("R_mfp", 5.0, R_MFP_MAX, unit="Mpc"),
        ]
        if self.options.vary_omega_m:
            params.append(Uniform("Omega_m", *OMEGA_M_RANGE))
        return Prior(params)

    @property
    def event_shape(self) -> tuple[int, ...]:
        out = self.options.output
        if out == "lightcone":
            return (self.n, self.n, self.n_los)
        if out == "coeval":
            return (self.n_redshifts, self.n, self.n, self.n)
        return (self.n_chunks * self.options.n_k_bins + self.n_redshifts,)

    @property
    def x_standardization(self) -> str:  # type: ignore[override]
        return "independent" if self.options.output == "power_spectrum" else "structured"

    def default_embedding(self) -> EmbeddingSpec:
        if self.options.output == "power_spectrum":
            return EmbeddingSpec("mlp", {"in_shape": list(self.event_shape), "out_features": 16})
        los_stride = 2 if self.options.output == "lightcone" else 1
        return EmbeddingSpec("conv3d", {"in_shape": list(self.event_shape), "out_features": 16,
                                        "channels": [16, 32, 64], "los_stride": los_stride})

    # -- physics ----------------------------------------------------------------------------
    def _omega_m(self, theta: Tensor) -> Tensor:
        if self.options.vary_omega_m:
            return theta[:, 3].to(torch.float64)
        return torch.full((theta.shape[0],), OMEGA_M_FIDUCIAL, dtype=torch.float64,
                          device=theta.device)

    def coeval(self, theta: Tensor, white: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Coeval boxes from parameters and white noise (the deterministic core).

        Args:
            theta: ``(N, D)`` flat parameters.
            white: unit white noise ``(N, n, n, n)`` seeding the initial conditions.

        Returns:
            ``dT_b (N, Z, n, n, n)`` [mK], ``x_HI (N, Z, n, n, n)`` and ``1 + delta`` (same
            shape) at :attr:`redshifts`.
        """
        dev, dt = theta.device, white.dtype
        n, box, cosmo = self.n, self.box, self.cosmo
        b = theta.shape[0]
        th = theta.to(torch.float64)
        zeta, tvir, rmfp = th[:, 0], 10 ** th[:, 1], th[:, 2]
        om = self._omega_m(theta)
        zg = self.redshifts.to(dev)
        nz = zg.numel()
        kx, ky, kz = ph.wavenumbers(n, box, device=dev)
        kmag = torch.sqrt(kx**2 + ky**2 + kz**2).clamp_min(1e-30)
        if self.options.vary_omega_m:
            pk = ph.linear_power(kmag, om[:, None, None, None], cosmo)
        else:
            fid = torch.tensor(OMEGA_M_FIDUCIAL, dtype=torch.float64)
            pk = self.constant("pk", ph.linear_power(kmag.cpu(), fid, cosmo)[None],
                               like=kmag)
        delta_k = ph.gaussian_field(white, box, pk)  # (B, n, n, m), z = 0
        growth = ph.growth_factor(zg[None, :], om[:, None])  # (B, Z)
        psi = ph.zeldovich_displacement(delta_k, box).reshape(b, 1, 3, n**3)
        grid = torch.stack(torch.meshgrid(*(torch.arange(n, device=dev, dtype=dt),) * 3,
                                          indexing="ij")).reshape(1, 1, 3, n**3) + 0.5
        pos = grid + growth.to(dt)[:, :, None, None] * psi
        dens = ph.cic_deposit(pos.reshape(b * nz, 3, n**3), n).reshape(b, nz, n, n, n)
        if self.options.ionisation_field == "evolved":
            d0k = torch.fft.rfftn(dens - 1, dim=(-3, -2, -1)) / growth.to(dt)[..., None, None, None]
        else:
            d0k = delta_k[:, None]
        radii = torch.tensor(self.radii, dtype=torch.float64, device=dev)
        sigma_r = ph.sigma_tophat(radii[None, :], om[:, None], cosmo)
        sigma_mfp = ph.sigma_tophat(rmfp, om, cosmo)
        mmin = ph.virial_mass(tvir[:, None], zg[None, :], om[:, None], cosmo)
        sigma_min = ph.sigma_tophat(ph.mass_to_radius(mmin, om[:, None], cosmo), om[:, None], cosmo)
        fmean = ph.fcoll_st(ph.DELTA_C / (sigma_min * growth))
        x_i = ph.excursion_set(d0k, box, self.radii, rmfp, zeta, sigma_min, sigma_r, sigma_mfp,
                               growth, fmean)
        x_hi = 1 - x_i
        tb = ph.brightness_temperature(x_hi, dens, zg[None, :], om[:, None], cosmo)
        return tb, x_hi, dens

    def lightcone(self, tb: Tensor, theta: Tensor) -> Tensor:
        """Lightcone ``(N, n, n, n_los)`` [mK] from coeval boxes ``tb (N, Z, n, n, n)``.

        Slice ``i`` lies at comoving distance ``D_C(z_min) + (i + 1/2) L_cell``; it takes slice
        ``i mod n`` of the two coeval boxes bracketing its redshift, linearly interpolated in z.
        """
        dev = tb.device
        b = tb.shape[0]
        om = self._omega_m(theta)
        zg = self.redshifts.to(dev)
        d0 = ph.comoving_distance(torch.full_like(om, self.options.z_min), om, self.cosmo.h)
        dist = d0[:, None] + (torch.arange(self.n_los, device=dev, dtype=torch.float64) + 0.5
                              ) * self.cell
        zs = ph.redshift_at_distance(dist, om, self.cosmo.h).clamp(zg[0], zg[-1])  # (B, L)
        j = (torch.searchsorted(zg, zs.contiguous(), right=True) - 1).clamp(0, zg.numel() - 2)
        w = ((zs - zg[j]) / (zg[j + 1] - zg[j])).to(tb.dtype)  # (B, L)
        slab = torch.arange(self.n_los, device=dev) % self.n
        # (B, L, n, n): box j, slice (i mod n) along the last axis
        lo = tb[torch.arange(b, device=dev)[:, None], j, :, :, slab[None, :]]
        hi = tb[torch.arange(b, device=dev)[:, None], j + 1, :, :, slab[None, :]]
        lc = (1 - w)[..., None, None] * lo + w[..., None, None] * hi
        return lc.permute(0, 2, 3, 1)

    def chunk_redshifts(self, theta: Tensor) -> Tensor:
        """Redshift at the centre of each lightcone chunk ``(N, n_chunks)``."""
        om = self._omega_m(theta)
        d0 = ph.comoving_distance(torch.full_like(om, self.options.z_min), om, self.cosmo.h)
        centres = torch.arange(self.n_chunks, device=theta.device, dtype=torch.float64) + 0.5
        return ph.redshift_at_distance(d0[:, None] + centres * self.box, om, self.cosmo.h)

    def _observe(self, theta: Tensor, white: Tensor, noise: Tensor | None) -> Tensor:
        o = self.options
        tb, x_hi, _ = self.coeval(theta, white)
        b = theta.shape[0]
        om = self._omega_m(theta)
        if o.output == "coeval":
            cube = tb
            slope = ph.wedge_slope(self.redshifts.to(theta.device)[None, :], om[:, None],
                                   self.cosmo.h)
        else:
            lc = self.lightcone(tb, theta)
            cube = lc.reshape(b, self.n, self.n, self.n_chunks, self.n).permute(0, 3, 1, 2, 4)
            slope = ph.wedge_slope(self.chunk_redshifts(theta), om[:, None], self.cosmo.h)
        if noise is not None:
            cube = cube + o.noise_mk * noise.reshape(cube.shape)
        if o.wedge:
            cube = ph.remove_wedge(cube, self.box, slope)
        if o.output == "coeval":
            return cube
        if o.output == "lightcone":
            return cube.permute(0, 2, 3, 1, 4).reshape(b, self.n, self.n, self.n_los)
        d2, _, _ = power_spectrum(cube, self.box, self.k_edges)
        summary = torch.log10(1 + d2.clamp_min(0)).reshape(b, -1)
        return torch.cat([summary, neutral_fraction(x_hi).to(summary.dtype)], dim=-1)

    def _simulate(self, theta: Tensor, rng: RowRandom) -> Tensor:
        o = self.options
        n = self.n
        white = rng.normal((n, n, n), dtype=self.dtype)
        noise = None
        if o.noise_mk > 0:
            shape = ((self.n_redshifts, n, n, n) if o.output == "coeval"
                     else (self.n_chunks, n, n, n))
            noise = rng.normal(shape, dtype=self.dtype)
        outs = []
        for start in range(0, theta.shape[0], o.row_batch):
            sl = slice(start, start + o.row_batch)
            outs.append(self._observe(theta[sl], white[sl],
                                      None if noise is None else noise[sl]))
        return torch.cat(outs).to(self.dtype)


__all__ = ["Cm21", "Cm21Options", "PRESETS"]
