"""SGLang's MoE routing for grouped routers its fused gate does not cover (``engines/sglang.py``: experts per group
above ``moe_fused_gate``'s 32 fall back to the compiled ``biased_grouped_topk_impl``, 8 kernels): the extra kernels
are priced per MoE layer (``cost/moe_gate.py``: launch floor + passes over the fp32 scores), from the model's config
(``n_group``), not its name; one fused kernel everywhere else."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from frontier_calib.cost import moe_gate
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.engines import base as engines_base, get_engine
from frontier_calib.engines.sglang import FALLBACK_GATE_KERNELS, sglang_routing_kernels
from frontier_calib.errors import InputError
from frontier_calib.hardware import get_gpu
from frontier_calib.model_spec import load_model, resolve_preset
from frontier_calib.opmodel.features import LAUNCH_FLOOR_MS

from stub_models import StubModels, stub_cost


def _worker(model, engine="sglang", gpu="h200_sxm", moe_dtype="fp8_block", **layout):
    m = load_model(model) if isinstance(model, str) else model
    return WorkerSpec(model=m, gpu=gpu, engine=engine, dtype="fp8_block", moe_dtype=moe_dtype, kv_dtype="bf16",
                      **{"tp": 8, "moe_tp": 8, **layout})


def _kernels(model, **kw):
    w = _worker(model, **kw)
    return sglang_routing_kernels(w.model, w, get_gpu(w.gpu))


def test_model_configs_carry_their_expert_groups(tmp_path):
    assert load_model("zhipuai/GLM-5").expert_groups == 1
    assert load_model("DeepSeek-V3").expert_groups == 8
    assert load_model("Qwen3-235B-A22B").expert_groups == 0   # softmax top-k, no groups
    cfg = json.loads(resolve_preset("DeepSeek-V3").read_text())
    cfg["n_group"] = 7
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="n_group.*7 expert groups do not divide 256"):
        load_model(str(p))


def test_the_fallback_follows_experts_per_group_not_the_model_name():
    glm5, v3 = load_model("zhipuai/GLM-5"), load_model("DeepSeek-V3")
    assert FALLBACK_GATE_KERNELS == 8
    assert _kernels(glm5) == 7                    # 256 experts in one group: 256 per group > 32
    assert _kernels(v3) == 0                      # 8 groups of 32: moe_fused_gate
    assert _kernels(dataclasses.replace(v3, expert_groups=1)) == 7
    assert _kernels(dataclasses.replace(glm5, expert_groups=8)) == 0
    assert _kernels(dataclasses.replace(v3, num_experts=160)) == 7   # 20 per group, not a power of two
    assert _kernels(load_model("Kimi-K2-Instruct")) == 0             # 384 in one group: its own fused gate
    assert _kernels(load_model("Qwen3-235B-A22B")) == 0              # no grouped routing


def test_one_fused_kernel_on_other_engines_and_where_trtllm_gen_routes():
    assert _kernels("zhipuai/GLM-5", gpu="h100_sxm") == 7
    assert _kernels("zhipuai/GLM-5", gpu="b200_sxm") == 0               # flashinfer_trtllm: routed in the MoE kernel
    assert _kernels("zhipuai/GLM-5", gpu="b300_sxm", moe_dtype="nvfp4") == 0
    assert _kernels("zhipuai/GLM-5", gpu="b200_sxm", moe_dtype="bf16") == 7
    for engine in ("vllm", "trtllm"):
        assert get_engine(engine).routing_kernels is None
        assert moe_gate.routing_kernels(_worker("zhipuai/GLM-5", engine=engine)) == 0


def test_every_moe_layer_pays_the_extra_kernels(monkeypatch):
    """The term is in the token ops (each MoE layer: 7 launch floors + 6 passes over 256 fp32 scores per token),
    counts as FFN time, and nothing else moves: without the engine's rule the tables lose exactly that much."""
    w = _worker("zhipuai/GLM-5")
    cm = stub_cost(w, StubModels())
    layers = w.model.num_moe_layers
    bw = get_gpu("h200_sxm").hbm_bandwidth
    for n in (1, 64, 256):
        per_layer = 7 * LAUNCH_FLOOR_MS + n * 256 * 4 * 6 / bw * 1e3
        assert cm.token_op_parts(n)["routing_topk"] == pytest.approx(layers * per_layer, rel=1e-9)
    assert 7 * LAUNCH_FLOOR_MS == pytest.approx(0.021)   # 21 us per MoE layer at decode sizes
    n = np.array([1, 16, 64, 256])
    expected = layers * moe_gate.routing_topk_ms(w, n)
    rec = get_engine("sglang")
    monkeypatch.setitem(engines_base.ENGINES, "sglang", dataclasses.replace(rec, routing_kernels=None))
    ref = stub_cost(w, StubModels())
    assert "routing_topk" not in ref.token_op_parts(1)
    assert moe_gate.routing_topk_ms(w, n).tolist() == [0.0] * 4
    gap = cm.tables["token_ms"][n] - ref.tables["token_ms"][n]
    assert gap == pytest.approx(expected, rel=1e-9)
    assert cm.tables["ffn_ms"][n] - ref.tables["ffn_ms"][n] == pytest.approx(gap, rel=1e-9)
    dec = cm.decode_kernel_ms(16, [2000.0] * 16)[0] - ref.decode_kernel_ms(16, [2000.0] * 16)[0]
    assert dec == pytest.approx(gap[1], rel=1e-6)


def test_deepseek_v3_tables_do_not_change(monkeypatch):
    w = _worker("DeepSeek-V3")
    cm = stub_cost(w, StubModels())
    rec = get_engine("sglang")
    monkeypatch.setitem(engines_base.ENGINES, "sglang", dataclasses.replace(rec, routing_kernels=None))
    ref = stub_cost(w, StubModels())
    assert np.array_equal(cm.tables["token_ms"], ref.tables["token_ms"])


def test_engine_record_rejects_a_rule_that_is_not_a_function():
    with pytest.raises(Exception, match="routing_kernels must be a function"):
        dataclasses.replace(get_engine("sglang"), routing_kernels=7)
