"""Policy details, one scheduler at a time (no event loop)."""

from __future__ import annotations

import numpy as np

from frontier_calib.sim import SchedulerConfig
from frontier_calib.sim.requests import RequestTable
from frontier_calib.sim.schedulers import make_scheduler


def _sched(inp, out, **kw):
    n = len(inp)
    table = RequestTable(np.arange(n), np.zeros(n), inp, out)
    cfg = SchedulerConfig(**{"block_size": 16, "num_kv_blocks": 1000, **kw})
    return make_scheduler(cfg, table), table


def _step(s, plan, t):
    """Pretend the step took until ``t`` and apply it."""
    plan.ends = [t]
    return s.complete_step(plan, t)


def test_vllm_decodes_first_then_fcfs_chunks_from_the_rest_of_the_budget():
    s, R = _sched([30, 30, 30, 2000, 900], [50, 50, 50, 10, 10], max_num_batched_tokens=512, max_num_seqs=8)
    for r in range(3):
        s.enqueue(r, 0.0)
    _step(s, s.schedule(0.0), 0.1)                   # three short prompts prefill together
    assert s.decode.n == 3
    s.enqueue(3, 0.1)
    s.enqueue(4, 0.1)
    plan = s.schedule(0.1)
    assert plan.num_decode == 3
    assert plan.chunks == [(3, 509)]                 # 512 - 3 decode tokens, all to the head of the queue
    _step(s, plan, 0.2)
    plan = s.schedule(0.2)
    assert plan.chunks == [(3, 509)]                 # the running chunked prefill continues before request 4
    assert plan.prefill_kv == [1018]


def test_vllm_preempts_the_newest_and_requeues_it_first():
    s, R = _sched([64, 64, 64], [200, 200, 200], max_num_batched_tokens=256, max_num_seqs=8, num_kv_blocks=14)
    for r in range(3):
        s.enqueue(r, 0.0)
    t = 0.0
    while s.num_preemptions == 0:
        t += 0.01
        _step(s, s.schedule(t), t)
    assert s.waiting[0] == 2 and R.preemptions[2] == 1 and R.computed[2] == 0
    assert 2 not in s.running


def test_vllm_max_num_seqs_caps_running():
    s, _ = _sched([10] * 5, [5] * 5, max_num_batched_tokens=512, max_num_seqs=2)
    for r in range(5):
        s.enqueue(r, 0.0)
    plan = s.schedule(0.0)
    assert [r for r, _ in plan.chunks] == [0, 1] and len(s.waiting) == 3


def test_sglang_prefill_batches_do_not_carry_decodes_unless_mixed():
    for mixed in (False, True):
        s, _ = _sched([32, 100], [50, 5], policy="sglang", max_num_batched_tokens=512, max_num_seqs=8,
                      enable_mixed_chunk=mixed)
        s.enqueue(0, 0.0)
        _step(s, s.schedule(0.0), 0.1)
        s.enqueue(1, 0.1)
        plan = s.schedule(0.1)
        assert plan.chunks == [(1, 100)]
        assert plan.num_decode == (1 if mixed else 0)


def test_sglang_reserves_future_decode_tokens():
    # 40 blocks x 16 = 640 tokens. A running request will still write ~400 tokens (x new_token_ratio 0.7 = 280),
    # so a 300-token prompt with 100 output tokens must wait, but fits once the reservation is gone.
    s, R = _sched([64, 300], [400, 100], policy="sglang", max_num_batched_tokens=512, max_num_seqs=8,
                  num_kv_blocks=40)
    s.enqueue(0, 0.0)
    _step(s, s.schedule(0.0), 0.1)
    s.enqueue(1, 0.1)
    plan = s.schedule(0.1)
    assert not plan.chunks and plan.num_decode == 1 and s.waiting[0] == 1


def test_trtllm_context_chunks_are_block_multiples_and_gne_reserves_full_length():
    s, _ = _sched([20, 1000], [10, 10], policy="trtllm", max_num_tokens=100, max_batch_size=8,
                  enable_chunked_prefill=True)   # on by choice: TensorRT-LLM's default is off
    s.enqueue(0, 0.0)
    _step(s, s.schedule(0.0), 0.1)
    s.enqueue(1, 0.1)
    plan = s.schedule(0.1)
    assert plan.num_decode == 1 and plan.chunks == [(1, 96)]      # 99 tokens left -> 6 blocks of 16
    # Guaranteed-no-evict: the second request's whole length must fit next to the first one's.
    for policy, admitted in (("guaranteed_no_evict", False), ("max_utilization", True)):
        s, _ = _sched([100, 100], [400, 400], policy="trtllm", max_num_tokens=512, max_batch_size=8,
                      num_kv_blocks=40, capacity_scheduler_policy=policy)
        s.enqueue(0, 0.0)
        s.enqueue(1, 0.0)
        plan = s.schedule(0.0)
        assert [r for r, _ in plan.chunks] == ([0, 1] if admitted else [0])


def test_trtllm_without_chunking_a_prompt_waits_until_it_fits_next_to_the_generation_tokens():
    """TensorRT-LLM's docs walk-through ("Tuning Max Batch Size and Max Num Tokens"): max_num_tokens 12, three
    5-token prompts. Step 1 takes two prompts (10 tokens; the third does not fit the 2 left and waits, whole).
    Step 2: two generation tokens + the third prompt (2 + 5 = 7 <= 12) go together. With chunked prefill the third
    prompt would have started in step 1 instead (a 2-token chunk with block_size 1)."""
    kw = dict(policy="trtllm", max_num_tokens=12, max_batch_size=4, block_size=1, max_model_len=64)
    s, _ = _sched([5, 5, 5], [4, 4, 4], enable_chunked_prefill=False, **kw)
    for r in range(3):
        s.enqueue(r, 0.0)
    plan = s.schedule(0.0)
    assert plan.chunks == [(0, 5), (1, 5)] and list(s.waiting) == [2]
    _step(s, plan, 0.1)
    plan = s.schedule(0.1)
    assert plan.num_decode == 2 and plan.chunks == [(2, 5)]
    s, _ = _sched([5, 5, 5], [4, 4, 4], enable_chunked_prefill=True, **kw)
    for r in range(3):
        s.enqueue(r, 0.0)
    assert s.schedule(0.0).chunks == [(0, 5), (1, 5), (2, 2)]


def test_trtllm_without_chunking_rejects_only_a_prompt_over_the_step_budget():
    """TensorRT-LLM needs each prompt, not max_model_len, to fit max_num_tokens (LLM._check_arguments rejects a
    longer prompt when it arrives); vLLM refuses the configuration instead."""
    import pytest

    from frontier_calib.errors import FrontierError

    s, _ = _sched([100, 101], [500, 5], policy="trtllm", max_num_tokens=100, max_batch_size=4,
                  enable_chunked_prefill=False, max_model_len=1024)
    assert s.reject_reason(0) is None                       # 100-token prompt, 600 tokens in all: runs
    assert s.reject_reason(1) == "prompt_over_step_budget"  # 101-token prompt never fits 100
    with pytest.raises(FrontierError, match="max_model_len"):
        SchedulerConfig(policy="vllm", max_num_batched_tokens=100, max_num_seqs=4, enable_chunked_prefill=False,
                        max_model_len=1024)


def test_trtllm_batch_waiting_holds_a_context_for_timeout_iters_steps():
    """TensorRT-LLM's batch waiting (PyExecutor._waiting_requests), hand-computed: max_num_tokens 100, ratio 0.9
    (90 tokens), timeout 3 steps. Request 0 decodes; request 1 (20-token prompt) arrives: 20 + 1 generation token
    = 21 < 90, so the next 3 steps decode only (count 1, 2, 3), and the 4th takes the prompt (count 3 >= 3).
    Without batch waiting the prompt goes in the first step."""
    kw = dict(policy="trtllm", max_num_tokens=100, max_batch_size=4, enable_chunked_prefill=False,
              max_model_len=256)
    for iters, first in ((3, 4), (0, 1)):
        s, _ = _sched([10, 20], [50, 50], batch_wait_timeout_iters=iters, batch_wait_max_tokens_ratio=0.9, **kw)
        s.enqueue(0, 0.0)
        _step(s, s.schedule(0.0), 0.01)                 # request 0 prefills alone (no generation request yet)
        s.enqueue(1, 0.01)
        steps, t = 0, 0.01
        while True:
            plan = s.schedule(t)
            steps += 1
            assert plan.num_decode == 1
            if plan.chunks:
                assert plan.chunks == [(1, 20)]
                break
            t += 0.01
            _step(s, plan, t)
        assert steps == first
    # the token threshold releases at once: a 95-token prompt + 1 generation token >= 90
    s, _ = _sched([10, 95], [50, 50], batch_wait_timeout_iters=3, batch_wait_max_tokens_ratio=0.9, **kw)
    s.enqueue(0, 0.0)
    _step(s, s.schedule(0.0), 0.01)
    s.enqueue(1, 0.01)
    assert s.schedule(0.01).chunks == [(1, 95)]


def test_trtllm_batch_waiting_in_the_replay_waits_timeout_iters_decode_steps():
    """The same rule through the event loop (decode-only steps are fast-forwarded there): one client decodes,
    a second request arrives; with timeout 5 and a token threshold it never reaches, its first token comes 5 decode
    steps (plus its own prefill step) after it arrives, not a whole decode stretch later."""
    from frontier_calib.sim import LinearCost, ReplicaSpec, simulate
    from frontier_calib.sim.testing import make_trace

    cost = LinearCost(step_s=0.01, token_s=0.0, prefill_attn_s=0.0, decode_kv_s=0.0)   # every step 10 ms
    tr = make_trace([0.0, 0.105], [16, 16], [200, 5])
    ttft = {}
    for iters in (0, 5):
        cfg = SchedulerConfig(policy="trtllm", max_num_tokens=100, max_batch_size=4, enable_chunked_prefill=False,
                              max_model_len=512, block_size=16, num_kv_blocks=100, batch_wait_timeout_iters=iters,
                              batch_wait_max_tokens_ratio=0.9 if iters else 0.0)
        res = simulate(tr, [ReplicaSpec(cfg, cost, schedules_ahead=False)])
        ttft[iters] = float(res.requests["ttft_s"].to_numpy()[1])
    assert abs((ttft[5] - ttft[0]) - 5 * 0.01) < 1e-9


def test_trtllm_without_chunking_rejects_long_prompts_except_on_a_pd_decode_worker():
    """TensorRT-LLM without chunked prefill rejects a prompt over max_num_tokens (LLM._check_arguments), but not a
    generation-only request: a PD decode worker never runs the prompt as a context step."""
    n = 1
    table = RequestTable(np.arange(n), np.zeros(n), [1000], [10])
    cfg = SchedulerConfig(policy="trtllm", max_num_tokens=256, max_num_batched_tokens=256, max_batch_size=8,
                          block_size=16, num_kv_blocks=1000)
    assert cfg.enable_chunked_prefill is False                       # the engine's default
    assert make_scheduler(cfg, table).reject_reason(0) == "prompt_over_step_budget"
    assert make_scheduler(cfg, table, role="prefill").reject_reason(0) == "prompt_over_step_budget"
    assert make_scheduler(cfg, table, role="decode").reject_reason(0) is None
