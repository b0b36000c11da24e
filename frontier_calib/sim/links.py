"""Links between pools (prefill -> decode KV-cache transfers): bandwidth, latency, first-come-first-served.

A link carries one transfer at a time at its full bandwidth; transfers that find it busy queue behind the one in
flight (FIFO). That is the simplest model in which concurrent transfers share a link: the total bytes a link can
move per second never exceeds its bandwidth, and every transfer's time is ``latency_s + bytes / bandwidth``.

Units: bytes, bytes per second, seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import FrontierError

LINK_KINDS = ("rdma", "nvlink")


@dataclass(frozen=True)
class LinkSpec:
    """One link. ``bandwidth_bytes_s`` is the aggregate bandwidth the transfers on it get (bytes/s, one
    direction; ``math.inf`` for an infinitely fast link); ``latency_s`` is added to every transfer. Replicas
    whose :class:`~frontier_calib.sim.disagg.KVTransferSpec` names the same link share it."""

    name: str
    bandwidth_bytes_s: float = math.inf
    latency_s: float = 0.0
    kind: str = "rdma"

    def __post_init__(self):
        if not self.bandwidth_bytes_s > 0:
            raise FrontierError(f"link {self.name}: bandwidth must be > 0 bytes/s, got {self.bandwidth_bytes_s!r}")
        if not self.latency_s >= 0:
            raise FrontierError(f"link {self.name}: latency must be >= 0 s, got {self.latency_s!r}")
        if self.kind not in LINK_KINDS:
            raise FrontierError(f"link {self.name}: kind must be one of {LINK_KINDS}, got {self.kind!r}")

    def wire_time(self, nbytes: float) -> float:
        """Seconds the link is busy moving ``nbytes`` (without latency)."""
        return 0.0 if self.bandwidth_bytes_s == math.inf else nbytes / self.bandwidth_bytes_s


class Link:
    """Runtime state of one link during a replay (FIFO) and its statistics."""

    def __init__(self, index: int, spec: LinkSpec):
        self.index = index
        self.spec = spec
        self.free_at = 0.0        # s: when the transfer in flight (if any) leaves the link
        self.bytes = 0.0          # bytes moved
        self.busy_s = 0.0         # s the link carried data (sum of wire times)
        self.transfers = 0
        self.queue_s = 0.0        # s transfers waited for the link itself (behind other transfers)

    def book(self, ready_s: float, duration_s: float, nbytes: float, wire_s: float) -> float:
        """Book a transfer that could start at ``ready_s`` and, once started, takes ``duration_s`` on the link.
        Returns its start time (s); it ends at start + duration_s."""
        start = ready_s if ready_s >= self.free_at else self.free_at
        self.queue_s += start - ready_s
        self.free_at = start + duration_s
        self.bytes += nbytes
        self.busy_s += wire_s
        self.transfers += 1
        return start

    def stats(self, makespan_s: float) -> dict:
        return {"name": self.spec.name, "kind": self.spec.kind,
                "bandwidth_bytes_s": None if self.spec.bandwidth_bytes_s == math.inf else self.spec.bandwidth_bytes_s,
                "latency_s": self.spec.latency_s, "transfers": self.transfers, "bytes": self.bytes,
                "busy_s": self.busy_s, "busy_fraction": self.busy_s / makespan_s if makespan_s > 0 else 0.0,
                "link_queue_s": self.queue_s}
