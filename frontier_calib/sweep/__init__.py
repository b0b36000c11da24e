"""Sweeps: many seeded replays as pure functions, run by a local process pool or Ray, resumable.

    from frontier_calib.sweep import load_sweep, run_sweep
    outcome = run_sweep("sweeps/llama2-7b-small.yaml", "out/sweep-small")
    outcome.results          # one row per point (see frontier_calib/sweep/run.py for the columns)

Modules, one job each: ``spec`` (sweep files, point expansion, ids), ``run`` (one point -> one row),
``executors`` (local pool, Ray), ``store`` (append-as-finished Parquet parts, resume), ``models`` (fit once,
ship to Ray), ``analysis`` (Pareto front, best per SLO, goodput), ``rate_search`` (bisection on the rate),
``plots`` (PNG), ``commands`` (the CLI). File format: docs/sweeps.md.
"""

from .commands import SweepOutcome, run_sweep
from .run import NONDETERMINISTIC_COLUMNS, Shared, make_shared, run_point
from .spec import Point, SweepSpec, load_sweep, sweep_from_dict

__all__ = ["load_sweep", "sweep_from_dict", "SweepSpec", "Point", "run_sweep", "SweepOutcome", "run_point",
           "Shared", "make_shared", "NONDETERMINISTIC_COLUMNS"]
