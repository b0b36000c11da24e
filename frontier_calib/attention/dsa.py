"""DeepSeek sparse attention (DSA: DeepSeek-V3.2, GLM-5): MLA over the top-k cached tokens an indexer selects.

A lightning indexer scores every cached token for each query; MLA then attends to the ``index_topk`` best ones
only, so attention cost grows with the selected tokens, not the context (the indexer's scan still grows with
it). The public ``dsa_prefill`` / ``dsa_decode`` tables time the whole module (MLA and indexer projections,
indexer, top-k, sparse MLA; SGLang's without the q/kv down-projection, below), so those GEMMs are not counted
again among the token ops. Caches, per token and
layer, the MLA latent (kv_lora_rank + qk_rope_head_dim, KV format) plus the indexer key (index_head_dim fp8
values and one fp32 scale per 128, as SGLang's NSA indexer cache stores them), not sharded by tensor parallelism.

The query/latent down-projection. Every engine runs q_a and kv_a as ONE GEMM, hidden -> q_lora_rank +
kv_lora_rank + qk_rope_head_dim (SGLang ``fused_qkv_a_proj_with_mqa``, vLLM ``fused_qkv_a_proj``, TensorRT-LLM's
``kv_a_proj_with_mqa``), so the kind lists it as one ``qkv_a_proj`` GEMM. SGLang's module tables do not time it:
SGLang's attention layer takes that latent through ``get_attn_tp_context().fetch_qkv_latent()``, which calls the
decoder layer's ``qkv_latent_func`` (``self_attn.prepare_qkv_latent``, the GEMM), and AIConfigurator's SGLang
module collector (``collector/sglang/collect_mla_module.py``, ``run_attention_torch``, the 0.5.14 version behind
the ``sparse_attention/sglang/0.5.14`` tables) hands the module a ``dummy_qkv_latent_func`` that returns
``torch.randn`` of that width instead (its WideEP MLA counterpart: ai-dynamo/aiconfigurator PR #476, "the AIC
collector correctly excludes it (uses dummy func)", which adds the GEMM beside the WideEP MLA tables). So on the
engines of :data:`LATENT_UNTIMED` the GEMM is priced from the GEMM tables with the token ops (GLM-5 at TP8,
6,144 -> 2,624 in FP8: 11.6 / 13.6 us per layer at 4 / 64 tokens on H200, from the fitted GEMM model); vLLM's and
TensorRT-LLM's attention modules run the projection inside the forward their tables time, so there it stays in
the table.
"""

from __future__ import annotations

from ..lazy import pandas as pd
from ..model_spec import GemmShape

from .base import AttentionKind, kv_dtype_groups, register, table_format
from .mla import PROJECTIONS, latent_bytes

#: the fused q_a + kv_a down-projection, one GEMM (module docstring)
QKV_A = "qkv_a_proj"

#: the module tables time these GEMMs with the attention
MODULE_GEMMS = PROJECTIONS | {QKV_A, "indexer_wq_b", "indexer_wk", "indexer_weights_proj"}

#: engines whose DSA module tables were timed with the q/kv latent handed in, not projected (module docstring):
#: engine -> the source
LATENT_UNTIMED = {"sglang": "ai-dynamo/aiconfigurator collector/sglang/collect_mla_module.py run_attention_torch: "
                            "dummy_qkv_latent_func (torch.randn) stands in for self_attn.prepare_qkv_latent"}


def projection_gemms(model, tp: int) -> list:
    """The layer's projection GEMMs on one GPU (:meth:`~frontier_calib.model_spec.ModelSpec.attention_gemms`)
    with q_a and kv_a as the one fused ``qkv_a_proj`` GEMM the engines run (module docstring)."""
    gemms = model.attention_gemms(tp, "dsa")
    names = {g.name for g in gemms}
    if not {"q_a_proj", "kv_a_proj"} <= names:   # no query LoRA: q_proj and kv_a_proj stay separate
        return gemms
    m = model.mla
    fused = GemmShape(QKV_A, m.q_lora_rank + m.kv_lora_rank + m.qk_rope_head_dim, model.hidden_size)
    rest = [g for g in gemms if g.name not in ("q_a_proj", "kv_a_proj")]
    return [fused, *rest]


def module_gemms(ctx) -> frozenset:
    """The GEMMs the worker's engine's DSA tables time (all of :data:`MODULE_GEMMS`, less the fused q/kv
    down-projection on the engines of :data:`LATENT_UNTIMED`)."""
    return MODULE_GEMMS - {QKV_A} if ctx.worker.engine in LATENT_UNTIMED else MODULE_GEMMS


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
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=cache_bytes, gemms=projection_gemms,
    module_gemms=module_gemms, groups=kv_dtype_groups("dsa_prefill", "dsa_decode")))
