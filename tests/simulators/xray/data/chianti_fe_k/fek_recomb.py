"""Recombination contribution (Fe XXVI + e -> Fe XXV) to the Fe XXV w, x, y, z lines.
All results are photons cm^3 s^-1 per Fe XXVI ion per electron, i.e. multiply by
n(Fe XXVI)/n(Fe XXV) and add to the excitation emissivity (per Fe XXV ion per n_e).

Parts:
 (1) RR, level resolved, CHIANTI fe_25.rrlvl (Badnell 2006), levels 1-49 (n<=5)  [CHIANTI data]
 (2) DR through the KLL doubly-excited levels 128-137 (2l2l'), explicit: dielectronic capture from
     Fe XXVI 1s via detailed balance of the .auto autoionization rates, radiative stabilisation
     (wgfa) into 1s2l / 1s3l, autoionization as loss, then cascades.         [CHIANTI data]
 (3) APPROXIMATE remainders (not level-resolved in the files used here):
     RR into n>=6  = RR_total(fe_26.rrparams) - sum(rrlvl levels 1-49), and
     DR via KLM, KLN... = DR_total(fe_26.drparams) - DR_KLL(explicit),
     each given the per-recombination w/x/y/z yields of RR into the n=3-5 levels (8-49).
"""
import sys, numpy as np
import os
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fek_emissivity import Ion, rr_rates_fe25, rr_total, KB_KEV

SAHA = 4.1413e-16        # (h^2 / (2 pi m_e k))^1.5  cm^3 K^1.5
HC_K = 1.4387769         # cm K  (hc/k)
IP25 = 71203000.0        # cm^-1, fe_25.elvlc footer

def dr_total_fe26(T):
    """fe_26.drparams (Badnell type): DR rate coefficient of Fe XXVI -> Fe XXV"""
    E = np.array([5.5520e+07, 7.4750e+07, 1.2360e+08]); c = np.array([1.9840e-01, 2.6760e-01, -2.2930e-03])
    return T ** -1.5 * np.sum(c * np.exp(-E / T))

def rr_total_fe26(T):
    """fe_26.rrparams: RR rate coefficient of Fe XXVI -> Fe XXV"""
    return rr_total(T, 9.9830e-10, 0.67540, 6.6510e+03, 4.0170e+08)

class Fe25DR(Ion):
    """Fe XXV 49 singly-excited levels + 10 KLL autoionizing levels (model index 50..59 = CHIANTI 128..137)"""
    def __init__(self):
        super().__init__(os.path.join(HERE, 'data', 'fe_25.elvlc.1-49'), os.path.join(HERE, 'data', 'fe_25.scups.from1'),
                         os.path.join(HERE, 'data', 'fe_25.wgfa.upto49'), 49)
        kll = []; wg = []
        for l in open(os.path.join(HERE, 'data', 'fe_25.KLL.dat')):
            p = l.split()
            if not p: continue
            if p[0] == 'LEV':
                kll.append((int(p[1]), 2 * float(p[5]) + 1, float(p[6]), float(p[7])))
            elif p[0] == 'WG':
                wg.append((int(p[1]), int(p[2]), float(p[5])))
        self.kll = kll
        n = 49 + len(kll)
        A = np.zeros((n, n)); A[:49, :49] = self.A
        self.Aloss = np.zeros(n)          # decays leaving the model (autoionization; decays to n>5 levels)
        self.Aauto = np.zeros(n)
        idx = {c: 49 + k for k, (c, g, E, Aa) in enumerate(kll)}
        for (c, g, E, Aa) in kll:
            self.Aauto[idx[c]] = Aa
        for (lo, up, a) in wg:
            if lo <= 49:
                A[idx[up], lo - 1] += a
            else:
                self.Aloss[idx[up]] += a  # tiny (to 1s7l, 1s8l); treated as leaving the n<=5 system
        self.A_ext = A; self.idx = idx; self.next = n

    def capture(self, T):
        """dielectronic capture rate coefficients (cm^3/s) into the KLL levels, from Fe XXVI 1s (g=2)"""
        s = np.zeros(self.next)
        for (c, g, E, Aa) in self.kll:
            s[self.idx[c]] = SAHA * T ** -1.5 * g / (2.0 * 2.0) * Aa * np.exp(-(E - IP25) * HC_K / T)
        return s

    def solve_source(self, T, source, ne=1.0):
        """excited-level populations per (n_e n_+) for a given source vector (cm^3/s) (extended model)"""
        n = self.next
        ce, cd, ups = self.exc_rates(T)
        R = np.zeros((n, n)); R += self.A_ext
        R[0, 1:49] += ne * ce[1:]; R[1:49, 0] += ne * cd[1:]
        np.fill_diagonal(R, 0.0)
        out = R.sum(axis=1) + self.Aauto + self.Aloss
        M = R.T - np.diag(out)
        N = np.linalg.solve(M[1:, 1:], -source[1:])
        return np.concatenate([[0.0], N])

    def lines(self, N):
        A = self.A_ext
        # w, x, y, z  (z: M1 1s2s 3S1 -> 1s2; y: 3P1; x: 3P2 (M2); w: 1P1)
        return np.array([N[6] * A[6, 0], N[5] * A[5, 0], N[3] * A[3, 0], N[1] * A[1, 0]])


if __name__ == '__main__':
    m = Fe25DR()
    kTs = np.array([2., 3., 4., 6., 8., 10.]); Ts = kTs / KB_KEV

    # ---- check of the rrlvl level mapping: alpha_j/g_j should be constant within an LS term
    a = rr_rates_fe25(4 / KB_KEV)
    terms = {}
    for i in range(1, 50):
        lv = m.lv[i]
        terms.setdefault((lv['conf'], lv['mult'], lv['L']), []).append((i, a[i - 1] / m.g[i - 1]))
    spread = max(max(v[1] for v in vals) / min(v[1] for v in vals) for vals in terms.values() if len(vals) > 1)
    print(f'rrlvl alpha/g max spread within LS terms (after 4<->5 swap): {spread:.3f}')

    hdr = ' kT |   w          x          y          z          x+y        sum(wxyz)'
    rows = {}
    print('\n(1) RR, level-resolved (rrlvl, n<=5)   [photons cm^3/s per Fe XXVI ion per n_e]')
    print(hdr + ' | sum alpha_j(1-49)  RR_total(fe_26.rrparams)  frac')
    for kT, T in zip(kTs, Ts):
        alpha = rr_rates_fe25(T)
        src = np.zeros(m.next); src[:49] = alpha
        L = m.lines(m.solve_source(T, src))
        # yields per recombination for captures into n=3-5 (levels 8-49), used for the approximate remainders
        src3 = np.zeros(m.next); src3[7:49] = alpha[7:49]
        y3 = m.lines(m.solve_source(T, src3)) / alpha[7:49].sum()
        tot = rr_total_fe26(T)
        rows.setdefault('RR', []).append(L); rows.setdefault('y3', []).append(y3)
        rows.setdefault('RRmiss', []).append(max(tot - alpha.sum(), 0.0))
        print(f'{kT:3.0f} | ' + '  '.join(f'{v:9.3e}' for v in [*L, L[1] + L[2], L.sum()]) +
              f' | {alpha.sum():9.3e}  {tot:9.3e}  {alpha.sum()/tot:5.3f}')

    print('\n(2) DR via KLL (levels 128-137), explicit')
    print(hdr + ' | DR_KLL(stabilised)  DR_total(fe_26.drparams)  KLL-term-of-drparams')
    for kT, T in zip(kTs, Ts):
        cap = m.capture(T)
        N = m.solve_source(T, cap)
        L = m.lines(N)
        # stabilised flux = capture - autoionization losses
        stab = sum(cap[k] - N[k] * m.Aauto[k] for k in range(49, m.next))
        drt = dr_total_fe26(T)
        kllterm = T ** -1.5 * 1.9840e-01 * np.exp(-5.5520e+07 / T)
        rows.setdefault('KLL', []).append(L); rows.setdefault('DRrest', []).append(max(drt - stab, 0.0))
        print(f'{kT:3.0f} | ' + '  '.join(f'{v:9.3e}' for v in [*L, L[1] + L[2], L.sum()]) +
              f' | {stab:9.3e}  {drt:9.3e}  {kllterm:9.3e}')

    print('\n(3) APPROXIMATE remainders (per-recombination yields of RR into n=3-5 levels applied to)')
    print('    RR into n>=6 (= RR_total - sum rrlvl) and DR via KLM+ (= DR_total - DR_KLL)')
    print(' kT | yields per recombination w x y z | ' + hdr.split('|')[1] + ' | RR_miss   DR_rest')
    for k, (kT, T) in enumerate(zip(kTs, Ts)):
        y3 = rows['y3'][k]
        L = y3 * (rows['RRmiss'][k] + rows['DRrest'][k])
        rows.setdefault('approx', []).append(L)
        print(f'{kT:3.0f} | ' + ' '.join(f'{v:5.3f}' for v in y3) + ' | ' +
              '  '.join(f'{v:9.3e}' for v in [*L, L[1] + L[2], L.sum()]) +
              f' | {rows["RRmiss"][k]:9.3e} {rows["DRrest"][k]:9.3e}')

    print('\nTOTAL recombination contribution = (1)+(2)+(3)')
    print(hdr)
    tot_rows = []
    for k, kT in enumerate(kTs):
        L = rows['RR'][k] + rows['KLL'][k] + rows['approx'][k]
        tot_rows.append(L)
        print(f'{kT:3.0f} | ' + '  '.join(f'{v:9.3e}' for v in [*L, L[1] + L[2], L.sum()]))
    np.savez(os.path.join(HERE, 'results_rec.npz'), kT=kTs, RR=np.array(rows['RR']), KLL=np.array(rows['KLL']),
             approx=np.array(rows['approx']), total=np.array(tot_rows))
