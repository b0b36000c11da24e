"""Per-request state of one replay, and the prefix layout that maps trace hash blocks to engine KV blocks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NAN = math.nan


@dataclass(frozen=True)
class PrefixLayout:
    """Which engine KV blocks of a prompt carry shareable content, grouped by trace hash block ("unit").

    A trace's ``hash_ids`` are prefix-chained: hash block ``k`` covers prompt tokens
    ``[k * hash_block_size, (k + 1) * hash_block_size)`` and equal ids mean equal content *and* equal prefix.
    Engine block ``b`` covers tokens ``[b * block_size, (b + 1) * block_size)``; it belongs to the hash block that
    holds its last token. So when ``hash_block_size`` is a multiple of ``block_size`` every hash block expands into
    ``hash_block_size // block_size`` engine blocks keyed ``(hash_id, j)``; otherwise a hash block holds the engine
    blocks whose last token falls inside it (possibly none, when engine blocks are larger). Two requests share an
    engine block exactly when they share the hash id of the hash block holding its last token, which by the prefix
    chain implies equal content up to that token. Only full engine blocks inside the prompt's hashed tokens
    (``min(input_tokens, len(hash_ids) * hash_block_size)``) are shareable; the rest of a request's blocks are its own.

    ``keys[k]`` is the hash id of unit ``k``; ``ends[k]`` the cumulative number of engine blocks up to and
    including unit ``k``; ``n_blocks == ends[-1]``.
    """

    keys: tuple
    ends: tuple

    @property
    def n_blocks(self) -> int:
        return self.ends[-1]


def build_layout(hash_ids, input_tokens: int, hash_block_size: int, block_size: int) -> PrefixLayout | None:
    """The :class:`PrefixLayout` of one prompt, or None when it has no shareable full block."""
    if hash_ids is None or not hasattr(hash_ids, "__len__"):   # missing (None / NaN): nothing shareable
        return None
    if isinstance(hash_ids, np.ndarray):
        hash_ids = hash_ids.tolist()
    if len(hash_ids) == 0:
        return None
    covered = min(int(input_tokens), len(hash_ids) * hash_block_size)
    if hash_block_size % block_size == 0:   # every full hash block is q engine blocks: no loop over blocks
        q = hash_block_size // block_size
        n_full = covered // hash_block_size
        keys = list(map(int, hash_ids[:n_full]))
        ends = list(range(q, q * n_full + 1, q))
        last = covered // block_size
        if last > q * n_full:   # the partly covered hash block's full engine blocks
            keys.append(int(hash_ids[n_full]))
            ends.append(last)
        return PrefixLayout(tuple(keys), tuple(ends)) if keys else None
    keys, ends, prev = [], [], 0
    for k, h in enumerate(hash_ids):
        hi = min((k + 1) * hash_block_size, covered)
        end = hi // block_size
        if end > prev:
            keys.append(int(h))
            ends.append(end)
            prev = end
        if hi >= covered:
            break
    if not keys:
        return None
    return PrefixLayout(tuple(keys), tuple(ends))


class RequestTable:
    """State of every request of a replay as parallel Python lists indexed by row (fast scalar access).

    Times are seconds of simulated time; token counts are tokens; ``held`` counts KV blocks.
    ``computed`` and ``held`` are exact for waiting and prefilling requests; for requests in a replica's decode
    batch they are brought up to date when the request leaves the batch (see ``DecodeBatch``).
    """

    def __init__(self, request_id, arrival_s, input_tokens, output_tokens, hash_ids=None,
                 hash_block_size: int | None = None):
        self.n = len(arrival_s)
        self.request_id = np.asarray(request_id, dtype=np.int64)
        self.arrival = [float(x) for x in np.asarray(arrival_s, dtype=np.float64)]
        self.n_in = [int(x) for x in np.asarray(input_tokens, dtype=np.int64)]
        self.n_out = [int(x) for x in np.asarray(output_tokens, dtype=np.int64)]
        self.hash_ids = hash_ids
        self.hash_block_size = hash_block_size
        n = self.n
        self.gen = [0] * n            # output tokens generated so far
        self.computed = [0] * n       # tokens whose KV is computed
        self.held = [0] * n           # KV blocks held on the current replica
        self.remote_kv = [False] * n  # KV was prefilled elsewhere (decode-only worker)
        self.scheduled_s = [NAN] * n
        self.first_token_s = [NAN] * n
        self.completion_s = [NAN] * n
        self.last_token_s = [NAN] * n
        self.cached_tokens = [-1] * n
        self.preemptions = [0] * n
        self.replica = [-1] * n
        self.status = [""] * n
        self.rejections: dict = {}    # replica limits -> {row: reject reason} (Scheduler.rejection)
        self._layouts: dict[int, list] = {}
        # Inter-token latencies: request r owns itl[itl_off[r]: itl_off[r] + max(out - 1, 0)] (seconds, float32).
        per_req = np.maximum(np.asarray(self.n_out, dtype=np.int64) - 1, 0)
        self.itl_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(per_req, out=self.itl_off[1:])
        self.itl = np.full(int(self.itl_off[-1]), np.nan, dtype=np.float32)

    def layout(self, r: int, block_size: int) -> PrefixLayout | None:
        """Prefix layout of request ``r`` for engine blocks of ``block_size`` tokens (cached)."""
        if self.hash_ids is None:
            return None
        per_bs = self._layouts.get(block_size)
        if per_bs is None:
            per_bs = self._layouts[block_size] = [False] * self.n
        lay = per_bs[r]
        if lay is False:
            lay = per_bs[r] = build_layout(self.hash_ids[r], self.n_in[r], self.hash_block_size, block_size)
        return lay

    def write_one_token(self, r: int, token_index: int, t: float) -> None:
        """Record one token (index >= 1) of request ``r`` produced at time ``t`` (s)."""
        self.itl[self.itl_off[r] + token_index - 1] = t - self.last_token_s[r]
        self.last_token_s[r] = t
