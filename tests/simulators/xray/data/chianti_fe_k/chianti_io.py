"""Minimal readers for the transcribed CHIANTI excerpts in data/."""
import numpy as np

def read_elvlc(path):
    """returns dict idx -> (label, mult, L, J, E_obs, E_th) ; energies cm^-1"""
    out = {}
    for line in open(path):
        p = line.split()
        if not p:
            continue
        idx = int(p[0])
        # fe_25 format: idx conf ref mult L J Eobs Eth ; fe_26 format: idx conf mult L J Eobs Eth
        if len(p) == 8:
            _, conf, ref, mult, L, J, eo, et = p
        elif len(p) == 7:
            _, conf, mult, L, J, eo, et = p
        else:
            raise ValueError(line)
        out[idx] = dict(conf=conf, mult=int(mult), L=L, J=float(J), Eobs=float(eo), Eth=float(et))
    return out

def read_scups(path):
    """returns list of dicts with lvl1, lvl2, de(Ry), gf, lim, nspl, ttype, c, x, y"""
    lines = [l for l in open(path) if l.strip()]
    out = []
    for k in range(0, len(lines), 3):
        h = lines[k].split()
        x = np.array(lines[k + 1].split(), float)
        y = np.array(lines[k + 2].split(), float)
        d = dict(lvl1=int(h[0]), lvl2=int(h[1]), de=float(h[2]), gf=float(h[3]), lim=float(h[4]),
                 nspl=int(h[5]), ttype=int(h[6]), c=float(h[7]), x=x, y=y)
        assert len(x) == d['nspl'] == len(y), (h, len(x), len(y))
        out.append(d)
    return out

def read_wgfa(path):
    """returns list of (lower, upper, wvl[A], gf, A[s^-1])"""
    out = []
    for line in open(path):
        p = line.split()
        if not p:
            continue
        out.append((int(p[0]), int(p[1]), float(p[2]), float(p[3]), float(p[4])))
    return out
