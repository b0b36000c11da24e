"""``IterationCostModel.decode_stretches`` (several ranks' decode stretches priced at once) equals pricing each rank
with ``decode_times``, bit for bit; lockstep replays give the same results with it and without it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from frontier_calib.cost.iteration import IterationCostModel
from frontier_calib.sim import ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.testing import make_trace


def _rows_one_by_one(cost, ns, kv1s, k):
    return np.array([cost.decode_times(n, kv1 + n * np.arange(k, dtype=np.int64)) for n, kv1 in zip(ns, kv1s)])


@pytest.mark.parametrize("engine,overlap", [("vllm", None), ("trtllm", None), ("sglang", None), ("vllm", False),
                                            ("trtllm", False)])   # trtllm graphs exact sizes only: graphed and
# eager rows; every engine overlaps CPU and GPU work by default (a step's floor), overlap=False adds the CPU time
def test_rows_equal_decode_times_bit_for_bit(cost, worker, engine, overlap):
    model = IterationCostModel(replace(worker, engine=engine, overlap=overlap), None, max_tokens=cost.max_tokens,
                               max_seqs=cost.max_seqs, max_model_len=cost.max_model_len, tables=cost.tables)
    rng = np.random.default_rng(0)
    grid = model.tables["kv_grid"]
    for trial in range(40):
        r = int(rng.integers(1, 12))
        k = int(rng.integers(1, 300))
        ns = rng.integers(1, model.max_seqs + 1, r)
        ns[0] = 1 if trial % 2 else model.max_seqs
        # mean KV below 1, on grid points, between them, past the grid's end
        kv1s = [int(n * rng.choice([0, 1, grid[rng.integers(len(grid))], rng.integers(2, 3 * grid[-1])]))
                for n in ns]
        got = model.decode_stretches(ns.tolist(), kv1s, k)
        want = _rows_one_by_one(model, ns.tolist(), kv1s, k)
        assert got.shape == (r, k)
        assert np.array_equal(got, want), (engine, overlap, trial)


def test_batch_outside_the_table_is_left_to_the_caller(cost):
    assert cost.decode_stretches([1, cost.max_seqs + 1], [10, 10], 4) is None


class _OneByOne:
    """The same cost model without ``decode_stretches``: lockstep groups price rank by rank."""

    def __init__(self, base):
        self.base = base
        self.schedules_ahead = base.schedules_ahead   # the same engine (plans one step ahead when it overlaps)

    def iteration_time(self, *a):
        return self.base.iteration_time(*a)

    def decode_times(self, *a):
        return self.base.decode_times(*a)

    def ffn_ms(self, n):
        return self.base.ffn_ms(n)


def test_lockstep_replay_same_with_and_without_batched_pricing(cost):
    rng = np.random.default_rng(3)
    n = 160
    trace = make_trace(np.cumsum(rng.exponential(0.05, n)), rng.integers(20, 900, n), rng.integers(2, 200, n))
    cfg = SchedulerConfig(policy="sglang", block_size=16, max_num_seqs=32, max_model_len=4096,
                          max_num_batched_tokens=1024, num_kv_blocks=900)
    out = []
    for c in (cost, _OneByOne(cost)):
        specs = [ReplicaSpec(cfg, c, lockstep="w0") for _ in range(4)]
        out.append(simulate(trace, specs, router="round_robin"))
    a, b = out
    pd.testing.assert_frame_equal(a.requests, b.requests, check_exact=True)
    assert a.stats["lockstep_groups"] == b.stats["lockstep_groups"]
    assert a.stats["cost_calls"] == b.stats["cost_calls"]
