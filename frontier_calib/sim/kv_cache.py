"""Paged KV cache of one replica: blocks of ``block_size`` tokens, automatic prefix caching, LRU eviction.

Semantics follow vLLM's automatic prefix caching (APC):

* Only full blocks are cached. A hit gives ``matched full blocks x block_size`` cached tokens, capped so that at
  least one prompt token is computed.
* A block is registered in the cache as soon as it is allocated for tokens that the scheduled step will compute
  (so a request scheduled later in the same step already hits it, as in vLLM V1).
* A cached block nobody uses is free; it keeps its content until its space is needed. Eviction takes the least
  recently freed block first, and the blocks of one request are freed deepest-first, so its prefix survives longest.
* The same content computed twice (two requests missing the cache at once) stays in two blocks; only the first is
  shared.

Shareable content comes from trace ``hash_ids`` (see :class:`~frontier_calib.sim.requests.PrefixLayout`). To stay
fast on long prompts, blocks are grouped into *entries* instead of being tracked one by one:

* a **unit** holds the engine blocks of one trace hash block, cached from the front (``cached`` blocks). Each
  request using it uses a prefix of it; the longest such prefix is pinned (``pin``), the blocks behind it are free
  and are evicted from the back: per-block reference counts, restricted to what prefix sharing can produce;
* a **run** holds the blocks of a preempted request beyond its shared prefix (its own prompt and output tokens):
  only that request can hit it, when it is re-admitted (recompute preemption then skips work, as in vLLM);
* a **junk** entry holds the full non-shareable blocks of a finished request: free, never hit, evicted in order
  (only when the trace has shareable content; otherwise they are plain free space).

Never-used blocks (``clean``) are handed out before any cached block is evicted; that is exactly vLLM's order, as its
free queue starts with all blocks and appends freed ones at the tail. Small deviations from vLLM: the partial last
block of a request and duplicate blocks are freed without being cached, and a request that found part of a unit
already computed by someone else (a duplicate) stops adding to that unit.

Counts: ``num_blocks == clean + evictable + num_used`` always; ``num_used <= num_blocks`` is asserted on every
allocation.
"""

from __future__ import annotations

from collections import OrderedDict

UNIT, RUN, JUNK = 0, 1, 2


class Entry:
    """A group of cached KV blocks: a prefix unit, a preempted request's run, or a finished request's junk.

    ``cached`` blocks hold content; the first ``pin`` are in use, the rest (the *tail*) are free. ``uses`` counts
    the requests using the unit by the number of its blocks they use (units only)."""

    __slots__ = ("kind", "key", "cached", "pin", "uses", "parent", "children", "stamp", "free")

    def __init__(self, kind: int, key, cached: int, parent=None, pin: int = 0, uses: dict | None = None):
        self.kind, self.key, self.cached = kind, key, cached
        self.pin = pin
        self.uses: dict = {} if uses is None else uses
        self.parent = parent
        self.children = 0
        self.stamp = 0
        self.free = False   # in the free pool (the radix cache's flag; the LRU flavour keeps an ordered dict)

    @property
    def refs(self) -> int:
        """Requests using this entry."""
        return sum(self.uses.values())


class Hit:
    """Result of a prefix lookup: ``blocks`` cached blocks usable by the request (tokens = blocks x block_size),
    ``pinned`` currently-free blocks that admitting it would take out of the free pool; ``units`` / ``uses``: the
    units it would use and how many blocks of each."""

    __slots__ = ("blocks", "pinned", "units", "uses", "run", "n_shared")

    def __init__(self, blocks=0, pinned=0, units=(), uses=(), run=None, n_shared=0):
        self.blocks, self.pinned, self.units, self.uses = blocks, pinned, units, uses
        self.run, self.n_shared = run, n_shared


NO_HIT = Hit()


class _ReqKV:
    """The units one request uses (in prompt order, with how many blocks of each), and its registration cursor."""

    __slots__ = ("layout", "units", "uses", "n_shared", "reg_pos", "unit_idx")

    def __init__(self, layout):
        self.layout = layout
        self.units: list[Entry] = []
        self.uses: list[int] = []
        self.n_shared = 0   # block positions backed by units (sum of uses), not counted as the request's own
        self.reg_pos = 0    # block positions [0, reg_pos) already matched or registered
        self.unit_idx = 0   # index of the unit holding block position reg_pos


class KVCacheManager:
    """Block accounting and prefix cache of one replica (vLLM flavour).

    The scheduler owns how many blocks each request holds (``RequestTable.held`` or the decode batch); this class
    owns where free blocks come from and which cached content survives.
    """

    dedup = False   # SGLang inserts computed tokens into the tree and frees its own copy of what was there

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
        self._lru: OrderedDict = OrderedDict()   # entries with free blocks, next victim first

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
        units, uses = [], []
        complete = True
        if layout is not None:
            prev = 0
            get = self.units.get
            for key, end in zip(layout.keys, layout.ends):
                e = get(key)
                if e is None:
                    complete = False
                    break
                use = end - prev
                if e.cached < use:
                    use = e.cached
                    complete = False
                if blocks + use > cap:
                    use = cap - blocks
                if use <= 0:
                    complete = False
                    break
                units.append(e)
                uses.append(use)
                blocks += use
                if use > e.pin:
                    pinned += use - e.pin
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
        return Hit(blocks, pinned, units, uses, run, n_shared)

    def admit(self, r: int, layout, hit: Hit) -> None:
        """Start tracking request ``r`` on this replica and pin the blocks of ``hit`` (from :meth:`lookup`).
        The request then holds ``hit.blocks`` blocks."""
        if not self.enable_prefix_caching:
            return
        if layout is None and hit.run is None:
            return
        rec = _ReqKV(layout)
        self.reqs[r] = rec
        for e, use in zip(hit.units, hit.uses):
            self._use(e, 0, use)
            rec.units.append(e)
            rec.uses.append(use)
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
        """Cache the request's shareable blocks among its first ``full_blocks`` (computed, or being computed in
        the scheduled step). Blocks the request extends a unit with move from its own count into the unit."""
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
        rec_units, rec_uses = rec.units, rec.uses
        prev = units.get(keys[k - 1]) if k else None   # the unit of the hash block before block k
        while p < hi_all:
            start = ends[k - 1] if k else 0
            end = ends[k]
            hi = end if end < hi_all else hi_all
            pos = p - start                   # the request's next block inside unit k
            key = keys[k]
            e = units.get(key)
            if e is None:
                if pos == 0:                  # new content: the request starts the unit
                    n = hi - p                # _extend(rec, e, 0, n, new=True), inlined (the hot case)
                    e = units[key] = Entry(UNIT, key, n, prev, n, {n: 1})
                    if prev is not None:
                        prev.children += 1
                    rec_units.append(e)
                    rec_uses.append(n)
                    rec.n_shared += n
            else:
                mine = bool(rec_units) and rec_units[-1] is e and rec_uses[-1] == pos
                if mine or (pos == 0 and self.dedup):
                    have = e.cached - pos         # blocks of this stretch somebody already cached
                    if have > 0 and self.dedup:   # SGLang: use the tree's copy, free the request's own
                        take = min(have, hi - p)
                        self.clean += take
                        self._grow(rec, e, pos, take, new=not mine)
                        pos += take
                        mine = True
                    if mine and e.cached == pos and pos + start < hi:
                        self._extend(rec, e, pos, hi - start - pos, new=False)
                # else: the content is cached already (or a gap was evicted): the request keeps private copies.
            p = hi
            if p == end:
                k += 1
                prev = e
        rec.reg_pos = p
        rec.unit_idx = k

    @staticmethod
    def _record_use(rec: _ReqKV, e: Entry, upto: int, n: int, new: bool) -> None:
        """Note that request ``rec`` now uses the first ``upto`` blocks of unit ``e`` (``n`` more than before;
        ``new``: ``e`` is a unit it did not use yet)."""
        if new:
            rec.units.append(e)
            rec.uses.append(upto)
        else:
            rec.uses[-1] = upto
        rec.n_shared += n

    def _grow(self, rec: _ReqKV, e: Entry, pos: int, n: int, new: bool) -> None:
        """The request now uses ``n`` more cached blocks of ``e`` (after its first ``pos``)."""
        self._use(e, pos if not new else 0, pos + n)
        self._record_use(rec, e, pos + n, n, new)

    def _extend(self, rec: _ReqKV, e: Entry, pos: int, n: int, new: bool) -> None:
        """The request adds its ``n`` own blocks after block ``pos == e.cached`` of unit ``e``. It uses all of
        ``e`` (or ``e`` is new), so ``e`` has no free tail before or after."""
        uses = e.uses
        if not new:
            c = uses[pos] - 1
            if c:
                uses[pos] = c
            else:
                del uses[pos]
        uses[pos + n] = uses.get(pos + n, 0) + 1
        e.cached += n
        e.pin = pos + n
        self._record_use(rec, e, pos + n, n, new)

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
            freed = []
            for e, use in zip(reversed(rec.units), reversed(rec.uses)):   # deepest first: evicted first
                # self._use(e, use, 0), inlined: one user fewer; when it was the last to use the unit's longest
                # prefix, the pin drops to the next longest use and the blocks behind it become free
                uses = e.uses
                c = uses[use] - 1
                if c:
                    uses[use] = c
                    continue
                del uses[use]
                if use != e.pin:
                    continue
                pin = max(uses) if uses else 0
                self.evictable += e.pin - pin
                e.pin = pin
                freed.append(e)        # more of it became free: most recently freed
            if freed:
                self._to_free_all(freed)

    # ------------------------------------------------------------------ internals
    def _use(self, e: Entry, old: int, new: int) -> None:
        """A request using the first ``old`` blocks of unit ``e`` now uses the first ``new`` (0 = none)."""
        uses = e.uses
        if old:
            c = uses[old] - 1
            if c:
                uses[old] = c
            else:
                del uses[old]
        if new:
            uses[new] = uses.get(new, 0) + 1
        if new > e.pin:
            pin = new
        elif old == e.pin and old not in uses:
            pin = max(uses, default=0)
        else:
            return
        if pin != e.pin:
            old_tail = e.cached - e.pin if e.cached > e.pin else 0
            e.pin = pin
            tail = e.cached - pin
            self.evictable += tail - old_tail
            if tail > old_tail:
                self._to_free(e)        # more of it became free: most recently freed
            elif tail == 0 and old_tail > 0:
                self._unfree(e)

    def _note_used(self) -> None:
        used = self.num_blocks - self.clean - self.evictable
        if used > self.max_used:
            self.max_used = used

    def _to_free(self, e: Entry) -> None:
        """``e`` has free blocks: it joins (or moves to the end of) the free pool, most recently freed."""
        self._lru[e] = None
        self._lru.move_to_end(e)

    def _to_free_all(self, entries: list) -> None:
        """:meth:`_to_free` for each of ``entries``, in order."""
        lru = self._lru
        for e in entries:
            lru[e] = None
            lru.move_to_end(e)

    def _unfree(self, e: Entry) -> None:
        """``e`` has no free blocks any more (hit or forgotten): it leaves the free pool."""
        self._lru.pop(e, None)

    def _evict(self, n: int) -> None:
        """Take ``n`` free cached blocks, least recently freed first, from the back of each entry."""
        lru = self._lru
        self.evicted_blocks += n
        while n > 0:
            e = next(iter(lru))
            tail = e.cached - e.pin
            t = tail if tail <= n else n
            e.cached -= t
            self.evictable -= t
            n -= t
            if e.cached == e.pin:
                del lru[e]
                if e.cached == 0:
                    self._forget(e)

    def _forget(self, e: Entry, notify: bool = True) -> None:
        """Drop an entry that holds no blocks any more (``notify``: tell :meth:`_child_gone` about its parent)."""
        if e.kind == UNIT:
            if self.units.get(e.key) is e:
                del self.units[e.key]
        elif e.kind == RUN:
            if self.runs.get(e.key) is e:
                del self.runs[e.key]
        if e.parent is not None:
            e.parent.children -= 1
            if notify:
                self._child_gone(e.parent)
            e.parent = None

    def _child_gone(self, parent: Entry) -> None:
        """Hook: ``parent`` lost a child entry (the radix cache may gain a leaf)."""

    # ------------------------------------------------------------------ checks
    def check(self, own_blocks: dict) -> None:
        """Assert the block counts add up. ``own_blocks``: request row -> blocks it holds on this replica."""
        assert self.clean >= 0 and self.evictable >= 0, (self.clean, self.evictable)
        units = list(self.units.values())
        free_entries = set(self._free_entries())
        free = sum(e.cached - e.pin for e in free_entries)
        assert free == self.evictable, (free, self.evictable)
        assert all(e.cached >= e.pin >= 0 for e in units)
        assert all(e.pin == max(e.uses, default=0) for e in units)
        assert all((e.cached - e.pin > 0) == (e in free_entries) for e in units)
        pinned = sum(e.pin for e in units)
        own = 0
        for r, held in own_blocks.items():
            rec = self.reqs.get(r)
            shared = rec.n_shared if rec is not None else 0
            assert held >= shared and (rec is None or shared == sum(rec.uses))
            own += held - shared
        assert pinned + own == self.num_used, (pinned, own, self.num_used)
        assert 0 <= self.num_used <= self.num_blocks

    def _free_entries(self):
        return list(self._lru)
