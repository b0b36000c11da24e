"""A replica: one scheduling policy + its KV cache + a cost model, producing timed engine steps.

The replica turns the scheduler's next :class:`~frontier_calib.sim.schedulers.StepPlan` into time with the cost
model. A step with prefill work is one step. A *steady* decode-only step (the policy would schedule the same batch
again) is fast-forwarded: the replica advances up to the earliest of

* the first completion in the decode batch,
* the last step whose new KV blocks still fit (the step after it would need a preemption or retraction),
* the policy's own limit (SGLang: when the waiting head's KV reservation starts to fit),
* the step in progress when the next known arrival happens (``horizon``),

pricing all of those steps with one vectorised ``decode_times`` call and a cumulative sum. Step end times are
accumulated in the same order as step-by-step simulation, so both give bit-identical times. Arrivals that were
not known when the stretch was planned (closed-loop clients, other replicas' handoffs) cut it short with
:meth:`Replica.sync`.

With speculative decoding (``ReplicaSpec.speculative``) a verify step that emits ``t`` tokens per sequence is ``t``
decode sub-steps, only the first of which takes time (:mod:`.speculative`); the sub-steps a step still owes run
without asking the scheduler (:meth:`~.schedulers.base.Scheduler.continue_decode`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from .config import SchedulerConfig
from .cost_protocol import IterationCost
from .schedulers import make_scheduler
from .schedulers.base import ROLES, StepPlan
from .speculative import SpeculativeSteps

_EMPTY = np.zeros(0, dtype=np.int64)


def stretch_ends(t0: float, k_max: int, horizon: float, dt_guess: float, durations) -> list:
    """End times (s) of a fast-forwarded stretch of decode steps from ``t0``: up to ``k_max`` steps, cut after the
    step in progress when ``horizon`` (the next known arrival) comes. ``durations(done, k)``: the durations (s)
    of ``k`` steps after the first ``done``; ``dt_guess``: a recent step duration (s) to size the first call.
    The ends are sequential sums, identical to pricing one step at a time (shared by replicas and lockstep
    groups)."""
    if k_max <= 1 or horizon <= t0:
        return _sums(t0, durations(0, 1))
    want = k_max
    if horizon < math.inf and dt_guess > 0:
        want = min(k_max, int(min((horizon - t0) / dt_guess, 1e9)) + 2)
    ends = _sums(t0, durations(0, want))
    while ends[-1] < horizon and len(ends) < k_max:
        more = min(k_max - len(ends), max(len(ends), 16))
        ends += _sums(ends[-1], durations(len(ends), more))
    k = bisect_left(ends, horizon) + 1    # the step in progress when the horizon arrives
    if k < len(ends):
        del ends[k:]
    return ends


def _sums(t0: float, durations) -> list:
    """``t0 + d[0]``, ``t0 + d[0] + d[1]``, ...: the end times of steps of ``durations`` (s) from ``t0``, summed in
    order (``accumulate(durations, initial=t0)`` without its first item). A list of durations is reused."""
    d = durations if type(durations) is list else list(durations)
    d[0] += t0
    return list(accumulate(d))


@dataclass
class ReplicaSpec:
    """One serving replica: scheduler settings, cost model, role ('both' | 'prefill' | 'decode'), name.

    ``kv_transfer`` (prefill role): how its requests' KV reaches the decode workers
    (:class:`~frontier_calib.sim.disagg.KVTransferSpec`); None means an instantaneous hand-off.
    ``lockstep``: a name shared by the attention-DP ranks of one worker; ranks with the same name step together
    (see :mod:`frontier_calib.sim.lockstep`). None: the replica steps on its own.
    ``schedules_ahead``: the engine plans step n+1 while step n runs on the GPU (vLLM V1 async scheduling, on by
    default since v0.14; SGLang's overlap scheduler; TensorRT-LLM's overlap scheduler), so the batch of step n+1
    is fixed when step n starts and a request that reaches the scheduler during step n first runs in step n+2
    ("a newly arriving request cannot join a batch that has already been prepared"). Default: the cost model's
    ``schedules_ahead`` attribute (:mod:`.cost_protocol`), else False."""

    scheduler: SchedulerConfig
    cost: IterationCost
    role: str = "both"
    name: str = ""
    kv_transfer: object = None
    lockstep: str | None = None
    speculative: object = None   #: a SpeculativeSpec (cost/speculative.py): verify steps emit several tokens
    schedules_ahead: bool | None = None

    def __post_init__(self):
        if self.schedules_ahead is None:
            self.schedules_ahead = bool(getattr(self.cost, "schedules_ahead", False))
        if self.role not in ROLES:
            from ..errors import FrontierError
            raise FrontierError(f"replica role must be one of {ROLES}, got {self.role!r}")


class Replica:
    """Runtime state of one replica during a replay."""

    def __init__(self, index: int, spec: ReplicaSpec, reqs, *, fast_forward: bool = True, check: bool = False,
                 timeline: list | None = None):
        self.index = index
        self.name = spec.name or f"replica{index}"
        self.role = spec.role
        self.sched = make_scheduler(spec.scheduler, reqs, spec.role)
        self.cost = spec.cost
        self.fast_forward = fast_forward
        self.check = check
        self.timeline = timeline
        self.plan = None        # the step (or stretch) in progress
        self.version = 0        # bumps whenever the pending end event changes
        self._dt_guess = 0.0    # last decode step duration (s), to size stretches
        self._arange = np.arange(256, dtype=np.int64)
        self.cost_calls = 0
        self.stretches = 0
        self.kv_transfer = spec.kv_transfer
        self.incoming = 0       # decode role: requests routed here whose KV has not arrived yet
        self.pending_kv = None  # decode role: transfers queued here for KV blocks (a deque set by KVTransfers)
        self.busy_s = 0.0       # simulated seconds spent in steps
        self.group = None       # the LockstepGroup this replica steps with (set by the replay), or None
        self.spec_steps = None if spec.speculative is None else SpeculativeSteps(spec.speculative, index)
        self._owed = 0          # speculative: sub-steps the verify step in progress still owes (no cost)
        self.dirty = False      # lockstep member: something outside changed it since its plan (see sync)
        self.schedules_ahead = spec.schedules_ahead
        self.held: list = []    # schedules_ahead: (row, time) that arrived while the step in progress ran
        self._released = False  # the plan in the making let held requests in after it was fixed: one step only
        #: the cost model's scalar decode_times(n, [kv])[0], when its class has one (IterationCostModel.decode_time_one;
        #: looked up on the class: a wrapper that hands unknown attributes to the model it wraps, such as
        #: SpeculativeCost, prices decode steps its own way and must not get the wrapped model's)
        self._decode_one = spec.cost.decode_time_one if hasattr(type(spec.cost), "decode_time_one") else None

    @property
    def busy(self) -> bool:
        return self.plan is not None

    @property
    def outstanding(self) -> int:
        sched = self.sched   # its outstanding requests (waiting + running), without a second property call
        return len(sched.inbox) + len(sched.waiting) + len(sched.running) + self.incoming + len(self.held)

    def owes_tokens(self) -> bool:
        """Speculative decoding: the verify step just ended still owes this replica tokens (sim/speculative.py)."""
        steps = self.spec_steps
        return steps is not None and steps.pending(self.sched.s, self.sched.decode.n) > 0

    # ------------------------------------------------------------------ steps
    def start_step(self, now: float, horizon: float = math.inf):
        """Schedule and price the next step at ``now``; returns its end time (s) or None when idle."""
        plan = self.plan_step(now)
        if plan is None:
            return None
        return self.price_step(plan, now, horizon)

    def hold(self, r: int, t: float) -> None:
        """``schedules_ahead``: request ``r`` reached the scheduler at ``t`` while a step ran, so the next step's
        batch is already fixed; it joins the waiting queue once that step is planned (:meth:`plan_step`)."""
        self.held.append((r, t))

    def plan_step(self, now: float):
        """Schedule the next step at ``now`` without pricing it: its :class:`StepPlan`, or None when idle.
        Requests held while the last step ran (``schedules_ahead``) are queued after the plan is fixed; the plan
        then runs as one step (the policy looks again when it ends), or, when it is empty, the held requests
        are scheduled at once (an idle engine plans as soon as work arrives)."""
        self.dirty = False
        plan = self._plan(now)
        self._released = bool(self.held)
        if self.held:
            for r, t in self.held:
                self.sched.enqueue(r, t)
            self.held.clear()
            if plan is None:
                self._released = False
                plan = self._plan(now)
        return plan

    def _plan(self, now: float):
        steps, plan = self.spec_steps, None
        if steps is not None:
            self._owed = steps.pending(self.sched.s, self.sched.decode.n)
            if self._owed:
                plan = self.sched.continue_decode(now)
                if plan is None:
                    self._owed = steps.pending(self.sched.s, 0)   # its blocks do not fit: drop the pending tokens
        if plan is None:
            plan = self.sched.schedule(now)
        if plan is None:
            self.plan = None
        return plan

    def price_step(self, plan, now: float, horizon: float = math.inf) -> float:
        """Price ``plan`` (from :meth:`plan_step`) starting at ``now``: one step, or a fast-forwarded stretch of a
        steady decode batch up to ``horizon``; it becomes the step in progress. Returns its end time (s)."""
        if plan.chunks or not plan.steady or not self.fast_forward:
            plan.ends = [now + self.step_duration(plan)]
        else:
            self._stretch(plan, now, horizon)
        self.plan = plan
        self.version += 1
        return plan.ends[plan.n_steps - 1]

    def step_duration(self, plan) -> float:
        """Seconds of one step of ``plan`` (a speculative verify step's later sub-steps take none)."""
        if self._owed:
            return 0.0
        self.cost_calls += 1
        if plan.chunks:   # lists of ints (the protocol takes any int sequence)
            return self.cost.iteration_time(plan.prefill_q, plan.prefill_kv, plan.num_decode, plan.decode_kv_sum)
        return self.cost.iteration_time(_EMPTY, _EMPTY, plan.num_decode, plan.decode_kv_sum)

    def stretch_limit(self, plan) -> int:
        """Decode steps (>= 1) the steady batch of ``plan`` may be fast-forwarded before the policy must look
        again: the first completion, the last step whose KV blocks fit, the policy's own limit, a held-back KV
        transfer that now fits."""
        sched = self.sched
        dec = sched.decode
        s = sched.s
        k_max = dec.next_finish() - s
        if k_max > 1:
            free = sched.cache.clean + sched.cache.evictable
            m = k_max - 1   # at most one new block per member per block_size steps: count exactly only if short
            if len(dec.members) * -(-m // dec.bs) > free and dec.new_blocks(s + 1, m) > free:
                k_max = 1 + dec.steps_fitting(s + 1, free)
        if self._released:
            return 1   # requests were queued after this plan was fixed: the policy looks again after one step
        if self._owed:
            k_max = min(k_max, self._owed)   # a verify step's later tokens: the policy decides after them
        elif k_max > 1:
            k_max = min(k_max, sched.steady_steps(plan, k_max))
        if k_max > 1 and self.pending_kv and sched.can_reserve_prefilled(self.pending_kv[0], after_step=True):
            k_max = 1   # this step's admissions made room: the held-back transfer starts when it ends
        return k_max

    def _stretch(self, plan, now: float, horizon: float) -> None:
        n = len(self.sched.decode.members)
        kv1 = plan.decode_kv_sum
        ends = stretch_ends(now, self.stretch_limit(plan), horizon, self._dt_guess,
                            lambda done, k: self.decode_durations(n, kv1 + n * done, k, done))
        plan.ends = ends
        plan.n_steps = len(ends)
        self.stretches += 1

    def decode_durations(self, n: int, kv1: int, k: int, done: int = 0) -> list:
        """Durations (s) of ``k`` decode steps of ``n`` sequences, the first attending ``kv1`` tokens, after
        ``done`` steps of the stretch (speculative decoding: only the sub-steps that start a verify step take
        time)."""
        if k == 1 and self._decode_one is not None:   # one step: priced without arrays, the same value
            self.cost_calls += 1
            d = self._decode_one(n, kv1)
            if self.spec_steps is None:
                self._dt_guess = d
                return [d]
            return self._speculative_durations(np.array([d]), done, 1)
        ar = self._arange
        if k > len(ar):
            ar = self._arange = np.arange(max(k, 2 * len(ar)), dtype=np.int64)
        kv = ar[:k] * n + kv1
        d = self.cost.decode_times(n, kv)
        self.cost_calls += 1
        if self.spec_steps is not None:
            return self._speculative_durations(d, done, k)
        d = d.tolist() if hasattr(d, "tolist") else list(d)
        self._dt_guess = d[-1]
        return d

    def _speculative_durations(self, d, done: int, k: int) -> list:
        """Speculative decoding: only the sub-steps that start a verify step take time."""
        d = np.asarray(d) * self.spec_steps.step_flags(self.sched.s + done, k)
        if d.any():
            self._dt_guess = float(d.sum()) / k * 0.5   # mean sub-step time, halved: sizes stretches only
        return d.tolist()

    def sync(self, t: float, later: int = 0) -> bool:
        """Bring a stretch in progress up to time ``t``: allocate the KV blocks of the step running at ``t`` (and
        of ``later`` steps after it) and cut the stretch there. Returns True when the end time changed (a new end
        event is needed)."""
        plan = self.plan
        if plan is None or plan.n_steps <= 1:
            return False
        ends = plan.ends
        n = plan.n_steps
        if ends[n - 1] <= t:
            return False
        k = min(bisect_left(ends, t, plan.part_start, n) + 1 + later, n)
        self.sched.alloc_decode_steps(plan, k)
        if k < n:
            plan.n_steps = k
            del ends[k:]
            self.version += 1
            return True
        return False

    def finish_step(self, now: float) -> list:
        """Apply the step ending at ``now``; returns rows that finished."""
        plan = self.plan
        self.plan = None
        if plan.marks is None:
            self.busy_s += now - plan.start_s
        else:   # a continued plan: one addition per continuation, as one plan each would have made
            busy, start = self.busy_s, plan.start_s
            for m in plan.marks:
                end = plan.ends[m - 1]
                busy += end - start
                start = end
            self.busy_s = busy + (now - start)
        if self.timeline is not None:
            self._record(plan, now)
        done = self.sched.complete_step(plan, now)
        if self.check:
            self.sched.check()
        return done

    def settle(self) -> None:
        """A lockstep plan kept across common step ends (``plan.marks``): apply its steps before the latest
        continuation, as finishing and re-planning the rank at each common step end would have, so that its
        scheduler state is what it would be now (someone outside is about to read or change it). The latest
        continuation stays the plan in progress, as if the policy had just scheduled it."""
        plan = self.plan
        m = plan.marks[-1]
        sched = self.sched
        head = StepPlan(plan.start_s)
        head.num_decode, head.decode_kv_sum, head.steady = plan.num_decode, plan.decode_kv_sum, True
        head.ends = plan.ends[:m]
        head.n_steps = m
        head.alloc_steps = plan.alloc_steps
        head.marks = plan.marks[:-1] or None
        self.plan = head
        end = head.ends[-1]
        done = self.finish_step(end) if plan.alloc_steps <= m else self._finish_unchecked(end)
        if done:
            raise RuntimeError(f"{self.name}: a kept lockstep plan finished requests: engine bug")
        sched.on_steady_repeat()              # the policy scheduled the same batch again at ``end``
        plan.start_s = end
        del plan.ends[:m]
        plan.n_steps -= m
        plan.limit -= m
        plan.decode_kv_sum += plan.num_decode * m
        plan.marks = None
        plan.alloc_steps -= m
        if plan.alloc_steps < 1:              # its first step's KV blocks, as the policy allocates when scheduling
            nb = sched.decode.step_blocks(sched.s)
            if nb:
                sched.cache.take(nb)
            plan.alloc_steps = 1
        self.plan = plan

    def _finish_unchecked(self, now: float) -> list:
        """:meth:`finish_step` without the debug check (the plan in progress may hold blocks allocated ahead)."""
        check, self.check = self.check, False
        try:
            return self.finish_step(now)
        finally:
            self.check = check

    def _record(self, plan, end: float) -> None:
        if plan.chunks:
            name = "prefill+decode" if plan.num_decode else "prefill"
        else:
            name = "decode"
        self.timeline.append({
            "name": name, "ph": "X", "ts": plan.start_s * 1e6, "dur": (end - plan.start_s) * 1e6,
            "pid": self.index, "tid": 0,
            "args": {"n_steps": plan.n_steps, "prefill_requests": len(plan.chunks),
                     "prefill_tokens": int(sum(plan.prefill_q)), "num_decode": plan.num_decode,
                     "decode_kv_sum": plan.decode_kv_sum},
        })

    def stats(self) -> dict:
        c = self.sched.cache
        return {
            "name": self.name, "role": self.role, "policy": self.sched.policy,
            "steps": self.sched.num_steps, "decode_steps": self.sched.s, "stretches": self.stretches,
            "cost_calls": self.cost_calls, "preemptions": self.sched.num_preemptions, "busy_s": self.busy_s,
            "kv_blocks": c.num_blocks, "kv_blocks_max_used": c.max_used,
            "prefix_hit_blocks": c.hit_blocks, "evicted_blocks": c.evicted_blocks,
            **({} if self.spec_steps is None else self.spec_steps.stats(self.sched.s)),
        }
