"""Scalar lookups into the cost tables for the replay's per-step hot path.

The tables of :class:`~frontier_calib.cost.iteration.IterationCostModel` are queried with NumPy when many points are
wanted at once. A replay asks for one point per engine step, where NumPy's per-call overhead (array creation,
``np.clip``, ``np.searchsorted``) costs more than the arithmetic. The classes here do the same arithmetic on Python
floats, in the same order, and call NumPy's own ``log2`` / ``exp2`` for the transcendental steps, so a scalar query
returns bit for bit what the vectorised one returns (``tests/test_speed_paths.py`` checks this on every grid point
and on random queries).
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np


class BilinearLog2:
    """Bilinear interpolation of a table of log2(ms) over (log2 q, log2 kv), as
    ``IterationCostModel._prefill_attention_ms`` does it, one (q, kv) pair at a time.

    ``log_q_grid`` / ``log_kv_grid``: log2 of the grid points (ascending); ``table[i][j]``: log2 ms at
    (q_grid[i], kv_grid[j]); ``q_max`` / ``kv_max``: the largest grid values (tokens); queries are clamped to
    [1, max]. ``kv`` is raised to ``q`` first (a chunk attends at least its own tokens)."""

    __slots__ = ("gq", "gk", "z", "q_max", "kv_max", "nq", "nk", "_log2")

    def __init__(self, log_q_grid, log_kv_grid, table, q_max: float, kv_max: float):
        self.gq = np.asarray(log_q_grid, dtype=np.float64).tolist()
        self.gk = np.asarray(log_kv_grid, dtype=np.float64).tolist()
        self.z = np.asarray(table, dtype=np.float64).tolist()
        self.q_max, self.kv_max = q_max, kv_max
        self.nq, self.nk = len(self.gq) - 2, len(self.gk) - 2
        self._log2: dict = {}   # clamped query -> NumPy's log2 of it (chunk sizes and KV lengths recur)

    def one(self, q: int, kv: int) -> float:
        """Milliseconds at (``q`` new tokens, ``kv`` keys)."""
        memo = self._log2
        x = float(min(max(q, 1), self.q_max))
        lq = memo.get(x)
        if lq is None:
            lq = memo[x] = float(np.log2(x))
        x = float(min(max(max(kv, q), 1), self.kv_max))
        lk = memo.get(x)
        if lk is None:
            lk = memo[x] = float(np.log2(x))
        gq, gk, z = self.gq, self.gk, self.z
        i = min(max(bisect_left(gq, lq) - 1, 0), self.nq)
        j = min(max(bisect_left(gk, lk) - 1, 0), self.nk)
        tq = min(max((lq - gq[i]) / (gq[i + 1] - gq[i]), 0.0), 1.0)
        tk = min(max((lk - gk[j]) / (gk[j + 1] - gk[j]), 0.0), 1.0)
        zi, zi1 = z[i], z[i + 1]
        v = ((1 - tq) * (1 - tk) * zi[j] + tq * (1 - tk) * zi1[j]
             + (1 - tq) * tk * zi[j + 1] + tq * tk * zi1[j + 1])
        return float(np.exp2(v))
