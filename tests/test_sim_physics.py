"""Sanity against physics with the analytic LinearCost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from frontier_calib.engines import engine_names
from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.testing import make_trace, poisson_trace, shared_prefix_trace

POLICIES = list(engine_names())   # every registered engine (frontier_calib/engines/)


def _cfg(policy, **kw):
    # chunked prefill on for every policy (TensorRT-LLM's own default is off): the tests compare like with like
    base = dict(policy=policy, max_num_batched_tokens=512, max_num_seqs=64, max_model_len=4096, block_size=16,
                num_kv_blocks=4000, enable_chunked_prefill=True)
    base.update(kw)
    return SchedulerConfig(**base)


def _one(cfg):
    return [ReplicaSpec(cfg, LinearCost())]


@pytest.mark.parametrize("policy", POLICIES)
def test_higher_rate_never_lowers_mean_ttft(policy):
    rng = np.random.default_rng(3)
    n = 300
    gaps = rng.exponential(1.0, n)
    inp = rng.integers(100, 1500, n)
    out = rng.integers(20, 300, n)
    ttfts = []
    for rate in (1.0, 2.0, 4.0, 8.0, 16.0, 32.0):
        trace = make_trace(np.cumsum(gaps) / rate, inp, out)
        ttfts.append(simulate(trace, _one(_cfg(policy))).summary["mean_ttft_ms"])
    assert all(b >= a for a, b in zip(ttfts, ttfts[1:])), ttfts
    assert ttfts[-1] > 3 * ttfts[0]   # saturated at the top rate


@pytest.mark.parametrize("policy", POLICIES)
def test_prefix_caching_lowers_ttft_on_shared_prefixes(policy):
    trace = shared_prefix_trace(4, 40, system_tokens=2048, question_tokens=128, output_tokens=32, rate=8.0,
                                hash_block_size=16, seed=1)
    on = simulate(trace, _one(_cfg(policy, enable_prefix_caching=True)))
    off = simulate(trace, _one(_cfg(policy, enable_prefix_caching=False)))
    assert on.summary["mean_ttft_ms"] < 0.5 * off.summary["mean_ttft_ms"]
    assert on.requests["cached_tokens"].mean() > 1500
    assert (off.requests["cached_tokens"] == 0).all()


@pytest.mark.parametrize("policy,extra", [("vllm", {}), ("sglang", {}),
                                          ("trtllm", {"capacity_scheduler_policy": "max_utilization"})])
def test_preemption_happens_and_is_counted_when_kv_is_tiny(policy, extra):
    trace = poisson_trace(60, 20.0, 300, 200, seed=2)
    res = simulate(trace, _one(_cfg(policy, num_kv_blocks=80, **extra)), check=True)
    assert res.stats["preemptions"] > 0
    assert res.requests["preemptions"].sum() == res.stats["preemptions"]
    assert (res.requests["status"] == "ok").all()
    roomy = simulate(trace, _one(_cfg(policy, **extra)))
    assert roomy.stats["preemptions"] == 0


def test_guaranteed_no_evict_never_preempts():
    trace = poisson_trace(60, 20.0, 300, 200, seed=2)
    res = simulate(trace, _one(_cfg("trtllm", num_kv_blocks=80)), check=True)
    assert res.stats["preemptions"] == 0 and (res.requests["status"] == "ok").all()


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_closed_loop_keeps_at_most_n_in_flight(policy, concurrency):
    rng = np.random.default_rng(5)
    n = 40
    trace = make_trace(np.zeros(n), rng.integers(50, 500, n), rng.integers(5, 60, n), concurrency=concurrency)
    res = simulate(trace, _one(_cfg(policy)))
    df = res.requests
    assert (df["status"] == "ok").all()
    events = sorted([(t, 1) for t in df["arrival_s"]] + [(t, -1) for t in df["completion_s"]],
                    key=lambda e: (e[0], e[1]))   # completions first at equal times
    level = peak = 0
    for _, d in events:
        level += d
        peak = max(peak, level)
    assert peak == concurrency
    assert res.stats["max_in_flight"] == concurrency
    # Each new request is sent exactly when an earlier one completes.
    later = np.sort(df["arrival_s"].to_numpy())[concurrency:]
    assert np.isin(later, df["completion_s"].to_numpy()).all()


def test_decode_step_time_grows_with_batch_and_kv():
    c = LinearCost()
    kv = np.array([1000, 2000, 4000])
    assert np.all(np.diff(c.decode_times(8, kv)) > 0)
    assert c.decode_times(16, kv[:1])[0] > c.decode_times(8, kv[:1])[0]
    empty = np.zeros(0, dtype=np.int64)
    assert c.iteration_time(empty, empty, 8, 4000) == c.decode_times(8, np.array([4000]))[0]


def test_rejections_carry_a_reason():
    trace = make_trace([0.0, 0.1, 0.2, 0.3, 0.4], [100, 5000, 100, 0, 1500], [10, 10, 0, 10, 100])
    res = simulate(trace, _one(_cfg("vllm", max_model_len=2048, num_kv_blocks=64)))
    assert res.requests["status"].tolist() == ["ok", "rejected:max_model_len", "rejected:no_output_tokens",
                                               "rejected:empty_prompt", "rejected:kv_capacity"]
    assert res.summary["completed"] == 1 and res.summary["failed"] == 4
    assert np.isnan(res.requests.loc[1, "ttft_s"])


def test_timeline_progress_and_write(tmp_path):
    trace = poisson_trace(50, 5.0, 400, 50, seed=4)
    res = simulate(trace, _one(_cfg("vllm")), timeline=True, progress=True)
    tl = res.timeline
    assert tl and all(e["ph"] == "X" and e["dur"] > 0 and e["pid"] == 0 for e in tl)
    assert sum(e["args"]["n_steps"] for e in tl) == res.stats["steps"]
    starts = [e["ts"] for e in tl]
    assert starts == sorted(starts)
    paths = res.write(tmp_path)
    assert json.loads(paths["timeline"].read_text())["traceEvents"][0]["ph"] == "X"
    summary = json.loads(paths["summary"].read_text())
    assert summary["completed"] == 50
    import pandas as pd
    back = pd.read_parquet(paths["requests"])
    assert len(back) == 50 and "itl_p99_s" in back.columns


@pytest.mark.parametrize("policy", POLICIES)
def test_frontend_latency_adds_to_ttft_and_e2e_only(policy):
    """One request at a time: the front-end latency is added to TTFT and E2E, never to the decode (TPOT)."""
    trace = make_trace([0.0, 10.0, 20.0], [300, 200, 100], [20, 30, 40])
    base = simulate(trace, _one(_cfg(policy))).requests
    fe = simulate(trace, _one(_cfg(policy)), frontend_s=0.25).requests
    np.testing.assert_array_equal(fe["arrival_s"], base["arrival_s"])       # the client's send times
    np.testing.assert_allclose(fe["ttft_s"] - base["ttft_s"], 0.25, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fe["e2e_s"] - base["e2e_s"], 0.25, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fe["itl_mean_s"], base["itl_mean_s"], rtol=1e-12)


def test_frontend_latency_lengthens_the_closed_loop_cycle():
    """A closed-loop client sends its next request when the previous one ends; the scheduler sees it later."""
    trace = make_trace(np.zeros(4), [100] * 4, [10] * 4, concurrency=1)
    base = simulate(trace, _one(_cfg("vllm"))).requests
    fe = simulate(trace, _one(_cfg("vllm")), frontend_s=0.1).requests
    np.testing.assert_allclose(fe["arrival_s"].to_numpy()[1:], fe["completion_s"].to_numpy()[:-1], atol=1e-12)
    np.testing.assert_allclose(np.diff(fe["arrival_s"]), np.diff(base["arrival_s"]) + 0.1, atol=1e-9)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "1ms"])
def test_frontend_latency_must_be_non_negative_seconds(bad):
    from frontier_calib.errors import FrontierError
    with pytest.raises(FrontierError, match="frontend_s"):
        simulate(make_trace([0.0], [10], [2]), _one(_cfg("vllm")), frontend_s=bad)
