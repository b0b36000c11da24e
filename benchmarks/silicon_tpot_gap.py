"""Where does the TPOT a ``validate silicon`` replay misses go: the decode step itself, or the prefill steps that
stall the decoding sequences?

Reads a ``validate silicon`` rows.csv and prints, per model x GPU x engine x version x TP (the InferenceX grids:
prompt 1,024 or 8,192 tokens, output 1,024 or 8,192, the same clients), two tables:

1. **Decode step.** The long-output rows (output >= 4x the prompt: a client spends almost all its cycle decoding,
   prefill steps stall the batch rarely) give the measured decode step; beside it the replay's TPOT of the same
   row and its decode kernel step (``budget_decode_kernels_ms``). ``gap`` = measured - predicted TPOT: a gap that
   stays put across clients is a per-step cost the kernel tables miss.
2. **Prefill stall.** Every other row, against the long-output row at the same clients (its decode step scaled by
   the replay's decode kernel steps of the two rows, which differ only in their context). In a closed loop of
   ``c`` clients each request cycles in ``C = TTFT + (osl - 1) x TPOT``, so prompts arrive at ``c / C`` a second;
   the share of the time decode stands still for prefill steps is ``f = 1 - D / TPOT`` (``D``: the decode step
   without them), so each prompt stalls the decoding batch by ``S = f x C / c`` (ms). ``S`` measured vs ``S``
   replayed (the same formula on the replay's own TPOT, TTFT and decode step), beside the predicted prefill kernels
   of one prompt (``budget_prefill_kernels_ms`` x the harness's mean prompt share): ``S - kernels`` is the stall per
   prompt that is not prefill kernel time (JIT compiles, eager launches, host work in the engine loop).

    python benchmarks/silicon_tpot_gap.py --rows out/vs/rows.csv [--model qwen3.5] [--gpu h200_sxm]

The rows.csv: ``frontier-calib validate silicon --gpu h100_sxm --gpu h200_sxm --mode agg --out out/vs``. An
approximation: the long-output row's prefill share is taken as zero (it is ``osl / isl`` = 8 times smaller than the
short one's), and the decode batch of both rows as the clients.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

GROUP = ["model", "system", "backend", "backend_version", "tp_size"]


def load(rows_csv: Path, model: str | None = None, gpus=()) -> pd.DataFrame:
    """The ok rows of a replay, one per measurement (the same measurement under several ids counts once)."""
    d = pd.read_csv(rows_csv, dtype={"backend_version": str})
    d = d[d["status"] == "ok"].copy()
    if model:
        d = d[d["model_path"].str.contains(model, case=False, regex=False)]
    if gpus:
        d = d[d["system"].isin(gpus)]
    d["model"] = d["model_path"].str.split("/").str[-1].str[:22]
    d["backend_version"] = d["backend_version"].fillna("?")
    # one measurement listed under several ids (and TP spellings, rounded differently) counts once
    meas = d[["silicon_ttft_ms", "silicon_tpot_ms"]].round(1).astype(str).agg("/".join, axis=1)
    return d.assign(_meas=meas).drop_duplicates(["model", "system", "backend", "backend_version", "isl", "osl",
                                                 "concurrency", "_meas"]).drop(columns="_meas")


def decode_rows(d: pd.DataFrame) -> pd.DataFrame:
    """Table 1: the long-output rows (osl >= 4 x isl) with their TPOT gap."""
    long = d[d["osl"] >= 4 * d["isl"]].copy()
    long["gap_ms"] = long["silicon_tpot_ms"] - long["pred_tpot_ms"]
    return long[GROUP + ["isl", "osl", "concurrency", "silicon_tpot_ms", "pred_tpot_ms", "gap_ms",
                         "budget_decode_kernels_ms"]].sort_values(GROUP + ["concurrency"])


def stall_ms(ttft_ms, tpot_ms, decode_ms, osl, clients):
    """Milliseconds each prompt stalls the decoding batch in a closed loop (module docstring): the share of time
    decode stands still, ``1 - decode / tpot``, times the cycle of one request over the clients."""
    cycle = ttft_ms + (osl - 1) * tpot_ms
    share = 1.0 - decode_ms / tpot_ms
    return share * cycle / clients, share


def stall_rows(d: pd.DataFrame, prompt_share: float) -> pd.DataFrame:
    """Table 2: every row that has a long-output row at the same clients, with the stall per prompt measured and
    replayed. ``prompt_share``: the harness's mean prompt length over the isl (InferenceX: (0.8 + 1) / 2)."""
    long = d[d["osl"] >= 4 * d["isl"]]
    ref = long.set_index(GROUP + ["concurrency"])[["silicon_tpot_ms", "pred_tpot_ms", "budget_decode_kernels_ms"]]
    out = []
    for _, r in d[d["osl"] < 4 * d["isl"]].iterrows():
        key = tuple(r[g] for g in GROUP) + (r["concurrency"],)
        if key not in ref.index:
            continue
        lr = ref.loc[key]
        lr = lr.iloc[0] if isinstance(lr, pd.DataFrame) else lr
        scale = r["budget_decode_kernels_ms"] / lr["budget_decode_kernels_ms"]   # this row's context vs the long row's
        s_meas, f_meas = stall_ms(r["silicon_ttft_ms"], r["silicon_tpot_ms"], lr["silicon_tpot_ms"] * scale,
                                  r["osl"], r["concurrency"])
        s_pred, f_pred = stall_ms(r["pred_ttft_ms"], r["pred_tpot_ms"], lr["pred_tpot_ms"] * scale, r["osl"],
                                  r["concurrency"])
        kernels = r["budget_prefill_kernels_ms"] * prompt_share
        out.append({**{g: r[g] for g in GROUP}, "isl": r["isl"], "osl": r["osl"], "clients": r["concurrency"],
                    "tpot_meas": r["silicon_tpot_ms"], "tpot_pred": r["pred_tpot_ms"],
                    "share_meas": f_meas, "share_pred": f_pred, "stall_meas_ms": s_meas, "stall_pred_ms": s_pred,
                    "prefill_kernels_ms": kernels, "meas_minus_kernels_ms": s_meas - kernels,
                    "pred_minus_kernels_ms": s_pred - kernels})
    return pd.DataFrame(out).sort_values(GROUP + ["isl", "osl", "clients"]) if out else pd.DataFrame(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=Path, required=True, help="rows.csv of a validate silicon run")
    ap.add_argument("--model", default=None, help="keep rows whose model_path contains this")
    ap.add_argument("--gpu", action="append", default=[], help="keep these GPUs (repeat)")
    ap.add_argument("--prompt-share", type=float, default=0.9,
                    help="mean prompt length / isl of the harness (InferenceX: uniform in [0.8, 1] x isl)")
    args = ap.parse_args(argv)
    if not args.rows.exists():
        print(f"error: {args.rows}: no such rows.csv (run frontier-calib validate silicon --out ... first)",
              file=sys.stderr)
        return 2
    d = load(args.rows, args.model, tuple(args.gpu))
    if d.empty:
        print("error: no ok rows match the selection", file=sys.stderr)
        return 2
    pd.set_option("display.width", 200)
    dec = decode_rows(d)
    print("1. Decode step: long-output rows (ms)\n")
    print(dec.round(2).to_string(index=False))
    print("\nmean gap per group (ms):")
    print(dec.groupby(GROUP)["gap_ms"].agg(["count", "mean", "min", "max"]).round(2).to_string())
    st = stall_rows(d, args.prompt_share)
    if st.empty:
        print("\n2. Prefill stall: no row has a long-output twin at the same clients")
        return 0
    print("\n2. Prefill stall per prompt (ms; shares of time decode stands still)\n")
    print(st.round(2).to_string(index=False))
    print("\nmedian per group and prompt length (ms):")
    print(st.groupby(GROUP + ["isl"])[["stall_meas_ms", "stall_pred_ms", "prefill_kernels_ms",
                                       "meas_minus_kernels_ms", "pred_minus_kernels_ms"]].median().round(1)
          .to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
