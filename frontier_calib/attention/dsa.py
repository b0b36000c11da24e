"""DeepSeek sparse attention (DSA: DeepSeek-V3.2, GLM-5): MLA over the top-k cached tokens an indexer selects.

A lightning indexer scores every cached token for each query; MLA then attends to the ``index_topk`` best ones
only, so attention cost grows with the selected tokens, not the context (the indexer's scan still grows with
it). The public ``dsa_prefill`` / ``dsa_decode`` tables time the whole module (MLA and indexer projections,
indexer, top-k, sparse MLA), so those GEMMs are not counted again among the token ops. Caches, per token and
layer, the MLA latent (kv_lora_rank + qk_rope_head_dim, KV format) plus the indexer key (index_head_dim fp8
values and one fp32 scale per 128, as SGLang's NSA indexer cache stores them), not sharded by tensor parallelism.
"""

from __future__ import annotations

from ..lazy import pandas as pd

from .base import AttentionKind, kv_dtype_groups, register, table_format
from .mla import PROJECTIONS, latent_bytes

#: the module tables time these GEMMs with the attention
MODULE_GEMMS = PROJECTIONS | {"indexer_wq_b", "indexer_wk", "indexer_weights_proj"}


def _dims(ctx):
    w, m = ctx.worker, ctx.worker.model
    a, ix = m.mla, m.sparse_indexer
    heads, _ = m.heads_per_gpu(w.tp)
    return {"num_heads": heads, "hidden_size": m.hidden_size, "q_lora_rank": a.q_lora_rank or 0,
            "kv_lora_rank": a.kv_lora_rank, "qk_nope_head_dim": a.qk_nope_head_dim,
            "qk_rope_head_dim": a.qk_rope_head_dim, "v_head_dim": a.v_head_dim, "index_n_heads": ix.index_n_heads,
            "index_head_dim": ix.index_head_dim, "index_topk": ix.index_topk,
            "dtype": table_format(w.dtype), "kv_dtype": table_format(w.kv_dtype)}


def _prefill(ctx, q, kv):
    return "dsa_prefill", pd.DataFrame({"batch_size": 1, "q_len": q, "kv_len": kv, **_dims(ctx)})


def _decode(ctx, b, kv):
    # indexer_tied_keys 0: served keys do not tie in the top-k threshold bin as the tables' identical keys do
    # (opmodel/features.py, _dsa_topk_sort_terms)
    return "dsa_decode", pd.DataFrame({"batch_size": b, "kv_len": kv, **_dims(ctx), "indexer_tied_keys": 0.0})


def cache_bytes(model, b, tp):
    d = model.sparse_indexer.index_head_dim
    return latent_bytes(model, b, tp) + d + 4 * -(-d // 128)


DSA = register(AttentionKind(
    name="dsa", doc=__doc__.strip().splitlines()[0], families=("dsa_prefill", "dsa_decode"),
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=cache_bytes,
    module_gemms=lambda ctx: MODULE_GEMMS, groups=kv_dtype_groups("dsa_prefill", "dsa_decode")))
