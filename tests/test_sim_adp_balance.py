"""TensorRT-LLM's attention-DP balance (frontier_calib/sim/adp_balance.py): attention-DP ranks in lockstep hold new
context requests until every rank has one, or until the iteration count reaches timeout_iters."""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.errors import FrontierError
from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.adp_balance import ADPBalance
from frontier_calib.sim.testing import make_trace

STEP = 0.004   # every step, prefill or decode, lasts 4 ms with this cost model


def _ranks(balance: bool, timeout: int = 50, batching: int = 0, n: int = 2):
    cost = LinearCost(step_s=STEP, token_s=0.0, prefill_attn_s=0.0, decode_kv_s=0.0)
    cfg = SchedulerConfig(policy="trtllm", max_num_batched_tokens=4096, max_num_seqs=64, max_model_len=8192,
                          block_size=16, num_kv_blocks=4000, attention_dp_balance=balance,
                          attention_dp_timeout_iters=timeout, attention_dp_batching_wait_iters=batching)
    return [ReplicaSpec(cfg, cost, name=f"r0.dp{i}", lockstep="r0") for i in range(n)]


def _first_token_s(res) -> dict:
    r = res.requests.set_index("request_id")
    return {i: r.loc[i, "arrival_s"] + r.loc[i, "ttft_s"] for i in r.index}


def test_decisions_follow_the_engine_rule():
    """Hand-computed: timeout 3, batching wait 1; ranks given as (has context, generation requests, max batch)."""
    b = ADPBalance(timeout_iters=3, batching_wait_iters=1)
    one_ctx = [(True, 4, 64), (False, 4, 64)]
    assert b.decide(one_ctx) == (True, 2)      # wait 1: held, released by the count after 2 more iterations
    assert b.decide(one_ctx) == (True, 1)      # wait 2
    assert b.decide(one_ctx) == (False, None)  # wait 3 = timeout: the context runs, the count restarts
    assert b.wait == 0
    both = [(True, 4, 64), (True, 4, 64)]
    assert b.decide(both) == (True, 1)         # every rank has one: batching wait (1 iteration) first
    assert b.decide(both) == (False, None)     # then they run together
    assert b.decide([(True, 0, 64), (False, 4, 64)]) == (False, None)   # a rank without generation: no wait
    assert b.decide([(True, 4, 64), (True, 64, 64)]) == (True, 2)       # a full rank: not all free -> wait
    b.advance([0.1, 0.2])                      # a 2-step stretch on the wait branch: one more iteration
    assert b.wait == 2
    assert b.decide([(False, 4, 64), (False, 4, 64)]) == (False, None)  # nothing held; the count runs on
    assert b.wait == 0                         # 3 = timeout -> restarts, as in the engine


def test_a_lone_context_waits_for_the_timeout():
    """Two ranks decode one request each (rank 0's prefilled in iteration 1, 0-4 ms, rank 1's in iteration 2: it
    joins the group at the next common step; a rank without generation requests holds nothing); a 2,000-token
    prompt reaches rank 0 at 10 ms (iteration 3, 8-12 ms). Without balance it runs in iteration 4 (12-16 ms):
    first token after 6 ms. With balance and timeout 10, the count runs from iteration 3 (1; 2 at iteration 4,
    where the prompt is held) and reaches 10 at iteration 12: it runs 44-48 ms, first token after 38 ms."""
    trace = make_trace(np.array([0.0, 0.0, 0.010]), np.array([16, 16, 2000]), np.array([200, 200, 4]))
    free = _first_token_s(simulate(trace, _ranks(False)))
    held = _first_token_s(simulate(trace, _ranks(True, timeout=10)))
    assert free[2] - 0.010 == pytest.approx(0.006, abs=1e-9)
    assert held[2] - 0.010 == pytest.approx(0.038, abs=1e-9)
    assert held[0] == pytest.approx(free[0], abs=1e-12)   # the decoders' own prefill is not held (no generation)


def test_contexts_of_all_ranks_run_together():
    """Same, and a prompt reaches rank 1 at 26 ms (iteration 7): with balance (timeout 1000) rank 0's prompt waits
    for it and both run in iteration 8 (28-32 ms); without, rank 0's runs in iteration 4."""
    trace = make_trace(np.array([0.0, 0.0, 0.010, 0.026]), np.array([16, 16, 2000, 2000]),
                       np.array([200, 200, 4, 4]))
    free = _first_token_s(simulate(trace, _ranks(False)))
    held = _first_token_s(simulate(trace, _ranks(True, timeout=1000)))
    assert free[2] == pytest.approx(0.016, abs=1e-9) and free[3] == pytest.approx(0.032, abs=1e-9)
    assert held[2] == pytest.approx(0.032, abs=1e-9) and held[3] == pytest.approx(0.032, abs=1e-9)


def test_balance_is_a_trtllm_option():
    with pytest.raises(FrontierError, match="attention_dp_balance is TensorRT-LLM"):
        SchedulerConfig(policy="vllm", attention_dp_balance=True)
    with pytest.raises(FrontierError, match="attention_dp_timeout_iters must be an integer >= 0"):
        SchedulerConfig(policy="trtllm", attention_dp_timeout_iters=-1)
