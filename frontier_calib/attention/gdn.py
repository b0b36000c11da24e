"""Gated-DeltaNet linear attention (Qwen3.5, Qwen3-Next): a recurrent state per sequence, no growing KV cache.

Each linear-attention layer runs a causal depthwise convolution and the gated delta rule: chunked over the new
tokens in prefill (``gdn_prefill``), one recurrent step per sequence in decode (``gdn_decode``). The state carries
the whole context, so neither cost depends on the cached prefix or the KV length; a layer keeps, per running
sequence and GPU, ``num_v_heads / tp`` fp32 ``head_k_dim x head_v_dim`` matrices plus the convolution's last
``conv_kernel - 1`` inputs (bf16), and nothing per token. Heads are split by tensor parallelism, as in vLLM's and
SGLang's GatedDeltaNet layers (column-parallel ``in_proj_qkvz``, row-parallel ``out_proj``).
"""

from __future__ import annotations

import pandas as pd

from .base import AttentionKind, register


def linear_heads(ctx) -> dict:
    """The per-GPU head columns of a gated-delta-rule layer's tables (GDN, and KDA which shares its shape): heads
    split by tensor parallelism."""
    la, tp = ctx.worker.model.linear_attention, ctx.worker.tp
    return {"num_k_heads": max(1, la.num_k_heads // tp), "num_v_heads": max(1, la.num_v_heads // tp),
            "head_k_dim": la.head_k_dim, "head_v_dim": la.head_v_dim, "conv_kernel": la.conv_kernel}


def _prefill(ctx, q, kv):
    return "gdn_prefill", pd.DataFrame({"batch_size": 1, "q_len": q, **linear_heads(ctx)})


def _decode(ctx, b, kv):
    return "gdn_decode", pd.DataFrame({"batch_size": b, **linear_heads(ctx)})


def state_bytes(model, tp):
    """Recurrent state + convolution state of one gated-delta-rule layer (GDN, KDA) for one sequence on one GPU
    (bytes)."""
    la = model.linear_attention
    nv = max(1, la.num_v_heads // tp)
    return nv * la.head_k_dim * la.head_v_dim * la.state_bytes + (la.conv_kernel - 1) * la.conv_dim // tp * 2


GDN = register(AttentionKind(
    name="gdn", doc=__doc__.strip().splitlines()[0], families=("gdn_prefill", "gdn_decode"),
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=lambda model, b, tp: 0.0,
    state_bytes_per_sequence=state_bytes))
