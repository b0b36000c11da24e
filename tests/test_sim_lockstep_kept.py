"""Lockstep ranks keep their plan across common step ends when their batch did not change (sim/lockstep.py,
``LockstepGroup.continues``): the replay is the same, bit for bit, as re-planning every rank at every common step
end, and the same as stepping one step at a time. Also the fast paths of the PD replay (prefix layouts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig
from frontier_calib.sim.disagg import KVTransferSpec
from frontier_calib.sim.engine import _Replay
from frontier_calib.sim.links import LinkSpec
from frontier_calib.sim.requests import PrefixLayout, build_layout
from frontier_calib.sim.testing import make_trace

TIME_COLUMNS = ["arrival_s", "scheduled_s", "first_token_s", "completion_s", "itl_mean_s", "itl_p99_s",
                "itl_max_s"]


def _conversations(n: int, seed: int, hbs: int = 64, concurrency=None):
    """Multi-turn conversations: each turn's prompt extends the previous turn's (shared hash ids)."""
    rng = np.random.default_rng(seed)
    arrival, inp, out, hashes = [], [], [], []
    t, next_id, convs = 0.0, 1, []
    for _ in range(n):
        t += float(rng.exponential(0.02))
        if convs and rng.random() < 0.6:
            ids = convs[int(rng.integers(len(convs)))]
        else:
            ids = []
            convs.append(ids)
        grow = int(rng.integers(1, 6))
        ids.extend(range(next_id, next_id + grow))
        next_id += grow
        arrival.append(t)
        inp.append(len(ids) * hbs - int(rng.integers(0, hbs)))
        out.append(int(rng.integers(2, 160)))
        hashes.append(list(ids))
    return make_trace(np.array(arrival), np.array(inp), np.array(out), hash_ids=hashes, hash_block_size=hbs,
                      concurrency=concurrency)


def _pd(policy: str, cost, ranks: int = 4, kv_blocks: int = 400):
    pre = SchedulerConfig(policy=policy, block_size=16, max_num_seqs=16, max_model_len=4096,
                          max_num_batched_tokens=1024, num_kv_blocks=3000)
    dec = SchedulerConfig(policy=policy, block_size=16, max_num_seqs=24, max_model_len=4096,
                          max_num_batched_tokens=256, num_kv_blocks=kv_blocks)
    link = KVTransferSpec(2e4, LinkSpec("l0", 5e9, 1e-5))
    return ([ReplicaSpec(pre, cost, role="prefill", name="p0", kv_transfer=link)]
            + [ReplicaSpec(dec, cost, role="decode", name=f"d0.dp{i}", lockstep="d0") for i in range(ranks)])


def _colocated(policy: str, cost, ranks: int = 4):
    cfg = SchedulerConfig(policy=policy, block_size=16, max_num_seqs=12, max_model_len=4096,
                          max_num_batched_tokens=512, num_kv_blocks=500)
    return [ReplicaSpec(cfg, cost, name=f"w0.dp{i}", lockstep="w0") for i in range(ranks)]


def _replay(trace, specs, router, *, keep=True, fast_forward=True):
    replay = _Replay(trace, specs, router, 0, False, False, fast_forward, True)   # check: KV after every step
    for g in replay.groups:
        g.defer = g.defer and keep
    return replay.run()


def _without_wall(stats):
    if isinstance(stats, dict):
        return {k: _without_wall(v) for k, v in stats.items() if "wall" not in k and k != "kept_plans"}
    if isinstance(stats, list):
        return [_without_wall(v) for v in stats]
    return stats


def _specs(policy, mode, cost):
    return _pd(policy, cost) if mode == "pd" else _colocated(policy, cost)


CASES = [
    ("sglang", "pd", {"prefill": "round_robin", "decode": "least_outstanding"}),
    ("sglang", "pd", {"prefill": "round_robin", "decode": "kv_aware"}),
    ("vllm", "pd", {"prefill": "round_robin", "decode": "round_robin"}),
    ("trtllm", "pd", {"prefill": "round_robin", "decode": "least_outstanding"}),
    ("sglang", "colocated", "round_robin"),
    ("vllm", "colocated", "prefix_affinity"),
]


@pytest.mark.parametrize("policy,mode,router", CASES)
def test_kept_plans_equal_replanning_every_rank_bit_for_bit(policy, mode, router):
    cost = LinearCost()
    trace = _conversations(260, seed=5)
    specs = _specs(policy, mode, cost)
    kept = _replay(trace, specs, router)
    plain = _replay(trace, specs, router, keep=False)
    assert kept.stats["lockstep_groups"][0]["kept_plans"] > 0          # the fast path ran
    assert plain.stats["lockstep_groups"][0]["kept_plans"] == 0
    pd.testing.assert_frame_equal(kept.requests, plain.requests, check_exact=True)
    assert kept.summary == plain.summary or all(
        x == y or (x != x and y != y) for x, y in zip(kept.summary.values(), plain.summary.values()))
    # steps, busy time, KV blocks used and evicted, cost calls, waiting on the slowest rank: all the same
    assert _without_wall(kept.stats) == _without_wall(plain.stats)


@pytest.mark.parametrize("policy,mode,router", CASES[:1] + CASES[4:5])
def test_kept_plans_match_one_step_at_a_time(policy, mode, router):
    cost = LinearCost()
    trace = _conversations(200, seed=9)
    specs = _specs(policy, mode, cost)
    fast = _replay(trace, specs, router)
    slow = _replay(trace, specs, router, fast_forward=False)
    assert fast.stats["lockstep_groups"][0]["kept_plans"] > 0
    pd.testing.assert_series_equal(fast.requests["replica"], slow.requests["replica"])
    for col in TIME_COLUMNS:
        np.testing.assert_allclose(fast.requests[col], slow.requests[col], rtol=1e-9, atol=1e-9)
    assert fast.stats["steps"] == slow.stats["steps"]
    assert fast.stats["cost_calls"] < slow.stats["cost_calls"]


def test_kept_plans_with_decode_backpressure_and_closed_loop_clients():
    """Decode ranks short of KV blocks (transfers held back until blocks free up) and clients sending their next request
    when one ends: the kept plans still equal re-planning."""
    cost = LinearCost()
    trace = _conversations(220, seed=2, concurrency=24)
    specs = _pd("sglang", cost, ranks=3, kv_blocks=90)
    kept = _replay(trace, specs, {"prefill": "round_robin", "decode": "least_outstanding"})
    plain = _replay(trace, specs, {"prefill": "round_robin", "decode": "least_outstanding"}, keep=False)
    assert kept.stats["lockstep_groups"][0]["kept_plans"] > 0
    assert kept.stats["disaggregation"]["kv_backpressure_s"]["max"] > 0   # transfers waited for decode KV
    pd.testing.assert_frame_equal(kept.requests, plain.requests, check_exact=True)
    assert _without_wall(kept.stats) == _without_wall(plain.stats)


def test_real_cost_model_prices_kept_ranks_the_same(cost):
    """With the fitted cost model (batched ``decode_stretches`` pricing of the ranks) as in the PD benchmark."""
    trace = _conversations(160, seed=11)
    specs = _pd("sglang", cost, ranks=4, kv_blocks=2000)
    router = {"prefill": "round_robin", "decode": "least_outstanding"}
    kept = _replay(trace, specs, router)
    plain = _replay(trace, specs, router, keep=False)
    assert kept.stats["lockstep_groups"][0]["kept_plans"] > 0
    pd.testing.assert_frame_equal(kept.requests, plain.requests, check_exact=True)
    assert _without_wall(kept.stats) == _without_wall(plain.stats)


def _layout_by_definition(hash_ids, input_tokens, hbs, bs):
    """PrefixLayout from its docstring: engine block b (tokens [b bs, (b+1) bs)) belongs to the hash block holding
    its last token; only full blocks inside min(input_tokens, len(hash_ids) hbs) tokens count."""
    covered = min(input_tokens, len(hash_ids) * hbs)
    keys, ends, last = [], [], None
    for b in range(covered // bs):
        k = ((b + 1) * bs - 1) // hbs   # the hash block holding the engine block's last token
        if k == last:
            ends[-1] = b + 1
        else:
            keys.append(hash_ids[k])
            ends.append(b + 1)
            last = k
    return PrefixLayout(tuple(keys), tuple(ends)) if keys else None


@pytest.mark.parametrize("hbs,bs", [(512, 16), (64, 16), (16, 16), (64, 1), (24, 8), (8, 16), (20, 16)])
def test_prefix_layout_matches_its_definition(hbs, bs):
    rng = np.random.default_rng(hbs * 100 + bs)
    for _ in range(300):
        m = int(rng.integers(1, 40))
        ids = [int(x) for x in rng.integers(1, 10**9, m)]
        n_in = int(rng.integers(1, m * hbs + 3 * hbs))
        assert build_layout(ids, n_in, hbs, bs) == _layout_by_definition(ids, n_in, hbs, bs), (ids, n_in)
