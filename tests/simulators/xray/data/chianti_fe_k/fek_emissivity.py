"""
Fe K-alpha emissivities of Fe XXV (w, x, y, z) and Fe XXVI (Ly-alpha 1,2) from CHIANTI data,
low-density (coronal) limit, n_e = 1 cm^-3.

Model: statistical equilibrium of the levels present in the transcribed files
(fe_25: levels 1-49, n<=5; fe_26: levels 1-25, n<=5), electron-impact excitation
(and de-excitation) between the ground level and every excited level (scups, Burgess-Tully
descaling), radiative decays among all levels (wgfa; includes two-photon decays),
cascades handled exactly by the linear solve.
Recombination part (fe_25 only): level-resolved RR rates from fe_26 (rrlvl) as a
source term; result expressed per unit n(Fe XXVI)/n(Fe XXV).
"""
import sys
import numpy as np
from scipy.interpolate import splrep, splev, CubicSpline
import os
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from chianti_io import read_elvlc, read_scups, read_wgfa

KB_KEV = 8.617333e-8             # keV / K  (as specified in the brief)
RY_K = 157887.512                # 1 Rydberg / k_B in K  (13.605693 eV / 8.617333e-5 eV/K)
CM_TO_EV = 1.23984198e-4         # eV per cm^-1
CCOEF = 8.629e-6                 # h^2/((2 pi m_e)^1.5 k_B^0.5) cgs

def descale(d, T, spline='fitpack'):
    """Burgess & Tully (1992) descaling (CHIANTI v8+ scups). Returns Upsilon(T)."""
    U = T / (d['de'] * RY_K)         # kT / dE
    C, t = d['c'], d['ttype']
    if t in (1, 4):
        xn = 1.0 - np.log(C) / np.log(U + C)
    elif t in (2, 3, 5, 6):
        xn = U / (U + C)
    else:
        raise ValueError(t)
    if spline == 'fitpack':      # as fiasco: scipy splrep(s=0) (cubic, not-a-knot)
        y = splev(xn, splrep(d['x'], d['y'], s=0))
    else:                        # natural cubic spline (as IDL spl_init/spl_interp)
        y = CubicSpline(d['x'], d['y'], bc_type='natural')(xn)
    if t == 1:
        ups = y * np.log(U + np.e)
    elif t == 2:
        ups = y
    elif t == 3:
        ups = y / (U + 1.0)
    elif t == 4:
        ups = y * np.log(U + C)
    elif t == 5:
        ups = y / U
    elif t == 6:
        ups = 10.0 ** y
    return ups

class Ion:
    def __init__(self, elvlc, scups, wgfa, nlev):
        self.lv = read_elvlc(elvlc)
        self.sc = [d for d in read_scups(scups) if d['lvl1'] == 1 and d['lvl2'] <= nlev]
        self.wg = [w for w in read_wgfa(wgfa) if w[1] <= nlev]
        self.n = nlev
        self.g = np.array([2 * self.lv[i]['J'] + 1 for i in range(1, nlev + 1)])
        self.E = np.array([(self.lv[i]['Eobs'] if self.lv[i]['Eobs'] > 0 or i == 1 else self.lv[i]['Eth'])
                           for i in range(1, nlev + 1)])
        A = np.zeros((nlev, nlev))     # A[u, l]
        for (l, u, w, gf, a) in self.wg:
            A[u - 1, l - 1] += a        # two-photon + M1 of same pair are summed for the population
        self.A = A
        self.Aline = {}
        for (l, u, w, gf, a) in self.wg:
            key = (l, u, 'twophoton' if w == 0 else 'line')
            self.Aline[key] = self.Aline.get(key, 0) + a

    def exc_rates(self, T, spline='fitpack'):
        """C_1j (cm^3/s) excitation from ground, and de-excitation C_j1"""
        ce = np.zeros(self.n); cd = np.zeros(self.n); ups = np.zeros(self.n)
        for d in self.sc:
            j = d['lvl2'] - 1
            u = descale(d, T, spline)
            ups[j] = u
            de_K = d['de'] * RY_K
            cd[j] = CCOEF * u / (self.g[j] * np.sqrt(T))
            ce[j] = CCOEF * u / (self.g[0] * np.sqrt(T)) * np.exp(-de_K / T)
        return ce, cd, ups

    def solve(self, T, ne=1.0, rec_source=None, spline='fitpack'):
        """Full statistical equilibrium; returns fractional populations (sum = 1).
        rec_source: optional vector (cm^3/s) of recombination rate coefficients into each level;
        if given, returns instead the excited-level populations produced by that source per
        (n_e * n_{+1}) with the ground-level population fixed (linear, separate contribution)."""
        n = self.n
        ce, cd, ups = self.exc_rates(T, spline)
        R = np.zeros((n, n))            # R[i, j] = rate (s^-1) from i to j
        R += self.A                     # radiative u -> l
        R[0, :] += ne * ce              # excitation 1 -> j
        R[:, 0] += ne * cd              # de-excitation j -> 1
        np.fill_diagonal(R, 0.0)
        M = R.T - np.diag(R.sum(axis=1))   # dN/dt = M N
        if rec_source is None:
            M2 = M.copy(); b = np.zeros(n)
            M2[0, :] = 1.0; b[0] = 1.0       # normalisation
            return np.linalg.solve(M2, b)
        # recombination: excited-level block, ground acts as a sink; N_1 term not needed
        Mex = M[1:, 1:]
        s = np.asarray(rec_source)[1:]
        Nex = np.linalg.solve(Mex, -s)     # per (n_e n_+1) [source is alpha * n_e * n_+1]
        return np.concatenate([[0.0], Nex])

    def line_emis(self, N, l, u, kind='line'):
        return N[u - 1] * self.Aline.get((l, u, kind), 0.0)

    def line_energy_keV(self, l, u):
        return (self.E[u - 1] - self.E[l - 1]) * CM_TO_EV / 1e3


def rr_rates_fe25(T):
    """Level-resolved RR rates into fe_25 levels (v10 ordering) from fe_26 ground, cm^3/s."""
    rows = [l.split() for l in open(os.path.join(HERE, 'data', 'fe_25.rrlvl.rates')) if not l.startswith('#')]
    Tg = np.array(rows[0][1:], float)
    alpha = np.zeros(49)
    for r in rows[1:]:
        lev_file = int(r[0])
        # file (CHIANTI 7.1-era, 2012) indexing has levels 4 and 5 swapped w.r.t. the v10 elvlc/scups/wgfa
        lev = {4: 5, 5: 4}.get(lev_file, lev_file)
        v = np.array(r[1:], float)
        alpha[lev - 1] = np.exp(np.interp(np.log(T), np.log(Tg), np.log(v)))
    return alpha

def rr_total(T, A, B, T0, T1):
    """Verner & Ferland type fit used in CHIANTI .rrparams (type 1)"""
    s0 = np.sqrt(T / T0); s1 = np.sqrt(T / T1)
    return A / (s0 * (1 + s0) ** (1 - B) * (1 + s1) ** (1 + B))

def dr_total_fe25(T):
    E = np.array([5.3940e+07, 6.8540e+07, 9.6510e+07]); c = np.array([2.6760e-01, 4.0970e-01, 2.9900e-02])
    return T ** -1.5 * np.sum(c * np.exp(-E / T))


if __name__ == '__main__':
    kTs = np.array([2., 3., 4., 6., 8., 10.])
    Ts = kTs / KB_KEV
    fe25 = Ion(os.path.join(HERE, 'data', 'fe_25.elvlc.1-49'), os.path.join(HERE, 'data', 'fe_25.scups.from1'),
               os.path.join(HERE, 'data', 'fe_25.wgfa.upto49'), 49)
    fe26 = Ion(os.path.join(HERE, 'data', 'fe_26.elvlc'), os.path.join(HERE, 'data', 'fe_26.scups.from1'),
               os.path.join(HERE, 'data', 'fe_26.wgfa'), 25)

    print('Line energies (keV): w %.4f  x %.4f  y %.4f  z %.4f | Lya1 %.4f  Lya2 %.4f' % (
        fe25.line_energy_keV(1, 7), fe25.line_energy_keV(1, 6), fe25.line_energy_keV(1, 4),
        fe25.line_energy_keV(1, 2), fe26.line_energy_keV(1, 4), fe26.line_energy_keV(1, 3)))
    print('A-values: w %.3e x %.3e y %.3e z %.3e | Lya1 %.3e Lya2 %.3e' % (
        fe25.Aline[(1, 7, 'line')], fe25.Aline[(1, 6, 'line')], fe25.Aline[(1, 4, 'line')],
        fe25.Aline[(1, 2, 'line')], fe26.Aline[(1, 4, 'line')], fe26.Aline[(1, 3, 'line')]))

    res = []
    for spline in ('fitpack', 'natural'):
        print(f'\n##### spline = {spline}')
        print(' kT   T[K]       | Fe XXV excitation (photons cm^3 s^-1 per Fe XXV ion per n_e)                       | Fe XXVI excitation')
        print('                 |    w          x          y          z        x+y      w+x+y+z   | direct C_17(w)  | Lya1(3/2)  Lya2(1/2)  Lya sum   [2s M1]')
        for kT, T in zip(kTs, Ts):
            N = fe25.solve(T)
            w = fe25.line_emis(N, 1, 7); x = fe25.line_emis(N, 1, 6)
            y = fe25.line_emis(N, 1, 4); z = fe25.line_emis(N, 1, 2)
            ce, cd, ups = fe25.exc_rates(T, spline)
            N6 = fe26.solve(T, spline=spline)
            l1 = fe26.line_emis(N6, 1, 4); l2 = fe26.line_emis(N6, 1, 3); m1 = fe26.line_emis(N6, 1, 2)
            if spline == 'fitpack':
                N = fe25.solve(T, spline=spline)
            else:
                N = fe25.solve(T, spline=spline)
                w = fe25.line_emis(N, 1, 7); x = fe25.line_emis(N, 1, 6)
                y = fe25.line_emis(N, 1, 4); z = fe25.line_emis(N, 1, 2)
            print(f'{kT:4.0f} {T:9.3e} | {w:9.3e}  {x:9.3e}  {y:9.3e}  {z:9.3e}  {x+y:9.3e}  {w+x+y+z:9.3e} | {ce[6]:9.3e} | {l1:9.3e}  {l2:9.3e}  {l1+l2:9.3e}  [{m1:8.2e}]')
            res.append((spline, kT, T, w, x, y, z, l1, l2, m1))
    np.save(os.path.join(HERE, 'results_exc.npy'), np.array([r[1:] for r in res], float))
