"""Paged KV cache of one replica: blocks of ``block_size`` tokens, automatic prefix caching, LRU eviction.

Semantics follow vLLM's automatic prefix caching (APC):

* Only full blocks are cached. A hit gives ``matched full blocks x block_size`` cached tokens, capped so that at
  least one prompt token is computed.
* A block is registered in the cache as soon as it is allocated for tokens that the scheduled step will compute
  (so a request scheduled later in the same step already hits it, as in vLLM V1).
* Freed blocks stay cached until their space is needed; eviction takes the least recently freed block first, and
  the blocks of one request are freed deepest-first, so its prefix survives longest.

Shareable content comes from trace ``hash_ids`` (see :class:`~frontier_calib.sim.requests.PrefixLayout`). To stay
fast on long prompts, blocks are grouped into *entries* instead of being tracked one by one:

* a **unit** holds the engine blocks of one trace hash block, cached from the front (``cached`` blocks);
  requests that use it hold a reference; an unreferenced unit is evictable and loses blocks from its back;
* a **run** holds the blocks of a preempted request beyond its shared prefix (its own prompt and output tokens):
  only that request can hit it, when it is re-admitted (recompute preemption then skips work, as in vLLM);
* a **junk** entry holds the full non-shareable blocks of a finished request: free, never hit, evicted in order
  (only when the trace has shareable content; otherwise they are plain free space).

Never-used blocks (``clean``) are handed out before any cached block is evicted; that is exactly vLLM's order, as its
free queue starts with all blocks and appends freed ones at the tail. Deviations from vLLM, all small: a unit stays
pinned as a whole while any request references it; the partial last block of a request and duplicate blocks
(the same prefix computed twice concurrently) are freed without being cached.

Counts: ``num_blocks == clean + evictable + num_used`` always; ``num_used <= num_blocks`` is asserted on every
allocation.
"""

from __future__ import annotations

from collections import OrderedDict

UNIT, RUN, JUNK = 0, 1, 2


class Entry:
    """A group of cached KV blocks: a prefix unit, a preempted request's run, or a finished request's junk."""

    __slots__ = ("kind", "key", "cached", "refs", "parent", "children", "stamp")

    def __init__(self, kind: int, key, cached: int, parent=None):
        self.kind, self.key, self.cached = kind, key, cached
        self.refs = 0
        self.parent = parent
        self.children = 0
        self.stamp = 0


class Hit:
    """Result of a prefix lookup: ``blocks`` cached blocks usable by the request (tokens = blocks x block_size),
    ``pinned`` currently-free blocks that admitting it would take out of the free pool."""

    __slots__ = ("blocks", "pinned", "units", "run", "n_shared", "trim")

    def __init__(self, blocks=0, pinned=0, units=(), run=None, n_shared=0, trim=None):
        self.blocks, self.pinned, self.units, self.run, self.n_shared = blocks, pinned, units, run, n_shared
        self.trim = trim


NO_HIT = Hit()


class _ReqKV:
    """The cache entries one request references, and how many of its block positions they back."""

    __slots__ = ("layout", "units", "n_shared", "reg_pos", "unit_idx")

    def __init__(self, layout):
        self.layout = layout
        self.units: list[Entry] = []
        self.n_shared = 0   # block positions backed by referenced units (not counted as the request's own)
        self.reg_pos = 0    # block positions [0, reg_pos) already matched or registered
        self.unit_idx = 0   # index of the unit holding block position reg_pos


class KVCacheManager:
    """Block accounting and prefix cache of one replica (vLLM flavour).

    The scheduler owns how many blocks each request holds (``RequestTable.held`` or the decode batch); this class
    owns where free blocks come from and which cached content survives.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True,
                 cache_finished: bool = True):
        self.num_blocks = int(num_blocks)
        self.block_size = int(block_size)
        self.enable_prefix_caching = bool(enable_prefix_caching)
        # Finished requests' own blocks only matter for eviction order next to shared units; with no shareable
        # content in the trace they are plain free space.
        self.cache_finished = bool(cache_finished)
        self.clean = self.num_blocks   # never-used blocks
        self.evictable = 0             # free blocks that still hold cached content
        self.units: dict = {}          # hash id -> unit Entry
        self.runs: dict = {}           # request row -> run Entry
        self.reqs: dict = {}           # request row -> _ReqKV
        self.max_used = 0
        self.hit_blocks = 0            # statistics
        self.evicted_blocks = 0
        self._lru: OrderedDict = OrderedDict()   # free entries, next victim first

    # ------------------------------------------------------------------ counts
    @property
    def num_free(self) -> int:
        """Blocks that can be allocated now (never used + evictable cached)."""
        return self.clean + self.evictable

    @property
    def num_used(self) -> int:
        return self.num_blocks - self.clean - self.evictable

    # ------------------------------------------------------------------ lookup / admit
    def lookup(self, r: int, layout, num_tokens: int) -> Hit:
        """Cached blocks at the start of request ``r`` (no side effects). ``num_tokens``: tokens to compute before
        the next sample (prompt, plus generated tokens after a preemption)."""
        if not self.enable_prefix_caching:
            return NO_HIT
        cap = (num_tokens - 1) // self.block_size
        if cap <= 0:
            return NO_HIT
        blocks = pinned = 0
        units = []
        trim = None
        complete = True
        if layout is not None:
            prev = 0
            get = self.units.get
            for key, end in zip(layout.keys, layout.ends):
                e = get(key)
                if e is None or e.cached == 0:
                    complete = False
                    break
                units.append(e)
                use = end - prev
                if e.cached < use:
                    use = e.cached
                    complete = False
                if blocks + use > cap:
                    use = cap - blocks
                blocks += use
                if e.refs == 0:
                    pinned += use
                    if use < e.cached:
                        trim = (e, use)   # a free unit used in part: its unused tail is let go on admission
                prev = end
                if not complete or blocks >= cap:
                    break
        run = None
        n_shared = blocks
        if complete and blocks < cap and self.runs:
            run = self.runs.get(r)
            if run is not None:
                use = min(run.cached, cap - blocks)
                blocks += use
                pinned += use
        if blocks == 0:
            return NO_HIT
        return Hit(blocks, pinned, units, run, n_shared, trim)

    def admit(self, r: int, layout, hit: Hit) -> None:
        """Start tracking request ``r`` on this replica and pin the blocks of ``hit`` (from :meth:`lookup`).
        The request then holds ``hit.blocks`` blocks."""
        if not self.enable_prefix_caching:
            return
        if layout is None and hit.run is None:
            return
        rec = _ReqKV(layout)
        self.reqs[r] = rec
        if hit.trim is not None:
            # Only the blocks this request uses get pinned; the rest of the free unit becomes plain free space
            # (vLLM would keep them cached; this keeps a lone request always admissible).
            e, use = hit.trim
            self.evictable -= e.cached - use
            self.clean += e.cached - use
            e.cached = use
        for e in hit.units:
            self._ref(e)
            rec.units.append(e)
        rec.n_shared = hit.n_shared
        rec.reg_pos = hit.n_shared
        if layout is not None:
            ends, k = layout.ends, 0
            while k < len(ends) and ends[k] <= rec.reg_pos:
                k += 1
            rec.unit_idx = k
        run = hit.run
        if run is not None:
            # The request takes back its own blocks; what it cannot use (beyond the cap) is plain free space.
            used = hit.blocks - hit.n_shared
            self._unfree(run)
            self.evictable -= run.cached
            self.clean += run.cached - used
            run.cached = 0
            self._forget(run)
        self.hit_blocks += hit.blocks
        self._note_used()

    # ------------------------------------------------------------------ allocate / register
    def take(self, n: int) -> None:
        """Allocate ``n`` blocks for a request's own use, evicting cached blocks if the never-used ones run out."""
        if n <= self.clean:
            self.clean -= n
        else:
            if n > self.clean + self.evictable:
                raise AssertionError(f"KV cache over capacity: asked {n} blocks, {self.num_free} free")
            n -= self.clean
            self.clean = 0
            self._evict(n)
        used = self.num_blocks - self.clean - self.evictable
        if used > self.max_used:
            self.max_used = used

    def register_full(self, r: int, full_blocks: int) -> None:
        """Cache the request's shareable blocks among its first ``full_blocks`` (which are now computed or being
        computed in the scheduled step). Blocks move from the request's own count into shared units."""
        rec = self.reqs.get(r)
        if rec is None or rec.layout is None:
            return
        lay = rec.layout
        hi_all = min(full_blocks, lay.ends[-1])
        p = rec.reg_pos
        if p >= hi_all:
            return
        keys, ends = lay.keys, lay.ends
        k = rec.unit_idx
        units = self.units
        while p < hi_all:
            start = ends[k - 1] if k else 0
            end = ends[k]
            hi = end if end < hi_all else hi_all
            key = keys[k]
            e = units.get(key)
            if e is None and p == start:
                parent = units.get(keys[k - 1]) if k else None
                e = units[key] = Entry(UNIT, key, 0, parent)
                if parent is not None:
                    parent.children += 1
            if e is not None and e.cached == p - start:
                if not rec.units or rec.units[-1] is not e:
                    self._ref(e)
                    rec.units.append(e)
                e.cached += hi - p
                rec.n_shared += hi - p
            # else: this content is already cached (or a gap was evicted): the request keeps private duplicates.
            p = hi
            if p == end:
                k += 1
        rec.reg_pos = p
        rec.unit_idx = k

    # ------------------------------------------------------------------ release
    def release(self, r: int, held: int, keep_upto: int = 0, reusable: bool = False) -> None:
        """Free the ``held`` blocks of request ``r``. Its own full blocks below position ``keep_upto`` stay cached:
        as a run it can hit when re-admitted (``reusable``, after a preemption) or as junk (finished)."""
        rec = self.reqs.pop(r, None)
        if not self.enable_prefix_caching:
            self.clean += held
            return
        n_shared = rec.n_shared if rec is not None else 0
        start = rec.layout.ends[-1] if (rec is not None and rec.layout is not None) else 0
        own = held - n_shared
        keep = keep_upto - start
        if keep < 0:
            keep = 0
        if keep > own:
            keep = own
        if not reusable and not self.cache_finished:
            keep = 0
        self.clean += own - keep
        parent = rec.units[-1] if (rec is not None and rec.units) else None
        if keep:
            e = Entry(RUN if reusable else JUNK, r, keep, parent)
            if parent is not None:
                parent.children += 1
            if reusable:
                old = self.runs.get(r)
                if old is not None:   # a stale run of an earlier preemption: plain free space now
                    self._unfree(old)
                    self.evictable -= old.cached
                    self.clean += old.cached
                    old.cached = 0
                    self._forget(old)
                self.runs[r] = e
            self.evictable += keep
            self._to_free(e)
        if rec is not None:
            for e in reversed(rec.units):   # deepest first: evicted before the shallower prefix
                e.refs -= 1
                if e.refs == 0:
                    self.evictable += e.cached
                    self._to_free(e)

    # ------------------------------------------------------------------ internals (eviction policy)
    def _ref(self, e: Entry) -> None:
        if e.refs == 0 and e.cached:
            self._unfree(e)
            self.evictable -= e.cached
        e.refs += 1

    def _note_used(self) -> None:
        used = self.num_blocks - self.clean - self.evictable
        if used > self.max_used:
            self.max_used = used

    def _to_free(self, e: Entry) -> None:
        """``e`` became unreferenced: it joins the free pool as the most recently freed entry."""
        self._lru[e] = None

    def _unfree(self, e: Entry) -> None:
        """``e`` leaves the free pool (hit or forgotten)."""
        self._lru.pop(e, None)

    def _evict(self, n: int) -> None:
        """Take ``n`` cached free blocks, least recently freed first, from the back of each entry."""
        lru = self._lru
        self.evicted_blocks += n
        while n > 0:
            e = next(iter(lru))
            t = e.cached if e.cached <= n else n
            e.cached -= t
            self.evictable -= t
            n -= t
            if e.cached == 0:
                del lru[e]
                self._forget(e)

    def _forget(self, e: Entry) -> None:
        """Drop an entry that holds no blocks any more."""
        if e.kind == UNIT:
            if self.units.get(e.key) is e:
                del self.units[e.key]
        elif e.kind == RUN:
            if self.runs.get(e.key) is e:
                del self.runs[e.key]
        if e.parent is not None:
            e.parent.children -= 1
            e.parent = None

    # ------------------------------------------------------------------ checks
    def check(self, own_blocks: dict) -> None:
        """Assert the block counts add up. ``own_blocks``: request row -> blocks it holds on this replica."""
        assert self.clean >= 0 and self.evictable >= 0, (self.clean, self.evictable)
        entries = list(self.units.values()) + list(self.runs.values())
        free_cached = sum(e.cached for e in self._free_entries())
        assert free_cached == self.evictable, (free_cached, self.evictable)
        pinned = sum(e.cached for e in self.units.values() if e.refs > 0)
        own = 0
        for r, held in own_blocks.items():
            rec = self.reqs.get(r)
            own += held - (rec.n_shared if rec is not None else 0)
            assert held >= (rec.n_shared if rec is not None else 0)
        assert pinned + own == self.num_used, (pinned, own, self.num_used)
        assert 0 <= self.num_used <= self.num_blocks
        for e in entries:
            assert e.cached >= 0 and e.refs >= 0

    def _free_entries(self):
        return list(self._lru)
