"""The closed-form decode batch against brute force."""

from __future__ import annotations

import random

from frontier_calib.sim.decode_batch import DecodeBatch


def _brute_new(d, s, k):
    bs = d.bs
    return sum(-(-(m[0] + s + k) // bs) - -(-(m[0] + s) // bs) for m in d.members.values())


def test_block_counts_match_brute_force():
    rng = random.Random(1)
    for _ in range(300):
        bs = rng.choice([1, 3, 7, 16])
        d = DecodeBatch(bs)
        s0 = rng.randint(0, 50)
        for r in range(rng.randint(1, 12)):
            d.add(r, rng.randint(1, 100), 1, 1000, s0)
        if rng.random() < 0.5:
            d.remove(0, s0)
        s = s0 + rng.randint(0, 20)
        for k in range(40):
            assert d.new_blocks(s, k) == _brute_new(d, s, k)
        assert d.step_blocks(s) == _brute_new(d, s, 1)
        for free in range(60):
            k = d.steps_fitting(s, free)
            assert _brute_new(d, s, k) <= free < _brute_new(d, s, k + 1) or not d.members
        assert d.blocks(s) == sum(-(-(m[0] + s) // bs) for m in d.members.values())


def test_completion_and_state():
    d = DecodeBatch(16)
    d.add(7, kv_tokens=100, gen=1, n_out=5, s=10)      # finishes after 4 more decode steps
    d.add(8, kv_tokens=50, gen=3, n_out=4, s=12)       # 1 more step
    assert d.next_finish() == 13
    assert d.kv_sum(13) == (100 + 3) + (50 + 1)
    assert d.finishing(13) == [8]
    assert d.remove(8, 13) == (51, 4, 12, 3)
    assert d.next_finish() == 14
    assert d.state(7, 14) == (104, 5)
    assert d.remaining_sum(12) == 2
