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
one step at a time (no fast-forward), since their step boundaries depend on each other.
"""

from __future__ import annotations


class LockstepGroup:
    """The replicas (attention-DP ranks) that step together; ``index``: position in the replay's group list."""

    __slots__ = ("index", "name", "members", "busy", "finishing", "version", "steps", "wait_s")

    def __init__(self, index: int, name: str, members: list):
        self.index = index
        self.name = name
        self.members = members
        self.busy = False        # a common step is in progress
        self.finishing = False   # the members' steps are being applied (no new step may start yet)
        self.version = 0
        self.steps = 0
        self.wait_s = 0.0        # rank-seconds spent waiting for the slowest rank (s)

    def start(self, t: float) -> float | None:
        """Start one step on every member that has work, all at ``t``; returns the common end time (s): the
        slowest member's step end. None when no member has a step to run."""
        if self.busy or self.finishing:
            return None
        ends = []
        ready = [rep for rep in self.members if rep.plan is None and rep.sched.has_work]
        # speculative decoding: ranks still owed tokens of the common verify step emit them first (no time)
        owing = [rep for rep in ready if rep.owes_tokens()]
        for rep in owing or ready:
            end = rep.start_step(t)
            if end is not None:
                ends.append(end)
        if not ends:
            return None
        end = max(ends)
        for rep in self.members:
            plan = rep.plan
            if plan is not None:
                self.wait_s += end - plan.ends[plan.n_steps - 1]
                plan.ends[plan.n_steps - 1] = end
        self.busy = True
        self.version += 1
        self.steps += 1
        return end

    def stats(self) -> dict:
        return {"name": self.name, "ranks": len(self.members), "steps": self.steps, "wait_s": self.wait_s}


def lockstep_groups(replicas: list, names: list) -> list:
    """Groups of ``replicas`` sharing a lockstep name (``names[i]`` for replica i; None: on its own). A name used
    by one replica only makes no group. Sets each member's ``group`` and turns its fast-forward off."""
    by_name: dict = {}
    for rep, name in zip(replicas, names):
        if name is not None:
            by_name.setdefault(name, []).append(rep)
    groups = []
    for name, members in by_name.items():
        if len(members) < 2:
            continue
        g = LockstepGroup(len(groups), name, members)
        for rep in members:
            rep.group = g
            rep.fast_forward = False
        groups.append(g)
    return groups
