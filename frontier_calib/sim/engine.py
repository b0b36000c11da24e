"""The replay loop: arrivals and replica step ends from one time-ordered event stream.

At equal times arrivals go first, so a request arriving exactly when a step ends is seen by the next step's
scheduling. Everything is deterministic for a given trace, deployment and ``seed`` (router tie-breaks only).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import FrontierError
from .arrivals import ClosedLoopArrivals, OpenLoopArrivals
from .events import EventQueue
from .replica import Replica, ReplicaSpec
from .requests import RequestTable
from .results import SimResult, make_result
from .router import make_router

REQUIRED_COLUMNS = ("request_id", "arrival_s", "input_tokens", "output_tokens")


def _table_from_trace(trace) -> RequestTable:
    df = getattr(trace, "requests", None)
    if df is None:
        raise FrontierError("simulate: the trace has no 'requests' table")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise FrontierError(f"simulate: trace requests lack column(s) {missing}")
    arrival = df["arrival_s"].to_numpy(dtype=np.float64)
    if len(arrival) and not np.all(np.isfinite(arrival)):
        bad = int(np.flatnonzero(~np.isfinite(arrival))[0])
        raise FrontierError(f"simulate: trace row {bad}: arrival_s is not a finite number")
    hash_ids = None
    hbs = getattr(trace, "hash_block_size", None)
    if "hash_ids" in df.columns:
        if not hbs or int(hbs) < 1:
            raise FrontierError("simulate: the trace has hash_ids but no positive hash_block_size")
        hash_ids = df["hash_ids"].tolist()
        hbs = int(hbs)
    return RequestTable(df["request_id"].to_numpy(), arrival, df["input_tokens"].to_numpy(),
                        df["output_tokens"].to_numpy(), hash_ids, hbs)


class _Replay:
    """State of one :func:`simulate` call."""

    def __init__(self, trace, specs, router, seed, progress, timeline, fast_forward, check):
        if not specs:
            raise FrontierError("simulate: no replicas")
        self.table = _table_from_trace(trace)
        self.timeline = [] if timeline else None
        self.replicas = [Replica(i, spec, self.table, fast_forward=fast_forward, check=check,
                                 timeline=self.timeline) for i, spec in enumerate(specs)]
        self.entry = [rep for rep in self.replicas if rep.role in ("both", "prefill")]
        self.decoders = [rep for rep in self.replicas if rep.role == "decode"]
        has_prefill = any(rep.role == "prefill" for rep in self.replicas)
        if not self.entry:
            raise FrontierError("simulate: no replica accepts new requests (all have role 'decode')")
        if has_prefill and not self.decoders:
            raise FrontierError("simulate: 'prefill' replicas need at least one 'decode' replica")
        if self.decoders and not has_prefill:
            raise FrontierError("simulate: 'decode' replicas need at least one 'prefill' replica")
        self.router = make_router(router, seed)
        self.decode_router = make_router(router if isinstance(router, str) else router.name, seed + 1)
        concurrency = getattr(trace, "concurrency", None)
        n = self.table.n
        if concurrency:
            if int(concurrency) < 1:
                raise FrontierError(f"simulate: trace concurrency must be >= 1, got {concurrency}")
            start = min(self.table.arrival) if n else 0.0
            self.arrivals = ClosedLoopArrivals(n, int(concurrency), start)
        else:
            self.arrivals = OpenLoopArrivals(np.asarray(self.table.arrival))
        self.events = EventQueue()
        self.n_resolved = 0
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=n, unit="req", desc="replay", mininterval=0.5)

    # ------------------------------------------------------------------ loop
    def run(self) -> SimResult:
        wall0 = time.perf_counter()
        arrivals, events, reps = self.arrivals, self.events, self.replicas
        while True:
            ta = arrivals.peek_time()
            te = events.peek_time()
            if ta == math.inf and te == math.inf:
                break
            if ta <= te:
                t, r = arrivals.pop()
                self._arrive(r, t)
            else:
                t, (idx, version) = events.pop()
                rep = reps[idx]
                if version != rep.version or rep.plan is None:
                    continue   # superseded by a sync
                done = rep.finish_step(t)
                for _ in done:
                    arrivals.on_done(t)
                self._resolved(len(done))
                if rep.sched.handoffs:
                    self._hand_off(rep, t)
                self._kick(rep, t)
        if self.bar is not None:
            self.bar.close()
        for rep in reps:
            rep.sched.flush_itls()
        missing = [i for i, s in enumerate(self.table.status) if not s]
        if missing:
            raise RuntimeError(f"replay ended with {len(missing)} unresolved requests (first row {missing[0]}): "
                               "engine bug")
        stats = {
            "wall_s": time.perf_counter() - wall0,
            "requests": self.table.n,
            "steps": sum(rep.sched.num_steps for rep in reps),
            "cost_calls": sum(rep.cost_calls for rep in reps),
            "preemptions": sum(rep.sched.num_preemptions for rep in reps),
            "replicas": [rep.stats() for rep in reps],
        }
        if isinstance(arrivals, ClosedLoopArrivals):
            stats["max_in_flight"] = arrivals.max_in_flight
        result = make_result(self.table, [rep.name for rep in reps], self.timeline, stats)
        result.stats["total_wall_s"] = time.perf_counter() - wall0
        return result

    def _resolved(self, k: int) -> None:
        if k:
            self.n_resolved += k
            if self.bar is not None:
                self.bar.update(k)

    def _sync_all(self, t: float, pool) -> None:
        for rep in pool:
            if rep.plan is not None and rep.plan.n_steps > 1 and rep.sync(t):
                self.events.push(rep.plan.end_s, (rep.index, rep.version))

    def _place(self, r: int, t: float, pool):
        """Choose a replica of ``pool`` for row ``r`` at ``t``, or reject it with the reason."""
        R = self.table
        fits, reason = [], None
        for rep in pool:
            why = rep.sched.reject_reason(r)
            if why is None:
                fits.append(rep)
            elif reason is None:
                reason = why
        if fits and pool is self.entry and self.decoders:
            # Disaggregated: some decode worker must be able to hold it too.
            why = [d.sched.reject_reason(r) for d in self.decoders]
            if all(w is not None for w in why):
                fits, reason = [], why[0]
        if not fits:
            R.status[r] = f"rejected:{reason}"
            self.arrivals.on_done(t)
            self._resolved(1)
            return None
        self._sync_all(t, self.replicas)
        rep = self.router.choose(r, fits)
        R.replica[r] = rep.index
        return rep

    def _arrive(self, r: int, t: float) -> None:
        self.table.arrival[r] = t
        rep = self._place(r, t, self.entry)
        if rep is None:
            return
        rep.sched.enqueue(r, t)
        if rep.plan is None:
            self._kick(rep, t)

    def _hand_off(self, src: Replica, t: float) -> None:
        """Prefill worker -> decode worker (instant KV transfer for now)."""
        rows, src.sched.handoffs = src.sched.handoffs, []
        for r in rows:
            self._sync_all(t, self.decoders)
            fits = [d for d in self.decoders if d.sched.reject_reason(r) is None]
            dest = self.decode_router.choose(r, fits)
            self.table.replica[r] = dest.index
            dest.sched.enqueue_prefilled(r, t)
            if dest.plan is None:
                self._kick(dest, t)

    def _kick(self, rep: Replica, t: float) -> None:
        """Start the replica's next step if it has work."""
        if rep.plan is not None or not rep.sched.has_work:
            return
        end = rep.start_step(t, self.arrivals.peek_time())
        if end is not None:
            self.events.push(end, (rep.index, rep.version))
        elif rep.sched.waiting:
            raise RuntimeError(f"{rep.name} is idle with {len(rep.sched.waiting)} waiting requests: engine bug")


def simulate(trace, replicas: list[ReplicaSpec], *, router="round_robin", seed: int = 0,
             progress: bool = False, timeline: bool = False, fast_forward: bool = True,
             check: bool = False) -> SimResult:
    """Replay ``trace`` through ``replicas``; returns a :class:`SimResult`.

    ``trace``: an object with ``requests`` (DataFrame: request_id, arrival_s [s], input_tokens, output_tokens,
    optional hash_ids), ``hash_block_size`` and ``concurrency`` (closed loop when set).
    ``router``: 'round_robin', 'least_outstanding', 'prefix_affinity', or a
    :class:`~frontier_calib.sim.router.Router`. ``seed``: router tie-breaks. ``progress``: a tqdm bar over
    resolved requests. ``timeline``: record a Chrome-trace of engine steps. ``fast_forward``: advance static
    decode batches many steps at a time (False: one step at a time, same results, slower). ``check``: assert the
    KV accounting after every step (slow; for tests).
    """
    return _Replay(trace, replicas, router, seed, progress, timeline, fast_forward, check).run()
