"""Produce the final tables (results.csv, results_tables.md) from the model scripts."""
import sys, numpy as np
import os
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fek_emissivity import Ion, KB_KEV
import subprocess
subprocess.run([sys.executable, os.path.join(HERE, 'fek_recomb.py')], check=True, stdout=subprocess.DEVNULL)
rec = np.load(os.path.join(HERE, 'results_rec.npz'))

fe25 = Ion(os.path.join(HERE, 'data', 'fe_25.elvlc.1-49'), os.path.join(HERE, 'data', 'fe_25.scups.from1'), os.path.join(HERE, 'data', 'fe_25.wgfa.upto49'), 49)
fe26 = Ion(os.path.join(HERE, 'data', 'fe_26.elvlc'), os.path.join(HERE, 'data', 'fe_26.scups.from1'), os.path.join(HERE, 'data', 'fe_26.wgfa'), 25)
kTs = rec['kT']
f = lambda v: f'{v:.3e}'
md = []
md.append('### (a) Fe XXV, electron-impact excitation incl. cascades (n<=5), photons cm^3 s^-1 per Fe XXV ion per n_e\n')
md.append('| kT (keV) | T (K) | w | x | y | z | x+y | w+x+y+z | w direct only | z direct only | G=(x+y+z)/w |')
md.append('|---|---|---|---|---|---|---|---|---|---|---|')
csv = ['kT_keV,T_K,w_exc,x_exc,y_exc,z_exc,xy_exc,sum_exc,LyA1_exc,LyA2_exc,LyA_exc,'
       'w_rec,x_rec,y_rec,z_rec,sum_rec,w_RR,x_RR,y_RR,z_RR,w_DRKLL,x_DRKLL,y_DRKLL,z_DRKLL,w_approx,x_approx,y_approx,z_approx']
tabB = []; tabC = []
for k, kT in enumerate(kTs):
    T = kT / KB_KEV
    N = fe25.solve(T)
    w, x, y, z = [fe25.line_emis(N, 1, u) for u in (7, 6, 4, 2)]
    ce, cd, ups = fe25.exc_rates(T)
    N6 = fe26.solve(T)
    l1, l2 = fe26.line_emis(N6, 1, 4), fe26.line_emis(N6, 1, 3)
    ce6, _, _ = fe26.exc_rates(T)
    md.append(f'| {kT:.0f} | {T:.4e} | {f(w)} | {f(x)} | {f(y)} | {f(z)} | {f(x+y)} | {f(w+x+y+z)} | {f(ce[6])} | {f(ce[1])} | {(x+y+z)/w:.3f} |')
    tabB.append(f'| {kT:.0f} | {f(l1)} | {f(l2)} | {f(l1+l2)} | {f(ce6[3]+ce6[2])} | {l1/l2:.3f} |')
    R, D, A, Tt = rec['RR'][k], rec['KLL'][k], rec['approx'][k], rec['total'][k]
    tabC.append(f'| {kT:.0f} | {f(R[0])} / {f(D[0])} / {f(A[0])} | {f(Tt[0])} | {f(Tt[1]+Tt[2])} | {f(Tt[3])} | {f(Tt.sum())} | {f(R.sum())} |')
    csv.append(','.join([f'{kT:g}', f'{T:.5e}'] + [f(v) for v in (w, x, y, z, x+y, w+x+y+z, l1, l2, l1+l2)] +
                        [f(v) for v in (*Tt, Tt.sum(), *R, *D, *A)]))
md.append('\n### (b) Fe XXVI Ly-alpha, electron-impact excitation incl. cascades (n<=5), photons cm^3 s^-1 per Fe XXVI ion per n_e\n')
md.append('| kT (keV) | Ly-a1 (2p3/2, 6.973 keV) | Ly-a2 (2p1/2, 6.952 keV) | Ly-a sum | direct-only sum | a1/a2 |')
md.append('|---|---|---|---|---|---|')
md += tabB
md.append('\n### (c) Fe XXV recombination contribution, photons cm^3 s^-1 per Fe XXVI ion per n_e (multiply by n(FeXXVI)/n(FeXXV) and add to (a))\n')
md.append('| kT (keV) | w: RR(rrlvl) / DR-KLL / approx. rest | w total | x+y total | z total | w+x+y+z total | w+x+y+z RR(rrlvl) only |')
md.append('|---|---|---|---|---|---|---|')
md += tabC
open(os.path.join(HERE, 'results_tables.md'), 'w').write('\n'.join(md) + '\n')
open(os.path.join(HERE, 'results.csv'), 'w').write('\n'.join(csv) + '\n')
print('\n'.join(md))
