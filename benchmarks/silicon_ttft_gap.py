"""Where does the TTFT the replay misses on the H200 SGLang / TensorRT-LLM MoE rows go: a per-request constant, a
per-token term, or time inside the engine loop?

Reads a ``validate silicon`` rows.csv (replayed with ``--calibration none``) and the silicon CSV's
``silicon_data_source`` column, and prints two tables per engine:

1. **Low concurrency** (≤ 8 clients): per data source × model × version × TP and prompt length, the measured and
   predicted TTFT, the predicted prefill kernel time of one prompt (``budget_prefill_kernels_ms``) and the gap
   (measured − predicted). A gap that stays put when the prompt grows 8x is a per-request constant; one that grows
   with the prompt is a per-token term. ``H`` = gap + prefill kernels: the wall time one prefill step would need if
   the missing time were a floor under the step (``max(kernels, H)``, as an eager step's launch time is).
2. **Decode stall test**: rows that differ only in the output length (same model, engine, prompt, clients). A
   missing delay *inside the engine loop* (the prefill step takes longer than predicted) also stalls the decoding
   sequences, so it raises the measured TPOT of the short-output row (which admits a new prompt ``c / (TTFT +
   osl x TPOT)`` times a second) by about ``gap x arrivals`` more than the long-output row's; a delay *outside*
   the loop (HTTP, tokenizer, client) leaves TPOT alone. ``implied`` is that predicted extra share,
   ``observed`` = (measured / predicted TPOT at the short output) / (same at the long output) − 1.

    python benchmarks/silicon_ttft_gap.py --rows out/h200/rows.csv [--engine sglang --engine trtllm]

The rows.csv: ``frontier-calib validate silicon --gpu h200_sxm --mode agg --calibration none --out out/h200``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def source_family(source: str) -> str:
    """A short name for the data source of a silicon row (its ``silicon_data_source`` field): the 2025
    gap-analysis files, the 2026 gap-analysis file, or the 2026 database (every other file)."""
    from frontier_calib.validate.silicon import source_file

    return {"aic-auto-gap-analysis": "aic-auto-gap 2025",
            "gap-analysis.csv": "gap-analysis 2026"}.get(source_file(source), "database 2026")


def load(rows_csv: Path, silicon_csv: Path) -> pd.DataFrame:
    """The ok rows of a replay with their source family, short model name, gap and predicted prefill kernels."""
    rows = pd.read_csv(rows_csv)
    rows = rows[rows["status"] == "ok"]
    src = pd.read_csv(silicon_csv, usecols=["id", "silicon_data_source"])
    d = rows.merge(src, on="id", how="left")
    d["source"] = d["silicon_data_source"].fillna("").map(source_family)
    d["model"] = d["model_path"].str.split("/").str[-1].str[:20]
    d["gap_ms"] = d["silicon_ttft_ms"] - d["pred_ttft_ms"]
    d["H_ms"] = d["gap_ms"] + d["budget_prefill_kernels_ms"]
    # the same measurement listed under several sources or deployment spellings counts once per source
    return d.drop_duplicates(["source", "model", "backend", "backend_version", "isl", "osl", "concurrency",
                              "silicon_ttft_ms", "silicon_tpot_ms"])


GROUP = ["source", "model", "backend_version", "tp_size"]


def low_concurrency_table(d: pd.DataFrame, max_clients: int = 8) -> pd.DataFrame:
    """Table 1: per group and prompt length, medians over the rows with at most ``max_clients`` clients."""
    x = d[d["concurrency"] <= max_clients]
    return x.groupby(GROUP + ["isl"]).agg(
        rows=("id", "size"), clients=("concurrency", "median"), measured=("silicon_ttft_ms", "median"),
        predicted=("pred_ttft_ms", "median"), kernels=("budget_prefill_kernels_ms", "median"),
        gap=("gap_ms", "median"), H=("H_ms", "median")).round(0)


def stall_table(d: pd.DataFrame, max_clients: int = 64) -> pd.DataFrame:
    """Table 2: each short-output row paired with the longest-output row of the same group, prompt and clients
    (at most ``max_clients``: beyond, the queue of waiting prompts, not a per-request term, makes the gap)."""
    out = []
    for key, g in d[d["concurrency"] <= max_clients].groupby(GROUP + ["isl", "concurrency"]):
        if g["osl"].nunique() < 2:
            continue
        long = g[g["osl"] == g["osl"].max()].iloc[0]
        r_long = long["silicon_tpot_ms"] / long["pred_tpot_ms"]
        for _, s in g[g["osl"] < long["osl"]].iterrows():
            arrivals = s["concurrency"] / ((s["silicon_ttft_ms"] + s["osl"] * s["silicon_tpot_ms"]) / 1e3)
            out.append(dict(zip(GROUP + ["isl", "clients"], key)) | {
                "osl": int(s["osl"]), "vs_osl": int(long["osl"]), "gap_ms": s["gap_ms"],
                "arrivals_per_s": arrivals, "implied_pct": 100 * s["gap_ms"] / 1e3 * arrivals,
                "observed_pct": 100 * ((s["silicon_tpot_ms"] / s["pred_tpot_ms"]) / r_long - 1)})
    return pd.DataFrame(out).round(2)


def _corr(pairs: pd.DataFrame) -> float:
    """Correlation of implied and observed TPOT excess over a group's pairs (NaN below three pairs)."""
    if len(pairs) < 3 or pairs["implied_pct"].std() == 0 or pairs["observed_pct"].std() == 0:
        return float("nan")
    return float(np.corrcoef(pairs["implied_pct"], pairs["observed_pct"])[0, 1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, required=True, help="rows.csv of a validate silicon replay")
    ap.add_argument("--csv", type=Path, default=None, help="silicon CSV (default: aiconfigurator-core's)")
    ap.add_argument("--engine", action="append", default=None, help="engines to show (default sglang, trtllm)")
    args = ap.parse_args(argv)
    from frontier_calib.validate.silicon import default_csv_path

    csv = args.csv or default_csv_path()
    if csv is None:
        sys.exit("no silicon CSV: install aiconfigurator-core or pass --csv")
    for path, what in ((args.rows, "--rows"), (Path(csv), "--csv")):
        if not path.is_file():
            sys.exit(f"{what} {path}: no such file (the rows.csv of `frontier-calib validate silicon --out DIR`)")
    d = load(args.rows, csv)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    for engine in args.engine or ["sglang", "trtllm"]:
        e = d[d["backend"] == engine]
        print(f"\n## {engine}: low concurrency (<= 8 clients), medians (ms)\n")
        print(low_concurrency_table(e).to_string())
        st = stall_table(e)
        if st.empty:
            continue
        print(f"\n## {engine}: decode stall test (short vs long output, same prompt and clients)\n")
        print(st.to_string(index=False))
        by = st.groupby(GROUP).agg(pairs=("osl", "size"), gap_ms=("gap_ms", "median"),
                                   implied_pct=("implied_pct", "mean"), observed_pct=("observed_pct", "mean"),
                                   corr=("implied_pct", lambda v: _corr(st.loc[v.index])))
        print("\nper group: median gap, mean implied and observed TPOT excess, their correlation over the pairs\n")
        print(by.round(2).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
