"""Attention-DP ranks in lockstep (frontier_calib/sim/lockstep.py): a step of a group ends with its slowest rank."""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.testing import make_trace, poisson_trace


def _cfg(**kw):
    base = dict(policy="vllm", max_num_batched_tokens=512, max_num_seqs=64, max_model_len=8192, block_size=16,
                num_kv_blocks=4000)
    base.update(kw)
    return SchedulerConfig(**base)


def _ranks(lockstep: str | None, n: int = 2, cost=None):
    cost = cost or LinearCost()
    return [ReplicaSpec(_cfg(), cost, name=f"r0.dp{i}", lockstep=lockstep) for i in range(n)]


def test_a_short_decode_waits_for_the_other_ranks_long_prefill():
    # rank 0 (round robin: the first request) gets a 4,000-token prompt, chunked over 8 steps of 512 tokens;
    # rank 1 gets a 10-token prompt that decodes 20 tokens at once. In lockstep every one of rank 1's steps
    # lasts as long as rank 0's prefill chunk in the same step.
    trace = make_trace(np.array([0.0, 0.0]), np.array([4000, 10]), np.array([2, 20]))
    free = simulate(trace, _ranks(None))
    locked = simulate(trace, _ranks("r0"))
    cost = LinearCost()
    chunk = cost.iteration_time(np.array([512]), np.array([512]), 0, 0)   # the cheapest chunk of rank 0
    short_free = free.requests.set_index("request_id").loc[1]
    short_locked = locked.requests.set_index("request_id").loc[1]
    # on its own, the short request's first token comes after one small prefill step
    assert short_free["ttft_s"] < 0.5 * chunk
    # in lockstep its first step lasts at least as long as rank 0's first chunk
    assert short_locked["ttft_s"] >= chunk
    assert short_locked["e2e_s"] > 2 * short_free["e2e_s"]
    # the long request is the slowest rank in every step: lockstep does not change its timing
    long_free = free.requests.set_index("request_id").loc[0]
    long_locked = locked.requests.set_index("request_id").loc[0]
    assert long_locked["ttft_s"] == pytest.approx(long_free["ttft_s"], rel=1e-9)
    g = locked.stats["lockstep_groups"]
    assert g[0]["ranks"] == 2 and g[0]["wait_s"] > 0
    assert "lockstep_groups" not in free.stats


def test_lockstep_never_makes_requests_faster_and_resolves_everything():
    trace = poisson_trace(200, 30.0, 600, 120, seed=4)
    free = simulate(trace, _ranks(None, 4))
    locked = simulate(trace, _ranks("r0", 4), check=True)
    assert (locked.requests["status"] == "ok").all()
    for key in ("mean_ttft_ms", "mean_tpot_ms", "mean_e2el_ms"):
        assert locked.summary[key] > free.summary[key], key
    # deterministic
    again = simulate(trace, _ranks("r0", 4))
    assert again.summary == locked.summary


def test_a_single_rank_name_is_no_group():
    trace = poisson_trace(50, 10.0, 300, 50, seed=1)
    alone = simulate(trace, [ReplicaSpec(_cfg(), LinearCost(), lockstep="r0")])
    plain = simulate(trace, [ReplicaSpec(_cfg(), LinearCost())])
    assert alone.summary == plain.summary
    assert "lockstep_groups" not in alone.stats


def test_deployment_ranks_share_a_lockstep_name():
    from frontier_calib.modes.build import rank_replica_specs

    specs = rank_replica_specs(2, 4, _cfg(), LinearCost(), "d")
    assert [s.lockstep for s in specs] == ["d0"] * 4 + ["d1"] * 4
    assert all(s.lockstep is None for s in rank_replica_specs(3, 1, _cfg(), LinearCost(), "r"))


class _MoECost(LinearCost):
    """LinearCost whose token term is an FFN share priced, like IterationCostModel, as if every one of ``dp``
    ranks had the rank's token count (ffn_ms(n) = per_token_ms x dp x n)."""

    def ffn_ms(self, n: int) -> float:
        return 0.02 * 2 * n


def test_a_prefill_step_prices_the_experts_at_all_ranks_tokens():
    """With a prefill chunk on one rank the MoE/FFN share of the common step is priced at the tokens of all
    ranks together (eager steps carry each rank's own tokens), not at attention_dp x the chunk."""
    trace = make_trace(np.array([0.0]), np.array([400]), np.array([1]))
    chunk = LinearCost().iteration_time(np.array([400]), np.array([400]), 0, 0)
    plain = simulate(trace, _ranks("r0", 2, LinearCost()))          # no ffn_ms lookup: the rank's own price
    assert plain.requests["first_token_s"].iloc[0] == pytest.approx(chunk, rel=1e-12)
    cost = _MoECost()
    res = simulate(trace, _ranks("r0", 2, cost))
    # 400 tokens over 2 ranks: the experts see 400 tokens (200 per rank), not 2 x 400
    expect = chunk + (cost.ffn_ms(200) - cost.ffn_ms(400)) / 1e3
    assert res.requests["first_token_s"].iloc[0] == pytest.approx(expect, rel=1e-12)
    assert expect < chunk
