"""Multi-head and grouped-query attention (MHA/GQA), optionally with sliding-window layers (gpt-oss, Mistral).

Queries the ``attention_prefill`` / ``attention_decode`` tables with the heads on one GPU; caches K and V per
token: 2 x KV heads per GPU x head_dim x bytes per layer (KV heads replicated when tp exceeds them).
"""

from __future__ import annotations

from ..lazy import pandas as pd

from .base import AttentionKind, kv_dtype_groups, register, table_format


def _windows(model, layers):
    """Sliding-window layers first, then full ones (the order the cost model sums them)."""
    out = []
    win_layers = model.sliding_window_layers if model.sliding_window else 0
    if model.sliding_window and model.sliding_window_layers:
        out.append((model.sliding_window, min(win_layers, layers)))
    full = layers - min(win_layers, layers)
    if full:
        out.append((0, full))
    return out


def _prefill(ctx, q, kv):
    w, m = ctx.worker, ctx.worker.model
    heads, kv_heads = m.heads_per_gpu(w.tp)
    return "attention_prefill", pd.DataFrame({
        "batch_size": 1, "q_len": q, "kv_len": kv, "num_heads": heads, "num_kv_heads": kv_heads,
        "head_dim": m.head_dim, "window": ctx.window, "dtype": "bf16", "kv_dtype": table_format(w.kv_dtype)})


def _decode(ctx, b, kv):
    w, m = ctx.worker, ctx.worker.model
    heads, kv_heads = m.heads_per_gpu(w.tp)
    return "attention_decode", pd.DataFrame({
        "batch_size": b, "kv_len": kv, "num_heads": heads, "num_kv_heads": kv_heads,
        "head_dim": m.head_dim, "window": ctx.window, "dtype": "bf16", "kv_dtype": table_format(w.kv_dtype)})


def _kv_bytes(model, b, tp):
    _, kv_per_gpu = model.heads_per_gpu(tp)
    return 2 * kv_per_gpu * model.head_dim * b


GQA = register(AttentionKind(
    name="gqa", doc=__doc__.strip().splitlines()[0], families=("attention_prefill", "attention_decode"),
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=_kv_bytes, windows=_windows,
    groups=kv_dtype_groups("attention_prefill", "attention_decode"),
    profiling_kernels={"attention_prefill": "frontier_calib.profiling.kernels_attention:prepare_prefill",
                       "attention_decode": "frontier_calib.profiling.kernels_attention:prepare_decode"}))
