"""Routing over replicas, and prefill/decode roles."""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.errors import FrontierError
from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.testing import make_trace, poisson_trace, shared_prefix_trace


def _specs(n, **kw):
    base = dict(policy="vllm", max_num_batched_tokens=512, max_num_seqs=32, num_kv_blocks=2000)
    base.update(kw)
    return [ReplicaSpec(SchedulerConfig(**base), LinearCost(), name=f"r{i}") for i in range(n)]


def test_round_robin_alternates():
    trace = make_trace(np.arange(9) * 10.0, np.full(9, 100), np.full(9, 5))
    res = simulate(trace, _specs(3), router="round_robin")
    assert res.requests["replica"].tolist() == ["r0", "r1", "r2"] * 3


def test_least_outstanding_balances_a_burst():
    trace = make_trace(np.zeros(30), np.full(30, 200), np.full(30, 50))
    res = simulate(trace, _specs(3), router="least_outstanding", seed=1)
    counts = res.requests["replica"].value_counts()
    assert sorted(counts.tolist()) == [10, 10, 10]


def test_prefix_affinity_keeps_groups_together():
    trace = shared_prefix_trace(3, 30, system_tokens=1024, question_tokens=64, output_tokens=16, rate=20.0,
                                hash_block_size=16, seed=3)
    aff = simulate(trace, _specs(3), router="prefix_affinity", seed=0)
    rr = simulate(trace, _specs(3), router="round_robin")
    assert aff.requests["cached_tokens"].sum() > rr.requests["cached_tokens"].sum()
    assert aff.summary["mean_ttft_ms"] < rr.summary["mean_ttft_ms"]


def test_seeded_ties_are_reproducible_and_seed_dependent():
    trace = make_trace(np.arange(40) * 5.0, np.full(40, 100), np.full(40, 5))
    runs = {s: simulate(trace, _specs(4), router="least_outstanding", seed=s).requests["replica"].tolist()
            for s in (0, 0, 1)}
    assert simulate(trace, _specs(4), router="least_outstanding", seed=0).requests["replica"].tolist() == runs[0]
    assert runs[0] != runs[1]


def test_unknown_router():
    with pytest.raises(FrontierError):
        simulate(make_trace([0.0], [10], [2]), _specs(1), router="random")


def test_heterogeneous_replicas_route_around_what_cannot_fit():
    small = ReplicaSpec(SchedulerConfig(max_model_len=512, num_kv_blocks=100), LinearCost(), name="small")
    big = ReplicaSpec(SchedulerConfig(max_model_len=8192, num_kv_blocks=2000), LinearCost(), name="big")
    trace = make_trace([0.0, 1.0, 2.0], [100, 3000, 100], [10, 10, 10])
    res = simulate(trace, [small, big], router="round_robin")
    assert res.requests["replica"].tolist() == ["small", "big", "small"]
    assert (res.requests["status"] == "ok").all()


@pytest.mark.parametrize("policy", ["vllm", "sglang", "trtllm"])
def test_prefill_decode_roles(policy):
    trace = poisson_trace(60, 10.0, 600, 40, seed=5)
    # 600-token prompts over a 512-token step: chunked prefill on for every policy (TensorRT-LLM's default is off)
    cfg = SchedulerConfig(policy=policy, max_num_batched_tokens=512, max_num_seqs=32, num_kv_blocks=400,
                          enable_chunked_prefill=True)
    tight = SchedulerConfig(policy=policy, max_num_batched_tokens=512, max_num_seqs=32, num_kv_blocks=120,
                            enable_chunked_prefill=True)
    specs = [ReplicaSpec(cfg, LinearCost(), role="prefill", name="p0"),
             ReplicaSpec(tight, LinearCost(), role="decode", name="d0")]
    res = simulate(trace, specs, check=True)
    df = res.requests
    assert (df["status"] == "ok").all()
    assert (df["replica"] == "d0").all()
    assert (df["first_token_s"] <= df["completion_s"]).all()
    decode_stats = res.stats["replicas"][1]
    assert decode_stats["steps"] == decode_stats["decode_steps"]    # no prefill work on the decode worker
    colocated = simulate(trace, [ReplicaSpec(cfg, LinearCost())])
    assert res.summary["mean_tpot_ms"] < colocated.summary["mean_tpot_ms"]


def test_role_wiring_errors():
    trace = make_trace([0.0], [10], [2])
    cfg = SchedulerConfig()
    with pytest.raises(FrontierError):
        simulate(trace, [ReplicaSpec(cfg, LinearCost(), role="prefill")])
    with pytest.raises(FrontierError):
        simulate(trace, [ReplicaSpec(cfg, LinearCost(), role="both"), ReplicaSpec(cfg, LinearCost(), role="decode")])
    with pytest.raises(FrontierError):
        ReplicaSpec(cfg, LinearCost(), role="attention")


def test_prefix_affinity_balances_a_hot_prefix():
    from frontier_calib.sim.router import PrefixAffinity
    # Everyone shares one system prompt: pure affinity piles all onto one replica, the guarded one spreads load.
    trace = shared_prefix_trace(1, 300, system_tokens=1024, question_tokens=64, output_tokens=64, rate=40.0,
                                hash_block_size=16, seed=4)
    pure = simulate(trace, _specs(3), router=PrefixAffinity(balance_abs_threshold=None, cache_threshold=0.0))
    guarded = simulate(trace, _specs(3), router=PrefixAffinity(balance_abs_threshold=8))
    assert pure.requests["replica"].nunique() == 1
    assert guarded.requests["replica"].nunique() == 3
    assert guarded.summary["mean_e2el_ms"] < pure.summary["mean_e2el_ms"]
