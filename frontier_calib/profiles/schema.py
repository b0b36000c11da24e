"""The canonical profile schema: one table per operator family, one unit per quantity.

Every table has the common columns (``gpu``, ``engine``, ``engine_version``, ``kernel``,
``latency_ms``) plus its family's shape columns. Latencies are **milliseconds** of GPU time
for one call, everywhere. Token counts are tokens, sizes are bytes, head counts are per GPU
(already divided by tensor parallelism). ``profiles/README.md`` documents the same schema for
people; this module is the source of truth for code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ..lazy import pandas as pd

from ..dtypes import DTYPE_BYTES, normalize_dtype
from ..errors import InputError


@dataclass(frozen=True)
class Column:
    name: str
    kind: str      #: "int", "float", "str" or "dtype" (a canonical dtype name)
    unit: str
    doc: str


COMMON = [
    Column("gpu", "str", "-", "GPU id from frontier_calib.hardware (h100_sxm, a100_sxm, h200_sxm, ...)"),
    Column("engine", "str", "-", "serving engine whose kernels were timed: vllm, sglang, trtllm; 'any' for NCCL"),
    Column("engine_version", "str", "-", "engine (or NCCL) version the kernels came from"),
    Column("kernel", "str", "-", "kernel implementation timed (e.g. vllm_flash_attn_fa3, DeepGemm, NCCL)"),
    Column("latency_ms", "float", "ms", "median GPU time of one call, milliseconds"),
]


@dataclass(frozen=True)
class Family:
    name: str
    doc: str
    columns: tuple                 #: family-specific Columns (after COMMON)
    shape_columns: tuple           #: numeric columns that define the shape (range-checked at predict time)
    group_column: str | None       #: dtype column that splits one model per dtype group


def _c(name, kind, unit, doc):
    return Column(name, kind, unit, doc)


#: an MoE layer's expert shape, parallelism and routing (shared by moe and moe_deepep)
_MOE_SHAPE_COLUMNS = (
        _c("hidden_size", "int", "features", "model hidden size"),
        _c("inter_size", "int", "features", "expert intermediate size (unsharded)"),
        _c("topk", "int", "experts", "experts per token"),
        _c("num_experts", "int", "experts", "routed experts in the layer (all GPUs)"),
        _c("moe_tp", "int", "GPUs", "tensor parallelism inside each expert"),
        _c("moe_ep", "int", "GPUs", "expert parallelism"),
        _c("distribution", "str", "-", "token routing: 'balanced' or 'power_law_<alpha>' (skewed)"),
)

#: the gated-DeltaNet layer's head shape (shared by gdn_prefill and gdn_decode)
_GDN_HEAD_COLUMNS = (
        _c("num_k_heads", "int", "heads", "query/key heads per GPU"),
        _c("num_v_heads", "int", "heads", "value heads per GPU (one recurrent state each)"),
        _c("head_k_dim", "int", "elements", "query/key head dimension"),
        _c("head_v_dim", "int", "elements", "value head dimension"),
        _c("conv_kernel", "int", "tokens", "causal convolution width"),
)

#: the Mamba2 mixer's shape (shared by mamba2_conv_prefill and mamba2_conv_decode)
_MAMBA2_COLUMNS = (
        _c("num_heads", "int", "heads", "Mamba2 heads per GPU (inner width = num_heads x head_dim)"),
        _c("head_dim", "int", "elements", "Mamba2 head dimension"),
        _c("d_state", "int", "elements", "SSM state width per head (B and C width per group)"),
        _c("n_groups", "int", "groups", "B/C groups per GPU"),
        _c("conv_kernel", "int", "tokens", "causal convolution width"),
)

#: the MSA module's heads, model dimensions and formats (shared by msa_prefill and msa_decode)
_MSA_COLUMNS = (
        _c("num_heads", "int", "heads", "query heads per GPU"),
        _c("num_kv_heads", "int", "heads", "key/value heads per GPU"),
        _c("head_dim", "int", "elements", "head dimension"),
        _c("hidden_size", "int", "features", "model hidden size (the module's projections)"),
        _c("index_n_heads", "int", "heads", "block-indexer heads"),
        _c("index_head_dim", "int", "elements", "block-indexer head width"),
        _c("block_size", "int", "tokens", "tokens per block the indexer scores"),
        _c("index_topk", "int", "tokens", "keys each query attends to (top-k blocks x block_size)"),
        _c("dtype", "dtype", "-", "GEMM format of the projections"),
        _c("kv_dtype", "dtype", "-", "KV-cache format"),
)

#: the DSA module's model dimensions and formats (shared by dsa_prefill and dsa_decode)
_DSA_MODEL_COLUMNS = (
        _c("hidden_size", "int", "features", "model hidden size (the module's projections)"),
        _c("q_lora_rank", "int", "features", "query compression rank"),
        _c("kv_lora_rank", "int", "features", "latent KV width cached per token"),
        _c("qk_nope_head_dim", "int", "elements", "query/key head width without RoPE"),
        _c("qk_rope_head_dim", "int", "elements", "decoupled RoPE key width (cached next to the latent)"),
        _c("v_head_dim", "int", "elements", "value head width"),
        _c("index_n_heads", "int", "heads", "indexer heads"),
        _c("index_head_dim", "int", "elements", "indexer head width"),
        _c("index_topk", "int", "tokens", "cached tokens each query attends to"),
        _c("dtype", "dtype", "-", "GEMM format of the projections"),
        _c("kv_dtype", "dtype", "-", "KV-cache (latent) format"),
)


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("gemm", "Dense GEMM C[m,n] = A[m,k] @ B[k,n]; m = tokens, n = output features, k = input features.", (
        _c("dtype", "dtype", "-", "weight/activation format: bf16, fp16, fp8 (per-tensor), fp8_block, int8, "
           "int4_wo, int4_fp8, mxfp4 (w4a16), mxfp4_fp8 (w4a8), nvfp4"),
        _c("m", "int", "tokens", "rows of the activation (tokens in the batch)"),
        _c("n", "int", "features", "output features"),
        _c("k", "int", "features", "input features (reduction dimension)"),
    ), ("m", "n", "k"), "dtype"),
    Family("attention_prefill", "Causal attention over a prefill (context) chunk: each of batch_size sequences has "
           "q_len new query tokens attending to kv_len keys (kv_len - q_len of them already cached).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("q_len", "int", "tokens", "new (query) tokens per sequence"),
        _c("kv_len", "int", "tokens", "keys attended per sequence, cached prefix included (kv_len >= q_len)"),
        _c("num_heads", "int", "heads", "query heads per GPU"),
        _c("num_kv_heads", "int", "heads", "key/value heads per GPU"),
        _c("head_dim", "int", "elements", "head dimension"),
        _c("window", "int", "tokens", "sliding-window size; 0 = full attention"),
        _c("dtype", "dtype", "-", "activation format"),
        _c("kv_dtype", "dtype", "-", "KV-cache format"),
    ), ("batch_size", "q_len", "kv_len", "num_heads", "num_kv_heads", "head_dim"), "kv_dtype"),
    Family("attention_decode", "Decode (generation) attention: batch_size sequences, one query token each, "
           "attending to kv_len cached tokens.", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("kv_len", "int", "tokens", "KV length per sequence"),
        _c("num_heads", "int", "heads", "query heads per GPU"),
        _c("num_kv_heads", "int", "heads", "key/value heads per GPU"),
        _c("head_dim", "int", "elements", "head dimension"),
        _c("window", "int", "tokens", "sliding-window size; 0 = full attention"),
        _c("dtype", "dtype", "-", "activation format"),
        _c("kv_dtype", "dtype", "-", "KV-cache format"),
    ), ("batch_size", "kv_len", "num_heads", "num_kv_heads", "head_dim"), "kv_dtype"),
    Family("mla_prefill", "Multi-head latent attention (DeepSeek) over a prefill chunk. scope='module' includes "
           "the MLA projections of a DeepSeek-V3 layer (vLLM module tables); scope='kernel' is attention alone.", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("q_len", "int", "tokens", "new tokens per sequence"),
        _c("kv_len", "int", "tokens", "keys attended per sequence (kv_len >= q_len)"),
        _c("num_heads", "int", "heads", "query heads per GPU"),
        _c("scope", "str", "-", "'module' (projections + attention) or 'kernel' (attention only)"),
        _c("dtype", "dtype", "-", "GEMM format of the projections (module scope)"),
        _c("kv_dtype", "dtype", "-", "KV-cache (latent) format"),
    ), ("batch_size", "q_len", "kv_len", "num_heads"), "kv_dtype"),
    Family("mla_decode", "Multi-head latent attention for decode: batch_size sequences, one token each.", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("kv_len", "int", "tokens", "KV length per sequence"),
        _c("num_heads", "int", "heads", "query heads per GPU"),
        _c("scope", "str", "-", "'module' or 'kernel' as for mla_prefill"),
        _c("dtype", "dtype", "-", "GEMM format of the projections (module scope)"),
        _c("kv_dtype", "dtype", "-", "KV-cache (latent) format"),
    ), ("batch_size", "kv_len", "num_heads"), "kv_dtype"),
    Family("gdn_prefill", "Gated-DeltaNet linear attention over a prefill chunk (Qwen3.5, Qwen3-Next): the causal "
           "depthwise convolution plus the chunked gated delta rule, for batch_size sequences of q_len new tokens each. "
           "The recurrent state carries the cached prefix, so the cost does not depend on it.", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("q_len", "int", "tokens", "new tokens per sequence"),
        *_GDN_HEAD_COLUMNS,
    ), ("batch_size", "q_len", "num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim"), None),
    Family("gdn_decode", "Gated-DeltaNet linear attention for decode: batch_size sequences, one token each "
           "(convolution update plus the recurrent delta-rule step); independent of the context length.", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        *_GDN_HEAD_COLUMNS,
    ), ("batch_size", "num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim"), None),
    Family("mamba2_conv_prefill", "The causal depthwise convolution of a Mamba2 mixer (Nemotron-H) over a prefill "
           "chunk: batch_size sequences of q_len new tokens over the x, B and C channels. The public tables time this "
           "kernel only; the SSD scan is priced by the mamba2 attention kind (frontier_calib/attention/mamba2.py).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("q_len", "int", "tokens", "new tokens per sequence"),
        *_MAMBA2_COLUMNS,
    ), ("batch_size", "q_len", "num_heads", "head_dim", "d_state", "n_groups"), None),
    Family("mamba2_conv_decode", "The causal convolution update of a Mamba2 mixer for decode: batch_size sequences, "
           "one token each; independent of the context length (the SSM state step is priced by the kind).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        *_MAMBA2_COLUMNS,
    ), ("batch_size", "num_heads", "head_dim", "d_state", "n_groups"), None),
    Family("kda_prefill", "Kimi Delta Attention (Kimi-Linear, Kimi-K3) over a prefill chunk: the causal convolution "
           "of q, k and v plus the chunked delta rule with per-channel (full-rank) decay gates, for batch_size "
           "sequences of q_len new tokens each; independent of the cached prefix (a recurrent state carries it).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("q_len", "int", "tokens", "new tokens per sequence"),
        *_GDN_HEAD_COLUMNS,
    ), ("batch_size", "q_len", "num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim"), None),
    Family("kda_decode", "Kimi Delta Attention for decode: batch_size sequences, one token each (convolution update "
           "plus the recurrent KDA step); independent of the context length.", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        *_GDN_HEAD_COLUMNS,
    ), ("batch_size", "num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim"), None),
    Family("mla_bmm", "The absorbed MLA decode BMMs of DeepSeek-style attention (TensorRT-LLM's mla_gen_pre / "
           "mla_gen_post): per query head, op='pre' maps the no-RoPE query (qk_nope_head_dim 128) into the latent "
           "(kv_lora_rank 512) through W_UK, op='post' maps the attention output from the latent back to v_head_dim "
           "128 through W_UV; num_tokens rows each. Shapes are DeepSeek-V3's (the only ones the source times).", (
        _c("op", "str", "-", "'pre' (W_UK: 128 -> 512 per head) or 'post' (W_UV: 512 -> 128 per head)"),
        _c("num_tokens", "int", "tokens", "decode tokens in the call (rows of each per-head matrix)"),
        _c("num_heads", "int", "heads", "query heads per GPU (batch of the BMM)"),
        _c("dtype", "dtype", "-", "BMM format: bf16, fp8 (per-tensor) or fp8_block"),
    ), ("num_tokens", "num_heads"), "dtype"),
    Family("msa_prefill", "MiniMax sparse attention (MiniMax-M3) over a prefill chunk, module scope: the GQA and "
           "block-indexer projections, the indexer scoring the cached tokens block by block, top-k block selection "
           "and GQA over the selected blocks' tokens (at most index_topk keys per query).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("q_len", "int", "tokens", "new tokens per sequence"),
        _c("kv_len", "int", "tokens", "keys per sequence, cached prefix included (kv_len >= q_len)"),
        *_MSA_COLUMNS,
    ), ("batch_size", "q_len", "kv_len", "num_heads", "num_kv_heads", "hidden_size", "index_topk"), "kv_dtype"),
    Family("msa_decode", "MiniMax sparse attention for decode, module scope: batch_size sequences, one token each; "
           "attention cost stops growing once kv_len exceeds index_topk (the block indexer's does not).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("kv_len", "int", "tokens", "KV length per sequence"),
        *_MSA_COLUMNS,
    ), ("batch_size", "kv_len", "num_heads", "num_kv_heads", "hidden_size", "index_topk"), "kv_dtype"),
    Family("mhc", "DeepSeek-V4's manifold-constrained hyper-connections around each sub-layer: op='pre' mixes the "
           "hc_mult residual streams into the sub-layer's input (mixing weights from a small projection, made doubly "
           "stochastic by sinkhorn_iters Sinkhorn steps), op='post' writes the sub-layer's output back into the streams; "
           "num_tokens rows. The engine's kernel choice by size (TensorRT-LLM: FMA, split-K) is one op here.", (
        _c("op", "str", "-", "'pre' (streams -> sub-layer input) or 'post' (sub-layer output -> streams)"),
        _c("num_tokens", "int", "tokens", "tokens in the call"),
        _c("hidden_size", "int", "features", "model hidden size (width of each stream)"),
        _c("hc_mult", "int", "streams", "residual streams (hyper-connection expansion)"),
        _c("sinkhorn_iters", "int", "steps", "Sinkhorn normalisation steps of the mixing matrix"),
    ), ("num_tokens", "hidden_size"), None),
    Family("dsa_prefill", "DeepSeek sparse attention (DeepSeek-V3.2, GLM-5) over a prefill chunk, module scope: "
           "the MLA and indexer projections, the indexer scoring every cached token, top-k selection and MLA over "
           "the index_topk selected tokens (short contexts run dense attention).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("q_len", "int", "tokens", "new tokens per sequence"),
        _c("kv_len", "int", "tokens", "keys per sequence, cached prefix included (kv_len >= q_len)"),
        _c("num_heads", "int", "heads", "query heads per GPU"),
        *_DSA_MODEL_COLUMNS,
    ), ("batch_size", "q_len", "kv_len", "num_heads", "hidden_size", "q_lora_rank", "kv_lora_rank", "v_head_dim", "index_n_heads", "index_topk"), "kv_dtype"),
    Family("dsa_decode", "DeepSeek sparse attention for decode, module scope: batch_size sequences, one token each; "
           "attention cost stops growing once kv_len exceeds index_topk (the indexer's does not).", (
        _c("batch_size", "int", "sequences", "sequences in the call"),
        _c("kv_len", "int", "tokens", "KV length per sequence"),
        _c("num_heads", "int", "heads", "query heads per GPU"),
        *_DSA_MODEL_COLUMNS,
    ), ("batch_size", "kv_len", "num_heads", "hidden_size", "q_lora_rank", "kv_lora_rank", "v_head_dim", "index_n_heads", "index_topk"), "kv_dtype"),
    Family("moe", "MoE expert computation on one GPU (grouped GEMMs up/gate + down, routing included) for "
           "num_tokens tokens each routed to topk of num_experts experts, experts split over moe_ep GPUs and "
           "each expert's intermediate dimension over moe_tp GPUs.", (
        _c("dtype", "dtype", "-", "expert weight format"),
        _c("num_tokens", "int", "tokens", "tokens entering the MoE layer on this GPU"),
        *_MOE_SHAPE_COLUMNS,
    ), ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp", "moe_ep"), "dtype"),
    Family("moe_deepep", "MoE expert computation on one GPU of a DeepEP expert-parallel group (SGLang "
           "DeepEPMoE: DeepGEMM grouped GEMMs behind DeepEP dispatch/combine) for num_tokens tokens entering the "
           "layer on all moe_ep GPUs together. phase 'decode' is the masked layout of the low-latency path, "
           "'prefill' the contiguous layout of the normal path.", (
        _c("dtype", "dtype", "-", "expert weight format"),
        _c("phase", "str", "-", "'decode' (DeepEP low-latency, masked grouped GEMM) or 'prefill' (normal, "
           "contiguous grouped GEMM)"),
        _c("num_tokens", "int", "tokens", "tokens entering the MoE layer on all moe_ep GPUs together"),
        *_MOE_SHAPE_COLUMNS,
    ), ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp", "moe_ep"), "dtype"),
    Family("collective", "Collective communication among num_gpus GPUs of one node: all_reduce, all_gather, "
           "reduce_scatter, all_to_all; NCCL or an engine's custom all-reduce.", (
        _c("op", "str", "-", "all_reduce | all_gather | reduce_scatter | all_to_all"),
        _c("implementation", "str", "-", "nccl | custom (engine one-shot/two-shot kernels) | custom_eager"),
        _c("dtype", "dtype", "-", "element format"),
        _c("num_gpus", "int", "GPUs", "participants"),
        _c("message_bytes", "int", "bytes", "message size per GPU"),
    ), ("num_gpus", "message_bytes"), None),
    Family("moe_a2a", "MoE all-to-all token dispatch / combine across ep_size GPUs (DeepEP normal or "
           "low-latency kernels).", (
        _c("backend", "str", "-", "deepep_normal | deepep_ll"),
        _c("phase", "str", "-", "dispatch | combine"),
        _c("ep_size", "int", "GPUs", "expert-parallel group size"),
        _c("num_nodes", "int", "nodes", "nodes spanned by the EP group"),
        _c("num_tokens", "int", "tokens", "tokens per GPU"),
        _c("hidden_size", "int", "features", "model hidden size"),
        _c("topk", "int", "experts", "experts per token"),
        _c("num_experts", "int", "experts", "routed experts"),
    ), ("ep_size", "num_tokens", "hidden_size", "topk", "num_experts"), None),
]}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise InputError(f"unknown operator family '{name}'", fix=f"use one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def columns(name: str) -> list[str]:
    """All column names of a family's canonical table, in order."""
    fam = family(name)
    return [c.name for c in COMMON[:-1]] + [c.name for c in fam.columns] + ["latency_ms"]


def validate_table(df: pd.DataFrame, family_name: str, *, path: str = "<table>") -> pd.DataFrame:
    """Check a profile table against the canonical schema and return it with canonical dtypes.

    Raises :class:`InputError` naming the file and column for: missing columns, non-numeric
    or non-positive latencies, negative or non-integer shape values, unknown dtypes.
    """
    fam = family(family_name)
    missing = [c for c in columns(family_name) if c not in df.columns]
    if missing:
        raise InputError(f"missing column(s) {missing} for family '{family_name}'", path=path,
                         field=missing[0], fix="see profiles/README.md for the canonical schema")
    if len(df) == 0:
        raise InputError(f"table for family '{family_name}' has no rows", path=path)
    out = df[columns(family_name)].copy()
    for col in list(COMMON[:-1]) + list(fam.columns) + [COMMON[-1]]:
        series = out[col.name]
        if col.kind == "dtype":
            vals = series.astype(str)
            canon = {v: _dtype_or_none(v) for v in vals.unique()}  # normalise each spelling once, not per row
            bad = [v for v, c in canon.items() if c is None]
            if bad:
                row = int(np.flatnonzero(vals.isin(bad))[0])
                bad_value = vals.iloc[row]
                raise InputError(f"unknown dtype '{bad_value}'", path=path, row=row, field=col.name,
                                 fix=f"use one of {', '.join(sorted(DTYPE_BYTES))}")
            out[col.name] = vals.map(canon)
        elif col.kind == "str":
            if series.isna().any():
                row = int(np.flatnonzero(series.isna().to_numpy())[0])
                raise InputError("empty value", path=path, row=row, field=col.name)
            out[col.name] = series.astype(str)
        else:
            num = pd.to_numeric(series, errors="coerce")
            if num.isna().any():
                row = int(np.flatnonzero(num.isna().to_numpy())[0])
                raise InputError(f"non-numeric value {series.iloc[row]!r}", path=path, row=row, field=col.name)
            if col.name == "latency_ms":
                bad = ~(num > 0) | ~np.isfinite(num)
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0])
                    raise InputError(f"latency must be positive and finite, got {num.iloc[row]}",
                                     path=path, row=row, field=col.name)
                out[col.name] = num.astype("float64")
            else:
                if not np.isfinite(num).all():
                    row = int(np.flatnonzero(~np.isfinite(num.to_numpy())).min())
                    raise InputError(f"non-finite value {num.iloc[row]}", path=path, row=row, field=col.name)
                if (num < 0).any():
                    row = int(np.flatnonzero((num < 0).to_numpy())[0])
                    raise InputError(f"negative value {num.iloc[row]}", path=path, row=row, field=col.name)
                if col.kind == "int":
                    if (num != np.floor(num)).any():
                        row = int(np.flatnonzero((num != np.floor(num)).to_numpy())[0])
                        raise InputError(f"expected a whole number, got {num.iloc[row]}", path=path,
                                         row=row, field=col.name)
                    out[col.name] = num.astype("int64")
                else:
                    out[col.name] = num.astype("float64")
    _check_relations(out, family_name, path)
    return out.reset_index(drop=True)


_DISTRIBUTION = r"^(balanced|power_law_\d+(\.\d+)?)$"


def _check_relations(out: pd.DataFrame, family_name: str, path: str) -> None:
    """Cross-column rules: a prefill attends at least to its own tokens; routing names are known."""
    if "q_len" in out and "kv_len" in out:
        bad = (out["kv_len"] < out["q_len"]).to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputError(f"kv_len ({out['kv_len'].iloc[row]}) is smaller than q_len ({out['q_len'].iloc[row]}); "
                             "kv_len counts the cached prefix plus the new tokens", path=path, row=row, field="kv_len")
    if "distribution" in out:
        ok = out["distribution"].str.match(_DISTRIBUTION).to_numpy()
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            raise InputError(f"unknown routing distribution {out['distribution'].iloc[row]!r}", path=path, row=row,
                             field="distribution", fix="use 'balanced' or 'power_law_<alpha>', e.g. power_law_1.2")


def _dtype_or_none(v: str):
    try:
        return normalize_dtype(v)
    except ValueError:
        return None


def describe_markdown() -> str:
    """The schema as Markdown tables (used to write profiles/README.md)."""
    lines = []
    for fam in FAMILIES.values():
        lines.append(f"### `{fam.name}`\n\n{fam.doc}\n")
        lines.append("| column | type | unit | meaning |\n|---|---|---|---|")
        for col in list(COMMON[:-1]) + list(fam.columns) + [COMMON[-1]]:
            lines.append(f"| `{col.name}` | {col.kind} | {col.unit} | {col.doc} |")
        grp = f"one model per `{fam.group_column}`" if fam.group_column else "one model for the whole table"
        lines.append(f"\nShape columns (range-checked at prediction): {', '.join(fam.shape_columns)}; {grp}.\n")
    return "\n".join(lines)
