"""MiniMax sparse attention (MSA: MiniMax-M3): GQA over the top-k cached blocks a block indexer selects.

Structurally DSA with GQA instead of MLA (aiconfigurator-core's ``sdk/operations/msa.py``, MiniMax-AI/MSA): a
light indexer (``sparse_num_index_heads`` x ``sparse_index_dim``) scores the cached tokens block by block
(``sparse_block_size`` tokens); GQA then attends to the ``sparse_topk_blocks`` best blocks only, so attention cost
follows the selected tokens, not the context (the indexer's block scan still grows with it). The public
``msa_prefill`` / ``msa_decode`` tables time the whole module (GQA and indexer projections, indexer, top-k,
sparse attention), so those GEMMs are not counted again among the token ops. Caches K and V per token and layer
as GQA does; the indexer's per-block keys (one ``index_head_dim`` vector per block) are not counted.
"""

from __future__ import annotations

from ..lazy import pandas as pd

from .base import AttentionKind, kv_dtype_groups, register, table_format
from .gqa import GQA

#: the module tables time these GEMMs with the attention
MODULE_GEMMS = frozenset({"qkv_proj", "o_proj", "indexer_q_proj", "indexer_k_proj", "indexer_weights_proj"})


def _dims(ctx):
    w, m = ctx.worker, ctx.worker.model
    ix = m.block_sparse
    heads, kv_heads = m.heads_per_gpu(w.tp)
    return {"num_heads": heads, "num_kv_heads": kv_heads, "head_dim": m.head_dim, "hidden_size": m.hidden_size,
            "index_n_heads": ix.index_n_heads, "index_head_dim": ix.index_head_dim, "block_size": ix.block_size,
            "index_topk": ix.topk_tokens, "dtype": table_format(w.dtype), "kv_dtype": table_format(w.kv_dtype)}


def _prefill(ctx, q, kv):
    return "msa_prefill", pd.DataFrame({"batch_size": 1, "q_len": q, "kv_len": kv, **_dims(ctx)})


def _decode(ctx, b, kv):
    return "msa_decode", pd.DataFrame({"batch_size": b, "kv_len": kv, **_dims(ctx)})


MSA = register(AttentionKind(
    name="msa", doc=__doc__.strip().splitlines()[0], families=("msa_prefill", "msa_decode"),
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=GQA.kv_bytes_per_token,
    module_gemms=lambda ctx: MODULE_GEMMS, groups=kv_dtype_groups("msa_prefill", "msa_decode")))
