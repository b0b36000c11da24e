"""Where requests come from: an open loop (trace arrival times) or closed-loop clients."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class OpenLoopArrivals:
    """Requests are sent at their trace ``arrival_s`` and reach the scheduler ``delay_s`` (+ ``delay_per_row_s[row]``)
    seconds later (the serving front-end's latency); equal times keep row order."""

    closed = False

    def __init__(self, arrival_s: np.ndarray, delay_s: float = 0.0, delay_per_row_s=None):
        arrival_s = np.asarray(arrival_s, dtype=np.float64)
        if delay_per_row_s is not None:   # a per-request front-end latency (prompt tokenization): order by reach
            reach = arrival_s + delay_s + np.asarray(delay_per_row_s, dtype=np.float64)
            order = np.argsort(reach, kind="stable")
            self._rows = order.tolist()
            self._sent = arrival_s[order].tolist()
            self._times = reach[order].tolist()
        else:
            order = np.argsort(arrival_s, kind="stable")
            self._rows = order.tolist()
            self._sent = arrival_s[order].tolist()
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

    def __init__(self, n_rows: int, concurrency: int, start_s: float = 0.0, delay_s: float = 0.0,
                 delay_per_row_s=None):
        self._n = n_rows
        self._delay = float(delay_s)
        self._row_delay = None if delay_per_row_s is None else np.asarray(delay_per_row_s, dtype=np.float64).tolist()
        self._next = 0
        self._pending: deque = deque()
        self.in_flight = 0
        self.max_in_flight = 0
        for _ in range(min(concurrency, n_rows)):
            self._send(start_s)

    def _send(self, t: float) -> None:
        d = self._delay if self._row_delay is None else self._delay + self._row_delay[self._next]
        self._pending.append((t + d, self._next, t))
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
