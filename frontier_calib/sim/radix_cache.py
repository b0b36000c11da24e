"""SGLang-style radix prefix cache: the same block accounting as :class:`KVCacheManager`, different eviction.

The cached units form a radix tree: each edge is one trace hash block's run of engine blocks (hash ids are
prefix-chained, so a unit's parent is the unit before it in any prompt that holds it), and a preempted or finished
request's own blocks hang below its last unit as a leaf. As in SGLang's ``RadixCache``:

* a request locks the nodes of its path (what it uses of each unit is pinned; it always uses its path from the
  root contiguously, so a locked node never hangs below an evictable one);
* eviction removes whole **leaves** (a unit's unlocked tail counts as the leaf it would be split into), least
  recently used first; a parent becomes a candidate once its last child is gone, so a shared prefix outlives every
  branch below it;
* computed tokens enter the tree after the step that computed them (``cache_unfinished_req``), so requests in the
  same prefill batch do not share; a request that computed something the tree already holds switches to the
  tree's copy and frees its own (insert-time de-duplication).

Removing a whole leaf may free more blocks than asked; the surplus becomes never-used space.
"""

from __future__ import annotations

import heapq

from .kv_cache import UNIT, Entry, KVCacheManager


class RadixCache(KVCacheManager):
    """Prefix cache with radix-tree leaf eviction (SGLang flavour)."""

    dedup = True

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True,
                 cache_finished: bool = True):
        super().__init__(num_blocks, block_size, enable_prefix_caching, cache_finished)
        self._heap: list = []        # (stamp, seq, entry) of candidate leaves; stale items skipped on pop
        # entries with free blocks (counted in ``evictable``) carry ``Entry.free``
        self._tick = 0
        self._seq = 0

    def _to_free(self, e: Entry) -> None:
        self._tick += 1
        e.stamp = self._tick
        e.free = True
        if e.children == 0:   # a leaf: a candidate for eviction
            self._seq += 1
            heapq.heappush(self._heap, (e.stamp, self._seq, e))

    def _to_free_all(self, entries: list) -> None:
        tick, seq, heap = self._tick, self._seq, self._heap
        for e in entries:
            tick += 1
            e.stamp = tick
            e.free = True
            if e.children == 0:
                seq += 1
                heapq.heappush(heap, (tick, seq, e))
        self._tick, self._seq = tick, seq

    def _unfree(self, e: Entry) -> None:
        e.free = False

    def _child_gone(self, parent: Entry) -> None:
        if parent.children == 0 and parent.free:
            self._seq += 1
            heapq.heappush(self._heap, (parent.stamp, self._seq, parent))

    def _evict(self, n: int) -> None:
        heap, pop, forget, units = self._heap, heapq.heappop, self._forget, self.units
        evicted = 0
        while n > 0:
            stamp, _, e = pop(heap)
            if e.children or e.stamp != stamp or not e.free:
                continue   # stale: re-used, grew children, or already gone
            while True:
                take = e.cached - e.pin
                e.cached = e.pin
                evicted += take
                n -= take
                e.free = False
                if e.cached:
                    break
                parent = e.parent
                if (n > 0 and parent is not None and parent.children == 1 and parent.stamp == e.stamp + 1
                        and parent.free):
                    # The parent was freed right after it (one request's units, freed deepest first): once
                    # this leaf is gone it is the least recently freed leaf, the next the heap would give.
                    if e.kind == UNIT:   # forget(e, False), inlined
                        if units.get(e.key) is e:
                            del units[e.key]
                        parent.children = 0
                        e.parent = None
                    else:
                        forget(e, False)
                    e = parent
                    continue
                forget(e)   # a parent left without children becomes a candidate leaf
                break
        self.evictable -= evicted
        self.evicted_blocks += evicted
        if n < 0:   # the last leaf was larger than needed
            self.clean += -n

    def _free_entries(self):
        # a free entry is a unit, a preempted request's run, or a finished request's junk (a leaf: in the heap)
        live = list(self.units.values()) + list(self.runs.values()) + [e for _, _, e in self._heap]
        return [e for e in dict.fromkeys(live) if e.free]
