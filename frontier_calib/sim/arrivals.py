"""Where requests come from: an open loop (trace arrival times) or closed-loop clients."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class OpenLoopArrivals:
    """Requests arrive at their trace ``arrival_s``; equal times keep row order."""

    closed = False

    def __init__(self, arrival_s: np.ndarray):
        order = np.argsort(np.asarray(arrival_s, dtype=np.float64), kind="stable")
        self._rows = order.tolist()
        self._times = np.asarray(arrival_s, dtype=np.float64)[order].tolist()
        self._i = 0

    def peek_time(self) -> float:
        return self._times[self._i] if self._i < len(self._times) else math.inf

    def pop(self):
        i = self._i
        self._i = i + 1
        return self._times[i], self._rows[i]

    def on_done(self, t: float) -> None:
        """A request finished (or was rejected) at ``t``: nothing to do in an open loop."""


class ClosedLoopArrivals:
    """``concurrency`` clients share the trace rows in order: each sends the next unsent row as soon as its previous
    request finishes (or is rejected). All clients start at the first arrival time of the trace; ``arrival_s`` is
    otherwise ignored."""

    closed = True

    def __init__(self, n_rows: int, concurrency: int, start_s: float = 0.0):
        self._n = n_rows
        self._next = 0
        self._pending: deque = deque()
        self.in_flight = 0
        self.max_in_flight = 0
        for _ in range(min(concurrency, n_rows)):
            self._send(start_s)

    def _send(self, t: float) -> None:
        self._pending.append((t, self._next))
        self._next += 1

    def peek_time(self) -> float:
        return self._pending[0][0] if self._pending else math.inf

    def pop(self):
        t, r = self._pending.popleft()
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        return t, r

    def on_done(self, t: float) -> None:
        self.in_flight -= 1
        if self._next < self._n:
            self._send(t)
