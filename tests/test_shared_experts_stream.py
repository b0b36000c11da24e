"""TensorRT-LLM runs DeepSeek-V3's shared experts on a second CUDA stream beside the router and routed experts, in
the steps that replay a CUDA graph (``Deepseekv3MoE.forward``: ``maybe_execute_in_parallel``, multi-stream only under
graph capture): such a step's MoE layer lasts the longer of the two paths; eager steps run them one after the other.
``EngineRecord.shared_experts_aux_stream`` names the architectures; the cost model keeps a second token table for
graphed steps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.engines import base as engines_base, get_engine
from frontier_calib.model_spec import load_model

from stub_models import StubModels, stub_cost

EMPTY = np.zeros(0, dtype=np.int64)


def _fn(family, df):
    """Milliseconds per call: GEMMs 0.02 (the two shared-expert GEMMs: 0.04), routed experts 0.1, collectives 0.005,
    attention 0.03: the routed path (router + experts, 0.12) is the longer one."""
    ms = {"gemm": 0.02, "moe": 0.1, "collective": 0.005}.get(family, 0.03)
    return np.full(len(df), ms)


class _NoDeepEP(StubModels):
    """No DeepEP tables: TensorRT-LLM's own NVLink all-to-all prices an EP layer's dispatch/combine."""

    def has(self, family, group=None):
        return family not in ("moe_deepep", "moe_a2a")


def _cost(model="DeepSeek-R1", engine="trtllm", max_seqs=16, gpu="b200_sxm", **layout):
    m = model if not isinstance(model, str) else load_model(model)
    layout = {"tp": 8, "moe_tp": 8, **layout}
    w = WorkerSpec(model=m, gpu=gpu, engine=engine, dtype="bf16", moe_dtype="bf16", kv_dtype="bf16", **layout)
    return stub_cost(w, _NoDeepEP(_fn), max_seqs=max_seqs, max_model_len=4096)


@pytest.fixture
def serial_trtllm(monkeypatch):
    """A function building the same cost model as ``_cost`` under a TensorRT-LLM record without the aux stream (its
    tables are built with it; the record is restored afterwards)."""
    def build(*args, **kw):
        rec = get_engine("trtllm")
        monkeypatch.setitem(engines_base.ENGINES, "trtllm", dataclasses.replace(rec, shared_experts_aux_stream=()))
        try:
            return _cost(*args, **kw)
        finally:
            monkeypatch.setitem(engines_base.ENGINES, "trtllm", rec)
    return build


def test_trtllm_record_names_the_deepseek_v3_classes():
    rec = get_engine("trtllm")
    assert {"DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM"} <= set(rec.shared_experts_aux_stream)
    assert get_engine("sglang").shared_experts_aux_stream == () == get_engine("vllm").shared_experts_aux_stream
    assert load_model("Kimi-K2-Instruct").architecture == "DeepseekV3ForCausalLM"   # the same modeling class


def test_graphed_step_saves_the_shorter_path_of_every_moe_layer():
    cm = _cost()
    m = cm.worker.model
    parts = cm.token_op_parts(1)
    routed = parts["router"] + parts["routed_experts"]
    shared = parts["shared_expert_gate_up"] + parts["shared_expert_down"]
    assert shared < routed
    assert parts["graph_saving"] == pytest.approx(shared)   # every MoE layer alike: the shared GEMMs of all of them
    assert parts["graph_saving"] == pytest.approx(m.num_moe_layers * 2 * 0.02)
    # the tables: a step that replays a graph runs the token ops minus the saving, an eager one all of them
    assert cm.tables["token_ms"][1] - cm.tables["token_graph_ms"][1] == pytest.approx(shared, rel=1e-9)
    token_ms, _, _ = cm.decode_kernel_ms(1, [1000.0])   # kernel parts before engine time: the eager sum
    assert token_ms == pytest.approx(cm.tables["token_ms"][1])


def test_decode_steps_that_replay_a_graph_are_faster_by_the_saving(serial_trtllm):
    m = load_model("DeepSeek-R1")
    beside = _cost(m)
    serial = serial_trtllm(m)
    assert np.array_equal(serial.tables["token_graph_ms"], serial.tables["token_ms"])   # built without the stream
    saving_s = beside.token_op_parts(4)["graph_saving"] / 1e3
    for b in (1, 4, 16):   # captured batch sizes (1..31, 32, 64, 128)
        assert beside.engine_time.padded_tokens(b, b, False)[1]
        t_beside = beside.decode_times(b, np.array([b * 1000.0]))[0]
        t_serial = serial.decode_times(b, np.array([b * 1000.0]))[0]
        assert t_serial - t_beside == pytest.approx(beside.token_op_parts(b)["graph_saving"] / 1e3, rel=1e-6)
        assert beside.decode_time_one(b, b * 1000.0) == t_beside   # the scalar path reads the same table
    assert saving_s > 0
    # a batch size TensorRT-LLM does not capture runs eager: both paths one after the other
    assert not beside.engine_time.padded_tokens(33, 33, False)[1]
    big = _cost(m, max_seqs=40)
    ref = serial_trtllm(m, max_seqs=40)
    assert big.decode_times(33, np.array([33e3]))[0] == pytest.approx(ref.decode_times(33, np.array([33e3]))[0])


def test_prefill_steps_run_eager_and_save_nothing(serial_trtllm):
    m = load_model("DeepSeek-R1")
    beside = _cost(m)
    serial = serial_trtllm(m)
    q, kv = np.array([128]), np.array([128])
    assert beside.iteration_time(q, kv, 4, 4000) == pytest.approx(serial.iteration_time(q, kv, 4, 4000), rel=1e-12)
    bd = beside.breakdown(q, kv, 4, 4000)
    assert bd.token_ops_ms == pytest.approx(beside.tables["token_ms"][132])


def test_other_engines_and_two_micro_batch_overlap_keep_the_sum():
    assert _cost(engine="sglang").token_op_parts(1)["graph_saving"] == 0.0
    # attention DP + EP 16 on one GB200 NVLink domain: the routed path carries its all-to-all and still outlasts
    # the shared experts; under two-micro-batch overlap the MoE layer is priced its own way, no saving on top
    dep = dict(gpu="gb200", tp=1, attention_dp=16, ep=16, moe_tp=1)
    parts = _cost(**dep).token_op_parts(1)
    assert parts["graph_saving"] == pytest.approx(parts["shared_expert_gate_up"] + parts["shared_expert_down"])
    assert _cost(**dep, tbo=True).token_op_parts(1)["graph_saving"] == 0.0


def test_breakdown_of_a_graphed_decode_step_counts_the_graphed_token_ops():
    cm = _cost()
    bd = cm.breakdown(EMPTY, EMPTY, 4, 4000)
    assert bd.token_ops_ms == pytest.approx(cm.tables["token_graph_ms"][4])
    assert bd.overhead_ms >= -1e-9


# ------------------------------------------------------------------ residual add + RMSNorm inside the all-reduce

def test_trtllm_deepseek_norms_run_inside_the_tp_allreduce():
    """DeepseekV3DecoderLayer (TP, no attention DP): both residual add + RMSNorm of an MoE layer and the next-layer
    norm of a dense one run in the all-reduce kernel (RESIDUAL_RMS_NORM): no kernel (2 us) and no four passes over
    the activations of their own, while the message fits the 64 MiB workspace of the fused kernels."""
    from frontier_calib.hardware import get_gpu

    m = load_model("DeepSeek-R1")
    bw = get_gpu("b200_sxm").hbm_bandwidth
    per_norm = lambda n: 0.002 + n * 4 * m.hidden_size * 2 / bw * 1e3   # noqa: E731 - ms of one norm kernel
    fused_norms = 2 * m.num_moe_layers + 1 * m.num_dense_layers          # bf16: a dense layer fuses one
    fused, plain = _cost(), _cost(engine="sglang")
    for n in (1, 64):
        gap = plain.token_op_parts(n)["elementwise"] - fused.token_op_parts(n)["elementwise"]
        assert gap == pytest.approx(fused_norms * per_norm(n), rel=1e-9)
    # the workspace: 64 MiB / (7168 x 2 bytes) = 4681 tokens; one more and the norms run on their own again
    rec = get_engine("trtllm")
    top = rec.allreduce_fusion_max_bytes // (m.hidden_size * 2)
    assert top == 4681
    big = stub_cost(fused.worker, _NoDeepEP(_fn), max_tokens=top + 1, max_seqs=16, max_model_len=4096)
    ref = stub_cost(plain.worker, _NoDeepEP(_fn), max_tokens=top + 1, max_seqs=16, max_model_len=4096)
    assert big.token_op_parts(top)["elementwise"] < ref.token_op_parts(top)["elementwise"]
    assert big.token_op_parts(top + 1)["elementwise"] == pytest.approx(ref.token_op_parts(top + 1)["elementwise"])


def test_no_norm_fusion_with_attention_dp_or_without_tp(monkeypatch):
    def elementwise(**layout):
        return _cost(**layout).token_op_parts(1)["elementwise"]

    dep = dict(gpu="gb200", tp=1, attention_dp=16, ep=16, moe_tp=1)
    fused = [elementwise(**dep), elementwise(tp=1, moe_tp=1), elementwise()]
    rec = get_engine("trtllm")
    monkeypatch.setitem(engines_base.ENGINES, "trtllm", dataclasses.replace(rec, allreduce_norm_fusion=()))
    plain = [elementwise(**dep), elementwise(tp=1, moe_tp=1), elementwise()]
    assert fused[:2] == pytest.approx(plain[:2], rel=1e-12)   # attention DP, or one GPU: nothing to fuse into
    assert fused[2] < plain[2]                                # TP8: the norms ride in the all-reduces


# ------------------------------------------------------------------ Hopper: FP8 block-scale GEMMs hold every SM

def _fp8_block(gpu, **layout):
    """DeepSeek-R1's block-scaled FP8 checkpoint on ``gpu`` (TP8 attention, EP8 experts unless ``layout`` says)."""
    m = load_model("DeepSeek-R1")
    layout = {"tp": 8, "ep": 8, "moe_tp": 1, **layout}
    w = WorkerSpec(model=m, gpu=gpu, engine="trtllm", dtype="fp8", moe_dtype="fp8_block", kv_dtype="fp8", **layout)
    return stub_cost(w, _NoDeepEP(_fn), max_seqs=16, max_model_len=4096)


def test_trtllm_record_names_hopper_fp8_block_gemms_as_whole_gpu():
    from frontier_calib.hardware import get_gpu

    assert (90, "fp8_block") in get_engine("trtllm").whole_gpu_gemms
    assert get_engine("sglang").whole_gpu_gemms == () == get_engine("vllm").whole_gpu_gemms
    assert {get_gpu(g).sm_arch for g in ("h100_sxm", "h800_sxm", "h200_sxm")} == {90}
    assert {get_gpu(g).sm_arch for g in ("b200_sxm", "gb200", "b300_sxm", "gb300")} <= {100, 103}


def test_hopper_fp8_block_shared_experts_overlap_only_the_router(monkeypatch):
    """On sm_90 with FP8 block scales every GEMM of both paths launches one CTA per SM: the graphed step saves the
    router GEMM (what the shared experts can run beside), not the shared experts' whole time."""
    hop = _fp8_block("h200_sxm").token_op_parts(4)
    router, shared = hop["router"], hop["shared_expert_gate_up"] + hop["shared_expert_down"]
    assert router < shared < router + hop["routed_experts"]
    assert hop["graph_saving"] == pytest.approx(router)
    # TP8 experts (moe_tp 8) run the same kernels: the same rule
    tp = _fp8_block("h200_sxm", ep=1, moe_tp=8).token_op_parts(4)
    assert tp["graph_saving"] == pytest.approx(tp["router"])
    # Blackwell (sm_100) keeps the full overlap, and so do Hopper experts in other formats
    bw = _fp8_block("b200_sxm").token_op_parts(4)
    assert bw["graph_saving"] == pytest.approx(bw["shared_expert_gate_up"] + bw["shared_expert_down"])
    h_bf16 = _cost(gpu="h200_sxm").token_op_parts(4)
    assert h_bf16["graph_saving"] == pytest.approx(h_bf16["shared_expert_gate_up"] + h_bf16["shared_expert_down"])
    # without the record's pair the Hopper step would save the shared experts' whole time again
    rec = get_engine("trtllm")
    monkeypatch.setitem(engines_base.ENGINES, "trtllm", dataclasses.replace(rec, whole_gpu_gemms=()))
    plain = _fp8_block("h200_sxm").token_op_parts(4)
    assert plain["graph_saving"] == pytest.approx(shared)


def test_hopper_fp8_block_graphed_decode_step_is_longer_by_the_lost_overlap(monkeypatch):
    whole = _fp8_block("h200_sxm")
    rec = get_engine("trtllm")
    monkeypatch.setitem(engines_base.ENGINES, "trtllm", dataclasses.replace(rec, whole_gpu_gemms=()))
    beside = _fp8_block("h200_sxm")
    parts = whole.token_op_parts(4)
    lost = parts["shared_expert_gate_up"] + parts["shared_expert_down"] - parts["router"]
    t_whole, t_beside = whole.decode_times(4, np.array([4e3]))[0], beside.decode_times(4, np.array([4e3]))[0]
    assert (t_whole - t_beside) * 1e3 == pytest.approx(lost, rel=1e-6)


def test_whole_gpu_gemms_must_be_pairs():
    from frontier_calib.errors import FrontierError

    rec = get_engine("trtllm")
    for bad in ((90,), ("90", "fp8_block"), (90, ""), "sm90", (0, "fp8_block")):
        with pytest.raises(FrontierError, match="whole_gpu_gemms"):
            dataclasses.replace(rec, whole_gpu_gemms=(bad,))


def test_token_ops_past_the_tables_are_priced_directly():
    """Past the token tables (32 tokens here) the token ops are evaluated on the fitted models: an eager step runs all
    of them (what ``token_op_parts`` lists), a step that replays a CUDA graph saves ``graph_saving`` off them, whatever
    count was evaluated just before (no state is left between two evaluations)."""
    w = WorkerSpec(model=load_model("DeepSeek-R1"), gpu="b200_sxm", engine="trtllm", dtype="bf16", moe_dtype="bf16",
                   kv_dtype="bf16", tp=8, moe_tp=8)
    cm = stub_cost(w, _NoDeepEP(_fn), max_tokens=32, max_seqs=32, max_model_len=4096)
    n = 40
    parts = cm.token_op_parts(n)
    eager = sum(v for k, v in parts.items() if k != "graph_saving")
    assert parts["graph_saving"] > 0
    assert eager > cm.tables["token_ms"][-1]   # the direct evaluation, not the last entry
    cm.token_op_parts(1)   # another count evaluated in between
    assert cm.token_ms(n) == pytest.approx(eager, rel=1e-12)
    assert cm._token_lookup(n, graphed=True) == pytest.approx(eager - parts["graph_saving"], rel=1e-12)
    assert cm.token_ms(n) == pytest.approx(eager, rel=1e-12)   # and the graphed lookup left the eager one alone
