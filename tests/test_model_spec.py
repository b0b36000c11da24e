"""ModelSpec: presets parse, parameter counts match the public numbers, KV sizes by hand, clear errors."""

import json

import pytest

from frontier_calib.attention import kv_bytes_per_token
from frontier_calib.errors import FrontierError, InputError
from frontier_calib.model_spec import (PRESETS, GemmShape, ModelSpec, list_presets, load_model,
                                       resolve_preset)


@pytest.mark.parametrize("name", list_presets())
def test_every_preset_parses(name):
    m = load_model(name)
    assert isinstance(m, ModelSpec)
    assert m.param_count() >= m.active_param_count() > 0
    assert kv_bytes_per_token(m) > 0
    assert m.weight_bytes_per_gpu() > 0
    m.check_parallel(1)
    if m.is_moe:
        assert m.num_moe_layers > 0 and m.topk <= m.num_experts
        assert m.layer_gemms(1, moe_layer=True)
    if m.num_dense_layers:
        assert m.layer_gemms(1, moe_layer=False)


def test_preset_table_points_at_existing_files():
    assert len(PRESETS) >= 20
    for hf_id, stem in PRESETS.items():
        assert resolve_preset(hf_id) is not None and resolve_preset(hf_id).exists(), hf_id


@pytest.mark.parametrize("spelling", ["Mixtral-8x7B-v0.1", "mistralai/Mixtral-8x7B-v0.1",
                                      "MISTRALAI/mixtral-8x7b-v0.1", "mistralai--Mixtral-8x7B-v0.1"])
def test_preset_spellings(spelling):
    assert load_model(spelling).name == "Mixtral-8x7B-v0.1"


def test_deepseek_hf_id():
    m = load_model("deepseek-ai/DeepSeek-V3")
    assert m.mla is not None and m.num_shared_experts == 1 and m.first_dense_layers == 3
    assert m.weight_dtype == "fp8_block"


def _close(value, expected, tol=0.02):
    return abs(value - expected) / expected <= tol


@pytest.mark.parametrize("name,total,active", [
    ("Meta-Llama-3.1-8B", 8.03e9, 8.03e9),
    ("Mixtral-8x7B-v0.1", 46.7e9, 12.9e9),
    ("DeepSeek-V3", 671e9, 37e9),
    ("Qwen3-235B-A22B", 235e9, 22e9),
    ("Llama-2-7b", 6.74e9, 6.74e9),
    ("Mistral-7B-v0.1", 7.24e9, 7.24e9),
    ("Qwen3-30B-A3B", 30.5e9, 3.3e9),
    ("Kimi-K2-Instruct", 1.03e12, 32.5e9),
])
def test_param_counts_match_public_numbers(name, total, active):
    m = load_model(name)
    assert _close(m.param_count(), total), m.param_count()
    assert _close(m.active_param_count(), active), m.active_param_count()


def test_kv_bytes_gqa_by_hand():
    m = load_model("Meta-Llama-3.1-8B")   # 32 layers, 8 KV heads, head_dim 128
    assert kv_bytes_per_token(m, "bf16") == 2 * 8 * 128 * 32 * 2
    assert kv_bytes_per_token(m, "fp8", tp=2) == 2 * 4 * 128 * 32 * 1
    # tp beyond the KV heads replicates: one KV head per GPU
    assert kv_bytes_per_token(m, "bf16", tp=16) == 2 * 1 * 128 * 32 * 2


def test_kv_bytes_mla_by_hand():
    m = load_model("DeepSeek-V3")
    assert kv_bytes_per_token(m, "bf16") == 61 * 576 * 2 == 70_272
    assert kv_bytes_per_token(m, "bf16", tp=8) == 70_272      # the latent is not sharded by TP


def test_layer_gemms_under_tp():
    m = load_model("Meta-Llama-3.1-8B")
    g = {s.name: s for s in m.layer_gemms(2, moe_layer=False)}
    assert g["qkv_proj"] == GemmShape("qkv_proj", (16 + 2 * 4) * 128, 4096)
    assert g["o_proj"] == GemmShape("o_proj", 4096, 16 * 128)
    assert g["gate_up_proj"] == GemmShape("gate_up_proj", 2 * 7168, 4096)
    assert g["down_proj"] == GemmShape("down_proj", 4096, 7168)
    assert m.lm_head_gemm(4) == GemmShape("lm_head", 128256 // 4, 4096)


def test_moe_and_mla_gemms():
    mix = load_model("Mixtral-8x7B-v0.1")
    names = [g.name for g in mix.layer_gemms(1, moe_layer=True)]
    assert names == ["qkv_proj", "o_proj", "router"]
    ds = load_model("DeepSeek-V3")
    g = {s.name: s for s in ds.layer_gemms(8, moe_layer=True)}
    assert g["q_b_proj"].n == 16 * 192 and g["kv_b_proj"].n == 16 * 256 and g["o_proj"].k == 16 * 128
    assert g["router"].n == 256 and g["shared_expert_gate_up"].n == 2 * 2048 // 8
    absorbed = {s.name: s for s in ds.layer_gemms(8, moe_layer=True, mla_absorbed=True)}
    assert absorbed["w_uk_bmm"].count == 16 and "kv_b_proj" not in absorbed
    dense = [s.name for s in ds.layer_gemms(8, moe_layer=False)]
    assert "gate_up_proj" in dense and "router" not in dense


def test_weight_bytes_sharding():
    m = load_model("Meta-Llama-3.1-8B")
    full = m.weight_bytes_per_gpu()
    assert _close(full, 8.03e9 * 2, 0.01)
    assert _close(m.weight_bytes_per_gpu(tp=2), full / 2, 0.01)
    assert _close(m.weight_bytes_per_gpu("fp8"), 7.0e9 + 1.05e9 * 2, 0.03)
    assert m.weight_bytes_per_gpu(pp=2) < 0.6 * full
    mix = load_model("Mixtral-8x7B-v0.1")
    assert _close(mix.weight_bytes_per_gpu(tp=8, ep=8), mix.weight_bytes_per_gpu(tp=8), 0.001)
    gpt = load_model("gpt-oss-120b")
    assert gpt.weight_dtype == "mxfp4" and gpt.dense_weight_dtype == "bf16"
    assert gpt.sliding_window == 128 and gpt.sliding_window_layers == 18


def test_check_parallel_reasons():
    m = load_model("Meta-Llama-3.1-8B")
    with pytest.raises(FrontierError, match="tp=3 does not divide 32 attention heads"):
        m.check_parallel(3)
    m.check_parallel(16)                      # KV heads replicated
    with pytest.raises(FrontierError, match="needs an MoE model"):
        m.check_parallel(1, 2)
    mix = load_model("Mixtral-8x7B-v0.1")
    with pytest.raises(FrontierError, match="ep=3 does not divide 8 experts"):
        mix.check_parallel(1, 3)
    mix.check_parallel(8, 8)


def test_malformed_config_names_file_and_field(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="config.json: not valid JSON"):
        load_model(str(bad))
    cfg = json.loads(resolve_preset("Meta-Llama-3.1-8B").read_text())
    del cfg["hidden_size"]
    bad.write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="field 'hidden_size'"):
        load_model(str(tmp_path))             # a folder holding config.json works too
    cfg["hidden_size"] = "big"
    bad.write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="field 'hidden_size': expected a whole number"):
        load_model(str(bad))


@pytest.mark.parametrize("arch", ["MambaForCausalLM", "Qwen3VLForConditionalGeneration"])
def test_unsupported_architecture_lists_supported(tmp_path, arch):
    cfg = json.loads(resolve_preset("Meta-Llama-3.1-8B").read_text())
    cfg["architectures"] = [arch]
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(FrontierError, match=f"'{arch}' is not supported.*supported: .*LlamaForCausalLM"):
        load_model(str(p))


def test_unknown_name_lists_presets():
    with pytest.raises(FrontierError, match="not a file and not a preset; presets: .*Mixtral-8x7B-v0.1"):
        load_model("no-such-model")
