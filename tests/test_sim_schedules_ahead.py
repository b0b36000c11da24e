"""An engine that plans step n+1 while step n runs (vLLM V1 async scheduling, SGLang's and TensorRT-LLM's overlap
schedulers): a request that reaches the scheduler during step n first runs in step n+2."""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.testing import make_trace

COST = LinearCost(step_s=0.010, token_s=0.0, prefill_attn_s=0.0, decode_kv_s=0.0)   # every step: 10 ms
CFG = SchedulerConfig(policy="vllm", block_size=16, max_num_seqs=8, max_model_len=4096,
                      max_num_batched_tokens=4096, num_kv_blocks=400)


def _first_token(ahead: bool, arrive_b: float = 0.025) -> float:
    """Request A arrives at 0 (64 prompt tokens, 100 output tokens: it decodes for a second); request B (64
    tokens, 2 outputs) arrives at ``arrive_b``, in the middle of a 10 ms step. B's first-token time (s)."""
    trace = make_trace(np.array([0.0, arrive_b]), [64, 64], [100, 2])
    res = simulate(trace, [ReplicaSpec(CFG, COST, schedules_ahead=ahead)])
    assert (res.requests["status"] == "ok").all()
    return float(res.requests["first_token_s"][1])


def test_a_request_arriving_mid_step_waits_one_more_step_when_the_engine_schedules_ahead():
    # Steps run 0-10, 10-20, 20-30 (B arrives at 25), 30-40, 40-50 ms.
    # Planned at the step boundary: B is in the step 30-40 -> first token at 40 ms.
    assert _first_token(False) == pytest.approx(0.040)
    # Step 30-40 was planned when step 20-30 started (at 20 ms): B runs in 40-50 -> first token at 50 ms.
    assert _first_token(True) == pytest.approx(0.050)


def test_an_idle_engine_schedules_at_once():
    # A has finished long before B arrives: nothing is in progress, so B is planned the moment it arrives.
    trace = make_trace(np.array([0.0, 5.0]), [64, 64], [2, 2])
    for ahead in (False, True):
        res = simulate(trace, [ReplicaSpec(CFG, COST, schedules_ahead=ahead)])
        assert float(res.requests["first_token_s"][1]) == pytest.approx(5.010)


def test_the_cost_model_says_whether_its_engine_schedules_ahead():
    class Ahead(LinearCost):
        schedules_ahead = True

    assert ReplicaSpec(CFG, Ahead()).schedules_ahead is True
    assert ReplicaSpec(CFG, COST).schedules_ahead is False            # the protocol's default
    assert ReplicaSpec(CFG, Ahead(), schedules_ahead=False).schedules_ahead is False
