"""Which kind of TTFT error is left in the silicon rows? Signatures that tell a client or harness effect from a model one.

``validate silicon`` replays each measured benchmark row with the physical engine defaults; what it misses in TTFT
has a shape that the rows themselves reveal when they are grouped with their twins (the same deployment, model,
engine, GPU, isl and concurrency at another osl, or at another isl). Per data source × GPU × engine × model ×
concurrency this prints:

* ``ttft_mape``: the replay's TTFT MAPE on those rows;
* ``osl_x``: measured TTFT at the largest osl over the smallest (median over twin groups). Prefill, queueing
  behind other prompts and any per-request constant do not depend on the osl (``osl_x`` ~ 1); a wait for
  *another request's completion* grows with the osl;
* ``r``: the TTFT the replay misses in units of one inter-completion interval of the closed loop,
  ``(measured - predicted) / (osl x measured TPOT / c)`` (median). ``r`` ~ 1 together with ``osl_x`` > 1 is the
  signature of a closed loop whose engine runs one request fewer than the clients keep in flight (every new
  request waits for the next completion);
* ``miss_isl_x`` and ``isl_ratio``: the missed TTFT (measured - predicted) at the largest isl over the smallest (same
  tp, c, osl; median), next to the ratio of the isls: a prefill-proportional miss grows like ``isl_ratio``, a
  per-request constant stays at 1;
* ``miss_ms``: the median missed TTFT (negative: the replay is slower than measured), and the verdict of the
  signatures.

    python benchmarks/silicon_ttft_signatures.py out/vs-none/rows.csv            # a replay you already have
    python benchmarks/silicon_ttft_signatures.py                                 # replays H100 + H200 agg first
    python benchmarks/silicon_ttft_signatures.py out/vs-none/rows.csv --slot-short   # + the one-slot-short test

``--slot-short`` tests the one-slot-short reading on the TensorRT-LLM rows of the table: it replays them again (in
this process, ~15 s for the 489 H100 rows) with the engine's running cap at ``concurrency - 1`` (TensorRT-LLM's
``max_batch_size``, which leaves the cost tables alone) and prints each group's TTFT MAPE both ways. It is a test
of a reading, not a model: nothing in the rows says which deployments lost a slot.

The replay (no argument) is ``frontier-calib validate silicon --gpu h100_sxm --gpu h200_sxm --mode agg
--calibration none`` (about 80-100 s on 2 cores with fitted models cached). The table is evidence for
docs/validation.md, not a fit: nothing here feeds back into the model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd


def load(rows_csv: Path) -> pd.DataFrame:
    """The ok rows of a ``validate silicon`` rows.csv, with their data source from the silicon CSV."""
    from frontier_calib.validate.silicon import default_csv_path, read_silicon_csv, source_file

    rows = pd.read_csv(rows_csv)
    rows = rows[rows["status"] == "ok"].copy()
    src = default_csv_path()
    if src is None:
        sys.exit("error: aiconfigurator-core is not installed; pip install -e '.[public-data]'")
    silicon = read_silicon_csv(src)[["id", "silicon_data_source"]]
    rows = rows.merge(silicon, on="id", how="left")
    rows["source"] = rows["silicon_data_source"].map(source_file)
    rows["model"] = rows["model_path"].astype(str).str.split("/").str[-1]
    return rows


def _twin_ratio(df: pd.DataFrame, vary: str, keep: list[str], value: str = "silicon_ttft_ms") -> tuple[float, float]:
    """Median over twin groups (equal ``keep`` columns) of ``value`` at the largest ``vary`` over the smallest, and
    the median ratio of those two ``vary`` values; NaN when no group has two values (or a non-positive base)."""
    ttft, spans = [], []
    for _, g in df.groupby(keep, dropna=False):
        if g[vary].nunique() < 2:
            continue
        lo, hi = g.loc[g[vary].idxmin()], g.loc[g[vary].idxmax()]
        if lo[value] <= 0:
            continue
        ttft.append(hi[value] / lo[value])
        spans.append(hi[vary] / lo[vary])
    if not ttft:
        return float("nan"), float("nan")
    return float(np.median(ttft)), float(np.median(spans))


def verdict(osl_x: float, r: float, miss_isl_x: float, isl_ratio: float, mape: float, miss_ms: float) -> str:
    """A one-word reading of the signatures (thresholds are reading aids, not fitted)."""
    if not np.isfinite(mape) or mape < 0.15:
        return "fits"
    if miss_ms < 0:
        return "replay-slower"
    if np.isfinite(osl_x) and osl_x > 1.3 and np.isfinite(r) and 0.6 <= r <= 1.5:
        return "one-slot-short"
    if np.isfinite(osl_x) and osl_x > 1.3:
        return "osl-dependent"
    if np.isfinite(miss_isl_x) and np.isfinite(isl_ratio) and isl_ratio > 1 and miss_isl_x > 0.6 * isl_ratio:
        return "prefill-proportional"
    if np.isfinite(miss_isl_x) and 0.67 < miss_isl_x < 1.5:
        return "per-request-constant"
    return "mixed"


def signature_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per data source × GPU × engine × model × concurrency (the columns of the module docstring)."""
    rows = rows.copy()
    rows["interval_ms"] = rows["osl"] * rows["silicon_tpot_ms"] / rows["concurrency"]
    rows["miss_ms"] = rows["silicon_ttft_ms"] - rows["pred_ttft_ms"]
    rows["r"] = rows["miss_ms"] / rows["interval_ms"]
    rows["ape"] = (rows["pred_ttft_ms"] / rows["silicon_ttft_ms"] - 1).abs()
    layout = ["tp_size", "attention_dp_size", "moe_ep_size", "backend_version", "precision"]
    out = []
    keys = ["source", "system", "backend", "model", "concurrency"]
    for key, g in rows.groupby(keys, dropna=False):
        osl_x, _ = _twin_ratio(g, "osl", layout + ["isl"])
        miss_isl_x, isl_ratio = _twin_ratio(g, "isl", layout + ["osl"], value="miss_ms")
        mape, miss, r = float(g["ape"].mean()), float(g["miss_ms"].median()), float(g["r"].median())
        out.append(dict(zip(keys, key), rows=len(g), ttft_mape=mape, miss_ms=miss, osl_x=osl_x, r=r,
                        miss_isl_x=miss_isl_x, isl_ratio=isl_ratio,
                        verdict=verdict(osl_x, r, miss_isl_x, isl_ratio, mape, miss)))
    return pd.DataFrame(out)


def slot_short_mape(rows: pd.DataFrame) -> pd.DataFrame:
    """TTFT MAPE per group of the TensorRT-LLM rows replayed with ``max_batch_size = concurrency - 1``, next to the
    replay in ``rows`` (physical defaults, the default client phase)."""
    from frontier_calib.validate.silicon import default_csv_path, read_silicon_csv, run_scenario, scenario_for_row

    trt = rows[(rows["backend"] == "trtllm") & (rows["concurrency"] >= 2)]
    silicon = read_silicon_csv(default_csv_path()).set_index("id")
    short = []
    for rid, c in zip(trt["id"], trt["concurrency"]):
        scn = scenario_for_row(silicon.loc[rid].to_dict() | {"id": rid})
        dep = scn.deployment or {}
        if (scn.status != "ok" or scn.mode != "agg" or dep.get("replicas", 1) != 1
                or dep.get("parallel", {}).get("attention_dp", 1) != 1):
            short.append(np.nan)
            continue
        scn.deployment["scheduler"]["max_batch_size"] = max(1, int(c) - 1)
        short.append(run_scenario(scn)["pred_ttft_ms"])
    trt = trt.assign(short_ms=short).dropna(subset=["short_ms"])
    trt["ape_short"] = (trt["short_ms"] / trt["silicon_ttft_ms"] - 1).abs()
    trt["ape"] = (trt["pred_ttft_ms"] / trt["silicon_ttft_ms"] - 1).abs()
    keys = ["source", "system", "model", "concurrency"]
    return trt.groupby(keys).agg(rows=("id", "size"), ttft_mape=("ape", "mean"),
                                 ttft_mape_slot_short=("ape_short", "mean")).reset_index()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", nargs="?", type=Path, help="rows.csv of a validate silicon run (default: replay first)")
    ap.add_argument("--min-rows", type=int, default=6, help="leave out groups with fewer rows (default 6)")
    ap.add_argument("--slot-short", action="store_true",
                    help="replay the TensorRT-LLM rows again with max_batch_size = concurrency - 1 (see above)")
    args = ap.parse_args(argv)
    rows_csv = args.rows
    if rows_csv is None:
        out = Path(tempfile.mkdtemp(prefix="ttft-signatures-"))
        cmd = [sys.executable, "-m", "frontier_calib.cli", "validate", "silicon", "--gpu", "h100_sxm", "--gpu",
               "h200_sxm", "--mode", "agg", "--calibration", "none", "--out", str(out), "--overwrite"]
        print("$", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True)
        rows_csv = out / "rows.csv"
    elif not rows_csv.is_file():
        sys.exit(f"error: {rows_csv}: no such file; give the rows.csv a `frontier-calib validate silicon` run wrote")
    rows = load(rows_csv)
    table = signature_table(rows)
    table = table[table["rows"] >= args.min_rows]
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print(table.round({"ttft_mape": 3, "miss_ms": 0, "osl_x": 2, "r": 2, "miss_isl_x": 2, "isl_ratio": 1})
          .to_string(index=False))
    share = table.groupby("verdict")["rows"].sum()
    print("\nrows per verdict:", ", ".join(f"{k} {v}" for k, v in share.sort_values(ascending=False).items()))
    if args.slot_short:
        print("\nTensorRT-LLM rows replayed with max_batch_size = concurrency - 1:")
        t = slot_short_mape(rows)
        print(t[t["rows"] >= args.min_rows].round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
