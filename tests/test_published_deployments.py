"""The deployments validated against published results (docs/validation.md, "Published disaggregated results"),
the H800's stand-in kernel tables, and the DeepEP expert tables (moe_deepep) they rely on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from frontier_calib.cost.iteration import IterationCostModel
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.deployment import load_deployment
from frontier_calib.model_spec import load_model
from frontier_calib.profiles import store

REPO = Path(__file__).resolve().parents[1]
DEEPSEEK_H800 = REPO / "deployments" / "deepseek-v3-h800-sglang-pd-ep32-ep144.yaml"


# ------------------------------------------------------------------------------------------ the deployment

def test_deepseek_h800_pd_deployment_matches_the_published_layout():
    dep = load_deployment(DEEPSEEK_H800)
    pre, dec = dep.prefill.worker, dep.decode.worker
    assert pre.gpu == dec.gpu == "h800_sxm" and pre.engine == "sglang"
    # prefill unit: 4 nodes, EP32 / DP32, 9 expert slots per GPU; decode unit: 18 nodes, EP144 / DP144, 2 per GPU
    assert (pre.gpus, pre.ep, pre.attention_dp, pre.tp, pre.tbo) == (32, 32, 32, 1, True)
    assert (dec.gpus, dec.ep, dec.attention_dp, dec.tp, dec.tbo) == (144, 144, 144, 1, True)
    assert pre.model.num_experts == 288 and pre.model.num_experts // pre.ep == 9
    assert dec.model.num_experts // dec.ep == 2 and dec.model.topk == 8
    assert (pre.dtype, pre.moe_dtype, pre.kv_dtype) == ("fp8_block", "fp8_block", "bf16")
    # everything else of the model is DeepSeek-V3's
    ref = load_model("DeepSeek-V3")
    for f in ("hidden_size", "num_layers", "num_heads", "moe_intermediate_size", "first_dense_layers", "mla"):
        assert getattr(pre.model, f) == getattr(ref, f)
    # KV moves over the 400 Gb/s InfiniBand NIC of each GPU
    assert dep.describe().count("rdma 50 GB/s per GPU") == 1


# ------------------------------------------------------------------------------------------ H800 tables

def test_h800_reads_the_h100_tables_unless_it_has_its_own(tmp_path):
    assert store.TABLE_STAND_INS["h800_sxm"] == "h100_sxm"
    assert store.table_gpu("h800_sxm") == "h100_sxm"
    assert store.find_table("h800_sxm", "sglang", "gemm") == store.find_table("h100_sxm", "sglang", "gemm")
    assert store.table_gpu("h100_sxm") == "h100_sxm"
    own = tmp_path / "h800_sxm" / "sglang"
    own.mkdir(parents=True)
    src = store.find_table("h100_sxm", "sglang", "moe_a2a")
    (own / "moe_a2a.parquet").write_bytes(src.read_bytes())
    assert store.table_gpu("h800_sxm", tmp_path) == "h800_sxm"
    assert store.find_table("h800_sxm", "sglang", "moe_a2a", tmp_path) == own / "moe_a2a.parquet"


# ------------------------------------------------------------------------------------------ DeepEP expert tables

def test_wideep_tables_convert_to_moe_deepep_rows():
    from frontier_calib.profiles.importers.aiconfigurator import SOURCES

    src = {s.file: s for s in SOURCES if s.family == "moe_deepep"}
    assert set(src) == {"wideep_generation_moe_perf.parquet", "wideep_context_moe_perf.parquet"}
    raw = pd.DataFrame({"version": ["0.5.10"] * 2, "kernel_source": ["deepepmoe"] * 2, "moe_dtype": ["fp8_block"] * 2,
                        "num_tokens": [128, 256], "hidden_size": [7168] * 2, "inter_size": [2048] * 2,
                        "topk": [8] * 2, "num_experts": [256] * 2, "moe_tp_size": [1] * 2, "moe_ep_size": [8] * 2,
                        "distribution": ["uniform", "power_law_1.01"], "latency": [0.5, 0.6]})
    out = src["wideep_generation_moe_perf.parquet"].convert(raw)
    assert list(out["phase"]) == ["decode", "decode"]
    assert list(out["distribution"]) == ["balanced", "power_law_1.01"]
    assert list(src["wideep_context_moe_perf.parquet"].convert(raw)["phase"]) == ["prefill", "prefill"]
    # the bundled H100 / H200 SGLang tables hold both layouts, in the canonical schema
    for gpu in ("h100_sxm", "h200_sxm"):
        df = store.load_family("moe_deepep", gpu, "sglang")
        assert set(df["phase"]) == {"decode", "prefill"} and "uniform" not in set(df["distribution"])


@pytest.fixture(scope="module")
def deepep_models(frontier_cache):
    from frontier_calib.opmodel.registry import cached_model_set

    return cached_model_set("h100_sxm", "sglang", families=["moe_deepep"])


def _moe_part(worker, models) -> IterationCostModel:
    cm = IterationCostModel.__new__(IterationCostModel)
    cm.worker, cm.models = worker, models
    return cm


def _deepseek(**kw) -> WorkerSpec:
    return WorkerSpec(model=load_model("DeepSeek-V3"), gpu="h100_sxm", engine="sglang", dtype="fp8_block",
                      moe_dtype="fp8_block", routing="balanced", **kw)


@pytest.mark.parametrize("ep", [32, 128])
def test_deepep_workers_price_experts_with_the_wideep_tables(deepep_models, ep):
    """DeepSeek-V3 with attention DP + EP: the routed experts cost what SGLang's DeepEPMoE tables measured
    (decode: low-latency layout up to 128 tokens per rank; prefill: the normal layout), not the fused-MoE
    table's (which, at EP 128 and 12k tokens, is ~15x slower)."""
    cm = _moe_part(_deepseek(tp=1, attention_dp=ep, ep=ep, moe_tp=1), deepep_models)
    assert cm._deepep_moe()
    df = store.load_family("moe_deepep", "h100_sxm", "sglang")
    df = df[(df.moe_ep == ep) & (df.distribution == "balanced")]
    for phase, per_rank in (("decode", [2, 16, 64, 128]), ("prefill", [256, 1024, 4096])):
        rows = df[(df.phase == phase) & df.num_tokens.isin([n * ep for n in per_rank])].sort_values("num_tokens")
        assert len(rows) >= 2
        n = (rows["num_tokens"] // ep).to_numpy()
        np.testing.assert_allclose(cm._moe_compute_ms(n), rows["latency_ms"].to_numpy(), rtol=0.25)


def test_deepep_tables_only_where_deepep_runs_and_covers_the_shape(deepep_models):
    assert not _moe_part(_deepseek(tp=8, attention_dp=1, ep=8, moe_tp=1), deepep_models)._deepep_moe()
    assert not _moe_part(_deepseek(tp=8, attention_dp=1, ep=1, moe_tp=8), deepep_models)._deepep_moe()
    # another expert shape (Qwen3-235B: hidden 4096, 128 experts, top-8) keeps the fused-MoE tables
    qwen = WorkerSpec(model=load_model("Qwen3-235B-A22B-FP8"), gpu="h100_sxm", engine="sglang",
                      dtype="fp8_block", moe_dtype="fp8_block", tp=1, attention_dp=8, ep=8, moe_tp=1)
    assert not _moe_part(qwen, deepep_models)._deepep_moe()
    # a format the tables lack (bf16 experts) too
    bf16 = dataclasses.replace(_deepseek(tp=1, attention_dp=8, ep=8, moe_tp=1), moe_dtype="bf16")
    assert not _moe_part(bf16, deepep_models)._deepep_moe()
