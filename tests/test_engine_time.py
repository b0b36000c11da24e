"""The engine-time terms (cost/engine_time.py): each on a hand-computed case, and each one shown to matter in the
cost model (removing it changes the step time)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from frontier_calib.cost.engine_time import engine_time, kernels_per_step, step_seconds
from frontier_calib.engines.sglang import sglang_capture_sizes
from frontier_calib.engines.trtllm import trtllm_capture_sizes
from frontier_calib.engines.vllm import vllm_capture_sizes
from frontier_calib.cost.iteration import IterationCostModel
from frontier_calib.cost.worker import Overheads
from frontier_calib.errors import FrontierError
from frontier_calib.model_spec import load_model

EMPTY = np.zeros(0, dtype=np.int64)


def test_capture_sizes_are_the_engines_defaults():
    v = vllm_capture_sizes(256)              # min(2 x 256, 512) = 512
    assert v[:5] == (1, 2, 4, 8, 16) and 248 in v and 256 in v and 272 in v and v[-1] == 512 and 264 not in v
    assert vllm_capture_sizes(64)[-1] == 128
    s = sglang_capture_sizes(256)
    assert s[:6] == (1, 2, 4, 8, 12, 16) and s[-1] == 256 and 20 not in s
    assert sglang_capture_sizes(512)[-1] == 512 and 496 in sglang_capture_sizes(512)
    t = trtllm_capture_sizes(128)
    assert t == tuple(range(1, 32)) + (32, 64, 128)


def test_graph_padding_rules():
    v = engine_time("vllm", max_num_seqs=128)        # tokens, mixed steps graphed (piecewise), padded
    assert v.padded_tokens(13, 13, False) == (16, True)
    assert v.padded_tokens(100, 3, True) == (104, True)
    assert v.padded_tokens(300, 20, True) == (300, False)     # above the largest size (256): eager
    s = engine_time("sglang", max_num_seqs=1024)     # decode batches only
    assert s.padded_tokens(13, 13, False) == (16, True)
    assert s.padded_tokens(13, 2, True) == (13, False)
    t = engine_time("trtllm")                        # exact sizes only
    assert t.padded_tokens(31, 31, False) == (31, True)
    assert t.padded_tokens(33, 33, False) == (33, False)
    assert engine_time("vllm", cuda_graph=False).padded_tokens(8, 8, False) == (8, False)
    with pytest.raises(FrontierError, match="unknown engine"):
        engine_time("vlm")


def test_step_seconds_hand_computed():
    ov = Overheads(step_s=1e-3, per_seq_s=1e-5, per_token_s=1e-6, prefill_step_s=0.0, launch_s=4e-6,
                   out_token_s=2e-5, frontend_s=0.0, frontend_per_token_s=0.0)
    kw = dict(kernels=100, sequences=10, tokens=500, has_prefill=True, overheads=ov)
    cpu = 1e-3 + 10 * 1e-5 + 500 * 1e-6          # 1.6 ms
    # graphed, serial: CPU then GPU
    assert step_seconds(5e-3, graphed=True, overlap=False, **kw) == pytest.approx(5e-3 + cpu)
    # graphed, overlapped: the longer of the two
    assert step_seconds(5e-3, graphed=True, overlap=True, **kw) == pytest.approx(5e-3)
    assert step_seconds(1e-3, graphed=True, overlap=True, **kw) == pytest.approx(cpu)
    # eager: 100 launches x 4 us = 0.4 ms of launching; a 0.2 ms GPU step waits for its launches
    assert step_seconds(2e-4, graphed=False, overlap=False, **kw) == pytest.approx(cpu + 4e-4)
    assert step_seconds(2e-4, graphed=False, overlap=True, **kw) == pytest.approx(cpu + 4e-4)  # same CPU thread
    assert step_seconds(5e-3, graphed=False, overlap=True, **kw) == pytest.approx(5e-3)
    # the output path bounds the delivered step rate: 1000 sequences x 20 us = 20 ms
    assert step_seconds(5e-3, graphed=True, overlap=True, **{**kw, "sequences": 1000}) == pytest.approx(0.02)


def test_kernels_per_step_counts_layers():
    llama = load_model("Llama-2-7b")                 # 32 dense layers
    assert kernels_per_step(llama, 1) == 32 * 9 + 4
    assert kernels_per_step(llama, 2) == 32 * 11 + 4
    moe = load_model("Qwen3-30B-A3B")                # 48 MoE layers
    assert kernels_per_step(moe, 1) == 48 * 15 + 4


def test_frontend_latency_grows_with_prompt_tokens():
    ov = Overheads.for_engine("vllm", frontend_s=0.004, frontend_per_token_s=1e-6)
    assert ov.frontend_latency(8000) == pytest.approx(0.012)


# --------------------------------------------------------------------- each term matters in the cost model

def _variant(cost, worker, **changes):
    return IterationCostModel(replace(worker, **changes), None, max_tokens=cost.max_tokens, max_seqs=cost.max_seqs,
                              max_model_len=cost.max_model_len, tables=cost.tables)


def test_overlap_hides_the_cpu_time(cost, worker):
    ov = replace(worker.overheads, out_token_s=0.0)
    serial = _variant(cost, worker, overlap=False, overheads=ov).decode_times(16, np.array([1600]))[0]
    hidden = _variant(cost, worker, overlap=True, overheads=ov).decode_times(16, np.array([1600]))[0]
    cpu = ov.step_s + 16 * (ov.per_seq_s + ov.per_token_s)
    assert serial - hidden == pytest.approx(cpu, rel=1e-9)


def test_cuda_graph_padding_costs_the_padded_tokens(cost, worker):
    ov = replace(worker.overheads, step_s=0.0, per_seq_s=0.0, per_token_s=0.0, out_token_s=0.0, launch_s=0.0)
    graphed = _variant(cost, worker, overheads=ov)
    eager = _variant(cost, worker, overheads=ov, cuda_graph=False)
    # 9 decode sequences replay the 16-token graph: the token-proportional ops cost what 16 tokens cost
    d = graphed.decode_times(9, np.array([900]))[0] - eager.decode_times(9, np.array([900]))[0]
    assert d > 0
    assert d == pytest.approx((cost.tables["token_ms"][16] - cost.tables["token_ms"][9]) / 1e3, rel=1e-9)


def test_eager_steps_pay_their_kernel_launches(cost, worker):
    ov = replace(worker.overheads, launch_s=2e-5, out_token_s=0.0)
    graphed = _variant(cost, worker, overheads=ov).decode_times(1, np.array([100]))[0]
    eager = _variant(cost, worker, overheads=ov, cuda_graph=False).decode_times(1, np.array([100]))[0]
    # one sequence: ~300 kernels x 20 us = 5.8 ms of launching, more than the GPU's work; the scheduler's CPU
    # time runs on the same thread before the launches
    cpu = ov.step_s + ov.per_seq_s + ov.per_token_s
    assert eager == pytest.approx(cpu + kernels_per_step(worker.model, 1) * 2e-5, rel=1e-9)
    assert eager > graphed


def test_output_path_bounds_large_batches(cost, worker):
    slow = replace(worker.overheads, out_token_s=1e-3)
    t = _variant(cost, worker, overheads=slow).decode_times(100, np.array([100 * 50]))[0]
    assert t == pytest.approx(0.1)


def test_decode_times_equals_iteration_time_for_every_option(cost, worker):
    for changes in ({}, {"overlap": False}, {"cuda_graph": False}):
        c = _variant(cost, worker, **changes)
        for b in (1, 9, 16, 100):
            assert c.decode_times(b, np.array([b * 300]))[0] == c.iteration_time(EMPTY, EMPTY, b, b * 300)


def test_vllm_front_end_default_is_the_measured_client_minus_server_ttft():
    """vLLM PR #54628 measured a streaming client's TTFT minus vLLM's own TTFT histogram on one host at 8.4-12.2 ms
    (512-token prompts; engines/vllm.py): the default front end must land in that range, not at the old 4 ms."""
    ov = Overheads.for_engine("vllm")
    assert 0.0084 <= ov.frontend_latency(512) <= 0.0122
