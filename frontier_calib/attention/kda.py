"""Kimi Delta Attention (Kimi-Linear, Kimi-K3): gated-DeltaNet's recurrence with a per-channel decay gate.

A KDA layer runs a causal convolution over q, k and v and the delta rule with a fine-grained (per key channel)
forget gate: chunked over the new tokens in prefill (``kda_prefill``: FLA's ``chunk_kda`` in SGLang,
``flashkda_fwd`` in vLLM), one recurrent step per sequence in decode (``kda_decode``). As for GDN, neither cost
depends on the cached prefix, and a layer keeps, per running sequence and GPU, ``num_v_heads / tp`` fp32
``head_k_dim x head_v_dim`` states plus the last ``conv_kernel - 1`` q/k/v inputs (bf16), nothing per token.
Heads are split by tensor parallelism (the public tables time per-shard heads: aiconfigurator-core's
``KDAKernel``). Sources: Kimi Linear technical report (Moonshot AI, 2025); aiconfigurator-core ``kda_perf``.
SGLang's KDA prefill normalises q and k with the same FLA ``l2norm_fwd_kernel`` as GDN, so it recompiles it for
each new step token count as well (sgl-project/sglang PR #31558: "the helper is shared by the GDN and KDA attention
paths"; :data:`frontier_calib.attention.gdn.PREFILL_RECOMPILES`).
"""

from __future__ import annotations

from ..lazy import pandas as pd

from .base import AttentionKind, register
from .gdn import PREFILL_RECOMPILES, linear_heads, state_bytes   # same table shape, state and l2norm as GDN


def _prefill(ctx, q, kv):
    return "kda_prefill", pd.DataFrame({"batch_size": 1, "q_len": q, **linear_heads(ctx)})


def _decode(ctx, b, kv):
    return "kda_decode", pd.DataFrame({"batch_size": b, **linear_heads(ctx)})


KDA = register(AttentionKind(
    name="kda", doc=__doc__.strip().splitlines()[0], families=("kda_prefill", "kda_decode"),
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=lambda model, b, tp: 0.0,
    state_bytes_per_sequence=state_bytes, prefill_recompiles=PREFILL_RECOMPILES))
