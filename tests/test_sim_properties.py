"""Property tests of the replay engine on random small traces and deployments (all three policies)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.engine import _Replay
from frontier_calib.sim.testing import make_trace

TIME_COLUMNS = ["arrival_s", "scheduled_s", "first_token_s", "completion_s"]


@st.composite
def traces(draw):
    n = draw(st.integers(1, 30))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.2, 1.0]), min_size=n, max_size=n))
    inp = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    out = draw(st.lists(st.integers(1, 80), min_size=n, max_size=n))
    hashed = draw(st.booleans())
    hbs = draw(st.sampled_from([8, 16, 24, 64])) if hashed else None
    hash_ids = None
    if hashed:
        groups = draw(st.integers(1, 3))
        shared = [[1000 * (g + 1) + j for j in range(40)] for g in range(groups)]
        hash_ids, next_id = [], 10**6
        for i in range(n):
            nb = -(-inp[i] // hbs)
            g = draw(st.integers(0, groups - 1))
            m = draw(st.integers(0, nb))
            ids = shared[g][:m] + list(range(next_id, next_id + nb - m))
            next_id += nb
            hash_ids.append(ids)
    concurrency = draw(st.sampled_from([None, None, 1, 3]))
    return make_trace(np.cumsum(gaps), inp, out, hash_ids=hash_ids, hash_block_size=hbs, concurrency=concurrency)


@st.composite
def deployments(draw):
    policy = draw(st.sampled_from(["vllm", "sglang", "trtllm"]))
    block_size = draw(st.sampled_from([4, 8, 16]))
    max_num_seqs = draw(st.integers(1, 12))
    chunked = draw(st.booleans())
    max_model_len = draw(st.sampled_from([128, 300, 600]))
    budget = draw(st.integers(max(max_num_seqs, block_size), 256))
    if not chunked and policy != "sglang":
        budget = max(budget, max_model_len)
    cfg = SchedulerConfig(
        policy=policy, block_size=block_size, max_num_seqs=max_num_seqs, max_model_len=max_model_len,
        max_num_batched_tokens=budget, num_kv_blocks=draw(st.integers(8, 120)),
        enable_prefix_caching=draw(st.booleans()), enable_chunked_prefill=chunked,
        long_prefill_token_threshold=draw(st.sampled_from([0, 0, 32])),
        chunked_prefill_size=draw(st.sampled_from([None, 64])),
        enable_mixed_chunk=draw(st.booleans()),
        capacity_scheduler_policy=draw(st.sampled_from(["guaranteed_no_evict", "max_utilization"])),
    )
    n_rep = draw(st.integers(1, 3))
    router = draw(st.sampled_from(["round_robin", "least_outstanding", "prefix_affinity"]))
    roles = ["both"] * n_rep
    if n_rep >= 2 and draw(st.booleans()):   # prefill/decode disaggregation
        n_prefill = draw(st.integers(1, n_rep - 1))
        roles = ["prefill"] * n_prefill + ["decode"] * (n_rep - n_prefill)
    lockstep = draw(st.booleans())   # the replicas of each role as attention-DP ranks of one worker
    ahead = draw(st.booleans())      # the engine plans step n+1 while step n runs (async / overlap scheduling)
    return [ReplicaSpec(cfg, LinearCost(), role=role, lockstep=role if lockstep else None, schedules_ahead=ahead)
            for role in roles], router


def _run(trace, specs, router, **kw):
    replay = _Replay(trace, specs, router, kw.get("seed", 0), False, False, kw.get("fast_forward", True), True)
    return replay, replay.run()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), deployments())
def test_every_request_resolved_and_consistent(trace, deployment):
    specs, router = deployment
    replay, res = _run(trace, specs, router)
    df, table = res.requests, replay.table
    cfg = specs[0].scheduler
    assert len(df) == len(trace.requests)
    assert df["request_id"].tolist() == trace.requests["request_id"].tolist()
    ok = df["status"] == "ok"
    # Exactly one outcome per request; rejections carry a reason.
    assert set(df.loc[~ok, "status"].str.slice(0, 9)) <= {"rejected:"}
    assert all(len(s) > len("rejected:") for s in df.loc[~ok, "status"])
    too_long = (df["input_tokens"] + df["output_tokens"]) > cfg.max_model_len
    assert (df.loc[too_long, "status"] == "rejected:max_model_len").all()
    # Tokens conserved: every completed request generated exactly its output tokens.
    gen = np.array(table.gen)
    assert (gen[ok.to_numpy()] == df.loc[ok, "output_tokens"].to_numpy()).all()
    itl_counts = [np.count_nonzero(~np.isnan(table.itl[table.itl_off[i]:table.itl_off[i + 1]]))
                  for i in np.flatnonzero(ok.to_numpy())]
    assert itl_counts == (df.loc[ok, "output_tokens"] - 1).tolist()
    # Timestamps ordered.
    t = df.loc[ok, TIME_COLUMNS].to_numpy()
    assert not np.isnan(t).any()
    assert (np.diff(t, axis=1) >= 0).all()
    assert (df.loc[ok, "itl_max_s"].fillna(0) >= 0).all()
    assert (df.loc[ok, "cached_tokens"] < df.loc[ok, "input_tokens"]).all()
    # KV never over capacity (check=True also asserted it after every step).
    for rep in res.stats["replicas"]:
        assert rep["kv_blocks_max_used"] <= rep["kv_blocks"]
    # Summary counts.
    assert res.summary["completed"] == int(ok.sum())
    assert res.summary["failed"] == int((~ok).sum())
    if trace.concurrency:
        assert res.stats["max_in_flight"] <= trace.concurrency


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), deployments())
def test_fast_forward_matches_step_by_step(trace, deployment):
    specs, router = deployment
    _, a = _run(trace, specs, router, fast_forward=True)
    _, b = _run(trace, specs, router, fast_forward=False)
    pd.testing.assert_series_equal(a.requests["status"], b.requests["status"])
    pd.testing.assert_series_equal(a.requests["preemptions"], b.requests["preemptions"])
    pd.testing.assert_series_equal(a.requests["replica"], b.requests["replica"])
    for col in TIME_COLUMNS + ["itl_mean_s", "itl_p99_s", "itl_max_s"]:
        np.testing.assert_allclose(a.requests[col], b.requests[col], rtol=1e-9, atol=1e-9)
    assert a.stats["steps"] == b.stats["steps"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces(), deployments(), st.integers(0, 5))
def test_same_seed_same_output(trace, deployment, seed):
    specs, router = deployment
    a = simulate(trace, specs, router=router, seed=seed)
    b = simulate(trace, specs, router=router, seed=seed)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert a.summary == b.summary or all(
        (x == y) or (x != x and y != y) for x, y in zip(a.summary.values(), b.summary.values()))


def test_many_replica_closed_loop_matches_step_by_step():
    """Eight attention-DP-like replicas under a 40-client closed loop: an arrival only cuts the chosen replica's
    decode stretch (routers that do not read the KV cache), and the replay still equals step-by-step; the same
    with the eight as lockstep ranks of one worker (common stretches cut when any rank gets work)."""
    rng = np.random.default_rng(7)
    n = 240
    trace = make_trace(np.zeros(n), rng.integers(20, 300, n), rng.integers(5, 120, n), concurrency=40)
    cfg = SchedulerConfig(policy="trtllm", block_size=16, max_num_seqs=16, max_model_len=512,
                          max_num_batched_tokens=512, num_kv_blocks=200)
    for router, lockstep, ahead in (("round_robin", None, False), ("least_outstanding", None, False),
                                    ("prefix_affinity", None, False), ("round_robin", "w0", False),
                                    ("prefix_affinity", "w0", False), ("least_outstanding", None, True),
                                    ("round_robin", "w0", True)):
        specs = [ReplicaSpec(cfg, LinearCost(), lockstep=lockstep, schedules_ahead=ahead) for _ in range(8)]
        _, a = _run(trace, specs, router, fast_forward=True)
        _, b = _run(trace, specs, router, fast_forward=False)
        pd.testing.assert_series_equal(a.requests["replica"], b.requests["replica"])
        for col in TIME_COLUMNS:
            np.testing.assert_allclose(a.requests[col], b.requests[col], rtol=1e-9, atol=1e-9)
        assert a.stats["steps"] == b.stats["steps"]
        assert a.stats["cost_calls"] < b.stats["cost_calls"]
