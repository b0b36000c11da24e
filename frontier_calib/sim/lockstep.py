"""Attention-DP ranks in lockstep: the ranks of one MoE worker step together.

With attention data parallelism each rank schedules its own requests, but the MoE (or dense MLP) layers between
the attention layers are one collective over all ranks: every rank must enter every layer's all-to-all (or
all-gather / reduce-scatter) before any rank can leave it. So the ranks of one worker run their forward passes in
lockstep, and a step ends when the slowest rank's step ends. A rank with nothing to do still takes part: vLLM's
data-parallel engine loop (``vllm/v1/engine/core.py``, ``DPEngineCoreProc``) runs ``execute_dummy_batch()`` on a
rank with no ready request while the DP wave is running, and pads the ranks' token counts to the largest one
(``vllm/v1/worker/dp_utils.py``) so that every rank replays the same CUDA graph; SGLang's DP attention runs an
idle batch (``ForwardMode.IDLE``) on empty ranks for the same reason. The padded or dummy batch is never slower
than the largest rank's batch, so here a common step lasts as long as the slowest member's own step; a rank that
gets a request while the others are mid-step starts it only at the next common step.

A :class:`LockstepGroup` holds the member replicas; the replay loop (:mod:`frontier_calib.sim.engine`) starts a
group step with :meth:`LockstepGroup.start` and finishes every member when the common end time comes. Members run
common steps: one at a time, or, when every rank with work runs a steady decode batch, many at once
(:meth:`LockstepGroup.start`), with the same times as one at a time.

A common stretch ends when any one rank's batch changes (a completion, a KV transfer arriving), while the other
ranks would schedule the same decode batch again. Those ranks keep their plan (:meth:`LockstepGroup.continues`):
the next stretch extends it instead of finishing and re-planning the rank, and its steps are applied together when
the rank's own batch changes. The times, KV blocks and policy state are the same as re-planning at every common
step end (the KV blocks of those steps are allocated later, but nothing else touches that rank's cache meanwhile).

With TensorRT-LLM's attention-DP balance (``scheduler.attention_dp_balance``) the group decides before each common
step whether the ranks hold their new context requests (:mod:`.adp_balance`).
"""

from __future__ import annotations

import math
from bisect import bisect_left

import numpy as np

from ..errors import FrontierError
from .adp_balance import ADPBalance
from .replica import stretch_ends

_max_reduce = np.maximum.reduce   # what ndarray.max and ndarray.sum call, without their keyword handling
_add_reduce = np.add.reduce


class LockstepGroup:
    """The replicas (attention-DP ranks) that step together; ``index``: position in the replay's group list.

    ``fast_forward``: when every rank with work runs a steady decode batch, the group advances many common steps
    at once (each step as long as the slowest rank's, until the first rank's batch changes or the horizon);
    the times are the same as one common step at a time."""

    __slots__ = ("index", "name", "members", "busy", "finishing", "version", "steps", "wait_s", "fast_forward",
                 "dt_guess", "speculative", "defer", "ends", "kept", "cursor", "batched", "mixed_costs",
                 "batched_calls", "balance", "hold_limit")

    def __init__(self, index: int, name: str, members: list, fast_forward: bool = True):
        self.index = index
        self.name = name
        self.members = members
        self.busy = False        # a common step is in progress
        self.finishing = False   # the members' steps are being applied (no new step may start yet)
        self.version = 0
        self.steps = 0
        self.wait_s = 0.0        # rank-seconds spent waiting for the slowest rank (s)
        self.fast_forward = fast_forward
        self.dt_guess = 0.0      # last common decode step (s), to size stretches
        self.ends: list = []     # end times (s) of the common step or stretch in progress
        self.kept = 0            # plans kept across a common step end (see continues)
        self.batched_calls = 0   # decode_stretches calls of the stretch being planned (see _durations)
        self.cursor = 0          # the member being finished at a common step end (the replay loop sets it)
        self.speculative = any(rep.spec_steps is not None for rep in members)
        for rep in members:   # attention-DP ranks: TensorRT-LLM's batch waiting does not apply (schedulers/trtllm.py)
            rep.sched.attention_dp = True
        # ranks whose batch did not change keep their plan across common step ends (not with a timeline: it
        # records one event per plan)
        self.defer = fast_forward and not self.speculative and all(rep.timeline is None for rep in members)
        # the members' shared cost model's decode_stretches (every rank priced in one call), or None
        cost = members[0].cost
        self.mixed_costs = any(rep.cost is not cost for rep in members)
        self.batched = None if self.mixed_costs else getattr(cost, "decode_stretches", None)
        # TensorRT-LLM's attention-DP balance (scheduler.attention_dp_balance; adp_balance.py)
        cfg = members[0].sched.cfg
        if getattr(cfg, "scheduler_recv_interval", 1) > 1:
            raise FrontierError(f"{name}: scheduler.scheduler_recv_interval needs one scheduler per worker; SGLang "
                                "does not take it with attention DP (SchedulerRecvSkipper); remove it or the "
                                "attention_dp ranks")
        self.balance = (ADPBalance(cfg.attention_dp_timeout_iters, cfg.attention_dp_batching_wait_iters)
                        if getattr(cfg, "attention_dp_balance", False) else None)
        self.hold_limit = None   # common steps before the balance counts alone may release held contexts

    @property
    def end_s(self) -> float:
        """End time (s) of the common step or stretch in progress."""
        return max(rep.plan.end_s for rep in self.members if rep.plan is not None)

    def continues(self, rep) -> bool:
        """Whether member ``rep``, whose part of the common stretch just ended, keeps its plan for the next one:
        its plan is a fast-forwarded steady decode batch whose own limit (first completion, KV blocks, policy) is
        not reached, and nothing outside touched it since (``rep.dirty``: a KV transfer, a reservation, a new
        request) and nothing waits on it (nor is held for it), so its policy would schedule the same batch again."""
        plan = rep.plan
        sched = rep.sched
        return (plan.n_steps < plan.limit and not rep.dirty and not sched.waiting and not sched.prefilling
                and not rep.pending_kv and not rep.held)

    def finish_members(self, t: float, finish) -> None:
        """The common step or stretch ended at ``t``: ``finish(rep, t)`` every member with a plan, but for those
        that keep it (:meth:`continues`). ``cursor`` is the member being finished (read by the replay's sync)."""
        self.busy, self.finishing = False, True
        defer = self.defer
        for i, rep in enumerate(self.members):
            plan = rep.plan
            if plan is None:
                continue
            if defer:   # self.continues(rep), inlined
                sched = rep.sched
                if (plan.n_steps < plan.limit and not rep.dirty and not sched.waiting and not sched.prefilling
                        and not rep.pending_kv and not rep.held):
                    continue
            self.cursor = i
            finish(rep, t)
        self.finishing = False

    def start(self, t: float, horizon: float = math.inf) -> float | None:
        """Start the next common step on every member that has work, all at ``t``; returns its end time (s): the
        slowest member's step end (or the end of a fast-forwarded stretch of common decode steps, cut at the step
        in progress at ``horizon``). None when no member has a step to run. Members that still hold a plan kept
        it at the last common step end (:meth:`continues`): a stretch extends it; a single common step finishes
        it and plans the rank afresh first, as if it had not been kept."""
        if self.busy or self.finishing:
            return None
        if self.speculative:
            plans, stretch = self._plans_speculative(t)
        else:   # one pass in member order: kept plans as they are, the other ranks with work planned
            if self.balance is not None:
                self._balance()
            plans, fresh = [], None
            stretch = self.fast_forward
            for rep in self.members:
                plan = rep.plan
                if plan is None:
                    if not (rep.sched.running or rep.sched.waiting or rep.held):
                        continue
                    plan = rep.plan_step(t)
                    if plan is None:
                        continue
                    if plan.chunks or not plan.steady:
                        stretch = False
                    if fresh is None:
                        fresh = [(rep, plan)]
                    else:
                        fresh.append((rep, plan))
                plans.append((rep, plan))
            if not stretch and fresh is not None and len(fresh) < len(plans):   # some plans were kept
                plans = fresh
                self._replan_kept(t, plans)
        if not plans:
            return None
        if stretch:
            end = self._stretch(plans, t, horizon)
        else:
            durations = [rep.step_duration(plan) for rep, plan in plans]
            if any(plan.chunks for _, plan in plans):
                durations = self._shared_ffn(plans, durations)
            end = t + max(durations)
            self.ends = [end]
            for (rep, plan), d in zip(plans, durations):
                self.wait_s += end - (t + d)
                plan.ends = [end]
                rep.plan = plan
                rep.version += 1
            self.steps += 1
        self.busy = True
        self.version += 1
        return end

    def _plans_speculative(self, t: float) -> tuple:
        """:meth:`start`'s plans with speculative decoding (no plan is ever kept: ``defer`` is off): ranks still
        owed tokens of the common verify step emit them first (no time). Returns (plans, whether a stretch)."""
        ready = [rep for rep in self.members
                 if rep.plan is None and (rep.sched.running or rep.sched.waiting or rep.held)]
        owing = [rep for rep in ready if rep.owes_tokens()]
        if self.balance is not None and not owing:   # a verify step's owed tokens are no iteration of their own
            self._balance()
        plans = []
        for rep in owing or ready:
            plan = rep.plan_step(t)
            if plan is not None:
                plans.append((rep, plan))
        stretch = (self.fast_forward and not owing and all(not p.chunks and p.steady for _, p in plans)
                   and all(r.spec_steps is None for r, _ in plans))
        return plans, stretch

    def _balance(self) -> None:
        """Attention-DP balance before a common step: count the iterations the last stretch ran, decide, and hold
        (or release) each rank's waiting context requests (``sched.hold_context``)."""
        bal = self.balance
        bal.advance(self.ends)
        ranks = [(bool(m.sched.waiting) or bool(m.sched.prefilling), m.sched.decode.n, m.sched.cfg.max_running)
                 for m in self.members]
        hold, self.hold_limit = bal.decide(ranks)
        for m in self.members:
            m.sched.hold_context = hold

    def _replan_kept(self, t: float, plans: list) -> None:
        """The next common step is a single step: finish the kept plans at ``t`` and plan those ranks afresh,
        putting every member's plan into ``plans`` in member order."""
        fresh = {id(rep): plan for rep, plan in plans}
        plans.clear()
        for rep in self.members:
            if rep.plan is not None and id(rep) not in fresh:
                if rep.finish_step(t):
                    raise RuntimeError(f"{rep.name}: a kept lockstep plan finished requests: engine bug")
                plan = rep.plan_step(t)
            else:
                plan = fresh.get(id(rep))
            if plan is not None:
                plans.append((rep, plan))

    def _shared_ffn(self, plans, durations: list) -> list:
        """A step with prefill on some rank: each rank's step time with its MoE/FFN share at the tokens of all
        ranks together. A rank's own cost prices the experts as if every rank had its token count
        (``attention_dp`` x its tokens: right for decode steps, where the engines pad the ranks to the largest
        count for one CUDA graph, e.g. vLLM's ``dp_utils``), but prefill steps run eager and the all-to-all or
        all-gather carries each rank's own tokens, so one rank's long chunk must not be priced as ``attention_dp``
        chunks of experts. Needs the cost model's ``ffn_ms`` lookup; without it the durations stay as they are."""
        cost = plans[0][0].cost
        if not hasattr(cost, "ffn_ms") or any(rep.cost is not cost for rep, _ in plans):
            return durations
        tokens = [sum(p.prefill_q) + p.num_decode for _, p in plans]
        share = -(-sum(tokens) // len(self.members))   # the tokens per rank if all ranks shared them evenly
        common = cost.ffn_ms(share)
        return [max(d + (common - cost.ffn_ms(n)) / 1e3, 0.0) if d > 0 else d
                for d, n in zip(durations, tokens)]

    def _durations(self, plans, ns: list, firsts: list, done: int, k: int) -> list:
        """Durations (s) of ``k`` common decode steps after ``done`` steps of the stretch: the slowest rank's.
        ``ns``, ``firsts``: each rank's decode batch size and decode KV sum in the stretch's first step. Ranks
        sharing one cost model with a ``decode_stretches`` method (``batched``) are priced together, in one array
        operation (bit-identical to pricing each rank with ``decode_times``); otherwise rank by rank."""
        a = None
        batched = self.batched
        if batched is None and self.mixed_costs:   # ranks with different cost models: batched when these share one
            cost = plans[0][0].cost
            if all(rep.cost is cost for rep, _ in plans):
                batched = getattr(cost, "decode_stretches", None)
        if batched is not None and len(plans) > 1:
            a = batched(ns, [kv + n * done for n, kv in zip(ns, firsts)] if done else firsts, k)
        if a is None:
            rows = [rep.decode_durations(p.num_decode, kv + p.num_decode * done, k, done)
                    for (rep, p), kv in zip(plans, firsts)]
            if len(rows) == 1:
                return rows[0]
            a = np.array(rows)
        else:
            self.batched_calls += 1   # one cost-model call for every rank (counted per rank in _stretch)
        top = _max_reduce(a, axis=0)                        # a.max(axis=0)
        self.wait_s += float(_add_reduce(top - a, axis=None))   # (top - a).sum()
        return top.tolist()

    def _stretch(self, plans, t: float, horizon: float) -> float:
        """Fast-forward common decode steps from ``t``; kept plans (``marks``) continue where they stopped."""
        ns, firsts, k_max = [], [], None
        self.batched_calls = 0
        for rep, p in plans:
            n = p.num_decode
            ns.append(n)
            if p.ends:   # kept: its batch after the steps it already ran
                left = p.limit - p.n_steps
                firsts.append(p.decode_kv_sum + n * p.n_steps)
            else:
                left = p.limit = rep.stretch_limit(p)
                firsts.append(p.decode_kv_sum)
            if k_max is None or left < k_max:
                k_max = left
        if self.hold_limit is not None and self.hold_limit < k_max:   # held contexts are released by the count
            k_max = self.hold_limit
        ends = stretch_ends(t, k_max, horizon, self.dt_guess,
                            lambda done, k: self._durations(plans, ns, firsts, done, k))
        self.dt_guess = ends[-1] - (ends[-2] if len(ends) > 1 else t)
        self.ends = ends
        defer = self.defer
        kept = 0
        calls = self.batched_calls
        for rep, plan in plans:
            if plan.ends:
                kept += 1
                if plan.marks is None:
                    plan.marks = [plan.n_steps]
                else:
                    plan.marks.append(plan.n_steps)
                plan.ends += ends
                plan.n_steps = len(plan.ends)
            else:
                plan.ends = ends.copy()
                plan.n_steps = len(ends)
                if not defer:
                    plan.limit = 0
                rep.plan = plan
            rep.version += 1
            rep.stretches += 1
            rep.cost_calls += calls
        self.kept += kept
        self.steps += len(ends)
        return ends[-1]

    def sync(self, t: float, rep=None) -> bool:
        """Cut a stretch in progress after the common step running at ``t`` (a rank got new work: it joins at the
        next common step). ``rep``: the member about to change; the KV blocks of its steps up to the one running
        at ``t`` are allocated now (the other members' when their plans end: nothing touches their caches
        before). Returns True when the end time changed."""
        ends = self.ends
        n = len(ends)
        if n <= 1 or ends[n - 1] <= t:
            return False
        k = bisect_left(ends, t) + 1   # the common step in progress at t
        if rep is not None and rep.plan is not None:
            rep.sched.alloc_decode_steps(rep.plan, rep.plan.part_start + k)
        if k == n:
            return False
        del ends[k:]
        for m in self.members:
            plan = m.plan
            if plan is not None:
                j = plan.part_start + k
                del plan.ends[j:]
                plan.n_steps = j
                m.version += 1
        self.version += 1
        return True

    def stats(self) -> dict:
        return {"name": self.name, "ranks": len(self.members), "steps": self.steps, "wait_s": self.wait_s,
                "kept_plans": self.kept}


def lockstep_groups(replicas: list, names: list, fast_forward: bool = True) -> list:
    """Groups of ``replicas`` sharing a lockstep name (``names[i]`` for replica i; None: on its own). A name used
    by one replica only makes no group. Sets each member's ``group`` and turns its own fast-forward off (the
    group fast-forwards common decode steps instead, when ``fast_forward``)."""
    by_name: dict = {}
    for rep, name in zip(replicas, names):
        if name is not None:
            by_name.setdefault(name, []).append(rep)
    groups = []
    for name, members in by_name.items():
        if len(members) < 2:
            continue
        g = LockstepGroup(len(groups), name, members, fast_forward)
        for rep in members:
            rep.group = g
            rep.fast_forward = False
        groups.append(g)
    return groups
