"""Where requests come from: an open loop (trace arrival times) or closed-loop clients."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class OpenLoopArrivals:
    """Requests are sent at their trace ``arrival_s`` and reach the scheduler ``delay_s`` seconds later (the
    serving front-end's latency); equal times keep row order."""

    closed = False

    def __init__(self, arrival_s: np.ndarray, delay_s: float = 0.0):
        order = np.argsort(np.asarray(arrival_s, dtype=np.float64), kind="stable")
        self._rows = order.tolist()
        self._sent = np.asarray(arrival_s, dtype=np.float64)[order].tolist()
        self._times = [t + delay_s for t in self._sent] if delay_s else self._sent
        self._i = 0

    def peek_time(self) -> float:
        """When the next request reaches the scheduler (s)."""
        return self._times[self._i] if self._i < len(self._times) else math.inf

    def pop(self):
        """(time it reaches the scheduler, row, time it was sent), seconds."""
        i = self._i
        self._i = i + 1
        return self._times[i], self._rows[i], self._sent[i]

    def on_done(self, t: float) -> None:
        """A request finished (or was rejected) at ``t``: nothing to do in an open loop."""


class ClosedLoopArrivals:
    """``concurrency`` clients share the trace rows in order: each sends the next unsent row as soon as its previous
    request finishes (or is rejected); it reaches the scheduler ``delay_s`` seconds later. All clients start at the
    first arrival time of the trace; ``arrival_s`` is otherwise ignored."""

    closed = True

    def __init__(self, n_rows: int, concurrency: int, start_s: float = 0.0, delay_s: float = 0.0):
        self._n = n_rows
        self._delay = float(delay_s)
        self._next = 0
        self._pending: deque = deque()
        self.in_flight = 0
        self.max_in_flight = 0
        for _ in range(min(concurrency, n_rows)):
            self._send(start_s)

    def _send(self, t: float) -> None:
        self._pending.append((t + self._delay, self._next, t))
        self._next += 1

    def peek_time(self) -> float:
        """When the next request reaches the scheduler (s)."""
        return self._pending[0][0] if self._pending else math.inf

    def pop(self):
        """(time it reaches the scheduler, row, time it was sent), seconds."""
        item = self._pending.popleft()
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        return item

    def on_done(self, t: float) -> None:
        self.in_flight -= 1
        if self._next < self._n:
            self._send(t)
