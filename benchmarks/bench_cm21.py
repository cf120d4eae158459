"""Speed of the ``cm21`` simulator: seconds per 64^3 lightcone and per coeval box.

Run: ``OMP_NUM_THREADS=2 python -m benchmarks.bench_cm21 [--quick]`` (2 CPU threads).

Peer: the ``21cmFAST`` package (C with FFTW and GSL, Python 3.12 wheels/conda) is not
installable in this environment (Python 3.11, no FFTW/GSL development libraries), so it is
not run here.  Published/issue figures used for the comparison column: one 64^3 coeval
box takes about 10-30 s in 21cmFAST (the figure quoted in the cm21 issue), and Mesinger,
Furlanetto & Cen (2011, MNRAS 411, 955, abstract) quote "a few minutes" per redshift
realisation on a single processor for their production boxes.  The ``speedup_vs_21cmfast``
column divides the lower 10 s figure by our (wall-clock) seconds per coeval box; the
``core_s_*`` columns give CPU seconds summed over threads, which a busy shared machine
inflates much less than wall time.
"""

from __future__ import annotations

import os
import sys
import time

import torch

from benchmarks._common import main_for, timeit
from simulators.cm21.model import Cm21

PEER_SECONDS_PER_BOX = 10.0  # lower end of the 10-30 s per 64^3 coeval box quoted for 21cmFAST


def _case(name: str, sim: Cm21, batch: int, repeat: int, warmup: int = 1) -> dict:
    theta = sim.prior.sample((batch,), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    seconds = timeit(lambda: sim.simulate(theta, generator=gen), repeat=repeat, warmup=warmup)
    # CPU (core) seconds of one more call: less sensitive than wall time to a shared machine
    cpu0 = time.process_time()
    sim.simulate(theta, generator=gen)
    core = (time.process_time() - cpu0) / batch
    per_row = seconds / batch
    per_box = per_row / sim.n_redshifts
    row = {
        "case": name,
        "cells": f"{sim.n}^3",
        "box_mpc": sim.box,
        "coeval_boxes": sim.n_redshifts,
        "lightcone": f"{sim.n}x{sim.n}x{sim.n_los}",
        "batch": batch,
        "threads": torch.get_num_threads(),
        "s_per_call": seconds,
        "s_per_lightcone": per_row,
        "s_per_coeval_box": per_box,
        "speedup_vs_21cmfast": PEER_SECONDS_PER_BOX / per_box,
        "core_s_per_lightcone": core,
        "core_s_per_coeval_box": core / sim.n_redshifts,
        # the machine is shared: the 1-min load average says how contended the timing was
        "load_avg_1min": os.getloadavg()[0],
    }
    print(row, file=sys.stderr, flush=True)
    return row


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(2)
    batch = 1 if quick else 2
    repeat = 1 if quick else 2
    rows = [
        _case("fast preset (contract default), lightcone", Cm21(), 6, repeat),
        _case("ska64 lightcone, linear density",
              Cm21(preset="ska64", ionisation_field="linear"), batch, repeat),
        _case("ska64 power spectrum + x_HI, linear",
              Cm21(preset="ska64", ionisation_field="linear", output="power_spectrum"),
              batch, 1, warmup=0),
        _case("ska64 lightcone, evolved density (21cmFAST)", Cm21(preset="ska64"), batch, 1,
              warmup=0),
        _case("ska64 lightcone, evolved, row_batch=2",
              Cm21(preset="ska64", row_batch=2), batch, 1, warmup=0),
    ]
    return rows


if __name__ == "__main__":
    main_for("benchmarks.bench_cm21", run)  # __name__ is "__main__" under python -m
