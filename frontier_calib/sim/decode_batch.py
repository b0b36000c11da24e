"""The decode batch of one replica, kept in closed form so that many decode steps cost O(1) Python work.

Every decode step of a replica advances *all* requests in its decode phase by one token (vLLM and TensorRT-LLM
schedule decodes first and the step budget always holds them; SGLang decode steps run the whole running batch).
So with ``s`` = the replica's count of decode steps done, a member's state is affine in ``s``:

* KV tokens computed: ``base + s`` (the token being decoded in step ``s + 1`` is attended too, so that step's KV
  length is ``base + s + 1``);
* it has generated ``gen_at_join + (s - join)`` output tokens and leaves after step ``finish``.

KV blocks: a member crosses into a new block in step ``s + 1`` exactly when ``(base + s) % block_size == 0``, so a
histogram of ``base % block_size`` gives the blocks a step (or k steps) needs without touching members.
"""

from __future__ import annotations

import heapq


class DecodeBatch:
    """Requests in the decode phase; ``s`` arguments are the owning replica's decode-step counter."""

    def __init__(self, block_size: int):
        self.bs = int(block_size)
        self.members: dict = {}          # row -> [base, join, gen_at_join, finish]
        self.sum_base = 0
        self.sum_finish = 0
        self.mod_count = [0] * self.bs   # members by base % block_size
        self._heap: list = []            # (finish, row); stale items skipped
        self._blocks_s = 0               # blocks held by members, valid at counter _blocks_at
        self._blocks_at = 0

    @property
    def n(self) -> int:
        return len(self.members)

    def __contains__(self, r) -> bool:
        return r in self.members

    def add(self, r: int, kv_tokens: int, gen: int, n_out: int, s: int) -> None:
        """Request ``r`` with ``kv_tokens`` computed and ``gen`` of ``n_out`` tokens generated joins at counter s."""
        self._sync_blocks(s)
        base = kv_tokens - s
        finish = s + (n_out - gen)
        self.members[r] = [base, s, gen, finish]
        self.sum_base += base
        self.sum_finish += finish
        self.mod_count[base % self.bs] += 1
        heapq.heappush(self._heap, (finish, r))
        self._blocks_s += -(-kv_tokens // self.bs)

    def remove(self, r: int, s: int):
        """Take ``r`` out at counter ``s``; returns (kv_tokens, gen, join, gen_at_join)."""
        self._sync_blocks(s)
        base, join, gen_join, finish = self.members.pop(r)
        self.sum_base -= base
        self.sum_finish -= finish
        self.mod_count[base % self.bs] -= 1
        kv = base + s
        self._blocks_s -= -(-kv // self.bs)
        return kv, gen_join + (s - join), join, gen_join

    def state(self, r: int, s: int):
        """(kv_tokens, gen) of member ``r`` at counter ``s``."""
        base, join, gen_join, _ = self.members[r]
        return base + s, gen_join + (s - join)

    # ------------------------------------------------------------------ aggregates
    def kv_sum(self, s: int) -> int:
        """Sum of KV tokens computed by all members at counter ``s``."""
        return self.sum_base + len(self.members) * s

    def remaining_sum(self, s: int) -> int:
        """Output tokens the members still have to generate at counter ``s``."""
        return self.sum_finish - len(self.members) * s

    def step_blocks(self, s: int) -> int:
        """New KV blocks decode step ``s + 1`` needs."""
        return self.mod_count[(-s) % self.bs]

    def _window(self, s0: int, m: int) -> int:
        """Blocks needed by decode steps ``s0 + 1 .. s0 + m`` for ``m < block_size``: members whose
        ``base % bs`` lies in the circular window ``(-s0 - m, -s0]``."""
        if m <= 0:
            return 0
        bs = self.bs
        mc = self.mod_count
        hi = (-s0) % bs + 1           # window is [hi - m, hi)
        lo = hi - m
        if lo >= 0:
            return sum(mc[lo:hi])
        return sum(mc[:hi]) + sum(mc[bs + lo:])

    def new_blocks(self, s0: int, k: int) -> int:
        """New KV blocks decode steps ``s0 + 1 .. s0 + k`` need together."""
        if k <= 0:
            return 0
        full, rem = divmod(k, self.bs)
        return full * len(self.members) + self._window(s0, rem)

    def steps_fitting(self, s0: int, free_blocks: int) -> int:
        """Most decode steps after counter ``s0`` whose new KV blocks fit in ``free_blocks``."""
        n = len(self.members)
        if n == 0:
            return 1 << 60
        q, rem = divmod(free_blocks, n)
        lo, hi = 0, self.bs - 1       # largest m with window(s0, m) <= rem; window(s0, bs) == n > rem
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if self._window(s0, mid) <= rem:
                lo = mid
            else:
                hi = mid - 1
        return q * self.bs + lo

    def blocks(self, s: int) -> int:
        """KV blocks held by all members at counter ``s``."""
        self._sync_blocks(s)
        return self._blocks_s

    def _sync_blocks(self, s: int) -> None:
        if s != self._blocks_at:
            if s > self._blocks_at:
                self._blocks_s += self.new_blocks(self._blocks_at, s - self._blocks_at)
            else:
                bs = self.bs
                self._blocks_s = sum(-(-(m[0] + s) // bs) for m in self.members.values())
            self._blocks_at = s

    # ------------------------------------------------------------------ completions
    def next_finish(self) -> int:
        """Smallest counter at which a member has generated all its tokens."""
        heap, members = self._heap, self.members
        while heap:
            f, r = heap[0]
            m = members.get(r)
            if m is not None and m[3] == f:
                return f
            heapq.heappop(heap)
        return 1 << 60

    def finishing(self, s: int) -> list:
        """Members done at counter ``s`` (still members), in a deterministic order."""
        out = []
        heap, members = self._heap, self.members
        while heap and heap[0][0] <= s:
            f, r = heapq.heappop(heap)
            m = members.get(r)
            if m is not None and m[3] == f and r not in out:   # a re-joined row may have two equal items
                out.append(r)
        return out
