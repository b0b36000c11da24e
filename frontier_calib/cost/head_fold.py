"""Decode attention for models with more KV heads than the decode tables hold, by *head folding*.

The bundled decode-attention tables (aiconfigurator-core's campaigns) measure 1-8 KV heads per GPU: GQA shapes.
An MHA model such as Llama-2-7B has 32 KV heads per GPU at TP1 (64 for a 70B-class MHA model), outside every
decode table, so its decode queries would be extrapolated by the operator model.

Decode attention kernels (FlashAttention / FlashInfer decode, TensorRT-LLM XQA) launch one work item per
(sequence, KV head) pair and stream that pair's KV once; the query heads that share a KV head (the group,
``num_heads / num_kv_heads``) ride along. So ``b`` sequences with ``K`` KV heads read the same KV bytes, issue
the same work items and do the same FLOPs as ``b x f`` sequences with ``K / f`` KV heads and the same group size:

    decode(b, kv, H, K)  ~  decode(b x f, kv, H / f, K / f)

:func:`fold_decode_query` rewrites queries above the fitted KV-head range that way (``f``: the smallest factor
that brings ``K`` into the range), so MHA decode is priced from measured GQA kernels at the same KV traffic.
Queries inside the range are untouched.

How good the equivalence is, measured on the bundled tables themselves (``benchmarks/bench_mha_decode_fold.py``
prints it per GPU and engine): :func:`folding_pairs` pairs every measured decode row with 8 KV heads with the
measured row its fold predicts from (2 or 4 KV heads at 2x or 4x the batch), i.e. a held-out GQA row
predicted from other rows, never from itself; the same check on the MHA prefill rows (which do go up to 64 heads)
pairs 32-64-head rows with their 8-head folds.
"""

from __future__ import annotations

import numpy as np
from ..lazy import pandas as pd

#: decode and prefill rows are matched on these columns besides the folded ones
_KEEP = ("kv_len", "head_dim", "window", "dtype", "kv_dtype", "kernel")


def fold_factor(kv_heads: int, max_kv_heads: int) -> int:
    """Smallest f with kv_heads / f an integer <= max_kv_heads (1 when kv_heads already fits)."""
    k = int(kv_heads)
    if k <= max_kv_heads:
        return 1
    for f in range(2, k + 1):
        if k % f == 0 and k // f <= max_kv_heads:
            return f
    return k


def fold_decode_query(df: pd.DataFrame, max_kv_heads: float | None) -> pd.DataFrame:
    """``df`` (attention-decode query rows: batch_size, num_heads, num_kv_heads, ...) with the rows above
    ``max_kv_heads`` folded (see the module docstring); ``df`` itself when no row needs it."""
    if max_kv_heads is None or df.empty:
        return df
    kvh = df["num_kv_heads"].to_numpy()
    if kvh.max() <= max_kv_heads:
        return df
    f = np.array([fold_factor(k, int(max_kv_heads)) for k in kvh], dtype=np.int64)
    out = df.copy()
    out["batch_size"] = df["batch_size"].to_numpy() * f
    out["num_heads"] = df["num_heads"].to_numpy() // f
    out["num_kv_heads"] = kvh // f
    return out


def trained_max_kv_heads(models, family: str = "attention_decode") -> float | None:
    """The largest KV-head count every fitted ``family`` model was trained on (None when unknown)."""
    if models is None:
        return None
    his = [m.ranges_.get("num_kv_heads", (None, None))[1] for (f, _), m in models.models.items() if f == family]
    his = [h for h in his if h is not None]
    return min(his) if his else None


def folding_pairs(table: pd.DataFrame, *, target_kv_heads: int = 8, batch_col: str = "batch_size",
                  extra_keys: tuple = ()) -> pd.DataFrame:
    """Measured rows with ``target_kv_heads`` KV heads next to the measured rows their fold predicts from.

    For each factor f in 2, 4, 8 that divides ``target_kv_heads`` (and the rows' head count): the source row has
    ``batch x f`` sequences, ``num_heads / f`` and ``num_kv_heads / f`` heads and the same other columns.
    Returns columns factor, num_heads, num_kv_heads, batch, measured_ms, folded_ms, error (folded / measured - 1).
    ``extra_keys``: more columns to match (prefill: q_len)."""
    keys = [c for c in (*_KEEP, *extra_keys) if c in table.columns]
    t = table.groupby([*keys, batch_col, "num_heads", "num_kv_heads"], as_index=False, observed=True)[
        "latency_ms"].median()
    target = t[t["num_kv_heads"] == target_kv_heads]
    out = []
    for f in (2, 4, 8):
        if target_kv_heads % f:
            continue
        tg = target[target["num_heads"] % f == 0].copy()
        tg["src_batch"] = tg[batch_col] * f
        tg["src_heads"] = tg["num_heads"] // f
        tg["src_kv_heads"] = tg["num_kv_heads"] // f
        src = t.rename(columns={batch_col: "src_batch", "num_heads": "src_heads", "num_kv_heads": "src_kv_heads",
                                "latency_ms": "folded_ms"})
        m = tg.merge(src, on=[*keys, "src_batch", "src_heads", "src_kv_heads"])
        if m.empty:
            continue
        out.append(pd.DataFrame({"factor": f, "num_heads": m["num_heads"], "num_kv_heads": m["num_kv_heads"],
                                 "batch": m[batch_col], "kv_len": m["kv_len"], "measured_ms": m["latency_ms"],
                                 "folded_ms": m["folded_ms"]}))
    if not out:
        return pd.DataFrame(columns=["factor", "num_heads", "num_kv_heads", "batch", "kv_len", "measured_ms",
                                     "folded_ms", "error"])
    res = pd.concat(out, ignore_index=True)
    res["error"] = res["folded_ms"] / res["measured_ms"] - 1
    return res


def error_summary(pairs: pd.DataFrame, by: str = "factor") -> pd.DataFrame:
    """Rows, median and P90 of |error| (%) and the mean signed error (%) per ``by`` value."""
    if pairs.empty:
        return pd.DataFrame(columns=[by, "rows", "median_abs_pct", "p90_abs_pct", "mean_pct"])
    g = pairs.assign(abs_err=pairs["error"].abs() * 100, err=pairs["error"] * 100).groupby(by)
    return pd.DataFrame({"rows": g.size(), "median_abs_pct": g["abs_err"].median(),
                         "p90_abs_pct": g["abs_err"].quantile(0.9), "mean_pct": g["err"].mean()}).reset_index()
