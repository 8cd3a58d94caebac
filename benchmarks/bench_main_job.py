"""Time the stages of the main job (``vfmatch run``) and the matcher's scoring.

Usage::

    python benchmarks/bench_main_job.py                 # default size, fresh cache (cold), then warm
    python benchmarks/bench_main_job.py --quick         # the quick setting
    python benchmarks/bench_main_job.py --identities 120 --warm-only
    python benchmarks/bench_main_job.py --extractors fast     # logistic regression instead of the vision transformers
    python benchmarks/bench_main_job.py --keep REPORT         # also keep the cold run's report (metrics.json, ...) in REPORT

Prints, from one run of this script:

* seconds per stage of a cold run (empty cache: simulate, train, extract) and of a
  warm run (population and extracted tables from the cache);
* the matcher's similarity matrix on the test identities: vectorised
  (``MetapropertyMatcher.similarity_matrix``) against a Python loop over pairs
  (``level_of_match`` one pair at a time), and the speed-up ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def timed_run(config) -> dict:
    from vfmatch.job.run import run

    t0 = time.perf_counter()
    metrics = run(config)
    wall = time.perf_counter() - t0
    return {"wall": wall, "stages": metrics["timing_seconds"], "metrics": metrics}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identities", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--warm-only", action="store_true", help="use the usual cache; skip the cold run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extractors", default="default", choices=["fast", "default"],
                    help="extractor preset of the run (default: the main job's 'default')")
    ap.add_argument("--keep", default=None, metavar="FOLDER",
                    help="copy the first run's report (that of vfmatch run --seed S --out FOLDER) to FOLDER")
    args = ap.parse_args(argv)

    from vfmatch.job.prepare import RunConfig

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.warm_only:
            os.environ["VFMATCH_CACHE"] = str(Path(tmp) / "cache")  # cold: nothing cached yet
        labels = ["warm"] if args.warm_only else ["cold", "warm"]
        for label in labels:
            cfg = RunConfig(identities=args.identities, quick=args.quick, seed=args.seed, extractors=args.extractors,
                            out=str(Path(tmp) / f"report_{label}"), progress=False)
            runs[label] = timed_run(cfg)
            if args.keep and label == labels[0]:
                shutil.copytree(cfg.out, args.keep, dirs_exist_ok=True)

        print(f"vfmatch run (--extractors {args.extractors}), {runs['warm']['metrics']['population']['description']}")
        print(f"device: {runs['warm']['metrics']['device']}, CPU threads: {os.cpu_count()}")
        stage_names = [k for k, v in runs["warm"]["stages"].items() if isinstance(v, (int, float)) and k != "total"]
        print(f"{'stage':<14}" + "".join(f"{label:>12}" for label in runs))
        for s in stage_names:
            print(f"{s:<14}" + "".join(f"{runs[label]['stages'].get(s, float('nan')):>11.2f}s" for label in runs))
        print(f"{'wall total':<14}" + "".join(f"{runs[label]['wall']:>11.2f}s" for label in runs))

        # Scoring speed: vectorised similarity matrix vs a loop over pairs.
        from vfmatch.job.prepare import prepare, fit_matcher, make_role_pairs, new_matcher

        cfg = RunConfig(identities=args.identities, quick=args.quick, seed=args.seed, extractors=args.extractors, progress=False)
        data = prepare(cfg)
        matcher = fit_matcher(new_matcher(cfg), data, make_role_pairs(data, args.seed))
        vt, ft = data.tables("test")
        nv, nf = len(vt["gender"]), len(ft["gender"])
        t0 = time.perf_counter()
        S = matcher.similarity_matrix(vt, ft)
        t_vec = time.perf_counter() - t0
        n_loop = min(nv, 20)
        t0 = time.perf_counter()
        loop = np.array([[matcher.level_of_match(vt, ft, [i], [j])[0] for j in range(nf)] for i in range(n_loop)])
        t_loop = (time.perf_counter() - t0) * nv / n_loop  # extrapolated to all voices
        assert np.allclose(loop, S[:n_loop])
        print(f"\nsimilarity matrix {nv} voices x {nf} faces: vectorised {t_vec * 1e3:.1f} ms, "
              f"pair-by-pair loop {t_loop:.2f} s (timed on {n_loop} voices, scaled), speed-up x{t_loop / t_vec:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
