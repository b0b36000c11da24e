"""Attention kinds (frontier_calib.attention): the registry, a toy kind added through the public extension points
only, and the new families: gated-DeltaNet linear attention (Qwen3.5) and DSA sparse attention (GLM-5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from frontier_calib import attention
from frontier_calib.attention import dsa
from frontier_calib.attention import AttentionKind, kv_bytes_per_token, register, state_bytes_per_sequence
from frontier_calib.cost.cache import needed_families, needed_groups
from frontier_calib.cost.memory import plan_memory
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.errors import FrontierError, InputError
from frontier_calib.model_spec import load_model, spec_from_config
from stub_models import StubModels, stub_cost


_cost = stub_cost


# ----------------------------------------------------------------------------------------------- registry

def test_builtin_kinds_are_registered_with_their_families():
    assert {"gqa", "mla", "gdn", "dsa"} <= set(attention.KINDS)
    assert attention.get_kind("gdn").families == ("gdn_prefill", "gdn_decode")
    with pytest.raises(FrontierError, match="unknown attention kind 'nope'"):
        attention.get_kind("nope")
    with pytest.raises(FrontierError, match="already registered"):
        register(attention.get_kind("gqa"))


def test_existing_models_keep_their_kind():
    assert load_model("Llama-2-7b").attention_layer_kinds() == (("gqa", 32),)
    assert load_model("DeepSeek-V3").attention_layer_kinds() == (("mla", 61),)
    w = WorkerSpec(model=load_model("DeepSeek-V3"), gpu="h200_sxm", engine="sglang", tp=8, ep=8)
    assert needed_families(w)[:3] == ["gemm", "mla_prefill", "mla_decode"]


# ----------------------------------------------------------------------------------------------- toy kind

@pytest.fixture
def toy_kind():
    """A toy kind registered through the public API only: multi-query attention (one shared KV head) that reads
    the existing attention tables and caches one K and one V head per token."""

    def prefill(ctx, q, kv):
        heads, _ = ctx.worker.model.heads_per_gpu(ctx.worker.tp)
        return "attention_prefill", pd.DataFrame({
            "batch_size": 1, "q_len": q, "kv_len": kv, "num_heads": heads, "num_kv_heads": 1,
            "head_dim": ctx.worker.model.head_dim, "window": 0, "dtype": "bf16", "kv_dtype": "bf16"})

    def decode(ctx, b, kv):
        heads, _ = ctx.worker.model.heads_per_gpu(ctx.worker.tp)
        return "attention_decode", pd.DataFrame({
            "batch_size": b, "kv_len": kv, "num_heads": heads, "num_kv_heads": 1,
            "head_dim": ctx.worker.model.head_dim, "window": 0, "dtype": "bf16", "kv_dtype": "bf16"})

    kind = register(AttentionKind(
        name="toy_mqa", doc="toy multi-query attention", families=("attention_prefill", "attention_decode"),
        prefill_query=prefill, decode_query=decode,
        kv_bytes_per_token=lambda model, b, tp: 2 * model.head_dim * b,
        gemms=lambda model, tp: model.attention_gemms(tp, "gqa")))
    yield kind
    attention.KINDS.pop("toy_mqa")


def test_toy_kind_reaches_cost_model_cache_and_memory(toy_kind):
    base = load_model("Llama-2-7b")
    toy = dataclasses.replace(base, layer_kinds=(("toy_mqa", 32),))
    w = WorkerSpec(model=toy, gpu="h100_sxm", engine="vllm")
    # families and groups the table cache fits come from the kind
    assert needed_families(w) == ["gemm", "attention_prefill", "attention_decode"]
    # KV bytes per token: 2 x head_dim x 2 bytes x 32 layers (one KV head instead of Llama-2's 32)
    assert kv_bytes_per_token(toy, "bf16") == 2 * 128 * 2 * 32
    plain = plan_memory(WorkerSpec(model=base, gpu="h100_sxm", engine="vllm"))
    assert plan_memory(w).kv_tokens == pytest.approx(plain.kv_tokens * 32, abs=32)   # floor rounding
    # the cost model asks the kind's queries: every attention query has one KV head
    models = StubModels(lambda fam, df: 0.001 * df["kv_len"].to_numpy() if "kv_len" in df else np.full(len(df), 0.01))
    cm = _cost(w, models)
    attn = [df for fam, df in models.calls if fam.startswith("attention_")]
    assert attn and all((df["num_kv_heads"] == 1).all() for df in attn)
    # 32 layers x 0.001 ms per key x 1000 keys
    assert cm.decode_attention_ms(1, [1000.0])[0] == pytest.approx(32 * 0.001 * 1000, rel=0.02)


# ----------------------------------------------------------------------------------------------- gated DeltaNet

def test_qwen35_is_a_hybrid_of_full_and_linear_attention():
    m = load_model("Qwen/Qwen3.5-397B-A17B")
    assert m.attention_layer_kinds() == (("gqa", 15), ("gdn", 45))
    assert (m.num_experts, m.topk, m.num_shared_experts, m.num_dense_layers) == (512, 10, 1, 0)
    assert round(m.param_count() / 1e9) == 396 and round(m.active_param_count() / 1e9) == 17   # 397B-A17B
    # KV: only the 15 full-attention layers, 2 KV heads replicated to 1 per GPU at tp 8, head_dim 256, bf16
    assert kv_bytes_per_token(m, "bf16", tp=8) == 15 * 2 * 1 * 256 * 2
    # state per sequence per GPU: 45 layers x (64/8 heads x 128 x 128 fp32 + 3 conv inputs x 12288/8 channels bf16)
    assert state_bytes_per_sequence(m, tp=8) == 45 * (8 * 128 * 128 * 4 + 3 * 12288 // 8 * 2)


def test_linear_heads_must_split_evenly_over_tp():
    m = load_model("Qwen/Qwen3.5-397B-A17B")
    m.check_parallel(tp=8, ep=8)
    with pytest.raises(FrontierError, match="linear-attention"):
        m.check_parallel(tp=32, ep=32)      # 32 query heads split, but not 16 linear key heads


def test_hybrid_layer_pattern_from_the_interval_and_bad_layer_types():
    cfg = {"architectures": ["Qwen3NextForCausalLM"], "hidden_size": 2048, "num_hidden_layers": 48,
           "vocab_size": 1000, "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
           "intermediate_size": 5120, "full_attention_interval": 4, "linear_num_key_heads": 16,
           "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
           "linear_conv_kernel_dim": 4}
    assert spec_from_config(cfg, name="next").attention_layer_kinds() == (("gqa", 12), ("gdn", 36))
    with pytest.raises(InputError, match="layer_types"):
        spec_from_config({**cfg, "layer_types": ["linear_attention"] * 47 + ["sliding_attention"]}, name="bad")


def test_state_is_reserved_per_sequence_slot():
    m = load_model("Qwen/Qwen3.5-397B-A17B")
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", dtype="fp8", moe_dtype="fp8_block", kv_dtype="fp8",
                   tp=8, ep=8)
    none, many = plan_memory(w), plan_memory(w, max_seqs=256)
    state = state_bytes_per_sequence(m, tp=8)
    assert many.state_bytes_per_sequence == state and many.state_sequences == 256
    assert none.kv_tokens - many.kv_tokens == pytest.approx(256 * state / none.kv_bytes_per_token, abs=2)


def test_deployment_reserves_state_for_max_num_seqs():
    from frontier_calib.deployment import deployment_from_dict

    dep = deployment_from_dict({"model": "Qwen/Qwen3.5-397B-A17B", "gpu": "h200_sxm", "engine": "sglang",
                                "dtype": "fp8", "moe_dtype": "fp8_block", "kv_dtype": "fp8",
                                "parallel": {"tp": 8, "ep": 8}, "scheduler": {"max_num_seqs": 128}})
    assert dep.memory.state_sequences == 128
    assert dep.scheduler.num_kv_blocks == dep.memory.kv_blocks


def test_linear_attention_cost_ignores_the_context():
    m = load_model("Qwen/Qwen3.5-397B-A17B")
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", tp=8, ep=8)

    def fn(fam, df):
        if fam.startswith("gdn"):
            return np.full(len(df), 0.05)              # linear attention: flat
        return 0.01 + 1e-5 * df["kv_len"].to_numpy() if "kv_len" in df else np.full(len(df), 0.01)

    models = StubModels(fn)
    cm = _cost(w, models)
    gdn = [df for fam, df in models.calls if fam.startswith("gdn")]
    assert {tuple(df.columns) for df in gdn} == {
        ("batch_size", "num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim", "conv_kernel"),
        ("batch_size", "q_len", "num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim", "conv_kernel")}
    assert all((df["num_v_heads"] == 8).all() and (df["num_k_heads"] == 2).all() for df in gdn)  # tp 8 shards
    # decode: 45 flat GDN layers (+ their 2 untimed kernels, split and gated norm: 3 us floors, ~3 ns of bytes)
    # + 15 full-attention layers growing with the KV
    short, long = cm.decode_attention_ms(1, [1000.0])[0], cm.decode_attention_ms(1, [33000.0])[0]
    assert short == pytest.approx(45 * (0.05 + 2 * 0.003) + 15 * (0.01 + 1e-5 * 1000), rel=0.01)
    assert long - short == pytest.approx(15 * 1e-5 * 32000, rel=0.02)
    # the GDN projection GEMMs are token ops: in_proj_qkvz (2*2048 + 2*8192) / 8 wide
    assert any(fam == "gemm" and (df["n"] == (2 * 2048 + 2 * 8192) // 8).all() for fam, df in models.calls)


def test_gdn_importer_sums_the_two_kernels_and_dedupes_models():
    from frontier_calib.profiles.importers.aiconfigurator import SOURCES

    convert = next(src.convert for src in SOURCES if src.family == "gdn_prefill")

    rows = []
    for model, scale in (("a", 1.0), ("b", 3.0)):
        for kernel, ms in (("causal_conv1d_fn", 0.002), ("chunk_gated_delta_rule", 0.02)):
            rows.append({"version": "1", "phase": "context", "kernel_source": kernel, "batch_size": 1,
                         "seq_len": 64, "num_k_heads": 2, "num_v_heads": 8, "head_k_dim": 128, "head_v_dim": 128,
                         "d_conv": 4, "model_name": model, "latency": ms * scale})
    rows.append({**rows[0], "seq_len": 128})   # a shape with only one of the two kernels is dropped
    out = convert(pd.DataFrame(rows))
    assert len(out) == 1 and out["q_len"].iloc[0] == 64
    assert out["latency_ms"].iloc[0] == pytest.approx(0.002 * 2 + 0.02 * 2)   # medians of (1x, 3x), then summed


def _fit_family(family, group=None):
    from frontier_calib.opmodel.dataset import training_rows
    from frontier_calib.opmodel.evaluate import evaluate_group
    from frontier_calib.opmodel.registry import load_profiles

    table = load_profiles("h200_sxm", "sglang", families=[family])[family]
    if group:
        table = table[table["kv_dtype"] == group]
    rows, _ = training_rows(table, family)
    return evaluate_group(rows, family, "h200_sxm", extrapolation=False)


@pytest.mark.parametrize("family", ["gdn_prefill", "gdn_decode"])
def test_gdn_models_fit_the_public_tables(family):
    results, model = _fit_family(family)
    err = {r["model"]: r["median_ape"] for r in results}
    assert err["xgboost"] <= 0.05 and err["xgboost"] < err["random_forest"], err


# ----------------------------------------------------------------------------------------------- DSA

def test_glm5_is_sparse_mla():
    m = load_model("zhipuai/GLM-5")
    assert m.name == "GLM-5" and m.attention_layer_kinds() == (("dsa", 78),)
    assert m.sparse_indexer.index_topk == 2048 and m.num_dense_layers == 3
    assert round(m.param_count() / 1e9) == 744                                  # 744B total, published
    # per token and layer: latent 512 + rope 64 (fp8, not sharded by tp) + indexer key 128 fp8 + one fp32 scale
    assert kv_bytes_per_token(m, "fp8", tp=8) == 78 * (576 + 128 + 4)
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", dtype="fp8", kv_dtype="fp8", tp=8, ep=8)
    assert needed_families(w)[:3] == ["gemm", "dsa_prefill", "dsa_decode"]
    assert needed_groups(w)["dsa_decode"] == {"fp8", "bf16"}   # bf16: the widening bound (cost/kv_format.py)


def test_dsa_module_gemms_are_not_counted_twice():
    m = load_model("zhipuai/GLM-5")
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", tp=8, ep=8)
    models = StubModels()
    _cost(w, models)
    gemm_n = {int(df["n"].iloc[0]) for fam, df in models.calls if fam == "gemm"}
    heads = 64 // 8
    assert heads * (192 + 256) not in gemm_n        # kv_b_proj lives in the DSA module table
    assert 32 * 128 not in gemm_n                   # indexer_wq_b too


def _gemm_shapes(engine: str) -> set:
    w = WorkerSpec(model=load_model("zhipuai/GLM-5"), gpu="h200_sxm", engine=engine, tp=8, ep=8)
    models = StubModels()
    _cost(w, models)
    return {(int(df["n"].iloc[0]), int(df["k"].iloc[0])) for fam, df in models.calls if fam == "gemm"}


def test_sglang_dsa_prices_the_fused_latent_projection_its_module_tables_lack():
    """SGLang's DSA module tables time the attention with a random q/kv latent handed in (AIConfigurator's
    collector), so the one fused q_a + kv_a GEMM (6,144 -> 2,048 + 512 + 64 for GLM-5) is priced beside them; the
    other engines' module tables run it, so there it is not priced again. q_a and kv_a never run as two GEMMs."""
    fused = (2048 + 512 + 64, 6144)
    sglang, vllm = _gemm_shapes("sglang"), _gemm_shapes("vllm")
    assert fused in sglang
    assert fused not in vllm and (2048, 6144) not in vllm
    assert (2048, 6144) not in sglang and (512 + 64, 6144) not in sglang and (576, 6144) not in vllm
    assert sglang - {fused} == vllm   # nothing else differs
    assert "sglang" in dsa.LATENT_UNTIMED


def test_dsa_decode_cost_follows_the_selected_tokens_not_the_context():
    """The fitted dsa_decode model (public H200 SGLang tables): 16x the context past index_topk costs far less than
    16x; the attention term sees the index_topk selected tokens in both (only the indexer scan grows)."""
    from frontier_calib.hardware import get_gpu
    from frontier_calib.opmodel.features import featurize

    _, model = _fit_family("dsa_decode", "fp8")
    m = load_model("zhipuai/GLM-5")
    models = StubModels()
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", dtype="fp8_block", kv_dtype="fp8", tp=8, ep=8)
    _, df = attention.get_kind("dsa").decode_query(attention.QueryContext(w, 0, models), np.array([32, 32]),
                                                    np.array([4096, 65536]))
    short, long = model.predict(df)
    assert long / short < 4
    x, _ = featurize("dsa_decode", df, get_gpu("h200_sxm"))
    assert x["log_selected"].iloc[0] == x["log_selected"].iloc[1] == np.float32(np.log2(2048))  # attention: top-k


def test_dsa_sparse_features_follow_the_kernels():
    """Sparse MLA as the kernels run it: query heads in blocks of 64 (1-64 heads cost one block, 128 two) over
    index_topk key slots whatever the context; the indexer's scan grows with the context; the top-k path past
    index_topk."""
    from frontier_calib.hardware import get_gpu
    from frontier_calib.opmodel.features import featurize

    m = load_model("zhipuai/GLM-5")
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="trtllm", kv_dtype="bf16", tp=1)
    _, df = attention.get_kind("dsa").decode_query(attention.QueryContext(w, 0, StubModels()), np.full(5, 8),
                                                    np.array([100, 1000, 1000, 1000, 4000]))
    df = df.assign(num_heads=[16, 16, 64, 128, 16])
    x, _ = featurize("dsa_decode", df, get_gpu("h200_sxm"))
    assert list(x["head_blocks"]) == [1, 1, 1, 2, 1]
    pad = x["log_t_attn_padded"].to_numpy()
    assert pad[0] == pad[1] == pad[2] == pad[4] and pad[3] == pytest.approx(pad[2] + 1)   # flat in kv and in heads <= 64
    assert list(x["sparse"]) == [0, 0, 0, 0, 1]
    idx = x["log_t_indexer"].to_numpy()
    assert idx[1] == pytest.approx(idx[0] + np.log2(10), abs=1e-4) and idx[4] == pytest.approx(idx[1] + 2, abs=1e-4)


def _dsa_decode_rows(batch, kv, heads=16):
    m = load_model("zhipuai/GLM-5")
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="trtllm", kv_dtype="bf16", tp=1)
    _, df = attention.get_kind("dsa").decode_query(attention.QueryContext(w, 0, StubModels()), np.asarray(batch),
                                                    np.asarray(kv))
    return df.assign(num_heads=heads)


def test_dsa_decode_topk_sort_feature_follows_the_indexer_kernel():
    """The indexer top-k's single-block insertion sort (TensorRT-LLM ``invokeIndexerTopKDecode``, rows narrower
    than 12,288 columns): nothing to rank up to index_topk, every cached token once the context passes it by less
    than the 2,048 final items, nothing again once the threshold bin overflows (2 x index_topk); one block per row,
    in waves over the SMs."""
    from frontier_calib.hardware import get_gpu
    from frontier_calib.opmodel.features import TOPK_FINAL_ITEMS, TOPK_THREADS_PER_BLOCK, featurize

    gpu = get_gpu("h200_sxm")
    topk = 2048
    df = _dsa_decode_rows([64, 64, 64, 64, gpu.sm_count + 1], [topk, topk + 1, 2 * topk + 1, 4 * topk + 1,
                                                                topk + 1])
    assert set(df["index_topk"]) == {topk}
    table = df.drop(columns="indexer_tied_keys")   # a table row: the collector's identical keys all tie
    x, _ = featurize("dsa_decode", table, gpu)
    s = x["log_topk_sort_steps"].to_numpy()
    assert s[0] == s[2] == s[3] == 0
    items = min(topk, TOPK_FINAL_ITEMS)
    assert s[1] == pytest.approx(np.log2(1 + items * items / TOPK_THREADS_PER_BLOCK), rel=1e-6)
    assert s[4] == pytest.approx(np.log2(1 + 2 * items * items / TOPK_THREADS_PER_BLOCK), rel=1e-6)   # 2 waves
    # the replay's query: served keys do not tie, so no context is priced with the collector's sort
    assert set(df["indexer_tied_keys"]) == {0.0}
    x, _ = featurize("dsa_decode", df, gpu)
    assert (x["log_topk_sort_steps"].to_numpy() == 0).all()


def test_dsa_decode_roofline_reads_the_topk_slots_not_the_context():
    """Below index_topk the sparse kernels still walk every slot of the top-k index buffer (the TensorRT-LLM module
    tables are flat in the context there): from 100 to 1,000 cached tokens the roofline grows by the indexer's scan
    of the extra keys alone (index_head_dim bytes and index heads x index_head_dim x 2 FLOPs per key)."""
    from frontier_calib.hardware import get_gpu
    from frontier_calib.opmodel.features import featurize

    gpu = get_gpu("h200_sxm")
    df = _dsa_decode_rows([256, 256], [100, 1000])
    _, roof = featurize("dsa_decode", df, gpu)
    r = df.iloc[0]
    extra = 256 * 900
    want = (extra * r["index_head_dim"] / gpu.hbm_bandwidth
            + extra * r["index_n_heads"] * r["index_head_dim"] * 2 / gpu.flops(r["dtype"])) * 1e3
    assert roof[1] - roof[0] == pytest.approx(want, rel=1e-6)


def test_gdn_untimed_kernels_floor_and_bytes():
    """The GDN kernels the tables lack: launch floors per call plus their HBM traffic, growing with the tokens."""
    from frontier_calib.attention import QueryContext
    from frontier_calib.attention.gdn import UNTIMED_KERNELS, untimed_ms
    from frontier_calib.hardware import get_gpu
    from frontier_calib.opmodel.features import LAUNCH_FLOOR_MS

    m = load_model("Qwen/Qwen3.5-397B-A17B")
    ctx = QueryContext(WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", tp=8, ep=8), 0, None)
    la = m.linear_attention
    kd, vd, nv = la.key_dim // 8, la.value_dim // 8, la.num_v_heads // 8
    bw = get_gpu("h200_sxm").hbm_bandwidth
    dec = untimed_ms(ctx, "decode", np.array([1, 256]), np.array([10, 10]))
    per_token = 2 * (2 * kd + 2 * vd + 2 * nv) * 2 + 3 * vd * 2     # split in + out, gated norm 2 in + 1 out (bf16)
    assert dec == pytest.approx(UNTIMED_KERNELS["decode"] * LAUNCH_FLOOR_MS + np.array([1, 256]) * per_token / bw * 1e3)
    pre = untimed_ms(ctx, "prefill", np.array([8192]), np.array([8192]))
    assert pre[0] > dec[1] and pre[0] > UNTIMED_KERNELS["prefill"] * LAUNCH_FLOOR_MS   # more kernels, more tokens


def test_sglang_turns_its_overlap_off_for_recurrent_state_models():
    """SGLang's default mamba `no_buffer` strategy with the radix cache disables the overlap scheduler for
    linear-attention hybrids (ServerArgs._handle_mamba_radix_cache); other models and engines keep it, and an
    explicit engine_options.overlap wins."""
    from frontier_calib.cost.engine_time import engine_time

    assert engine_time("sglang").overlap and not engine_time("sglang", recurrent_state=True).overlap
    assert engine_time("sglang", recurrent_state=True, overlap=True).overlap
    assert engine_time("vllm", recurrent_state=True).overlap and engine_time("trtllm", recurrent_state=True).overlap
    fn = lambda fam, df: np.full(len(df), 0.01)   # noqa: E731
    hybrid = _cost(WorkerSpec(model=load_model("Qwen/Qwen3.5-397B-A17B"), gpu="h200_sxm", engine="sglang", tp=8,
                              ep=8), StubModels(fn))
    dense = _cost(WorkerSpec(model=load_model("Qwen/Qwen3-235B-A22B"), gpu="h200_sxm", engine="sglang", tp=8,
                             ep=8), StubModels(fn))
    assert not hybrid.engine_time.overlap and dense.engine_time.overlap
    # without the overlap a decode step pays its CPU scheduling time on top of the kernels
    ov = hybrid.overheads
    cpu = ov.step_s + ov.per_seq_s * 4 + ov.per_token_s * 4
    token_ms, head_ms, attn_ms = hybrid.decode_kernel_ms(4, [4000.0])
    kernels = (token_ms + head_ms + attn_ms[0]) / 1e3
    assert hybrid.decode_times(4, np.array([4000.0]))[0] == pytest.approx(cpu + kernels, rel=1e-6)


def test_qwen35_shared_expert_gate_adds_its_two_kernels():
    """Qwen3.5's MoE block scales the shared expert by sigmoid(x @ w_gate) (hidden x 1): a GEMV and the scaling, two
    small kernels per MoE layer the GEMM tables do not hold (2 us each + their activation bytes); DeepSeek's shared
    experts have no gate."""
    from frontier_calib.hardware import get_gpu

    m = load_model("Qwen/Qwen3.5-397B-A17B")
    assert m.shared_expert_gate and not load_model("DeepSeek-V3").shared_expert_gate
    fn = lambda fam, df: np.full(len(df), 0.01)   # noqa: E731
    w = WorkerSpec(model=m, gpu="h200_sxm", engine="sglang", tp=8, ep=8)
    gated = _cost(w, StubModels(fn))
    plain = _cost(dataclasses.replace(w, model=dataclasses.replace(m, shared_expert_gate=False)), StubModels(fn))
    for n in (1, 64):
        extra = m.num_layers * (2 * 0.002 + n * m.hidden_size * 2 * 3 / get_gpu("h200_sxm").hbm_bandwidth * 1e3)
        assert gated.token_ms(n) - plain.token_ms(n) == pytest.approx(extra, rel=1e-6)


def test_sglang_gdn_prefill_compiles_once_per_new_token_count():
    """SGLang's FLA l2norm_fwd_kernel takes the row count as a tl.constexpr (until sgl-project/sglang PR #31558):
    a gated-DeltaNet prefill step with a token count the server has not run yet stalls the loop for one JIT
    compile (the engine record's jit_compile_s); a count seen before, decode steps, other engines and models
    without linear attention pay nothing. breakdown() neither shows nor records it."""
    from frontier_calib.engines import get_engine

    fn = lambda fam, df: np.full(len(df), 0.01)   # noqa: E731
    qwen35, dense = load_model("Qwen/Qwen3.5-397B-A17B"), load_model("Qwen/Qwen3-235B-A22B")
    cm = _cost(WorkerSpec(model=qwen35, gpu="h200_sxm", engine="sglang", tp=8, ep=8), StubModels(fn))
    jit = get_engine("sglang").jit_compile_s
    assert jit == 0.1 and cm.jit_compile_s == jit
    assert attention.prefill_recompiles(qwen35, "sglang") and not attention.prefill_recompiles(dense, "sglang")
    assert not attention.prefill_recompiles(qwen35, "vllm")
    bd = cm.breakdown([200], [200], 0, 0)          # a pure query: the count stays unseen
    first = cm.iteration_time([200], [200], 0, 0)
    assert first == pytest.approx(bd.total_ms / 1e3 + jit, rel=1e-9)
    assert cm.iteration_time([200], [200], 0, 0) == pytest.approx(first - jit, rel=1e-9)
    # the count is the step's prefill tokens: two prompts of 100 run 200 tokens, already compiled for
    two = cm.iteration_time([100, 100], [100, 100], 0, 0)
    assert two == pytest.approx(cm.breakdown([100, 100], [100, 100], 0, 0).total_ms / 1e3, rel=1e-9)
    assert cm.iteration_time([201], [201], 3, 3000) > cm.iteration_time([201], [201], 3, 3000) + 0.9 * jit
    assert cm.iteration_time([], [], 4, 4000) == pytest.approx(cm.decode_times(4, np.array([4000.0]))[0])
    for w in (WorkerSpec(model=qwen35, gpu="h200_sxm", engine="vllm", tp=8, ep=8),
              WorkerSpec(model=dense, gpu="h200_sxm", engine="sglang", tp=8, ep=8)):
        other = _cost(w, StubModels(fn))
        assert other.jit_compile_s == 0.0
        assert other.iteration_time([200], [200], 0, 0) == pytest.approx(other.iteration_time([200], [200], 0, 0))
