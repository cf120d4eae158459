"""Times 21cmFAST (the peer of ``bench_cm21``) on one coeval box; run in 21cmFAST's interpreter.

    PYTHON -m benchmarks._peer_21cmfast --threads 1 --cells 64 --box 128

Prints one JSON object.  Kept free of sbi_astro/torch imports: 21cmFAST needs Python >= 3.12,
so it usually lives in a separate virtual environment from this project.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cells", type=int, default=64)
    p.add_argument("--box", type=float, default=128.0)
    p.add_argument("--redshift", type=float, default=8.0)
    p.add_argument("--hires-factor", type=float, default=None,
                   help="initial-conditions grid / HII grid (21cmFAST default: 3; must be > 1)")
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    import numpy as np
    import py21cmfast as p21c

    kw = {"HII_DIM": args.cells, "BOX_LEN": args.box, "N_THREADS": args.threads,
          # the three parameters of the cm21 simulator at its fiducial point
          "HII_EFF_FACTOR": 30.0, "ION_Tvir_MIN": 4.69897, "R_BUBBLE_MAX": 15.0}
    if args.hires_factor is not None:
        kw["HIRES_TO_LOWRES_FACTOR"] = args.hires_factor
    times, cpu = [], []
    for seed in range(args.repeat):
        inputs = p21c.InputParameters.from_template("const-zeta", random_seed=seed + 1, **kw)
        with tempfile.TemporaryDirectory() as d:
            t0, c0 = time.perf_counter(), time.process_time()
            (coeval,) = p21c.run_coeval(inputs=inputs, out_redshifts=args.redshift,
                                        write=False, cache=p21c.OutputCache(d))
            times.append(time.perf_counter() - t0)
            # CPU seconds of the whole process, summed over its (OpenMP) threads
            cpu.append(time.process_time() - c0)
        x_hi = float(np.mean(coeval.ionized_box.neutral_fraction))
    print(json.dumps({"version": p21c.__version__, "threads": args.threads,
                      "hii_dim": args.cells, "dim": inputs.simulation_options.DIM,
                      "box_mpc": args.box, "redshift": args.redshift, "seconds": times,
                      "best_s": min(times), "cpu_s": cpu, "best_cpu_s": min(cpu),
                      "x_hi_mean": x_hi}))


if __name__ == "__main__":
    main()
