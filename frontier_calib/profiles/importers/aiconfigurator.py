"""Convert the public kernel tables of the ``aiconfigurator-core`` package into the canonical schema.

Source layout: ``<systems>/data/<gpu>/<op>/<framework>/<version>/<table>.parquet`` (Apache-2.0,
NVIDIA). For each (gpu, engine, source table) the newest version folder that holds the table is
used. For the dtype-carrying GEMM and MoE tables, a dtype the newest table lacks is filled in from the
newest *older* version folder that has it (e.g. TensorRT-LLM's ``moe/trtllm/1.3.0rc23`` holds bf16 and fp8
only; its fp8_block and w4a16_mxfp4 rows come from ``1.3.0rc20``): newest wins per dtype, never mixed
within one dtype, and ``ImportedTable.filled_dtypes`` records which folder each filled dtype came from.
Units in the source: latencies in milliseconds, except the all-to-all tables, which are in microseconds;
NCCL message sizes are element counts. Both are converted here (ms, bytes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from ...lazy import pandas as pd

from ...dtypes import DTYPE_BYTES, normalize_dtype
from ...engines import ENGINES as ENGINE_RECORDS
from ...errors import CoverageError, FrontierError, InputError
from ...model_spec import load_model
from ..schema import columns, validate_table

SOURCE_PACKAGE = "aiconfigurator-core"
#: engines whose tables the source ships (their records in frontier_calib/engines/ say ``public_tables``)
ENGINES = tuple(name for name, rec in ENGINE_RECORDS.items() if rec.public_tables)
LICENSE_NOTICE = (
    "Tables derived from aiconfigurator-core (https://github.com/ai-dynamo/aiconfigurator), "
    "Copyright (c) 2025-2026 NVIDIA CORPORATION & AFFILIATES, licensed under the Apache License 2.0. "
    "Converted to the frontier-calib canonical schema by frontier_calib/profiles/importers/aiconfigurator.py."
)


def find_systems_dir(source: str | Path | None = None) -> Path:
    """The ``systems`` folder: ``source`` if given, else the installed package's."""
    if source is not None:
        p = Path(source)
        if (p / "data").is_dir():
            return p
        if p.name == "data" and p.is_dir():
            return p.parent
        raise InputError("not an aiconfigurator systems folder (expected a 'data/' subfolder)", path=str(p))
    try:
        import aiconfigurator_core
    except ImportError:
        raise FrontierError(
            "aiconfigurator-core is not installed; install the optional extra with "
            "`pip install -e .[public-data]` or pass --source PATH/TO/systems") from None
    return Path(aiconfigurator_core.__file__).parent / "systems"


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version(SOURCE_PACKAGE)
    except Exception:
        return "unknown"


# ----------------------------------------------------------------------------- converters
# Each converter takes the raw source frame and returns canonical rows (without gpu/engine columns,
# which the caller fills in).

def _kernel(df):
    return df["kernel_source"].astype(str)


def _col(df, name, default):
    """A source column, or a constant for older tables that predate it (e.g. window_size)."""
    return df[name] if name in df else pd.Series(default, index=df.index)


def _gemm(df):
    return pd.DataFrame({"engine_version": df["version"].astype(str), "kernel": _kernel(df),
                         "dtype": df["gemm_dtype"], "m": df["m"], "n": df["n"], "k": df["k"],
                         "latency_ms": df["latency"]})


def _attn_prefill(df):
    return pd.DataFrame({
        "engine_version": df["version"].astype(str), "kernel": _kernel(df), "batch_size": df["batch_size"],
        "q_len": df["isl"], "kv_len": df["isl"] + _col(df, "step", 0), "num_heads": df["num_heads"],
        "num_kv_heads": df["num_key_value_heads"], "head_dim": df["head_dim"], "window": _col(df, "window_size", 0),
        "dtype": df["attn_dtype"], "kv_dtype": df["kv_cache_dtype"], "latency_ms": df["latency"]})


def _attn_decode(df):
    return pd.DataFrame({
        "engine_version": df["version"].astype(str), "kernel": _kernel(df), "batch_size": df["batch_size"],
        "kv_len": df["isl"] + _col(df, "step", 0), "num_heads": df["num_heads"],
        "num_kv_heads": df["num_key_value_heads"], "head_dim": df["head_dim"], "window": _col(df, "window_size", 0),
        "dtype": df["attn_dtype"], "kv_dtype": df["kv_cache_dtype"], "latency_ms": df["latency"]})


def _mla(scope: str, decode: bool):
    def conv(df):
        gemm = df["gemm_type"] if "gemm_type" in df else df["mla_dtype"]
        out = {"engine_version": df["version"].astype(str), "kernel": _kernel(df), "batch_size": df["batch_size"]}
        if decode:
            out["kv_len"] = df["isl"] + _col(df, "step", 0)
        else:
            out["q_len"] = df["isl"]
            out["kv_len"] = df["isl"] + _col(df, "step", 0)
        out.update({"num_heads": df["num_heads"], "scope": scope, "dtype": gemm,
                    "kv_dtype": df["kv_cache_dtype"], "latency_ms": df["latency"]})
        return pd.DataFrame(out)
    return conv


#: the two kernels one gated-DeltaNet layer runs per phase (their sum is the layer's linear-attention time);
#: vLLM's chunked prefill kernel is the FlashInfer one
_GDN_KERNELS = {"context": ("causal_conv1d_fn", "chunk_gated_delta_rule"),
                "generation": ("causal_conv1d_update", "fused_recurrent_gated_delta_rule_packed_decode")}


def _kernel_pair(kernels: dict, aliases: dict, phase: str):
    """A converter summing the two kernels ``kernels[phase]`` of each shape of a gated-delta-rule table (the
    convolution and the delta-rule kernel; shapes missing either are dropped). ``aliases`` renames another
    implementation of a kernel to the name it stands for. Models sharing a per-GPU head layout time the same kernel
    shape: their median is taken before the sum."""
    def conv(df):
        df = df[df["phase"] == phase].copy()
        df["kernel_source"] = df["kernel_source"].replace(aliases)
        df = df[df["kernel_source"].isin(kernels[phase])]
        keys = ["version", "batch_size", "seq_len", "num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim", "d_conv"]
        per_kernel = df.groupby(keys + ["kernel_source"], as_index=False)["latency"].median()
        g = per_kernel.groupby(keys, as_index=False).agg(latency=("latency", "sum"), kernels=("kernel_source", "size"))
        g = g[g["kernels"] == 2]
        out = {"engine_version": g["version"].astype(str), "kernel": "+".join(kernels[phase]),
               "batch_size": g["batch_size"]}
        if phase == "context":
            out["q_len"] = g["seq_len"]
        out.update({"num_k_heads": g["num_k_heads"], "num_v_heads": g["num_v_heads"], "head_k_dim": g["head_k_dim"],
                    "head_v_dim": g["head_v_dim"], "conv_kernel": g["d_conv"], "latency_ms": g["latency"]})
        return pd.DataFrame(out)
    return conv


def _gdn(phase: str):
    """Sum the convolution and the delta-rule kernel of each shape (:func:`_kernel_pair`)."""
    return _kernel_pair(_GDN_KERNELS, {"chunk_gated_delta_rule_flashinfer": "chunk_gated_delta_rule"}, phase)


#: the two kernels one Kimi Delta Attention layer runs per phase (their sum is the layer's KDA time): the q/k/v
#: convolution and the chunked KDA (SGLang: FLA's chunk_kda; vLLM: flashkda_fwd) in prefill, the convolution update
#: and the packed recurrent step in decode (both engines time this pair)
_KDA_KERNELS = {"context": ("causal_conv1d_fn_qkv3", "chunk_kda"),
                "generation": ("causal_conv1d_update", "fused_recurrent_kda_packed_decode")}


def _kda(phase: str):
    """Sum the convolution and the KDA kernel of each shape (:func:`_kernel_pair`); the source's heads are per
    attention-TP shard already (aiconfigurator's KDAKernel), as the schema wants."""
    return _kernel_pair(_KDA_KERNELS, {"flashkda_fwd": "chunk_kda"}, phase)


def _mamba2_conv(phase: str):
    """The Mamba2 convolution rows (TensorRT-LLM ``mamba2_perf``: ``causal_conv1d_fn`` in context,
    ``causal_conv1d_update`` in generation; the table holds no SSD-scan rows). Rows are per layer at the
    source's (unsharded) dimensions, i.e. per GPU at tp=1; models sharing a shape give their median."""
    def conv(df):
        df = df[df["phase"] == phase]
        keys = ["version", "kernel_source", "batch_size", "seq_len", "nheads", "head_dim", "d_state", "n_groups",
                "d_conv"]
        g = df.groupby(keys, as_index=False)["latency"].median()
        out = {"engine_version": g["version"].astype(str), "kernel": g["kernel_source"].astype(str),
               "batch_size": g["batch_size"]}
        if phase == "context":
            out["q_len"] = g["seq_len"]
        out.update({"num_heads": g["nheads"], "head_dim": g["head_dim"], "d_state": g["d_state"],
                    "n_groups": g["n_groups"], "conv_kernel": g["d_conv"], "latency_ms": g["latency"]})
        return pd.DataFrame(out)
    return conv


def _mla_bmm(df):
    """The absorbed MLA BMM rows; TensorRT-LLM's fp8 kernel is block-scaled (``trtllm_fp8_block_scaling_bmm_out``),
    SGLang's per-tensor (``sgl_kernel`` bmm_fp8)."""
    dtype = df["bmm_dtype"].astype(str).map(normalize_dtype)
    dtype = dtype.where(~df["kernel_source"].astype(str).str.contains("block_scaling"), "fp8_block")
    return pd.DataFrame({"engine_version": df["version"].astype(str), "kernel": _kernel(df),
                         "op": df["op_name"].astype(str).str.replace("mla_gen_", "", regex=False),
                         "num_tokens": df["num_tokens"], "num_heads": df["num_heads"], "dtype": dtype,
                         "latency_ms": df["latency"]})


def _model_config(model_id: str):
    """The ModelSpec of a model the source names, from the source package's ``model_configs`` (None without one)."""
    path = find_systems_dir().parent / "model_configs" / f"{str(model_id).replace('/', '--')}_config.json"
    return load_model(str(path)) if path.exists() else None


def _msa(decode: bool):
    """MSA module tables (MiniMax-M3). Rows are timed at tp_size 1 with the query heads of one tensor-parallel
    shard (64, 32, ... 1); the shard's KV heads follow the model's GQA ratio (at least one)."""
    def conv(df):
        specs = {m: _model_config(m) for m in df["model"].unique()}
        df = df[df["model"].map(lambda m: specs[m] is not None and specs[m].block_sparse is not None)]
        rows = []
        for m, part in df.groupby("model"):
            spec, ix = specs[m], specs[m].block_sparse
            kv_heads = np.maximum(1, part["num_heads"] * spec.num_kv_heads // spec.num_heads)
            out = {"engine_version": part["version"].astype(str), "kernel": "msa_module",
                   "batch_size": part["batch_size"]}
            if not decode:
                out["q_len"] = part["isl"]
            out.update({"kv_len": part["isl"] + part["step"], "num_heads": part["num_heads"], "num_kv_heads": kv_heads,
                        "head_dim": spec.head_dim, "hidden_size": spec.hidden_size, "index_n_heads": ix.index_n_heads,
                        "index_head_dim": ix.index_head_dim, "block_size": ix.block_size,
                        "index_topk": ix.topk_tokens, "dtype": part["gemm_type"], "kv_dtype": part["kv_cache_dtype"],
                        "latency_ms": part["latency"]})
            rows.append(pd.DataFrame(out))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return conv


def _mhc(df):
    """mHC module rows. TensorRT-LLM dispatches 'pre' to one of three kernels by token count (FMA, no-split,
    split-K: one per size), so the op, not the kernel, names the row's implementation."""
    op = df["op_name"].astype(str)
    return pd.DataFrame({"engine_version": df["version"].astype(str), "kernel": "mhc_" + op, "op": op,
                         "num_tokens": df["num_tokens"], "hidden_size": df["hidden_size"], "hc_mult": df["hc_mult"],
                         "sinkhorn_iters": df["sinkhorn_iters"], "latency_ms": df["latency"]})


def _dsa_dims(model_id: str) -> dict | None:
    """The DSA shape columns of a model the source names, from the source package's ``model_configs`` (None when
    it has no config for it or the config has no sparse indexer)."""
    path = find_systems_dir().parent / "model_configs" / f"{str(model_id).replace('/', '--')}_config.json"
    if not path.exists():
        return None
    m = load_model(str(path))
    if m.sparse_indexer is None:
        return None
    a, ix = m.mla, m.sparse_indexer
    return {"hidden_size": m.hidden_size, "q_lora_rank": a.q_lora_rank or 0, "kv_lora_rank": a.kv_lora_rank,
            "qk_nope_head_dim": a.qk_nope_head_dim, "qk_rope_head_dim": a.qk_rope_head_dim,
            "v_head_dim": a.v_head_dim, "index_n_heads": ix.index_n_heads, "index_head_dim": ix.index_head_dim,
            "index_topk": ix.index_topk}


def _dsa(decode: bool):
    """DSA module tables. The 'skip_indexer' kernels time layers that reuse another layer's top-k (GLM-5.2's
    shared indexer), not the indexer path every DeepSeek-V3.2 / GLM-5 layer runs: dropped. The dense short-context
    and sparse long-context paths of one kv format are one module (one kernel label), so fitting keeps both."""
    def conv(df):
        df = df[~df["kernel_source"].astype(str).str.contains("skip_indexer")]
        dims = {m: _dsa_dims(m) for m in df["model"].unique()}
        df = df[df["model"].map(lambda m: dims[m] is not None)]
        d = pd.DataFrame([dims[m] for m in df["model"]], index=df.index)
        out = {"engine_version": df["version"].astype(str), "kernel": "dsa_module", "batch_size": df["batch_size"]}
        if not decode:
            out["q_len"] = df["isl"]
        out["kv_len"] = df["isl"] + df["step"]
        out["num_heads"] = df["num_heads"]
        out.update({c: d[c] for c in d.columns})
        out.update({"dtype": df["gemm_type"], "kv_dtype": df["kv_cache_dtype"], "latency_ms": df["latency"]})
        return pd.DataFrame(out)
    return conv


def _moe(df):
    return pd.DataFrame({
        "engine_version": df["version"].astype(str), "kernel": _kernel(df), "dtype": df["moe_dtype"],
        "num_tokens": df["num_tokens"], "hidden_size": df["hidden_size"], "inter_size": df["inter_size"],
        "topk": df["topk"], "num_experts": df["num_experts"], "moe_tp": df["moe_tp_size"],
        "moe_ep": df["moe_ep_size"], "distribution": df["distribution"], "latency_ms": df["latency"]})


def _moe_deepep(phase: str):
    """SGLang's WideEP tables (``wideep_generation_moe_perf``: DeepEPMoE with the low-latency masked layout;
    ``wideep_context_moe_perf``: the normal contiguous layout); ``num_tokens`` counts the tokens of all EP ranks
    (the tables run 1..128 tokens per rank for decode). Their 'uniform' routing is this schema's 'balanced'."""
    def conv(df):
        out = _moe(df)
        out.insert(out.columns.get_loc("dtype") + 1, "phase", phase)
        out["distribution"] = out["distribution"].replace({"uniform": "balanced"})
        return out
    return conv


def _nccl(df):
    dt = df["nccl_dtype"].map(normalize_dtype)
    op = df["op_name"].replace({"alltoall": "all_to_all"})
    return pd.DataFrame({
        "engine_version": df["version"].astype(str), "kernel": _kernel(df), "op": op,
        "implementation": "nccl", "dtype": dt, "num_gpus": df["num_gpus"],
        "message_bytes": (df["message_size"] * dt.map(DTYPE_BYTES)).round().astype("int64"),
        "latency_ms": df["latency"]})


def _custom_allreduce(df):
    dt = df["allreduce_dtype"].map(normalize_dtype)
    tag = df["backend"] if "backend" in df else df.get("implementation", pd.Series("graph", index=df.index))
    impl = np.where(tag.astype(str).str.contains("eager"), "custom_eager", "custom")
    return pd.DataFrame({
        "engine_version": df["version"].astype(str), "kernel": _kernel(df), "op": "all_reduce",
        "implementation": impl, "dtype": dt, "num_gpus": df["num_gpus"],
        "message_bytes": (df["message_size"] * dt.map(DTYPE_BYTES)).round().astype("int64"),
        "latency_ms": df["latency"]})


_A2A_BACKENDS = {"deepep_ht": "deepep_normal", "trtllm_deepep_ht": "deepep_normal",
                 "deepep_ll": "deepep_ll", "trtllm_deepep_ll": "deepep_ll"}


def _moe_a2a(df):
    df = df[df["comm_backend"].isin(list(_A2A_BACKENDS))]
    out = pd.DataFrame({
        "engine_version": df["version"].astype(str), "kernel": _kernel(df),
        "backend": df["comm_backend"].map(_A2A_BACKENDS), "phase": df["phase"], "ep_size": df["ep_size"],
        "num_nodes": df["node_num"], "num_tokens": df["num_tokens"], "hidden_size": df["hidden_size"],
        "topk": df["topk"], "num_experts": df["num_experts"],
        "latency_ms": df["latency"] / 1000.0})  # source is microseconds
    return _best_over_tuning(out)


def _sglang_deepep(backend: str):
    def conv(df):
        rows = []
        for phase in ("dispatch", "combine"):
            if backend == "deepep_ll":
                lat = df[f"{phase}_avg_t_us"]
            else:
                lat = df[f"{phase}_transmit_us"] + df[f"{phase}_notify_us"]
            rows.append(pd.DataFrame({
                "engine_version": df["version"].astype(str), "kernel": _kernel(df), "backend": backend,
                "phase": phase, "ep_size": 8 * df["node_num"], "num_nodes": df["node_num"],
                "num_tokens": df["num_token"], "hidden_size": df["hidden_size"], "topk": df["num_topk"],
                "num_experts": df["num_experts"], "latency_ms": lat / 1000.0}))  # source is microseconds
        return _best_over_tuning(pd.concat(rows, ignore_index=True))
    return conv


def _best_over_tuning(df):
    """Several SM-count settings were timed per shape; an engine runs the tuned (fastest) one."""
    keys = [c for c in df.columns if c != "latency_ms"]
    return df.groupby(keys, as_index=False, sort=False)["latency_ms"].min()


@dataclass(frozen=True)
class SourceTable:
    op_dir: str            #: folder under data/<gpu>/ (gemm, attention, ...)
    file: str              #: parquet file name
    family: str            #: canonical family
    convert: Callable
    frameworks: tuple = ENGINES  #: framework folders to read ('nccl' for NCCL)


SOURCES = [
    SourceTable("gemm", "gemm_perf.parquet", "gemm", _gemm),
    SourceTable("attention", "context_attention_perf.parquet", "attention_prefill", _attn_prefill),
    SourceTable("attention", "generation_attention_perf.parquet", "attention_decode", _attn_decode),
    SourceTable("mla", "mla_context_module_perf.parquet", "mla_prefill", _mla("module", False)),
    SourceTable("mla", "mla_generation_module_perf.parquet", "mla_decode", _mla("module", True)),
    SourceTable("mla", "context_mla_perf.parquet", "mla_prefill", _mla("kernel", False)),
    SourceTable("mla", "generation_mla_perf.parquet", "mla_decode", _mla("kernel", True)),
    SourceTable("moe", "moe_perf.parquet", "moe", _moe),
    SourceTable("moe", "wideep_generation_moe_perf.parquet", "moe_deepep", _moe_deepep("decode"), ("sglang",)),
    SourceTable("moe", "wideep_context_moe_perf.parquet", "moe_deepep", _moe_deepep("prefill"), ("sglang",)),
    SourceTable("linear_attention", "gdn_perf.parquet", "gdn_prefill", _gdn("context")),
    SourceTable("sparse_attention", "dsa_context_module_perf.parquet", "dsa_prefill", _dsa(False)),
    SourceTable("sparse_attention", "dsa_generation_module_perf.parquet", "dsa_decode", _dsa(True)),
    SourceTable("linear_attention", "gdn_perf.parquet", "gdn_decode", _gdn("generation")),
    SourceTable("linear_attention", "mamba2_perf.parquet", "mamba2_conv_prefill", _mamba2_conv("context")),
    SourceTable("linear_attention", "mamba2_perf.parquet", "mamba2_conv_decode", _mamba2_conv("generation")),
    SourceTable("kda", "kda_perf.parquet", "kda_prefill", _kda("context")),
    SourceTable("kda", "kda_perf.parquet", "kda_decode", _kda("generation")),
    SourceTable("mla_bmm", "mla_bmm_perf.parquet", "mla_bmm", _mla_bmm),
    SourceTable("mhc", "mhc_module_perf.parquet", "mhc", _mhc),
    SourceTable("msa", "msa_context_module_perf.parquet", "msa_prefill", _msa(False)),
    SourceTable("msa", "msa_generation_module_perf.parquet", "msa_decode", _msa(True)),
    SourceTable("comm", "custom_allreduce_perf.parquet", "collective", _custom_allreduce),
    SourceTable("comm", "nccl_perf.parquet", "collective", _nccl, ("nccl",)),
    SourceTable("comm", "moe_a2a_perf.parquet", "moe_a2a", _moe_a2a),
    SourceTable("comm", "wideep_deepep_normal_perf.parquet", "moe_a2a", _sglang_deepep("deepep_normal")),
    SourceTable("comm", "wideep_deepep_ll_perf.parquet", "moe_a2a", _sglang_deepep("deepep_ll")),
]


def _version_key(v: str):
    """Sort key for version folder names: 1.3.0rc20 < 1.3.0 < 1.3.0.post1 < 1.3.1.

    Numbers rank above every word; pre-release words (rc, dev, a, b) rank below the end of the
    version, which ranks below 'post', so a pre-release sorts below the release it precedes and a
    post-release above it (a plain list of numbers would put 1.3.0 below its prefix-extended 1.3.0rc20).
    """
    parts = re.findall(r"\d+|[a-z]+", v.lower())
    key = [(3, int(p), "") if p.isdigit() else ((2, 0, p) if p == "post" else (0, 0, p)) for p in parts]
    return key + [(1, 0, "")]


def versions_with(folder: Path, file: str) -> list[Path]:
    """Every version subfolder's ``file`` under ``folder``, newest first."""
    if not folder.is_dir():
        return []
    versions = [d for d in folder.iterdir() if d.is_dir() and (d / file).exists()]
    return [d / file for d in sorted(versions, key=lambda d: _version_key(d.name), reverse=True)]


def newest_with(folder: Path, file: str) -> Path | None:
    """Newest version subfolder of ``folder`` containing ``file``."""
    found = versions_with(folder, file)
    return found[0] if found else None


#: families whose rows carry a quantization ``dtype`` that older version folders may cover when the
#: newest does not (filled in per dtype, newest first)
DTYPE_FILL_FAMILIES = ("gemm", "moe")


@dataclass
class ImportedTable:
    gpu: str
    engine: str            #: vllm / sglang / trtllm, or 'any' for NCCL
    family: str
    frame: pd.DataFrame
    sources: list          #: source files (relative to systems dir) that fed this table
    filled_dtypes: dict = None  #: dtype -> older source file it was filled in from (see DTYPE_FILL_FAMILIES)


def import_gpu(gpu: str, *, engines=ENGINES, families=None, source=None, dtypes=None) -> list[ImportedTable]:
    """Convert every supported source table for one GPU into canonical tables.

    ``dtypes``: keep only these canonical dtypes in dtype-carrying families (None = all).
    """
    systems = find_systems_dir(source)
    gpu_dir = systems / "data" / gpu
    if not gpu_dir.is_dir():
        known = sorted(p.name for p in (systems / "data").iterdir() if p.is_dir())
        raise CoverageError(f"the source has no data for gpu '{gpu}' (has: {', '.join(known)})")
    collected: dict[tuple, ImportedTable] = {}
    for src in SOURCES:
        if families and src.family not in families:
            continue
        for fw in src.frameworks:
            if fw != "nccl" and fw not in engines:
                continue
            paths = versions_with(gpu_dir / src.op_dir / fw, src.file)
            if not paths:
                continue
            engine = "any" if fw == "nccl" else fw
            fill = src.family in DTYPE_FILL_FAMILIES
            have: set = set()      # dtypes already taken from a newer version folder
            for i, path in enumerate(paths if fill else paths[:1]):
                conv = _convert(src, path, gpu, engine, dtypes)
                if conv is None:
                    continue
                rel = str(path.relative_to(systems))
                filled = None
                if fill:
                    new = set(conv["dtype"]) - have
                    if not new:
                        continue
                    conv = conv[conv["dtype"].isin(new)]
                    if i > 0:
                        filled = {d: rel for d in sorted(new)}
                    have |= new
                key = (gpu, engine, src.family)
                if key in collected:
                    collected[key].frame = pd.concat([collected[key].frame, conv], ignore_index=True)
                    collected[key].sources.append(rel)
                else:
                    collected[key] = ImportedTable(gpu, engine, src.family, conv, [rel])
                if filled:
                    collected[key].filled_dtypes = {**(collected[key].filled_dtypes or {}), **filled}
    for t in collected.values():
        t.frame = t.frame[columns(t.family)].reset_index(drop=True)
    return list(collected.values())


def _convert(src: SourceTable, path: Path, gpu: str, engine: str, dtypes) -> pd.DataFrame | None:
    """One source file as canonical rows (gpu/engine filled in, dtype filter applied); None when empty."""
    raw = pd.read_parquet(path)
    try:
        conv = src.convert(raw)
    except KeyError as exc:
        raise InputError(f"source table lacks column {exc}", path=str(path)) from None
    except FrontierError as exc:  # e.g. an unknown dtype met while converting units
        raise InputError(str(exc), path=str(path)) from None
    if conv.empty:
        return None
    conv.insert(0, "engine", engine)
    conv.insert(0, "gpu", gpu)
    conv = validate_table(conv, src.family, path=str(path))
    if dtypes is not None and "dtype" in conv and src.family in ("gemm", "moe", "moe_deepep"):
        conv = conv[conv["dtype"].isin(dtypes)]
    return None if conv.empty else conv
