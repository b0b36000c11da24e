"""The event queue of the discrete-event loop: a heap of (time, seq, payload).

``seq`` increases with every push, so events at equal times pop in the order they were pushed: the replay is
deterministic without comparing payloads.
"""

from __future__ import annotations

import heapq
import math


class EventQueue:
    def __init__(self):
        self._heap: list = []
        self._seq = 0

    def push(self, time_s: float, payload) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time_s, self._seq, payload))

    def pop(self):
        """(time_s, payload) of the earliest event."""
        t, _, payload = heapq.heappop(self._heap)
        return t, payload

    def peek_time(self) -> float:
        return self._heap[0][0] if self._heap else math.inf

    def __len__(self) -> int:
        return len(self._heap)
