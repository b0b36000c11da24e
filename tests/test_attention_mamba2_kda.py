"""The Mamba2 and KDA attention kinds: hybrid Mamba models (Nemotron-H block pattern), recurrent state instead of a
growing KV cache, the importer's kernel pairing, the fitted tables and a replay of Nemotron-3-Nano."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from frontier_calib import attention
from frontier_calib.attention import AttentionKind, kv_bytes_per_token, register, state_bytes_per_sequence
from frontier_calib.attention.mamba2 import KERNEL_FLOOR_MS, ssd_scan_ms
from frontier_calib.cost.cache import needed_families
from frontier_calib.cost.memory import plan_memory
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.errors import FrontierError, InputError
from frontier_calib.model_spec import load_model, spec_from_config
from stub_models import StubModels, stub_cost

NANO = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"


_cost = stub_cost


def _nano_cfg():
    import json
    from frontier_calib.model_spec import resolve_preset

    return json.loads(resolve_preset(NANO).read_text())


# ----------------------------------------------------------------------------------------------- Mamba2

def test_nemotron_nano_block_pattern():
    m = load_model(NANO)
    # "MEMEM*EMEMEM*E...": 23 Mamba2 mixers, 6 attention layers, 23 MoE blocks, one mixer or one MoE per block
    assert m.attention_layer_kinds() == (("gqa", 6), ("mamba2", 23))
    assert m.layer_groups() == [(None, "mamba2", 23), (None, "gqa", 6), (True, None, 23)]
    assert (m.num_moe_layers, m.num_dense_layers, m.num_layers) == (23, 0, 52)
    assert (m.num_experts, m.topk, m.num_shared_experts, m.mlp_gated) == (128, 6, 2, False)   # 3712 = 2 x 1856
    assert m.full_attention_kind == "gqa"
    assert round(m.param_count() / 1e9, 1) == 31.6 and round(m.active_param_count() / 1e9, 1) == 3.6  # 31.6B-A3.6B
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="trtllm")
    assert needed_families(w)[:5] == ["gemm", "attention_prefill", "attention_decode", "mamba2_conv_prefill",
                                      "mamba2_conv_decode"]


def test_nemotron_super_latent_moe():
    """Nemotron-3-Super's routed experts run on a 1024-wide latent (moe_latent_size): the expert GEMMs and the MoE
    table queries use it, a down- and up-projection around them are token ops, shared experts stay at full width."""
    m = load_model("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8")
    assert m.attention_layer_kinds() == (("gqa", 8), ("mamba2", 40)) and m.num_moe_layers == 40
    assert (m.moe_hidden_size, m.expert_hidden_size, m.num_shared_experts) == (1024, 1024, 2)
    assert round(m.param_count() / 1e9) == 119 and round(m.active_param_count() / 1e9) == 11   # 120B-A12B
    assert [(g.n, g.k) for g in m.expert_gemms()] == [(2688, 1024), (1024, 2688)]            # relu^2: no gate
    names = {g.name: (g.n, g.k) for g in m.ffn_gemms(moe_layer=True)}
    assert names["moe_latent_down"] == (1024, 4096) and names["moe_latent_up"] == (4096, 1024)
    assert names["shared_expert_gate_up"] == (5376, 4096)
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="trtllm", tp=2)
    models = StubModels()
    _cost(w, models)
    moe = [df for fam, df in models.calls if fam == "moe"]
    assert moe and all((df["hidden_size"] == 1024).all() for df in moe)


def test_nemotron_h_dense_blocks():
    m = load_model("Nemotron-H-56B-Base-8K")
    assert m.attention_layer_kinds() == (("gqa", 10), ("mamba2", 54))
    assert (m.num_moe_layers, m.num_dense_layers, m.is_moe) == (0, 54, False)
    assert round(m.param_count() / 1e9) == 56


def test_bad_block_patterns_are_one_line_errors():
    cfg = _nano_cfg()
    with pytest.raises(InputError, match="hybrid_override_pattern"):
        spec_from_config({**cfg, "hybrid_override_pattern": cfg["hybrid_override_pattern"][:-1]}, name="short")
    with pytest.raises(InputError, match="hybrid_override_pattern"):
        spec_from_config({**cfg, "hybrid_override_pattern": "X" + cfg["hybrid_override_pattern"][1:]}, name="bad")
    with pytest.raises(FrontierError, match="Mamba2"):
        load_model(NANO).check_parallel(tp=16)      # 32 attention heads split, but not 8 B/C groups


def test_mamba2_keeps_state_not_kv():
    m = load_model(NANO)
    # KV only in the 6 attention layers: 2 KV heads x 128 x K and V x bf16
    assert kv_bytes_per_token(m, "bf16") == 6 * 2 * 2 * 128 * 2
    # per sequence: 23 layers x (64 heads x 64 x 128 fp32 SSM state + 3 conv inputs x (4096 + 2 x 8 x 128) bf16)
    assert state_bytes_per_sequence(m) == 23 * (64 * 64 * 128 * 4 + 3 * 6144 * 2)
    assert state_bytes_per_sequence(m, tp=2) == 23 * (32 * 64 * 128 * 4 + 3 * 3072 * 2)
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="vllm")   # vLLM: the state comes off the KV budget whole
    none, many = plan_memory(w), plan_memory(w, max_seqs=256)
    assert none.kv_tokens - many.kv_tokens == pytest.approx(256 * state_bytes_per_sequence(m) / 6144, abs=2)


def test_mamba2_cost_is_the_conv_tables_plus_the_scan_and_ignores_the_context():
    m = load_model(NANO)
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="trtllm", tp=2)

    def fn(fam, df):
        if fam.startswith("mamba2"):
            return np.full(len(df), 0.004)
        return 0.01 + 1e-5 * df["kv_len"].to_numpy() if "kv_len" in df else np.full(len(df), 0.01)

    models = StubModels(fn)
    cm = _cost(w, models)
    conv = [df for fam, df in models.calls if fam.startswith("mamba2")]
    assert conv and all((df["num_heads"] == 32).all() and (df["n_groups"] == 4).all() for df in conv)   # tp 2
    ctx = attention.QueryContext(w, 0, models)
    scan = ssd_scan_ms(ctx, "decode", np.array([4]), np.array([0]))[0]
    # the scan of 4 sequences at least reads and writes their 32 x 64 x 128 fp32 states once (H200 HBM)
    assert scan >= 4 * 2 * 32 * 64 * 128 * 4 / 4.8e12 * 1e3
    short, long = cm.decode_attention_ms(4, [4 * 1000.0])[0], cm.decode_attention_ms(4, [4 * 33000.0])[0]
    assert short == pytest.approx(23 * (0.004 + scan) + 6 * (0.01 + 1e-5 * 1000), rel=0.02)
    assert long - short == pytest.approx(6 * 1e-5 * 32000, rel=0.02)       # only the attention layers grow
    # without GDN tables the prefill scan is its roofline: past the launch floor, linear in the chunk's tokens
    bare = attention.QueryContext(w, 0, None)
    pre = ssd_scan_ms(bare, "prefill", np.array([4096, 8192]), np.array([4096, 8192])) - 5 * KERNEL_FLOOR_MS
    assert pre[1] == pytest.approx(2 * pre[0], rel=0.01)
    # the Mamba2 projections are token ops: in_proj (2 x 4096 + 2 x 8 x 128 + 64) / 2 wide
    assert any(fam == "gemm" and (df["n"] == (2 * 4096 + 2 * 8 * 128 + 64) // 2).all() for fam, df in models.calls)


def test_mamba2_prefill_scan_takes_the_measured_gdn_efficiency():
    """The SSD prefill scan's roofline is scaled by measured / roofline of the engine's GDN prefill (the same
    state per GPU: 32 GDN heads of 128 x 128 for Nano's 64 heads of 64 x 128 at tp 1), never below the roofline."""
    from frontier_calib.hardware import get_gpu
    from frontier_calib.opmodel.features import featurize

    w = WorkerSpec(model=load_model(NANO), gpu="h200_sxm", engine="trtllm")
    q = np.array([512, 8192])
    seen = []

    def slow_gdn(fam, df):                     # a GDN kernel 10x its roofline
        seen.append(df)
        return 10 * np.asarray(featurize("gdn_prefill", df, get_gpu("h200_sxm"))[1])

    floor = 5 * KERNEL_FLOOR_MS
    bare = ssd_scan_ms(attention.QueryContext(w, 0, None), "prefill", q, q) - floor
    slow = ssd_scan_ms(attention.QueryContext(w, 0, StubModels(slow_gdn)), "prefill", q, q) - floor
    assert slow == pytest.approx(10 * bare, rel=1e-6)
    assert (seen[0]["num_v_heads"] == 32).all() and (seen[0]["head_k_dim"] == 128).all()
    fast = ssd_scan_ms(attention.QueryContext(w, 0, StubModels(lambda f, df: np.full(len(df), 1e-9))), "prefill",
                       q, q) - floor
    assert fast == pytest.approx(bare, rel=1e-6)       # a faster-than-roofline reading never lowers the bound


def test_removing_the_mamba2_cost_changes_the_step_time():
    """Without the kind's cost (a kind of the same name whose queries time nothing and no scan) a decode step is
    cheaper by exactly the 23 Mamba2 layers: the cost model really sums the kind."""
    m = load_model(NANO)
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="trtllm")
    full = _cost(w, StubModels()).decode_attention_ms(8, [8 * 2000.0])[0]
    real = attention.get_kind("mamba2")
    register(AttentionKind(name="mamba2", doc="free", families=real.families, prefill_query=real.prefill_query,
                           decode_query=real.decode_query, kv_bytes_per_token=real.kv_bytes_per_token,
                           state_bytes_per_sequence=real.state_bytes_per_sequence), replace=True)
    try:
        free = _cost(w, StubModels(lambda fam, df: np.full(len(df), 0.0 if fam.startswith("mamba2") else 0.01))
                     ).decode_attention_ms(8, [8 * 2000.0])[0]
    finally:
        register(real, replace=True)
    scan = ssd_scan_ms(attention.QueryContext(w, 0, None), "decode", np.array([8]), np.array([0]))[0]
    assert full - free == pytest.approx(23 * (0.01 + scan), rel=0.02)


def test_mamba2_importer_keeps_the_conv_kernels_per_phase_and_dedupes_models():
    from frontier_calib.profiles.importers.aiconfigurator import SOURCES

    convert = {src.family: src.convert for src in SOURCES if src.family.startswith("mamba2")}
    base = {"version": "1", "batch_size": 1, "seq_len": 64, "num_tokens": 64, "d_model": 2688, "d_state": 128,
            "d_conv": 4, "nheads": 64, "head_dim": 64, "n_groups": 8, "chunk_size": 128}
    rows = [{**base, "phase": "context", "kernel_source": "causal_conv1d_fn", "model_name": "a", "latency": 0.01},
            {**base, "phase": "context", "kernel_source": "causal_conv1d_fn", "model_name": "b", "latency": 0.03},
            {**base, "phase": "generation", "kernel_source": "causal_conv1d_update", "seq_len": 1, "model_name": "a",
             "latency": 0.004}]
    pre = convert["mamba2_conv_prefill"](pd.DataFrame(rows))
    assert len(pre) == 1 and pre["latency_ms"].iloc[0] == pytest.approx(0.02) and pre["q_len"].iloc[0] == 64
    dec = convert["mamba2_conv_decode"](pd.DataFrame(rows))
    assert len(dec) == 1 and dec["kernel"].iloc[0] == "causal_conv1d_update" and "q_len" not in dec


def _fit(gpu, engine, family):
    from frontier_calib.opmodel.dataset import training_rows
    from frontier_calib.opmodel.evaluate import evaluate_group
    from frontier_calib.opmodel.registry import load_profiles

    table = load_profiles(gpu, engine, families=[family])[family]
    rows, _ = training_rows(table, family)
    results, _ = evaluate_group(rows, family, gpu, extrapolation=False)
    return {r["model"]: r["median_ape"] for r in results}


@pytest.mark.parametrize("gpu,engine,family", [("h200_sxm", "trtllm", "mamba2_conv_prefill"),
                                               ("h200_sxm", "trtllm", "mamba2_conv_decode"),
                                               ("h200_sxm", "sglang", "kda_prefill"),
                                               ("h200_sxm", "sglang", "kda_decode"),
                                               ("h200_sxm", "vllm", "kda_prefill"),
                                               ("h200_sxm", "vllm", "kda_decode")])
def test_new_families_fit_the_public_tables(gpu, engine, family):
    err = _fit(gpu, engine, family)
    assert err["xgboost"] <= 0.05 and err["xgboost"] < err["random_forest"], err


def test_nemotron_nano_replays_colocated(tmp_path, frontier_cache):
    from pathlib import Path

    from frontier_calib.replay import run_replay

    root = Path(__file__).resolve().parents[1]
    _, summary = run_replay(root / "deployments" / "nemotron-3-nano-30b-a3b-h200-trtllm.yaml",
                         root / "traces" / "poisson_lognormal_1k.csv", out=tmp_path / "out", limit=40,
                         progress=False)
    assert summary["completed"] == 40 and summary["mean_tpot_ms"] > 0 and summary["mean_ttft_ms"] > 0


# ----------------------------------------------------------------------------------------------- KDA

KDA_CFG = {"architectures": ["KimiLinearForCausalLM"], "hidden_size": 2304, "num_hidden_layers": 8,
           "vocab_size": 1000, "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 9216,
           "q_lora_rank": None, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
           "v_head_dim": 128, "num_experts": 64, "num_experts_per_token": 8, "moe_intermediate_size": 1024,
           "num_shared_experts": 1, "first_k_dense_replace": 1,
           "linear_attn_config": {"num_heads": 32, "head_dim": 128, "short_conv_kernel_size": 4,
                                  "kda_layers": [1, 2, 3, 5, 6, 7], "full_attn_layers": [4, 8]}}


def test_kimi_linear_layer_pattern_and_state():
    m = spec_from_config(KDA_CFG, name="kimi-linear-toy")
    assert m.attention_layer_kinds() == (("mla", 2), ("kda", 6))
    assert m.full_attention_kind == "mla" and m.num_dense_layers == 1 and m.num_moe_layers == 7
    # KV: the 2 MLA layers' latent + rope per token; state: 6 KDA layers x (32 heads x 128 x 128 fp32 + 3 x 3 x 4096)
    assert kv_bytes_per_token(m, "bf16") == 2 * (512 + 64) * 2
    assert state_bytes_per_sequence(m) == 6 * (32 * 128 * 128 * 4 + 3 * 3 * 4096 * 2)
    with pytest.raises(InputError, match="kda_layers"):
        spec_from_config({**KDA_CFG, "linear_attn_config": {**KDA_CFG["linear_attn_config"], "kda_layers": [1, 9]}},
                         name="bad")


def test_kda_cost_reads_the_kda_tables_per_tp_shard():
    m = spec_from_config(KDA_CFG, name="kimi-linear-toy")
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", tp=4)
    models = StubModels(lambda fam, df: np.full(len(df), 0.02 if fam.startswith("kda") else 0.01))
    cm = _cost(w, models)
    kda = [df for fam, df in models.calls if fam.startswith("kda")]
    assert kda and all((df["num_v_heads"] == 8).all() for df in kda)
    assert cm.decode_attention_ms(2, [2 * 1000.0])[0] == pytest.approx(6 * 0.02 + 2 * 0.01, rel=0.02)


# ----------------------------------------------------------------------------------------------- MLA BMM

def test_mla_bmm_importer_names_ops_and_formats():
    from frontier_calib.profiles.importers.aiconfigurator import SOURCES

    convert = next(src.convert for src in SOURCES if src.family == "mla_bmm")
    rows = [{"version": "1", "op_name": op, "kernel_source": k, "bmm_dtype": d, "num_tokens": 64, "num_heads": 16,
             "latency": 0.01}
            for op, k, d in (("mla_gen_pre", "trtllm_bmm_out", "bfloat16"),
                             ("mla_gen_post", "trtllm_fp8_block_scaling_bmm_out", "fp8"),
                             ("mla_gen_pre", "sglang_sgl_kernel_bmm_fp8", "fp8"))]
    out = convert(pd.DataFrame(rows))
    assert list(out["op"]) == ["pre", "post", "pre"] and list(out["dtype"]) == ["bf16", "fp8_block", "fp8"]


@pytest.mark.parametrize("engine,group", [("trtllm", "bf16"), ("trtllm", "fp8_block"), ("sglang", "fp8"),
                                          ("vllm", "bf16")])
def test_mla_bmm_fits_the_public_tables(engine, group):
    from frontier_calib.opmodel.dataset import training_rows
    from frontier_calib.opmodel.evaluate import evaluate_group
    from frontier_calib.opmodel.registry import load_profiles

    table = load_profiles("h200_sxm", engine, families=["mla_bmm"])["mla_bmm"]
    rows, _ = training_rows(table[table["dtype"] == group], "mla_bmm")
    results, _ = evaluate_group(rows, "mla_bmm", "h200_sxm", extrapolation=False)
    err = {r["model"]: r["median_ape"] for r in results}
    assert err["xgboost"] <= 0.05 and err["xgboost"] < err["random_forest"], err


# ----------------------------------------------------------------------------------------------- MSA

def test_minimax_m3_layer_pattern_and_kv():
    m = load_model("MiniMaxAI/MiniMax-M3")
    # sparse_attention_freq / moe_layer_freq: 3 dense full-attention layers, then 57 MoE layers with MSA
    assert m.attention_layer_kinds() == (("gqa", 3), ("msa", 57))
    assert m.layer_groups() == [(False, "gqa", 3), (True, "msa", 57)]
    assert (m.num_dense_layers, m.num_moe_layers, m.intermediate_size, m.num_shared_experts) == (3, 57, 12288, 1)
    assert m.block_sparse.topk_tokens == 16 * 128
    # K and V of 4 KV heads x 128 in every layer (MSA caches what GQA caches)
    assert kv_bytes_per_token(m, "bf16") == 60 * 2 * 4 * 128 * 2
    cfg = __import__("json").loads(__import__("frontier_calib.model_spec", fromlist=["x"]).resolve_preset(
        "MiniMaxAI/MiniMax-M3").read_text())
    bad = {**cfg, "sparse_attention_config": {**cfg["sparse_attention_config"], "sparse_attention_freq": [1, 0]}}
    with pytest.raises(InputError, match="sparse_attention_freq"):
        spec_from_config(bad, name="bad")


def test_msa_module_gemms_are_not_counted_twice():
    m = load_model("MiniMaxAI/MiniMax-M3")
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", tp=8, ep=8)
    models = StubModels()
    _cost(w, models)
    gemm_n = [int(df["n"].iloc[0]) for fam, df in models.calls if fam == "gemm"]
    qkv = (64 // 8 + 2 * 1) * 128
    assert gemm_n.count(qkv) == 1                    # the 3 GQA layers' qkv_proj only; MSA's is in its module table
    assert 4 * 128 not in gemm_n                     # the indexer's query projection too
    msa = [df for fam, df in models.calls if fam.startswith("msa")]
    assert msa and all((df["num_heads"] == 8).all() and (df["num_kv_heads"] == 1).all() for df in msa)


def test_msa_decode_cost_follows_the_selected_tokens():
    """The fitted msa_decode model (public H200 vLLM tables): 16x the context past the 2048 selected tokens costs
    far less than 16x."""
    from frontier_calib.opmodel.dataset import training_rows
    from frontier_calib.opmodel.evaluate import evaluate_group
    from frontier_calib.opmodel.registry import load_profiles

    table = load_profiles("h200_sxm", "vllm", families=["msa_decode"])["msa_decode"]
    rows, _ = training_rows(table[table["kv_dtype"] == "bf16"], "msa_decode")
    results, model = evaluate_group(rows, "msa_decode", "h200_sxm", extrapolation=False)
    err = {r["model"]: r["median_ape"] for r in results}
    assert err["xgboost"] <= 0.05 and err["xgboost"] < err["random_forest"], err
    w = WorkerSpec(model=load_model("MiniMaxAI/MiniMax-M3"), gpu="h200_sxm", engine="vllm", tp=8, ep=8)
    _, df = attention.get_kind("msa").decode_query(attention.QueryContext(w, 0, None), np.array([32, 32]),
                                                    np.array([4096, 65536]))
    short, long = model.predict(df)
    assert long / short < 4


# ----------------------------------------------------------------------------------------------- mHC

def test_mhc_importer_keeps_every_size_of_the_dispatched_pre_kernels():
    from frontier_calib.profiles.importers.aiconfigurator import SOURCES

    convert = next(src.convert for src in SOURCES if src.family == "mhc")
    rows = [{"version": "1", "op_name": "pre", "kernel_source": k, "num_tokens": t, "hidden_size": 4096,
             "hc_mult": 4, "sinkhorn_iters": 20, "num_sites": 2, "latency": 0.01}
            for k, t in (("trtllm_mhc_pre_fma", 8), ("trtllm_mhc_pre_dg_splitk", 4096))]
    out = convert(pd.DataFrame(rows))
    assert list(out["kernel"]) == ["mhc_pre", "mhc_pre"] and list(out["num_tokens"]) == [8, 4096]


@pytest.mark.parametrize("engine", ["trtllm", "sglang", "vllm"])
def test_mhc_fits_the_public_tables(engine):
    err = _fit("h200_sxm", engine, "mhc")
    assert err["xgboost"] <= 0.05 and err["xgboost"] < err["random_forest"], err
