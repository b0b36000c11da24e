"""The replay loop: arrivals and replica step ends from one time-ordered event stream.

At equal times arrivals go first, so a request arriving exactly when a step ends is seen by the next step's
scheduling. Everything is deterministic for a given trace, deployment and ``seed`` (router tie-breaks only).
"""

from __future__ import annotations

import gc
import math
import time

import numpy as np

from ..errors import FrontierError
from .arrivals import ClosedLoopArrivals, OpenLoopArrivals
from .events import EventQueue
from .replica import Replica, ReplicaSpec
from .requests import RequestTable
from .results import SimResult, make_result
from .disagg import KVTransfers, pool_stats
from .lockstep import lockstep_groups
from .router import make_router

REQUIRED_COLUMNS = ("request_id", "arrival_s", "input_tokens", "output_tokens")


def _table_from_trace(trace) -> RequestTable:
    if getattr(trace, "column", None) is not None and getattr(trace, "has_column", None) is not None:
        has, column = trace.has_column, trace.column   # a Trace: its columns, without building its DataFrame
    else:
        df = getattr(trace, "requests", None)
        if df is None:
            raise FrontierError("simulate: the trace has no 'requests' table")
        has, column = (lambda name: name in df.columns), (lambda name: df[name].to_numpy())
    missing = [c for c in REQUIRED_COLUMNS if not has(c)]
    if missing:
        raise FrontierError(f"simulate: trace requests lack column(s) {missing}")
    arrival = column("arrival_s").astype(np.float64, copy=False)
    if len(arrival) and not np.all(np.isfinite(arrival)):
        bad = int(np.flatnonzero(~np.isfinite(arrival))[0])
        raise FrontierError(f"simulate: trace row {bad}: arrival_s is not a finite number")
    hash_ids = None
    hbs = getattr(trace, "hash_block_size", None)
    if has("hash_ids"):
        if not hbs or int(hbs) < 1:
            raise FrontierError("simulate: the trace has hash_ids but no positive hash_block_size")
        hash_ids = column("hash_ids").tolist()
        hbs = int(hbs)
    return RequestTable(column("request_id"), arrival, column("input_tokens"), column("output_tokens"), hash_ids,
                        hbs)


class _Replay:
    """State of one :func:`simulate` call."""

    def __init__(self, trace, specs, router, seed, progress, timeline, fast_forward, check, decode_router=None,
                 ttft="decode", frontend_s=0.0, frontend_per_token_s=0.0):
        if not specs:
            raise FrontierError("simulate: no replicas")
        self.table = _table_from_trace(trace)
        self.timeline = [] if timeline else None
        self.replicas = [Replica(i, spec, self.table, fast_forward=fast_forward, check=check,
                                 timeline=self.timeline) for i, spec in enumerate(specs)]
        self.groups = lockstep_groups(self.replicas, [spec.lockstep for spec in specs], fast_forward)
        self.entry = [rep for rep in self.replicas if rep.role in ("both", "prefill")]
        self.decoders = [rep for rep in self.replicas if rep.role == "decode"]
        has_prefill = any(rep.role == "prefill" for rep in self.replicas)
        if not self.entry:
            raise FrontierError("simulate: no replica accepts new requests (all have role 'decode')")
        if has_prefill and not self.decoders:
            raise FrontierError("simulate: 'prefill' replicas need at least one 'decode' replica")
        if self.decoders and not has_prefill:
            raise FrontierError("simulate: 'decode' replicas need at least one 'prefill' replica")
        if isinstance(router, dict):   # {'prefill': ..., 'decode': ...}
            unknown = set(router) - {"prefill", "decode"}
            if unknown:
                raise FrontierError(f"simulate: router keys must be 'prefill' and 'decode', got {sorted(unknown)}")
            decode_router = router.get("decode", decode_router)
            router = router.get("prefill", "round_robin")
        self.router = make_router(router, seed)
        self.events = EventQueue()
        self.transfers = None
        if self.decoders:
            if decode_router is None:
                decode_router = router if isinstance(router, str) and router != "prefix_affinity" else "round_robin"
            self.transfers = KVTransfers(self, decode_router, seed + 1, ttft)
        concurrency = getattr(trace, "concurrency", None)
        n = self.table.n
        row_delay = (np.asarray(self.table.n_in, dtype=np.float64) * frontend_per_token_s
                     if frontend_per_token_s else None)
        if concurrency:
            if int(concurrency) < 1:
                raise FrontierError(f"simulate: trace concurrency must be >= 1, got {concurrency}")
            start = min(self.table.arrival) if n else 0.0
            self.arrivals = ClosedLoopArrivals(n, int(concurrency), start, frontend_s, row_delay)
        else:
            self.arrivals = OpenLoopArrivals(np.asarray(self.table.arrival), frontend_s, row_delay)
        self.n_resolved = 0
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=n, unit="req", desc="replay", mininterval=0.5)

    # ------------------------------------------------------------------ loop
    def run(self) -> SimResult:
        """Replay the trace. Python's cyclic garbage collector is paused meanwhile (and restored after): the
        replay builds no reference cycles (in the Mooncake PD and Azure benchmarks its ~110 collections freed
        nothing), so a collection would only walk the replay's live objects (about 4 % of the PD run)."""
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if collecting:
                gc.enable()

    def _run(self) -> SimResult:
        wall0 = time.perf_counter()
        arrivals, events, reps = self.arrivals, self.events, self.replicas
        n_reps = len(reps)
        peek_arrival, peek_event, pop_event = arrivals.peek_time, events.peek_time, events.pop
        while True:
            ta = peek_arrival()
            te = peek_event()
            if ta == math.inf and te == math.inf:
                break
            if ta <= te:
                t, r, sent = arrivals.pop()
                self._arrive(r, t, sent)
            else:
                t, (idx, version) = pop_event()
                if idx < 0:    # a KV transfer arrived at its decode worker (version: the request row)
                    self.transfers.deliver(version, t)
                    continue
                if idx >= n_reps:   # a lockstep group's common step ended
                    self._group_end(self.groups[idx - n_reps], version, t)
                    continue
                rep = reps[idx]
                if version != rep.version or rep.plan is None:
                    continue   # superseded by a sync
                self._finish(rep, t)
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
        if self.groups:
            stats["lockstep_groups"] = [g.stats() for g in self.groups]
        if isinstance(arrivals, ClosedLoopArrivals):
            stats["max_in_flight"] = arrivals.max_in_flight
        result = make_result(self.table, [rep.name for rep in reps], self.timeline, stats)
        self._disagg_results(result)
        result.stats["total_wall_s"] = time.perf_counter() - wall0
        return result

    def _finish(self, rep: Replica, t: float) -> None:
        """Apply ``rep``'s step ending at ``t``: completions, KV hand-offs (prefill) or transfers it unblocks."""
        done = rep.finish_step(t)
        if done:
            for _ in done:
                self.arrivals.on_done(t)
            self._resolved(len(done))
        if rep.sched.handoffs:
            self.transfers.hand_off(rep, t)
        elif rep.role == "decode" and rep.pending_kv:
            self.transfers.pump(rep, t)   # freed KV blocks may unblock held-back transfers

    def _group_end(self, g, version: int, t: float) -> None:
        """The common step of lockstep group ``g`` ended at ``t``: finish every member's step, then start the
        next common step."""
        if version != g.version or not g.busy:
            return
        g.finish_members(t, self._finish)
        self._kick_group(g, t)

    def _kick_group(self, g, t: float) -> None:
        end = g.start(t, self.arrivals.peek_time())
        if end is not None:
            self.events.push(end, (len(self.replicas) + g.index, g.version))
            return
        if g.busy or g.finishing:
            return
        for rep in g.members:
            _check_idle(rep)

    def _disagg_results(self, result: SimResult) -> None:
        """Per-pool statistics always; per-request KV-transfer columns and per-link statistics for PD."""
        R = self.table
        done = [c for c in R.completion_s if c == c]
        makespan = (max(done) - min(R.arrival)) if done else 0.0
        result.stats["makespan_s"] = makespan
        pools = pool_stats(self.replicas, R, makespan)
        result.stats["pools"] = pools
        if self.transfers is None:
            return
        cols = self.transfers.request_columns()
        for name, values in cols.items():
            result.add_column(name, values)
        pd_stats = self.transfers.stats(makespan, cols)
        pools["decode"]["queue_s"] = pd_stats.pop("decode_queue_s")
        result.stats["links"] = pd_stats.pop("links")
        result.stats["disaggregation"] = pd_stats
        for key in ("kv_transfer_wait_s", "kv_transfer_s"):
            d = pd_stats[key]
            result.summary[f"mean_{key[:-2]}_ms"] = None if d["mean"] is None else d["mean"] * 1e3
            result.summary[f"p99_{key[:-2]}_ms"] = None if d["p99"] is None else d["p99"] * 1e3
        if self.timeline is not None:
            for link in self.transfers.links:
                self.timeline.append({"name": "process_name", "ph": "M", "pid": 100000 + link.index,
                                      "args": {"name": f"link {link.spec.name}"}})

    def _resolved(self, k: int) -> None:
        if k:
            self.n_resolved += k
            if self.bar is not None:
                self.bar.update(k)

    def _sync_all(self, t: float, pool) -> None:
        for rep in pool:
            self.sync(rep, t)

    def _place(self, r: int, t: float, pool):
        """Choose a replica of ``pool`` for row ``r`` at ``t``, or reject it with the reason."""
        R = self.table
        fits, reason = [], None
        for rep in pool:
            why = rep.sched.rejection(r)
            if why is None:
                fits.append(rep)
            elif reason is None:
                reason = why
        if fits and pool is self.entry and self.decoders:
            # Disaggregated: some decode worker must be able to hold it too.
            if all(d.sched.rejection(r) is not None for d in self.decoders):
                fits, reason = [], self.decoders[0].sched.rejection(r)
        if not fits:
            R.status[r] = f"rejected:{reason}"
            self.arrivals.on_done(t)
            self._resolved(1)
            return None
        if self.router.reads_cache:
            self._sync_all(t, self.replicas)
        rep = self.router.choose(r, fits)
        # its next step must see the new request (the others' stretches need no cut); an engine that schedules
        # ahead sees it one step later, so its stretch runs on through the step after the one in progress
        self.sync(rep, t, later=int(rep.schedules_ahead))
        R.replica[r] = rep.index
        return rep

    def _arrive(self, r: int, t: float, sent: float) -> None:
        """Row ``r`` reaches the scheduler at ``t``; its client sent it at ``sent`` (its arrival_s: TTFT and E2E
        count from there)."""
        self.table.arrival[r] = sent
        rep = self._place(r, t, self.entry)
        if rep is None:
            return
        if rep.schedules_ahead and (rep.plan is not None or (rep.group is not None and rep.group.busy)):
            if not (rep.group is None and rep.plan.covers_next(t)):
                rep.hold(r, t)   # the next step's batch was fixed when the step in progress started
                return
            # else: the stretch in progress runs through the next step; the request is seen when it ends
        rep.sched.enqueue(r, t)
        if rep.plan is None:
            self._kick(rep, t)

    def sync(self, rep: Replica, t: float, later: int = 0) -> None:
        """Bring ``rep``'s stretch in progress up to ``t`` (see :meth:`Replica.sync`; ``later`` more steps kept);
        a lockstep member's whole group (see :meth:`~frontier_calib.sim.lockstep.LockstepGroup.sync`)."""
        g = rep.group
        if g is not None:
            rep.dirty = True   # the caller is about to change it: it plans afresh at the next common step end
            if rep.plan is not None:
                if g.finishing and g.members.index(rep) < g.cursor:
                    # kept at this common step end, before the member now finishing: finish it as planned
                    if rep.finish_step(t):
                        raise RuntimeError(f"{rep.name}: a kept lockstep plan finished requests: engine bug")
                elif rep.plan.marks:
                    rep.settle()   # its state as if it had been re-planned at every common step end
            if g.busy and g.sync(t, rep):
                self.events.push(g.end_s, (len(self.replicas) + g.index, g.version))
            return
        if rep.plan is not None and rep.plan.n_steps > 1 and rep.sync(t, later):
            self.events.push(rep.plan.end_s, (rep.index, rep.version))

    def kick(self, rep: Replica, t: float) -> None:
        self._kick(rep, t)

    def _kick(self, rep: Replica, t: float) -> None:
        """Start the replica's next step if it has work (for a lockstep member: the group's next common step)."""
        if rep.group is not None:
            self._kick_group(rep.group, t)
            return
        if rep.plan is not None or not (rep.sched.has_work or rep.held):
            return
        end = rep.start_step(t, self.arrivals.peek_time())
        if end is not None:
            self.events.push(end, (rep.index, rep.version))
        else:
            _check_idle(rep)


def _check_idle(rep: Replica) -> None:
    """An idle replica with waiting requests is an engine bug, unless they wait for something outside it (a prefill
    worker for KV to leave; a decode worker for blocks reserved for KV on its way)."""
    if rep.sched.waiting and not rep.sched.sending and not rep.sched.reserved:
        raise RuntimeError(f"{rep.name} is idle with {len(rep.sched.waiting)} waiting requests: engine bug")


def simulate(trace, replicas: list[ReplicaSpec], *, router="round_robin", seed: int = 0,
             progress: bool = False, timeline: bool = False, fast_forward: bool = True,
             check: bool = False, decode_router: str | None = None, ttft: str = "decode",
             frontend_s: float = 0.0, frontend_per_token_s: float = 0.0) -> SimResult:
    """Replay ``trace`` through ``replicas``; returns a :class:`SimResult`.

    ``trace``: an object with ``requests`` (DataFrame: request_id, arrival_s [s], input_tokens, output_tokens,
    optional hash_ids), ``hash_block_size`` and ``concurrency`` (closed loop when set).
    ``router``: 'round_robin', 'least_outstanding', 'prefix_affinity', or a
    :class:`~frontier_calib.sim.router.Router`. ``seed``: router tie-breaks. ``progress``: a tqdm bar over
    resolved requests. ``timeline``: record a Chrome-trace of engine steps. ``fast_forward``: advance static
    decode batches many steps at a time (False: one step at a time, same results, slower). ``check``: assert the
    KV accounting after every step (slow; for tests).

    Prefill/decode disaggregation (replicas with roles 'prefill' and 'decode'): ``router`` may be a mapping
    ``{'prefill': ..., 'decode': ...}``; ``decode_router``: 'round_robin' | 'least_outstanding' | 'kv_aware'
    (default: the prefill router when it is one of those); ``ttft``: 'decode' (first token counted when the
    decode worker admits the request) or 'prefill' (when the prefill worker samples it). KV transfers follow
    the prefill replicas' ``kv_transfer`` (see :mod:`frontier_calib.sim.disagg`).

    ``frontend_s``: seconds from a client sending a request to the scheduler seeing it (HTTP, API server,
    tokenization; :attr:`~frontier_calib.cost.worker.Overheads.frontend_s`). Requests keep the send time as
    ``arrival_s``, so TTFT and E2E include it; closed-loop clients send the next request when the previous ends.
    ``frontend_per_token_s``: seconds more per prompt token (tokenization), the same way.
    """
    for name, v in (("frontend_s", frontend_s), ("frontend_per_token_s", frontend_per_token_s)):
        if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise FrontierError(f"simulate: {name} must be a number of seconds >= 0, got {v!r}")
    return _Replay(trace, replicas, router, seed, progress, timeline, fast_forward, check, decode_router,
                   ttft, float(frontend_s), float(frontend_per_token_s)).run()
