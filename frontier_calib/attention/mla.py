"""Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2).

Queries the ``mla_prefill`` / ``mla_decode`` tables. Where the fitted models were trained on module-scope rows
(the projections timed with the attention, vLLM/SGLang module tables), the MLA projection GEMMs are not counted
again among the token ops; kernel-scope rows time the attention alone. Caches the latent
(kv_lora_rank + qk_rope_head_dim) per token and layer, not sharded by tensor parallelism.
"""

from __future__ import annotations

from ..lazy import pandas as pd

from .base import AttentionKind, kv_dtype_groups, register, table_format

#: the MLA projection GEMMs that module-scope tables include
PROJECTIONS = frozenset({"q_a_proj", "q_b_proj", "q_proj", "kv_a_proj", "kv_b_proj", "o_proj"})


def has_scope(models, families, scope: str) -> bool:
    """Whether every fitted model of ``families`` was trained on rows of this scope ('module' or 'kernel')."""
    fams = [(f, g) for f in families for g in models.groups(f)]
    return bool(fams) and all(scope in models.models[k].categories_.get("scope", []) for k in fams)


def scope(ctx) -> str:
    return "module" if has_scope(ctx.models, ("mla_prefill", "mla_decode"), "module") else "kernel"


def _prefill(ctx, q, kv):
    w, m = ctx.worker, ctx.worker.model
    heads, _ = m.heads_per_gpu(w.tp)
    return "mla_prefill", pd.DataFrame({"batch_size": 1, "q_len": q, "kv_len": kv, "num_heads": heads,
                                        "scope": scope(ctx), "dtype": table_format(w.dtype),
                                        "kv_dtype": table_format(w.kv_dtype)})


def _decode(ctx, b, kv):
    w, m = ctx.worker, ctx.worker.model
    heads, _ = m.heads_per_gpu(w.tp)
    return "mla_decode", pd.DataFrame({"batch_size": b, "kv_len": kv, "num_heads": heads, "scope": scope(ctx),
                                       "dtype": table_format(w.dtype), "kv_dtype": table_format(w.kv_dtype)})


def latent_bytes(model, b, tp):
    return (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * b


MLA = register(AttentionKind(
    name="mla", doc=__doc__.strip().splitlines()[0], families=("mla_prefill", "mla_decode"),
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=latent_bytes,
    module_gemms=lambda ctx: PROJECTIONS if scope(ctx) == "module" else frozenset(),
    groups=kv_dtype_groups("mla_prefill", "mla_decode"),
    profiling_kernels={"mla_prefill": "frontier_calib.profiling.kernels_attention:prepare_mla_prefill",
                       "mla_decode": "frontier_calib.profiling.kernels_attention:prepare_mla_decode"}))
