"""The MEKAL thermal plasma: continuum, ionisation balance, lines, redshift, simulator."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from simulators.xray import _mekal as mk
from simulators.xray.mekal_table import mekal_table
from simulators.xray.thermal import XrayThermal

D = torch.float64
RY_KEV = 0.0136057


def _gaunt_born_elwert(u: float, kt: float, z: float) -> float:
    """Thermally averaged non-relativistic Born free-free Gaunt factor with the Elwert
    Coulomb correction (Elwert 1939; e.g. Rybicki & Lightman 1979 sect. 5.3):
    ``g(u) = int_0^inf g_BE(x_f + u, x_f) exp(-x_f) dx_f`` with energies in units of kT,
    ``g_B = (sqrt 3 / pi) ln[(sqrt x_i + sqrt x_f) / (sqrt x_i - sqrt x_f)]`` and
    ``f_E = sqrt(x_i/x_f) (1 - exp(-2 pi eta_i)) / (1 - exp(-2 pi eta_f))``,
    ``eta = Z sqrt(Ry / E_electron)``."""

    def integrand(t: float) -> float:
        if t <= 0:
            return 0.0
        x = t + u
        gb = math.sqrt(3) / math.pi * math.log((math.sqrt(x) + math.sqrt(t))
                                               / (math.sqrt(x) - math.sqrt(t)))
        ei = 2 * math.pi * z * math.sqrt(RY_KEV / (x * kt))
        ef = 2 * math.pi * z * math.sqrt(RY_KEV / (t * kt))
        return gb * math.sqrt(x / t) * (-math.expm1(-ei)) / (-math.expm1(-ef)) * math.exp(-t)

    return quad(integrand, 0, np.inf, limit=200)[0]


@pytest.mark.parametrize("kt", [5.0, 6.5, 10.0])
def test_zero_metals_is_analytic_bremsstrahlung(kt):
    """At Z = 0 and kT = 5-10 keV the plasma is H + He free-free emission:
    ``eps(E) = C_ff sum_i Z_i^2 (n_i/n_H) g(E, T) exp(-E/kT) / (E sqrt(kT))`` photons cm^3 s^-1
    keV^-1 per n_e n_H, ``C_ff`` = Rybicki & Lightman eq. 5.14b over h E (3.03e-15).
    MEKAL uses the exact Karzas & Latter (1961) Gaunt factors, the reference the first-order
    Born-Elwert ones: they differ by < 5 % for gamma^2 = Z^2 Ry/kT ~ 1e-3 at 0.5-8 keV
    (measured 1.5-4.3 %), which is the tolerance."""
    sim = XrayThermal(device="cpu", dtype=D, fix_redshift=None, fix_abundance=0.0)
    energy = np.array([0.5, 1.0, 2.0, 4.0, 6.0, 8.0])
    edges = torch.tensor(np.stack([energy * 0.995, energy * 1.005], 1).ravel())
    one = torch.ones(1, dtype=D)
    flux = sim.plasma_flux(torch.tensor([kt], dtype=D), 0 * one, 1e-14 * one, 0 * one,
                           edges)[0, ::2].numpy() / (0.01 * energy)
    he = mk.SOLAR[1]
    ref = np.array([
        mk.RAW_TO_CGS * (1.0 * _gaunt_born_elwert(e / kt, kt, 1.0)
                         + 4.0 * he * _gaunt_born_elwert(e / kt, kt, 2.0))
        * math.exp(-e / kt) / (e * math.sqrt(kt)) for e in energy])
    np.testing.assert_allclose(flux, ref, rtol=0.05)
    # and the constant itself is the textbook one (6.8e-38 erg cm^3 s^-1 Hz^-1 K^1/2)
    assert mk.FF_CGS == pytest.approx(6.8e-38, rel=6e-3)


def _fractions(kt: float, element: str) -> np.ndarray:
    tab = mekal_table()
    j = int(np.argmin(np.abs(np.log(tab["kt"] / kt))))
    assert abs(math.log(tab["kt"][j] / kt)) < 0.05  # grid point within 5 %
    e = mk.ELEMENTS.index(element)
    k0, n = mk.ION_START[e], mk.N_ION[e]
    return tab["ion_fraction"][j, k0:k0 + n]


def test_ion_fractions_follow_arnaud_rothenflug():
    """Ionisation equilibrium against Arnaud & Rothenflug (1985, A&AS 60, 425) / Arnaud &
    Raymond (1992, Fe) as tabulated by Mazzotta et al. (1998, A&AS 133, 403): the dominant
    stage and its fraction at a few temperatures.  Those tables agree with each other to
    ~10-20 % in fractions near the maxima, hence the bounds."""
    for f in (_fractions(0.1, "O"), _fractions(0.5, "Si"), _fractions(3.0, "Fe")):
        assert f.sum() == pytest.approx(1.0, abs=2e-4)  # fractions < 1e-5 are cut
    o = _fractions(0.1, "O")  # log T = 6.06: He-like O VII dominates (> 90 %)
    assert o.argmax() == 6 and o[6] > 0.9
    o = _fractions(0.5, "O")  # log T = 6.76: O mostly bare (O IX ~ 0.9-0.95)
    assert o.argmax() == 8 and 0.85 < o[8] < 0.99
    si = _fractions(0.5, "Si")  # Si XIII (He-like) dominates around log T = 6.8
    assert si.argmax() == 12 and si[12] > 0.8
    si = _fractions(2.0, "Si")  # log T = 7.37: mostly bare Si
    assert si.argmax() == 14
    fe = _fractions(0.4, "Fe")  # Ne-like Fe XVII dominates at log T ~ 6.6-6.8
    assert fe.argmax() == 16 and 0.4 < fe[16] < 0.8
    fe = _fractions(3.0, "Fe")  # He-like Fe XXV dominates 7.3 < log T < 7.9, ~0.7 at peak
    assert fe.argmax() == 24 and 0.55 < fe[24] < 0.85
    fe = _fractions(20.0, "Fe")  # log T = 8.37: bare and H-like Fe share the rest
    assert fe[25] + fe[26] > 0.8


_KB_KEV = 8.617333262e-8  # Boltzmann constant, keV / K (CODATA 2018)
_REFERENCE = Path(__file__).parent / "data" / "ion_fractions_cie.csv"


def _published_fractions() -> list[tuple[str, int, float, float, float]]:
    """``(element, ion, log10 T, Mazzotta 1998, CHIANTI 10.1)`` rows of the shipped table."""
    rows = []
    for line in _REFERENCE.read_text().splitlines():
        if line.startswith("#") or line.startswith("element"):
            continue
        el, ion, _, logt, maz, chi = line.split(",")
        rows.append((el, int(ion), float(logt), float(maz) if maz else 0.0, float(chi)))
    return rows


def _our_fraction(element: str, ion: int, log_t: float) -> float:
    """The table's ion fraction at ``T``, interpolated linearly in (ln kT, ln f)."""
    tab = mekal_table()
    e = mk.ELEMENTS.index(element)
    f = np.clip(tab["ion_fraction"][:, mk.ION_START[e] + ion - 1], 1e-30, None)
    kt = _KB_KEV * 10.0 ** log_t
    return float(np.exp(np.interp(math.log(kt), np.log(tab["kt"]), np.log(f))))


def test_ion_fractions_match_mazzotta_1998():
    """Ion fractions against the published CIE table of Mazzotta et al. (1998, A&AS 133, 403,
    Table 2; shipped in ``data/ion_fractions_cie.csv`` with its provenance), which updates
    the Arnaud & Rothenflug (1985) / Arnaud & Raymond (1992) rates that MEKAL uses.

    The table states no accuracy; the spread between published tables is the yardstick
    (CHIANTI 10.1, shipped beside it, differs from it by 0.1-30 % on stages holding more
    than 10 % of their element and by up to 1.7x on minor ones).  Checked: at the issue's
    temperatures every listed stage above 10 % within 8 % (measured: 5.3 % at worst, Fe XXVI
    at log T 7.8; O within 1.6 %) and every stage of 1-10 % no farther from Mazzotta than
    CHIANTI is, plus 5 % (measured: Fe XVII at log T 7.0, 0.027 against 0.041, CHIANTI 0.070); over the whole
    6.0-8.5 grid the stages above 10 % agree within 0.64 % in the median and 22.7 % at worst
    (Fe XVII at log T 6.9 and Si XIII at 6.2, on the steep sides of their maxima), closer
    than CHIANTI (32 % at worst).
    """
    rows = _published_fractions()
    table = {(el, ion, logt): (maz, chi) for el, ion, logt, maz, chi in rows}
    points = {"O": ([7, 8, 9], [6.0, 6.3, 6.5, 6.7, 7.0]),
              "Si": ([13, 14, 15], [6.5, 6.8, 7.0, 7.2]),
              "Fe": ([17, 25, 26, 27], [6.6, 7.0, 7.4, 7.8, 8.0])}
    checked = 0
    for el, (ions, temps) in points.items():
        for ion in ions:
            for logt in temps:
                maz, chi = table[el, ion, logt]
                if maz <= 0.01:
                    continue
                checked += 1
                ours = _our_fraction(el, ion, logt)
                tol = 0.08 if maz > 0.1 else abs(chi / maz - 1.0) + 0.05
                assert abs(ours / maz - 1.0) < tol, (el, ion, logt, ours, maz, chi)
    assert checked >= 25
    dev = np.array([abs(_our_fraction(el, ion, logt) / maz - 1.0)
                    for el, ion, logt, maz, _ in rows if maz > 0.1])
    spread = np.array([abs(chi / maz - 1.0) for *_, maz, chi in rows if maz > 0.1])
    assert len(dev) > 80
    assert np.median(dev) < 0.02 and dev.max() < 0.25
    assert dev.max() < spread.max()  # closer to Mazzotta than the other published table


def test_fe_k_equivalent_width_curve():
    """EW of the Fe K complex (6.4-7.1 keV) at solar abundance: rises steeply from kT = 1 keV
    as Fe XXV appears, peaks at kT ~ 1.5-3 keV, then falls as Fe is stripped and the
    continuum hardens (the shape of Rothenflug & Arnaud 1985, A&A 144, 431, Fig. 3).
    Measured with this table: 1.06 keV at 1 keV, max 1.92 keV at 1.8 keV, 1.22 at 6.3, 0.74
    at 10 keV."""
    tab = mekal_table()
    ok = (tab["kt"] > 0.5) & (tab["kt"] < 40)  # no continuum at 6.7 keV below
    kt, ew = tab["kt"][ok], tab["fe_k"][ok] / tab["fe_k_cont"][ok]
    peak = kt[np.argmax(ew)]
    assert 1.5 < peak < 3.0
    ew6 = np.interp(np.log(6.0), np.log(kt), ew)
    ew10 = np.interp(np.log(10.0), np.log(kt), ew)
    assert 1.0 < ew6 < 1.6 and 0.5 < ew10 < 1.0 and ew10 < 0.6 * ew.max()


_CHIANTI_FE_K = Path(__file__).parent / "data" / "chianti_fe_k" / "results.csv"


def _chianti_fe_k() -> dict[str, np.ndarray]:
    """Columns of the CHIANTI Fe K reference (photons cm^3 s^-1 per ion per n_e)."""
    rows = np.genfromtxt(_CHIANTI_FE_K, delimiter=",", names=True)
    return {k: np.asarray(rows[k], float) for k in rows.dtype.names}


def _table_at(tab: dict, key: str, kt: np.ndarray) -> np.ndarray:
    """A ``(T,)`` column of the table at ``kt``, interpolated linearly in (ln kT, ln value)."""
    values = np.clip(np.asarray(tab[key], float), 1e-300, None)
    return np.exp(np.interp(np.log(kt), np.log(tab["kt"]), np.log(values)))


def _fe_k_setup() -> tuple[dict, np.ndarray, dict, float, np.ndarray, np.ndarray]:
    """The CHIANTI reference, its temperatures, our table, the solar Fe abundance and our
    Fe XXV and Fe XXVI ion fractions at those temperatures."""
    ref = _chianti_fe_k()
    kt = ref["kT_keV"]
    tab = mekal_table()
    fe = mk.ELEMENTS.index("Fe")
    f25, f26 = (_table_at({"kt": tab["kt"], "f": tab["ion_fraction"][:, mk.ION_START[fe] + i]},
                          "f", kt) for i in (24, 25))
    return ref, kt, tab, float(mk.SOLAR[fe]), f25, f26


def test_fe_k_lines_match_chianti():
    """Fe XXV (w + x + y + z) and Fe XXVI Lyman-alpha emissivities per ion against CHIANTI
    (Whiteford et al. 2001 and Ballance et al. 2002 R-matrix data, Badnell 2006 recombination;
    coronal-limit level populations, ``data/chianti_fe_k/README.md``), at kT = 2-10 keV.

    Fe XXV: the reference is excitation plus recombination from Fe XXVI weighted by our own
    n(Fe XXVI)/n(Fe XXV) (the ion balance is checked against Mazzotta et al. above).  Measured:
    ours / CHIANTI = 0.92, 0.95, 0.96, 0.98, 1.00, 1.02.  Tolerance 10 %: CHIANTI's two fits of
    the same R-matrix data differ by up to 4 %, its truncation at n = 5 leaves z ~5 % low, and
    its approximate recombination remainder (~30 % uncertain) is 3-15 % of the lines.
    Fe XXVI: the reference has no recombination from bare Fe (no level-resolved data in the
    files used), so ours must lie above it by at most the recombination share: measured 0.99,
    1.02, 1.06 up to 4 keV (where n(Fe XXVII)/n(Fe XXVI) <= 0.06) and 1.13, 1.18, 1.23 above
    (where it grows to 0.7).
    """
    ref, kt, tab, a_fe, f25, f26 = _fe_k_setup()
    ours25 = _table_at(tab, "fe_xxv", kt) / (a_fe * f25)  # per Fe XXV ion per n_e
    ours26 = _table_at(tab, "fe_xxvi", kt) / (a_fe * f26)
    chianti25 = ref["sum_exc"] + f26 / f25 * ref["sum_rec"]
    ratio25, ratio26 = ours25 / chianti25, ours26 / ref["LyA_exc"]
    assert np.all(np.abs(ratio25 - 1.0) < 0.10), ratio25
    low = kt <= 4.0
    assert np.all(np.abs(ratio26[low] - 1.0) < 0.08), ratio26
    assert np.all((ratio26[~low] > 1.0) & (ratio26[~low] < 1.30)), ratio26


def test_fe_k_equivalent_width_matches_chianti_within_20_percent():
    """The issue's check: the Fe K (6.7 / 6.97 keV) equivalent width against kT at solar
    abundance (Anders & Grevesse 1989, as MEKAL) within 20 % of the reference curve.  The
    reference EW puts the CHIANTI line emissivities (test above; Fe XXVI excitation only) over
    the same continuum at 6.7 keV, so it tests the lines; the continuum is tested against
    analytic bremsstrahlung above.  Measured EW (keV): 0.73, 1.03, 1.11, 1.04, 0.86, 0.69 at
    kT = 2, 3, 4, 6, 8, 10 keV (reference 0.79, 1.09, 1.15, 1.03, 0.82, 0.63); ours / reference
    = 0.92-1.10.  (The whole 6.4-7.1 keV band, with the satellites and the Fe XVII-XXIV lines,
    is larger: 1.89 keV at 2 keV, 1.26 at 6, 0.76 at 10.)"""
    ref, kt, tab, a_fe, f25, f26 = _fe_k_setup()
    cont = _table_at(tab, "fe_k_cont", kt)  # photons cm^3 s^-1 keV^-1 per n_e n_H
    ew = (_table_at(tab, "fe_xxv", kt) + _table_at(tab, "fe_xxvi", kt)) / cont
    lines_ref = a_fe * (f25 * ref["sum_exc"] + f26 * ref["sum_rec"] + f26 * ref["LyA_exc"])
    ew_ref = lines_ref / cont
    assert np.all(np.abs(ew / ew_ref - 1.0) < 0.20), ew / ew_ref
    assert kt[np.argmax(ew)] == kt[np.argmax(ew_ref)] == 4.0  # both peak at 4 keV on this grid


def test_redshift_shifts_lines_by_one_plus_z():
    sim = XrayThermal(device="cpu", dtype=D, fix_redshift=None)
    edges = torch.linspace(3.0, 8.0, 2001, dtype=D)
    mid = 0.5 * (edges[1:] + edges[:-1])
    one = torch.ones(1, dtype=D)
    kt = torch.tensor([4.0], dtype=D)

    def line_centroid(z: float) -> float:
        with_lines = sim.plasma_flux(kt, one, one, z * one, edges)[0]
        cont = sim.plasma_flux(kt, 0 * one, one, z * one, edges)[0]  # H + He only
        excess = (with_lines - cont).clamp_min(0)
        band = (mid > 6.2 / (1 + z)) & (mid < 7.2 / (1 + z))
        return float((mid[band] * excess[band]).sum() / excess[band].sum())

    c0, c1 = line_centroid(0.0), line_centroid(0.5)
    assert 6.6 < c0 < 6.8  # the Fe XXV + XXVI complex
    # ratio exact up to the table's 0.23 % energy bins (two bins of slack)
    assert c1 == pytest.approx(c0 / 1.5, rel=5e-3)


def test_fixed_and_free_redshift_paths_agree():
    theta = torch.tensor([[0.1, 1.3, 0.4, -3.5]], dtype=D)
    fixed = XrayThermal(device="cpu", dtype=D, fix_redshift=0.3)
    free = XrayThermal(device="cpu", dtype=D, fix_redshift=None)
    a = fixed.expected(theta)
    b = free.expected(torch.tensor([[0.1, 1.3, 0.4, 0.3, -3.5]], dtype=D))
    # same table; the two paths interpolate in kT before / after binning, so they agree to
    # the interpolation error (< 1 % per channel, 0.1 % in total counts)
    assert float(a.sum()) == pytest.approx(float(b.sum()), rel=1e-3)
    torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-3)


def test_nh_zero_and_abundance_scaling():
    sim = XrayThermal(device="cpu", dtype=D, background=False)
    theta = torch.tensor([[0.0, 2.0, 1.0, -3.5], [0.3, 2.0, 1.0, -3.5]], dtype=D)
    mu = sim.expected(theta)
    edges, _, fold, _ = sim._consts(theta)
    p = sim.full_params(theta)
    unabsorbed = sim._photon_flux(p, edges, torch.zeros(2, 1, dtype=D)) @ fold
    assert torch.equal(mu[0], unabsorbed[0])
    assert (mu[1] <= unabsorbed[1]).all() and mu[1].sum() < 0.9 * mu[0].sum()
    # counts are linear in the abundance: mu(A) = mu(0) + A (mu(1) - mu(0))
    th = torch.tensor([[0.1, 2.0, a, -3.5] for a in (0.0, 1.0, 1.7)], dtype=D)
    m = sim.expected(th)
    torch.testing.assert_close(m[2], m[0] + 1.7 * (m[1] - m[0]))


def test_two_components_add():
    one = XrayThermal(device="cpu", dtype=D, background=False)
    two = XrayThermal(device="cpu", dtype=D, background=False, components=2)
    assert two.param_names == ("nH", "kT", "abundance", "log10_norm", "kT2", "log10_norm2")
    a = one.expected(torch.tensor([[0.2, 0.7, 0.5, -3.6]], dtype=D))
    b = one.expected(torch.tensor([[0.2, 3.0, 0.5, -3.9]], dtype=D))
    ab = two.expected(torch.tensor([[0.2, 0.7, 0.5, -3.6, 3.0, -3.9]], dtype=D))
    torch.testing.assert_close(ab, a + b)


def test_gradients_and_float32():
    sim = XrayThermal(device="cpu")
    theta = sim.prior.sample((4,), generator=torch.Generator().manual_seed(0))
    theta.requires_grad_(True)
    mu = sim.expected(theta)
    mu.sum().backward()
    assert mu.dtype == torch.float32 and torch.isfinite(theta.grad).all()
    assert (theta.grad[:, 1] != 0).all()  # kT moves the spectrum


def test_table_is_reproducible_from_atomic_data(tmp_path):
    """Rebuilds the shipped table from the MEKAL files when they are available here."""
    # ../shared beside the checkout (as in CI), or the workplace's copy
    here = Path(__file__).resolve().parents[3].parent / "shared"
    candidates = [here, Path("/work/shared")]
    src = next((c / "data/xray/mekal_atomic_data" for c in candidates
                if (c / "data/xray/mekal_atomic_data").exists()), Path("/nonexistent"))
    if not src.exists():
        pytest.skip("MEKAL atomic data not available (only needed at build time)")
    from simulators.xray import build_mekal_table as b

    b.build(src, tmp_path / "t.npz")
    new, old = np.load(tmp_path / "t.npz"), mekal_table()
    for k in ("hhe", "metals", "ion_fraction", "fe_k", "fe_xxv", "fe_xxvi"):
        np.testing.assert_allclose(new[k], old[k], rtol=1e-6, atol=0)


def test_emissivity_constant_matches_mekal_normalisation():
    """MEKAL's flux routine returns ``raw * 2.53325e-3 n_H^2 (n_e/n_H) / sqrt(kT) * Cem`` in
    photons cm^-2 s^-1 keV^-1 for ``Cem = V / d^2`` in 1e50 cm^3 / pc^2 (Kaastra 1992): the
    emissivity per n_e n_H is then ``raw * 2.53325e-3 * 4 pi / (1e50 / pc^2) / sqrt(kT)``. Our
    constant, derived from the free-free formula and CODATA values, must agree to 0.1 %,
    which ties the XSPEC norm convention to the physics."""
    pc_cm = 3.0856775814913673e18
    mekal = 2.53325e-3 * 4 * math.pi / (1e50 / pc_cm**2)
    assert mk.RAW_TO_CGS == pytest.approx(mekal, rel=1e-3)
