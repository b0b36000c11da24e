"""Compare two ``validate silicon`` rows.csv files row by row (e.g. before and after a speed change).

Prints whether every row has the same status, the largest difference of each predicted TTFT/TPOT column and every
other column that differs (the wall-time columns ``sim_wall_s`` and ``build_wall_s`` are left out). Exit status 1
when anything but those differs.

    python benchmarks/compare_silicon_rows.py BEFORE/rows.csv AFTER/rows.csv
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

WALL_COLUMNS = ("sim_wall_s", "build_wall_s")
PREDICTIONS = ("pred_ttft_ms", "pred_tpot_ms", "pred_median_ttft_ms", "pred_median_tpot_ms")


def differing_columns(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """{column: rows that differ} over the columns of ``a`` (rows aligned by id; NaN equals NaN)."""
    out = {}
    for c in a.columns:
        if c in WALL_COLUMNS:
            continue
        if c not in b.columns:
            out[c] = len(a)
            continue
        x, y = a[c], b[c]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            ne = ~((xv == yv) | (np.isnan(xv) & np.isnan(yv)))
        else:
            ne = (x.fillna("").astype(str) != y.fillna("").astype(str)).to_numpy()
        if ne.any():
            out[c] = int(ne.sum())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    args = ap.parse_args(argv)
    a = pd.read_csv(args.before, dtype={"id": str}).set_index("id")
    b = pd.read_csv(args.after, dtype={"id": str}).set_index("id")
    if set(a.index) != set(b.index):
        print(f"different rows: {len(set(a.index) ^ set(b.index))} ids in only one file")
        return 1
    b = b.loc[a.index]
    print(f"{len(a)} rows; status differs on {int((a['status'] != b['status']).sum())}")
    for c in PREDICTIONS:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        both = ~(np.isnan(x) & np.isnan(y))
        diff = float(np.nanmax(np.abs(x[both] - y[both]))) if both.any() else 0.0
        print(f"{c}: max |after - before| {diff:.3g} ms over {int(both.sum())} rows")
    diff = differing_columns(a, b)
    print("columns that differ (rows):", diff or "none")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
