"""Measurement-glitch screen: drop table rows that are spikes along one of their own sweep axes.

A kernel table sweeps each shape column (tokens, batch, heads, context, hidden size, ...) with the others held
fixed. Along such a sweep the latency is a smooth function of the work, so a row that is more than
``GLITCH_FACTOR`` times slower than **both** its neighbours on one axis (the next smaller and the next larger value,
every other column equal) is not the kernel's cost: the next larger shape does at least as much work and runs
several times faster. Such rows are what a collector records when something else held the GPU during that
measurement (the B200 TensorRT-LLM ``msa_prefill`` table: batch 1, 4 heads, q = 4,096 reads 95 ms between 4.2 ms
at 2 heads and 3.2 ms at 8 heads). A step (every row past a threshold slower, e.g. SGLang's batches beyond its
CUDA-graph capture) and a bump of less than ``GLITCH_FACTOR`` are left alone: a step has a slow neighbour on its far
side, and a smaller bump can be a kernel effect.

The screen runs once per family table after :func:`.dataset.training_rows` and before any split, so the fitted
models and both sides of the held-out report (XGBoost and the random-forest baseline alike) see the same rows;
``frontier-calib fit`` prints how many rows each family lost to it.

A table in which more than ``TABLE_GLITCH_LIMIT`` of the rows are such spikes is not a measurement of its kernel at
all, and no model is fitted to it (``fit`` says so; a replay that needs it gets a coverage error with the reason).
Over every public table (8 GPUs x 3 engines, 2026-12) the share is at most 1.1 % except in the Blackwell
TensorRT-LLM ``msa_prefill`` tables (collector 1.3.0rc23: B200 9.0 %, B300 8.4 %), whose latencies are not a
function of their shape: B200, batch 1, 64 heads reads 2.8 ms at q = 2,048, 54 ms at 3,072 and 5.5 ms at 10,240;
batch 2, q = 1 reads 9.9 ms where batch 1 reads 2.2 ms (the H200 table of the same module rises monotonically).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..profiles.schema import family as get_family

#: a row this many times slower than both neighbours along one sweep axis is a measurement glitch
GLITCH_FACTOR = 3.0

#: a (family, dtype group) table with more than this share of glitch rows is not fitted
TABLE_GLITCH_LIMIT = 0.05

#: the rule as `frontier-calib fit` prints it
RULE = (f"a row more than {GLITCH_FACTOR:g}x slower than both neighbours along one of its shape columns "
        f"(every other column equal) is dropped before the split; a table with more than "
        f"{TABLE_GLITCH_LIMIT:.0%} such rows is not fitted")


def glitch_mask(rows: pd.DataFrame, family: str, factor: float = GLITCH_FACTOR) -> np.ndarray:
    """True for the rows of ``rows`` (one family's training rows: its columns and ``latency_ms``) that are
    spikes along at least one shape column (see the module docstring). Rows at either end of a sweep, and sweeps
    of fewer than three rows, are never screened."""
    fam = get_family(family)
    rows = rows.reset_index(drop=True)
    names = [c.name for c in fam.columns if c.name in rows.columns]
    lat = rows["latency_ms"].to_numpy(dtype=float)
    flagged = np.zeros(len(rows), dtype=bool)
    if len(rows) < 3:
        return flagged
    for axis in fam.shape_columns:
        if axis not in rows.columns or rows[axis].nunique() < 3:
            continue
        others = [n for n in names if n != axis]
        order = rows.sort_values(others + [axis], kind="stable").index.to_numpy()
        frame = rows.loc[order, others].reset_index(drop=True)
        line = frame.groupby(others, observed=True, sort=False).ngroup().to_numpy() if others \
            else np.zeros(len(order), dtype=np.int64)
        v = lat[order]
        prev_ok = np.r_[False, line[1:] == line[:-1]]
        next_ok = np.r_[line[:-1] == line[1:], False]
        prev = np.r_[np.nan, v[:-1]]
        nxt = np.r_[v[1:], np.nan]
        with np.errstate(invalid="ignore"):
            spike = prev_ok & next_ok & (v > factor * prev) & (v > factor * nxt)
        flagged[order[spike]] = True
    return flagged


def unmeasured_reason(n_glitches: int, n_rows: int) -> str | None:
    """Why a table of ``n_rows`` training rows with ``n_glitches`` spikes is not fitted (None: it is fitted)."""
    if n_rows and n_glitches / n_rows > TABLE_GLITCH_LIMIT:
        return (f"{n_glitches} of its {n_rows} rows ({n_glitches / n_rows:.1%}) are measurement glitches, more than "
                f"{TABLE_GLITCH_LIMIT:.0%}: its latencies are not a function of its shape")
    return None
