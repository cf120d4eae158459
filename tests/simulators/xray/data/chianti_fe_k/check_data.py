"""Internal-consistency checks on the transcribed data (catches transcription errors)."""
import sys, numpy as np
import os
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from chianti_io import *

RY_CM = 109737.31568

def check(ion, elvlc, scups, wgfa, nlev):
    lv = read_elvlc(elvlc); sc = read_scups(scups); wg = read_wgfa(wgfa)
    print(f'==== {ion}: {len(lv)} levels, {len(sc)} scups transitions, {len(wg)} wgfa lines')
    E = {i: (v['Eobs'] if v['Eobs'] > 0 or i == 1 else v['Eth']) for i, v in lv.items()}
    g = {i: 2 * v['J'] + 1 for i, v in lv.items()}
    bad = 0
    # elvlc: theory vs obs energies close
    for i, v in lv.items():
        if v['Eobs'] > 0 and abs(v['Eobs'] - v['Eth']) / max(v['Eth'], 1) > 2e-4:
            print('  elvlc obs/th mismatch', i, v); bad += 1
    # wgfa: wavelength vs energies, and A vs gf for E1 lines
    for (l, u, w, gf, A) in wg:
        if w == 0:
            print(f'  two-photon/zero-wvl line {l}-{u} A={A:.3e}'); continue
        wcalc = 1e8 / (E[u] - E[l])
        wth = 1e8 / (lv[u]['Eth'] - lv[l]['Eth'])
        if abs(abs(w) - wcalc) / wcalc > 3e-4 and abs(abs(w) - wth) / wth > 3e-4:
            print(f'  WVL mismatch {l}-{u}: file {w}  calc(obs/th) {wcalc:.4f} th {wth:.4f}'); bad += 1
        Ae1 = 6.6702e15 * gf / (g[u] * w * w)
        if gf > 0 and abs(Ae1 - A) / A > 0.02:
            # allowed-looking line with inconsistent A: flag (forbidden lines carry odd gf in these files)
            tag = 'E1?' if Ae1 / A < 50 else 'non-E1 (gf not E1-like)'
            print(f'  A/gf mismatch {l}-{u}: A={A:.3e} A(gf)={Ae1:.3e} ratio {Ae1/A:.3g} [{tag}]')
    # scups checks
    wg_gf = {(l, u): gf for (l, u, w, gf, A) in wg}
    for d in sc:
        i, j = d['lvl1'], d['lvl2']
        x, y = d['x'], d['y']
        if not (np.all(np.diff(x) > 0) and x[0] == 0 and x[-1] == 1):
            print('  scups x-grid problem', i, j, x); bad += 1
        de_cm = d['de'] * RY_CM
        if abs(de_cm - (E[j] - E[i])) / (E[j] - E[i]) > 3e-3:
            print(f'  scups dE mismatch {i}-{j}: {de_cm:.4e} vs {E[j]-E[i]:.4e}'); bad += 1
        if d['ttype'] == 1:
            lim = 4 * d['gf'] / d['de']
            if abs(lim - d['lim']) / d['lim'] > 3e-3 or abs(y[-1] - d['lim']) / d['lim'] > 3e-3:
                print(f'  type1 limit mismatch {i}-{j}: 4gf/dE={lim:.4e} lim={d["lim"]:.4e} y[-1]={y[-1]:.4e}'); bad += 1
        if d['ttype'] == 4 and d['lim'] > 0 and abs(y[-1] - d['lim']) / d['lim'] > 3e-3:
            print(f'  type4 limit mismatch {i}-{j}: lim={d["lim"]:.4e} y[-1]={y[-1]:.4e}'); bad += 1
        if d['ttype'] == 4 and d['lim'] > 0:
            lim = 4 * d['gf'] / d['de']
            if abs(lim - d['lim']) / d['lim'] > 3e-3:
                print(f'  type4 4gf/dE mismatch {i}-{j}: {lim:.4e} vs {d["lim"]:.4e}'); bad += 1
        if (i, j) in wg_gf and wg_gf[(i, j)] > 0 and d['gf'] > 0:
            r = d['gf'] / wg_gf[(i, j)]
            if abs(r - 1) > 0.2:
                print(f'  note: scups gf {d["gf"]:.3e} vs wgfa gf {wg_gf[(i,j)]:.3e} for {i}-{j}')
        # smoothness: flag big jumps in y relative to neighbours (possible digit error)
        yy = y[:-1] if d['ttype'] in (2,) else y
        for k in range(1, len(y) - 1):
            if y[k] > 0 and y[k-1] > 0 and y[k+1] > 0:
                mid = np.sqrt(y[k-1] * y[k+1])
                if y[k] / mid > 1.6 or y[k] / mid < 0.6:
                    print(f'  scups y bump {i}-{j} k={k}: {y[k-1]:.3e} {y[k]:.3e} {y[k+1]:.3e}')
    # which levels decay: total A
    Atot = {}
    for (l, u, w, gf, A) in wg:
        Atot[u] = Atot.get(u, 0) + A
    missing = [i for i in range(2, nlev + 1) if i not in Atot]
    print('  levels without decays:', missing, ' bad count:', bad)
    return lv, sc, wg

if __name__ == '__main__':
    check('fe_25', os.path.join(HERE, 'data', 'fe_25.elvlc.1-49'), os.path.join(HERE, 'data', 'fe_25.scups.from1'), os.path.join(HERE, 'data', 'fe_25.wgfa.upto49'), 49)
    import os
    if os.path.exists(os.path.join(HERE, 'data', 'fe_26.wgfa')):
        check('fe_26', os.path.join(HERE, 'data', 'fe_26.elvlc'), os.path.join(HERE, 'data', 'fe_26.scups.from1'), os.path.join(HERE, 'data', 'fe_26.wgfa'), 25)
