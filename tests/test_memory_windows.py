"""Sliding-window layers keep their window per running sequence (TensorRT-LLM), SGLang's SWA pool of 0.8 x the
full pool's tokens, or a per-token share like full layers (vLLM) (cost/memory.py: kv_bytes_split)."""

from __future__ import annotations

import pytest

from frontier_calib.attention import kv_bytes_per_token
from frontier_calib.cost.memory import kv_bytes_split, plan_memory
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.engines import get_engine
from frontier_calib.model_spec import load_model


def _gpt_oss(engine, **kw):
    return WorkerSpec(model=load_model("gpt-oss-120b"), gpu="b200_sxm", engine=engine, moe_dtype="mxfp4", **kw)


def test_window_layers_are_per_sequence_on_trtllm():
    m = load_model("gpt-oss-120b")
    assert (m.sliding_window, m.sliding_window_layers, m.num_layers) == (128, 18, 36)
    per_layer = 2 * m.num_kv_heads * m.head_dim * 2            # K and V, bf16, tp 1
    per_token, per_seq = kv_bytes_split(_gpt_oss("trtllm"), 32)
    assert per_token == pytest.approx(18 * per_layer)           # the full-attention half only
    assert per_seq == pytest.approx(18 * per_layer * (128 + 32))
    # every layer charged per token before: the full layers' capacity is twice as large now
    assert kv_bytes_per_token(m, "bf16") == pytest.approx(36 * per_layer)


def test_vllm_charges_window_layers_per_token():
    m = load_model("gpt-oss-120b")
    assert get_engine("vllm").window_kv_ratio == 1.0
    assert kv_bytes_split(_gpt_oss("vllm"), 16) == (pytest.approx(kv_bytes_per_token(m, "bf16")), 0.0)


def test_sglang_sizes_a_window_pool_by_ratio():
    m = load_model("gpt-oss-120b")
    per_layer = 2 * m.num_kv_heads * m.head_dim * 2
    assert get_engine("sglang").window_kv_ratio == 0.8
    per_token, per_seq = kv_bytes_split(_gpt_oss("sglang"), 16)
    assert per_token == pytest.approx(18 * per_layer * 1.8) and per_seq == 0.0


def test_models_without_windows_are_unchanged():
    w = WorkerSpec(model=load_model("Meta-Llama-3.1-8B"), gpu="h100_sxm", engine="trtllm")
    assert kv_bytes_split(w, 32) == (pytest.approx(kv_bytes_per_token(w.model, "bf16")), 0.0)


def test_plan_reserves_the_windows_of_its_sequences():
    w = _gpt_oss("trtllm")
    few, many = plan_memory(w, block_size=32, max_seqs=1), plan_memory(w, block_size=32, max_seqs=1024)
    per_token, per_seq = kv_bytes_split(w, 32)
    assert few.kv_bytes_per_token == pytest.approx(per_token)
    assert few.state_bytes_per_sequence == pytest.approx(per_seq)
    # TensorRT-LLM's fraction applies to what is free after the reservation: 1023 more windows, 0.9 of them
    assert (few.kv_tokens - many.kv_tokens) * per_token == pytest.approx(0.9 * 1023 * per_seq, rel=1e-3)
