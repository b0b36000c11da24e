"""How well head folding prices MHA decode attention (issue 15, item 4), measured on the bundled tables.

The decode-attention tables hold 1-8 KV heads per GPU; MHA models (Llama-2-7B: 32 at TP1) are priced by folding
heads into the batch (frontier_calib/cost/head_fold.py): decode(b, kv, H, K) ~ decode(b x f, kv, H/f, K/f).
This script checks that equivalence where both sides are measured:

* decode, held-out GQA rows: every measured row with 8 KV heads against the measured row with 8/f KV heads,
  f x the batch and the same group size (f = 2, 4, 8; f = 4 is Llama-2-7B's case at TP1);
* prefill, MHA rows (these tables go up to 64 heads): 32- and 64-head rows against their f-folds.

Prints rows, median and P90 |error| and the mean signed error (folded / measured - 1) per GPU, engine and f.

    python benchmarks/bench_mha_decode_fold.py [--gpu h100_sxm --gpu h200_sxm]
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpu", action="append", default=None)
    args = ap.parse_args()
    import pandas as pd

    from frontier_calib.cost.head_fold import error_summary, folding_pairs
    from frontier_calib.errors import CoverageError
    from frontier_calib.profiles import store

    pd.set_option("display.width", 200)
    out = []
    for gpu in args.gpu or ["h100_sxm", "h200_sxm"]:
        for engine in ("vllm", "sglang", "trtllm"):
            try:
                dec = store.load_family("attention_decode", gpu, engine)
                pre = store.load_family("attention_prefill", gpu, engine)
            except CoverageError:
                continue
            s = error_summary(folding_pairs(dec))
            out.append(s.assign(gpu=gpu, engine=engine, check="decode, 8 KV heads (held-out GQA)"))
            mha = pre[pre["num_heads"] == pre["num_kv_heads"]]
            for k in (32, 64):
                s = error_summary(folding_pairs(mha, target_kv_heads=k, extra_keys=("q_len",)))
                out.append(s.assign(gpu=gpu, engine=engine, check=f"prefill, MHA {k} heads"))
    if not out:
        print("no attention tables found", file=sys.stderr)
        return 1
    res = pd.concat(out, ignore_index=True)[["gpu", "engine", "check", "factor", "rows", "median_abs_pct",
                                              "p90_abs_pct", "mean_pct"]]
    print(res.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
