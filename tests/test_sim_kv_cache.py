"""KV block manager and prefix caches: layouts, hits, eviction order, accounting."""

from __future__ import annotations

import pytest

from frontier_calib.sim.kv_cache import KVCacheManager
from frontier_calib.sim.radix_cache import RadixCache
from frontier_calib.sim.requests import build_layout


def test_layout_multiple_block_size():
    lay = build_layout([7, 8, 9], 1100, hash_block_size=512, block_size=16)
    assert lay.keys == (7, 8, 9) and lay.ends == (32, 64, 68)
    assert lay.n_blocks == 68


def test_layout_engine_blocks_larger_than_hash_blocks():
    # A 64-token engine block belongs to the 16-token hash block holding its last token.
    lay = build_layout(list(range(13)), 200, hash_block_size=16, block_size=64)
    assert lay.keys == (3, 7, 11) and lay.ends == (1, 2, 3)


def test_layout_not_a_multiple():
    lay = build_layout([0, 1, 2, 3, 4], 100, hash_block_size=24, block_size=16)
    assert lay.keys == (0, 1, 2, 3) and lay.ends == (1, 3, 4, 6)


def test_layout_truncated_hashes_and_short_prompts():
    assert build_layout([5], 1000, hash_block_size=16, block_size=16).ends == (1,)
    assert build_layout([5], 10, hash_block_size=16, block_size=16) is None    # no full block
    assert build_layout([], 100, hash_block_size=16, block_size=16) is None
    assert build_layout(None, 100, hash_block_size=16, block_size=16) is None


def _compute(c, r, lay, tokens, bs):
    """Admit request r, allocate and register blocks for ``tokens`` prompt tokens; returns blocks held."""
    hit = c.lookup(r, lay, tokens)
    c.admit(r, lay, hit)
    need = -(-tokens // bs) - hit.blocks
    c.take(need)
    c.register_full(r, tokens // bs)
    return hit, hit.blocks + need


@pytest.mark.parametrize("cls", [KVCacheManager, RadixCache])
def test_hit_is_capped_and_shared_blocks_counted_once(cls):
    bs = 16
    c = cls(100, bs)
    lay = build_layout([1, 2], 64, hash_block_size=32, block_size=bs)   # 4 shareable blocks
    hit_a, held_a = _compute(c, 0, lay, 64, bs)
    assert hit_a.blocks == 0 and held_a == 4 and c.num_used == 4
    # Same prompt: all 4 blocks cached but at least one token must be computed -> 3 blocks hit.
    hit_b = c.lookup(1, lay, 64)
    assert hit_b.blocks == 3 and hit_b.pinned == 0     # in use by request 0, nothing free gets pinned
    assert c.units[2].refs == 1
    c.admit(1, lay, hit_b)
    c.take(1)                                          # its own copy of the last block
    c.register_full(1, 4)
    # vLLM keeps the duplicate; SGLang's insert switches to the tree's copy and frees its own.
    assert c.num_used == (4 if cls is RadixCache else 5)
    c.check({0: 4, 1: 4})
    c.release(0, 4, keep_upto=4)
    c.release(1, 4, keep_upto=4)
    assert c.num_used == 0 and c.evictable == 4        # the unit stays cached, free
    c.check({})
    hit_c = c.lookup(2, lay, 100)
    assert hit_c.blocks == 4 and hit_c.pinned == 4


def test_lru_evicts_least_recently_freed_deepest_first():
    bs = 16
    c = KVCacheManager(8, bs)
    lay_a = build_layout([1, 2], 64, hash_block_size=32, block_size=bs)
    lay_b = build_layout([3, 4], 64, hash_block_size=32, block_size=bs)
    _compute(c, 0, lay_a, 64, bs)
    _compute(c, 1, lay_b, 64, bs)
    c.release(0, 4, keep_upto=4)     # freed first -> evicted first
    c.release(1, 4, keep_upto=4)
    assert c.clean == 0 and c.evictable == 8
    c.take(2)                        # takes request 0's deepest unit (hash 2)
    assert c.lookup(9, lay_a, 100).blocks == 2
    assert c.lookup(9, lay_b, 100).blocks == 4
    c.take(1)                        # trims unit 1 from its back
    assert c.lookup(9, lay_a, 100).blocks == 1
    assert c.num_used == 3

def test_never_used_blocks_go_before_cached_ones():
    bs = 16
    c = KVCacheManager(10, bs)
    lay = build_layout([1, 2], 64, hash_block_size=32, block_size=bs)
    _compute(c, 0, lay, 64, bs)
    c.release(0, 4, keep_upto=4)
    c.take(6)                        # 6 never-used blocks remain: no eviction
    assert c.evicted_blocks == 0 and c.lookup(1, lay, 100).blocks == 4
    c.take(1)
    assert c.evicted_blocks == 1


def test_preempted_request_hits_its_own_blocks():
    bs = 16
    c = KVCacheManager(20, bs)
    hit = c.lookup(0, None, 50)
    assert hit.blocks == 0
    c.admit(0, None, hit)
    c.take(4)                        # 50 prompt tokens + 10 generated -> 60 tokens computed, 4 blocks
    c.release(0, 4, keep_upto=60 // bs, reusable=True)
    assert c.runs[0].cached == 3
    again = c.lookup(0, None, 61)    # recompute prompt + generated tokens
    assert again.blocks == 3
    assert c.lookup(1, None, 61).blocks == 0   # nobody else can use them
    c.admit(0, None, again)
    assert 0 not in c.runs and c.num_used == 3
    c.check({0: 3})


def test_no_prefix_caching():
    c = KVCacheManager(10, 16, enable_prefix_caching=False)
    lay = build_layout([1, 2], 64, hash_block_size=32, block_size=16)
    _compute(c, 0, lay, 64, 16)
    c.release(0, 4, keep_upto=4)
    assert c.clean == 10 and c.lookup(1, lay, 100).blocks == 0


def test_over_capacity_is_an_error():
    c = KVCacheManager(4, 16)
    c.take(4)
    with pytest.raises(AssertionError):
        c.take(1)


def test_radix_evicts_leaves_before_shared_parent():
    bs = 16
    c = RadixCache(8, bs)
    # Two prompts sharing the first hash block (2 engine blocks), each with its own second block.
    lay_a = build_layout([1, 2], 64, hash_block_size=32, block_size=bs)
    lay_b = build_layout([1, 3], 64, hash_block_size=32, block_size=bs)
    _compute(c, 0, lay_a, 64, bs)
    _compute(c, 1, lay_b, 64, bs)
    assert c.num_used == 6           # 2 shared + 2 + 2
    c.release(1, 4, keep_upto=4)
    c.release(0, 4, keep_upto=4)     # parent unit 1 freed last (most recent) but it has children
    assert c.evictable == 6
    c.take(2 + 2)                    # 2 never-used, then one whole leaf (unit 3, least recently used)
    assert c.lookup(9, lay_b, 100).blocks == 2
    assert c.lookup(9, lay_a, 100).blocks == 4
    c.take(2)                        # next leaf: unit 2; the shared parent survives
    assert c.lookup(9, lay_a, 100).blocks == 2
    c.take(2)                        # now the parent is a leaf
    assert c.lookup(9, lay_a, 100).blocks == 0
    assert c.num_used == 8 and c.evictable == 0


@pytest.mark.parametrize("cls", [KVCacheManager, RadixCache])
def test_unused_tail_of_a_shared_unit_is_free(cls):
    # Request 0 caches a 4-block unit; request 1 (shorter prompt, same hash id) uses only 2 of its blocks.
    bs = 16
    c = cls(10, bs)
    long = build_layout([7], 64, hash_block_size=64, block_size=bs)
    short = build_layout([7], 40, hash_block_size=64, block_size=bs)
    _compute(c, 0, long, 64, bs)
    c.release(0, 4, keep_upto=4)
    hit = c.lookup(1, short, 40)
    assert hit.blocks == 2 and hit.pinned == 2
    c.admit(1, short, hit)
    assert c.num_used == 2 and c.evictable == 2      # the unit's tail stays cached but free
    c.take(c.num_free)                               # a lone request can still use every other block
    assert c.num_used == 10 and c.units[7].cached == 2


def test_vllm_keeps_duplicates_and_starts_fresh_units():
    bs = 16
    c = KVCacheManager(20, bs)
    lay = build_layout([1, 2], 64, hash_block_size=32, block_size=bs)
    for r in (0, 1):                                 # both miss: two requests computing the same prompt at once
        c.admit(r, lay, c.lookup(r, lay, 64))
        c.take(4)
    c.register_full(0, 4)
    c.register_full(1, 4)                            # request 1's copy is a private duplicate
    assert c.num_used == 8 and c.units[1].cached == 2 and c.units[2].cached == 2
    c.check({0: 4, 1: 4})
