"""SGLang's --scheduler-recv-interval: new requests wait until the scheduler polls (SchedulerRecvSkipper: +1 per
decode step, +1,000 after a step with prefill, receive when the counter reaches the interval)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_calib.errors import FrontierError
from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.testing import make_trace

COST = LinearCost(step_s=0.010, token_s=0.0, prefill_attn_s=0.0, decode_kv_s=0.0)   # every step: 10 ms


def _cfg(interval: int, **kw) -> SchedulerConfig:
    return SchedulerConfig(policy="sglang", block_size=16, max_num_seqs=8, max_model_len=4096,
                           max_num_batched_tokens=4096, num_kv_blocks=400, scheduler_recv_interval=interval, **kw)


def _first_tokens(interval: int, arrivals, outputs, **kw):
    trace = make_trace(np.array(arrivals), [64] * len(arrivals), outputs)
    res = simulate(trace, [ReplicaSpec(_cfg(interval), COST, **kw)])
    assert (res.requests["status"] == "ok").all()
    return res.requests["first_token_s"].to_numpy()


def test_a_request_waits_for_the_next_poll_while_the_engine_decodes():
    # A arrives at 0: prefill 0-10 ms, then decode steps 10-20, 20-30, 30-40 ... B arrives at 12 ms.
    # Interval 1: B is scheduled at the 20 ms boundary, prefilled 20-30 -> first token at 30 ms.
    assert _first_tokens(1, [0.0, 0.012], [100, 2])[1] == pytest.approx(0.030)
    # Interval 3: the counter is 0 after A's prefill step (1,000 >= 3: received, reset), 1 at 20 ms, 2 at 30 ms,
    # 3 -> receive at 40 ms: B prefilled 40-50 -> first token at 50 ms.
    assert _first_tokens(3, [0.0, 0.012], [100, 2])[1] == pytest.approx(0.050)
    # The boundary right after a step with prefill receives at once: B arriving during A's prefill (at 5 ms) is
    # prefilled 10-20 ms whatever the interval.
    assert _first_tokens(30, [0.0, 0.005], [100, 2])[1] == pytest.approx(0.020)


def test_an_idle_scheduler_receives_at_once():
    # A has finished long before B arrives: the idle loop polls within microseconds.
    assert _first_tokens(30, [0.0, 5.0], [2, 2])[1] == pytest.approx(5.010)


def test_the_counter_keeps_its_phase_over_polls_that_find_nothing():
    # Interval 4; A prefill 0-10, decodes end at 20 (c=1), 30 (2), 40 (3), 50 (0: an empty poll), 60 (1), 70 (2),
    # 80 (3), 90 (0). B arrives at 52 ms: received at 90 ms, prefilled 90-100.
    assert _first_tokens(4, [0.0, 0.052], [100, 2])[1] == pytest.approx(0.100)


def test_scheduler_recv_interval_is_sglangs_and_not_with_attention_dp():
    with pytest.raises(FrontierError, match="scheduler_recv_interval"):
        SchedulerConfig(policy="vllm", scheduler_recv_interval=30)
    with pytest.raises(FrontierError, match=">= 1"):
        _cfg(0)
    trace = make_trace(np.array([0.0]), [64], [2])
    with pytest.raises(FrontierError, match="attention DP"):
        simulate(trace, [ReplicaSpec(_cfg(3), COST, lockstep="w0") for _ in range(2)])


@st.composite
def _cases(draw):
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.001, 0.004, 0.01, 0.05, 0.3]), min_size=n, max_size=n))
    inp = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    out = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    cfg = SchedulerConfig(policy="sglang", block_size=draw(st.sampled_from([4, 16])),
                          max_num_seqs=draw(st.integers(1, 8)), max_model_len=600,
                          max_num_batched_tokens=draw(st.integers(16, 256)), num_kv_blocks=draw(st.integers(20, 120)),
                          enable_mixed_chunk=draw(st.booleans()),
                          scheduler_recv_interval=draw(st.sampled_from([2, 3, 7])))
    reps = draw(st.integers(1, 2))
    ahead = draw(st.booleans())
    concurrency = draw(st.sampled_from([None, 2]))
    trace = make_trace(np.cumsum(gaps), inp, out, concurrency=concurrency)
    return trace, [ReplicaSpec(cfg, LinearCost(), schedules_ahead=ahead) for _ in range(reps)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_fast_forward_matches_step_by_step_with_a_receive_interval(case):
    trace, specs = case
    a = simulate(trace, specs, router="least_outstanding", fast_forward=True, check=True)
    b = simulate(trace, specs, router="least_outstanding", fast_forward=False, check=True)
    pd.testing.assert_series_equal(a.requests["status"], b.requests["status"])
    for col in ("arrival_s", "scheduled_s", "first_token_s", "completion_s"):
        np.testing.assert_allclose(a.requests[col], b.requests[col], rtol=1e-9, atol=1e-9)
    assert a.stats["steps"] == b.stats["steps"]
