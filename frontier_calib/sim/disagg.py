"""Prefill/decode disaggregation in the replay: KV-cache transfers from prefill to decode workers.

Life of a request in a PD replay (times in seconds):

1. a prefill worker computes the prompt and samples the first token at ``prefill_end``; its KV blocks stay on the
   prefill worker (``Scheduler.sending``);
2. the decode router picks a decode worker; the request queues there (FIFO per decode worker) until the decode
   worker can **reserve** the prompt's KV blocks (``Scheduler.reserve_prefilled``: they must fit next to the
   running batch's next step, and ``max_num_seqs`` must leave room). Waiting for that is **backpressure**;
3. the transfer then books the link of its prefill worker (FIFO, full bandwidth, see :mod:`.links`):
   ``whole``: ``latency + bytes / bandwidth`` after it starts; ``layerwise``: the layers were streamed while the
   prompt was computed, so when the transfer could start right at ``prefill_end`` (no backpressure, link idle)
   only ``latency + max(bytes / bandwidth / layers, bytes / bandwidth - prefill time)`` remains; otherwise the
   whole transfer is paid after the start;
4. when the KV has arrived the prefill worker frees its blocks and the request joins the decode worker's queue
   with its blocks already reserved; the decode scheduler admits it into the decode batch at its next step.

``kv_transfer_wait_s`` = transfer start − prefill_end (backpressure + waiting for the link);
``kv_transfer_s`` = KV arrival − transfer start.

TTFT definitions (``ttft``): ``'prefill'``: the first token counts when the prefill worker samples it;
``'decode'``: when the decode worker admits the request into its decode batch (the token reaches the client via
the decode worker, as in SGLang/Dynamo PD serving) — this includes the KV transfer and the decode queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import FrontierError
from .links import Link, LinkSpec
from .router import Router, make_router

TRANSFER_MODES = ("whole", "layerwise")
TTFT_DEFINITIONS = ("prefill", "decode")
DECODE_ROUTERS = ("round_robin", "least_outstanding", "kv_aware")


@dataclass(frozen=True)
class KVTransferSpec:
    """How a prefill replica ships a request's KV: ``bytes_per_token`` (bytes moved per prompt token, summed
    over all GPUs that send), the ``link`` it uses, ``mode`` ('whole' | 'layerwise'), ``num_layers``
    (for layer-wise streaming) and ``bytes_per_request`` (bytes moved once per request whatever its length: the
    recurrent state of linear-attention layers, GDN / Mamba2 / KDA, that the decode side continues from)."""

    bytes_per_token: float
    link: LinkSpec
    mode: str = "whole"
    num_layers: int = 1
    bytes_per_request: float = 0.0

    def __post_init__(self):
        if self.mode not in TRANSFER_MODES:
            raise FrontierError(f"kv transfer mode must be one of {TRANSFER_MODES}, got {self.mode!r}")
        if not self.bytes_per_token >= 0:
            raise FrontierError(f"kv transfer bytes_per_token must be >= 0, got {self.bytes_per_token!r}")
        if not self.bytes_per_request >= 0:
            raise FrontierError(f"kv transfer bytes_per_request must be >= 0, got {self.bytes_per_request!r}")
        if self.num_layers < 1:
            raise FrontierError("kv transfer num_layers must be >= 1")


class KVAwareDecode(Router):
    """Decode worker with the most free KV blocks after its reservations and queued transfers (ties: seeded)."""

    name = "kv_aware"

    def __init__(self, seed: int = 0, pending=None):
        super().__init__(seed)
        self.pending = pending

    def choose(self, r, replicas):
        def free(rep):
            queued = sum(rep.sched.max_blocks(x) for x in self.pending[rep.index]) if self.pending else 0
            return rep.sched.cache.num_free - queued
        scores = [free(rep) for rep in replicas]
        top = max(scores)
        return self._tie([rep for rep, s in zip(replicas, scores) if s == top])


def make_decode_router(name, seed: int, pending) -> Router:
    if name == "kv_aware":
        return KVAwareDecode(seed, pending)
    if name == "prefix_affinity":
        raise FrontierError("the decode router cannot be prefix_affinity (decode workers receive the prompt KV); "
                            f"choose one of {DECODE_ROUTERS}")
    return make_router(name, seed)


class KVTransfers:
    """The KV transfers of one replay: decode queues, reservations, links, per-request and per-link figures."""

    def __init__(self, replay, decode_router, seed: int, ttft: str):
        if ttft not in TTFT_DEFINITIONS:
            raise FrontierError(f"ttft must be one of {TTFT_DEFINITIONS}, got {ttft!r}")
        self.replay = replay
        n = replay.table.n
        self.pending = {rep.index: deque() for rep in replay.decoders}
        for rep in replay.decoders:
            rep.pending_kv = self.pending[rep.index]   # lets the replica end a fast-forward when one can start
        self.router = make_decode_router(decode_router, seed, self.pending)
        self.links: list[Link] = []
        by_name: dict = {}
        self.link_of = {}
        for rep in replay.replicas:
            spec = rep.kv_transfer
            if rep.role != "prefill" or spec is None:
                continue
            link = by_name.get(spec.link.name)
            if link is None:
                link = by_name[spec.link.name] = Link(len(self.links), spec.link)
                self.links.append(link)
            elif link.spec != spec.link:
                raise FrontierError(f"two different links are named {spec.link.name!r}")
            self.link_of[rep.index] = link
        for rep in replay.decoders:
            rep.sched.first_token_at_admit = ttft == "decode"
        # decode workers with the same limits share their rejection answers (Scheduler.rejections)
        self.same_limits = len({id(rep.sched.rejections) for rep in replay.decoders}) == 1
        self.ttft = ttft
        self.src = [-1] * n
        self.ready = [np.nan] * n         # prefill end (s)
        self.start = [np.nan] * n         # transfer start (s)
        self.arrive = [np.nan] * n        # KV at the decode worker (s)
        self.bytes = [0.0] * n
        self.backpressure_s = [0.0] * n   # waiting for decode KV blocks (s)

    # ------------------------------------------------------------------ flow
    def hand_off(self, src, t: float) -> None:
        """Rows whose prefill finished on ``src`` at ``t``: pick a decode worker and queue the transfer there."""
        replay = self.replay
        rows, src.sched.handoffs = src.sched.handoffs, []
        for r in rows:
            self.src[r] = src.index
            self.ready[r] = t
            if self.same_limits:   # one answer for every decode worker
                fits = list(replay.decoders) if replay.decoders[0].sched.rejection(r) is None else []
            else:
                fits = [d for d in replay.decoders if d.sched.rejection(r) is None]
            if isinstance(self.router, KVAwareDecode):
                for d in fits:
                    replay.sync(d, t)
            dest = self.router.choose(r, fits)
            replay.table.replica[r] = dest.index
            self.pending[dest.index].append(r)
            dest.incoming += 1
            self.pump(dest, t)

    def pump(self, dest, t: float) -> None:
        """Start the transfers queued for ``dest`` whose KV blocks it can reserve now (FIFO)."""
        queue = self.pending[dest.index]
        if not queue:
            return
        self.replay.sync(dest, t)
        sched = dest.sched
        while queue and sched.reserve_prefilled(queue[0]):
            self._start(queue.popleft(), dest, t)

    def _start(self, r: int, dest, t: float) -> None:
        replay = self.replay
        src = replay.replicas[self.src[r]]
        spec = src.kv_transfer
        ready = self.ready[r]
        self.backpressure_s[r] = t - ready
        if spec is None:   # instantaneous hand-off
            self.start[r] = t
            self.deliver(r, t)
            return
        nbytes = replay.table.n_in[r] * spec.bytes_per_token + spec.bytes_per_request
        link = self.link_of[src.index]
        wire = spec.link.wire_time(nbytes)
        full = spec.link.latency_s + wire
        duration = full
        if spec.mode == "layerwise" and t == ready and link.free_at <= t:
            prefill_s = ready - replay.table.scheduled_s[r]
            duration = spec.link.latency_s + max(wire / spec.num_layers, wire - prefill_s)
        start = link.book(t, duration, nbytes, wire)
        end = start + duration
        self.start[r] = start
        self.bytes[r] = nbytes
        if replay.timeline is not None:
            replay.timeline.append({"name": "kv_transfer", "ph": "X", "ts": start * 1e6,
                                    "dur": (end - start) * 1e6, "pid": 100000 + link.index, "tid": 0,
                                    "args": {"request": int(replay.table.request_id[r]), "bytes": nbytes,
                                             "from": src.name, "to": dest.name}})
        if end <= t:
            self.deliver(r, t)
        else:
            replay.events.push(end, (-1, r))

    def deliver(self, r: int, t: float) -> None:
        """Request ``r``'s KV has arrived at its decode worker at ``t``."""
        replay = self.replay
        self.arrive[r] = t
        src = replay.replicas[self.src[r]]
        dest = replay.replicas[replay.table.replica[r]]
        src.sched.release_sent(r)
        dest.incoming -= 1
        replay.sync(dest, t)
        dest.sched.enqueue_prefilled(r, t)
        replay.kick(dest, t)
        replay.kick(src, t)

    # ------------------------------------------------------------------ results
    def request_columns(self) -> dict:
        ready, start, arrive = (np.array(x, dtype=np.float64) for x in (self.ready, self.start, self.arrive))
        admit = np.full(len(ready), np.nan)
        for rep in self.replay.decoders:
            for r, s in rep.sched.remote_admits:
                admit[r] = s
        return {"prefill_end_s": ready, "kv_transfer_wait_s": start - ready, "kv_transfer_s": arrive - start,
                "kv_bytes": np.array(self.bytes, dtype=np.float64),
                "kv_backpressure_s": np.array(self.backpressure_s, dtype=np.float64),
                "decode_queue_s": admit - arrive}

    def stats(self, makespan_s: float, cols: dict) -> dict:
        def dist(x):
            x = x[~np.isnan(x)]
            if not len(x):
                return {"mean": None, "p99": None, "max": None}
            return {"mean": float(x.mean()), "p99": float(np.percentile(x, 99)), "max": float(x.max())}

        links = [link.stats(makespan_s) for link in self.links]
        rows_by_link: dict = {}
        for r, s in enumerate(self.src):
            if s >= 0 and s in self.link_of:
                rows_by_link.setdefault(self.link_of[s].index, []).append(r)
        for link, st in zip(self.links, links):
            idx = np.array(rows_by_link.get(link.index, []), dtype=np.int64)
            st["transfer_wait_s"] = dist(cols["kv_transfer_wait_s"][idx])
            st["transfer_s"] = dist(cols["kv_transfer_s"][idx])
        return {"ttft": self.ttft, "links": links,
                "kv_transfer_wait_s": dist(cols["kv_transfer_wait_s"]),
                "kv_backpressure_s": dist(cols["kv_backpressure_s"]),
                "kv_transfer_s": dist(cols["kv_transfer_s"]),
                "decode_queue_s": dist(cols["decode_queue_s"]),
                "kv_bytes": float(np.nansum(cols["kv_bytes"]))}


def pool_stats(replicas, table, makespan_s: float) -> dict:
    """Per pool (replicas grouped by role): replicas, busy fraction (mean of the replicas' busy time over the
    makespan), steps, and the prefill queueing time (scheduled − arrival, s) of the requests that entered there."""
    pools: dict = {}
    for rep in replicas:
        p = pools.setdefault(rep.role, {"replicas": 0, "busy_s": 0.0, "steps": 0, "kv_blocks_max_used": 0,
                                         "kv_blocks": 0})
        p["replicas"] += 1
        p["busy_s"] += rep.busy_s
        p["steps"] += rep.sched.num_steps
        p["kv_blocks_max_used"] = max(p["kv_blocks_max_used"], rep.sched.cache.max_used)
        p["kv_blocks"] = max(p["kv_blocks"], rep.sched.cache.num_blocks)
    for p in pools.values():
        p["busy_fraction"] = p["busy_s"] / (p["replicas"] * makespan_s) if makespan_s > 0 else 0.0
    q = np.array(table.scheduled_s, dtype=np.float64) - np.array(table.arrival, dtype=np.float64)
    q = q[~np.isnan(q)]
    entry = "prefill" if "prefill" in pools else "both"
    if entry in pools and len(q):
        pools[entry]["queue_s"] = {"mean": float(q.mean()), "p99": float(np.percentile(q, 99)),
                                   "max": float(q.max())}
    return pools
