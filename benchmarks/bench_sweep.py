"""Speed benchmark (issue 7): the 200-point DeepSeek-V3 PD layout sweep, local process pool and optionally Ray.

    python benchmarks/bench_sweep.py [--sweep sweeps/deepseek-v3-pd-layouts.yaml] [--workers N] [--ray]
                                     [--warm] [--out DIR]

The operator models the sweep needs are fitted (first time) or loaded before any timer starts. Each executor
then runs the whole sweep from scratch into its own folder (no resumed points) and the script prints wall time
and points/s. With ``--ray`` it also compares the two results tables row by row (all columns but
``wall_s``) and says whether they are identical. Cost tables of configurations not seen before are built
(and cached) by the first run that needs them, so the first executor pays that; ``--warm`` runs the local
sweep once untimed first so that both timed runs find warm caches. Needs ../shared/traces beside the repository.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SWEEP = REPO / "sweeps" / "deepseek-v3-pd-layouts.yaml"


def timed(sweep: Path, out: Path, executor: str, workers: int | None):
    from frontier_calib.sweep import run_sweep

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    o = run_sweep(sweep, out, executor=executor, workers=workers, progress=True, plots=True)
    wall = time.perf_counter() - t0
    n = len(o.results)
    status = o.results["status"].value_counts().to_dict()
    print(f"[{executor}] {n} points in {wall:.1f} s = {n / wall:.2f} points/s; status {status}; "
          f"per-point wall (s): median {o.results['wall_s'].median():.2f}, max {o.results['wall_s'].max():.2f}")
    return o, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", type=Path, default=SWEEP)
    ap.add_argument("--workers", type=int, default=None, help="default: all cores")
    ap.add_argument("--ray", action="store_true", help="also run with --executor ray (local Ray instance)")
    ap.add_argument("--warm", action="store_true", help="run once untimed first (warm cost-table cache)")
    ap.add_argument("--out", type=Path, default=None, help="keep results here (default: a temporary folder)")
    args = ap.parse_args()
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    base = args.out or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    print(f"sweep {args.sweep}, workers {args.workers or os.cpu_count()}, results under {base}")
    from frontier_calib.sweep import load_sweep
    from frontier_calib.sweep.models import prepare_models

    spec = load_sweep(args.sweep)
    t0 = time.perf_counter()
    prepare_models([p.deployment for p in spec.points()], spec.deployment_base_dir, progress=True)
    print(f"operator models fitted/loaded (untimed): {time.perf_counter() - t0:.1f} s")
    if args.warm:
        timed(args.sweep, base / "warmup", "local", args.workers)
    local, _ = timed(args.sweep, base / "local", "local", args.workers)
    if args.ray:
        ray_o, _ = timed(args.sweep, base / "ray", "ray", args.workers)
        import pandas as pd

        from frontier_calib.sweep import NONDETERMINISTIC_COLUMNS

        a = local.results.drop(columns=list(NONDETERMINISTIC_COLUMNS))
        b = ray_o.results.drop(columns=list(NONDETERMINISTIC_COLUMNS))
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
            print(f"local and ray rows identical: yes ({a.shape[0]} rows x {a.shape[1]} columns, wall_s excluded)")
        except AssertionError as exc:
            print(f"local and ray rows identical: NO\n{exc}")
    if args.out is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
