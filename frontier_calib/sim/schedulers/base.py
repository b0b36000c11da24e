"""What every scheduling policy shares: queues, the request lifecycle, and applying a finished step.

Lifecycle of a request on a replica (times in seconds of simulated time):

``waiting`` -> admitted (first time: ``scheduled_s``; prefix-cache hit sets ``cached_tokens``) -> prefill chunks
-> the step that computes the last prompt token samples a token (first token: ``first_token_s``) -> decode batch
(one token per decode step) -> finished (``completion_s``, KV blocks freed; shareable ones stay cached).

A preemption (vLLM, TensorRT-LLM) or retraction (SGLang) frees the request's blocks and sends it back to waiting;
when re-admitted it recomputes its prompt plus the tokens generated so far (recompute preemption), possibly
hitting its own blocks still in the prefix cache.

Roles (for prefill/decode disaggregation): a ``prefill`` worker hands a request off after its first token
(``handoffs``); a ``decode`` worker admits handed-off requests whose prompt KV arrives from elsewhere (no prefill
compute, but it needs KV blocks and holds the request back while they are short).
"""

from __future__ import annotations

from bisect import bisect_left

from collections import deque
from array import array

import numpy as np

from ...engines import get_engine
from ..config import SchedulerConfig
from ..decode_batch import DecodeBatch
from ..kv_cache import NO_HIT, KVCacheManager
from ..requests import RequestTable

FOREVER = 1 << 60
ROLES = ("both", "prefill", "decode")


class StepPlan:
    """One engine step, or a fast-forwarded stretch of ``n_steps`` identical decode-only steps.

    ``chunks``: (request row, new tokens q) prefill chunks; ``prefill_q`` / ``prefill_kv``: their new tokens and the
    keys they attend (tokens computed before + q). ``num_decode`` requests decode (0 if the decode batch does not
    run in this step) attending ``decode_kv_sum`` KV tokens in the first step. ``steady``: decode-only, and the
    policy would schedule the same thing again until an arrival, a completion or a KV shortage. ``ends``: end time
    (s) of each step; ``alloc_steps``: decode steps whose KV blocks are allocated so far.

    A lockstep rank whose batch did not change when its group's common stretch ended keeps its plan for the next
    stretch (:mod:`frontier_calib.sim.lockstep`): ``marks`` lists the step counts at which such a continuation
    began (None: never continued), each standing for a steady decode step the policy would have scheduled again;
    ``limit``: decode steps from the plan's start that the policy allows unchanged (0: not set).
    """

    __slots__ = ("start_s", "chunks", "prefill_q", "prefill_kv", "num_decode", "decode_kv_sum", "steady",
                 "n_steps", "ends", "alloc_steps", "marks", "limit")

    def __init__(self, start_s: float):
        self.start_s = start_s
        self.chunks: list = []
        self.prefill_q: list = []
        self.prefill_kv: list = []
        self.num_decode = 0
        self.decode_kv_sum = 0
        self.steady = False
        self.n_steps = 1
        self.ends: list = []
        self.alloc_steps = 1
        self.marks = None
        self.limit = 0

    @property
    def end_s(self) -> float:
        return self.ends[self.n_steps - 1]

    @property
    def part_start(self) -> int:
        """Index in ``ends`` of the first step of the latest continuation (0 when never continued)."""
        return self.marks[-1] if self.marks else 0

    def covers_next(self, t: float) -> bool:
        """The plan runs at least one more step after the one in progress at ``t`` (s)."""
        return bisect_left(self.ends, t, 0, self.n_steps) < self.n_steps - 1


class Scheduler:
    """Base class of the scheduling policies. Subclasses implement :meth:`schedule`."""

    policy = "base"
    register_on_alloc = True      # cache blocks when allocated (vLLM) or after the step computed them (SGLang)
    requeue_front = True          # preempted requests go back to the front of the waiting queue

    def __init__(self, cfg: SchedulerConfig, reqs: RequestTable, cache: KVCacheManager, role: str = "both"):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.cfg, self.reqs, self.cache, self.role = cfg, reqs, cache, role
        self.bs = cfg.block_size
        # the engine's limits from the settings (properties that ask the engine registry), read once per replay
        self.max_running = cfg.max_running
        self.step_token_budget = cfg.step_token_budget
        self.prefill_chunk_tokens = cfg.prefill_chunk_tokens
        self.waiting: deque = deque()
        self.inbox: deque = deque()   # arrived but not yet taken by the scheduler (SGLang's receive interval)
        self.running: list = []       # admission order (preemption victims come from the end)
        self.prefilling: list = []    # running requests still computing their prompt, admission order
        self.decode = DecodeBatch(cfg.block_size)
        self.s = 0                    # decode steps done
        self._dlog = array("d")       # end time (s) of each decode step: step i + 1 ends at _dlog[i]
        self._segments: list = []     # (row, join, leave, gen_at_join, previous token time): ITLs to write
        self.handoffs: list = []      # prefill role: rows whose first token is out, ready for a decode worker
        self.sending: dict = {}       # prefill role: row -> KV blocks still held until its KV transfer is done
        self.reserved: dict = {}      # decode role: row -> KV blocks reserved for a transfer not yet admitted
        self.reserve_extra = 0        # decode role: reserved rows that need one more block when admitted
        self.first_token_at_admit = False   # decode role: the first token reaches the client at admission
        self.remote_admits: list = []        # decode role: (row, admission time s) of transferred requests
        self.num_preemptions = 0
        self.num_steps = 0
        self.hold_context = False     # attention-DP balance: admit no new context request this step (lockstep.py)
        # row -> reject_reason, shared by the replicas of one replay with the same policy, settings and KV size
        self.rejections = reqs.rejections.setdefault((type(self), id(cfg), cache.num_blocks, role), {})

    # ------------------------------------------------------------------ queue
    @property
    def outstanding(self) -> int:
        """Requests on this replica that have not finished (not yet received, waiting, running)."""
        return len(self.inbox) + len(self.waiting) + len(self.running)

    @property
    def has_work(self) -> bool:
        return bool(self.running) or bool(self.waiting) or bool(self.inbox)

    def enqueue(self, r: int, now: float) -> None:
        self.waiting.append(r)

    def enqueue_prefilled(self, r: int, now: float) -> None:
        """Decode role: request ``r`` arrives with its prompt KV computed elsewhere (its blocks may have been
        reserved by :meth:`reserve_prefilled`)."""
        self.reqs.remote_kv[r] = True
        self.waiting.append(r)

    def reserve_prefilled(self, r: int) -> bool:
        """Decode role: reserve the KV blocks of request ``r``'s prompt before its KV is transferred here.

        Succeeds only when the blocks fit next to what the running decode batch needs for its next step and
        what earlier reservations still need at admission, and when ``max_running`` leaves room; otherwise the
        transfer is held back (backpressure). Reserved blocks count as used, so a decode worker never holds
        more KV than its capacity."""
        if not self.can_reserve_prefilled(r):
            return False
        kv = self.reqs.computed[r]
        nb = -(-kv // self.bs)
        self.cache.take(nb)
        self.reserved[r] = nb
        self.reserve_extra += 1 if kv % self.bs == 0 else 0   # the first decode token opens a new block
        self.reqs.held[r] = nb
        return True

    def can_reserve_prefilled(self, r: int, after_step: bool = False) -> bool:
        """Whether :meth:`reserve_prefilled` would succeed now (no side effects); ``after_step``: at the end of the
        decode step just scheduled (its blocks are allocated). Between step ends of decode-only steps the answer
        does not change (free blocks shrink exactly as the running requests' future needs do)."""
        if len(self.running) + len(self.reserved) >= self.max_running:
            return False
        R = self.reqs
        # Conservative, so that a reservation never starves a running request: the new request's whole
        # length, plus what the running and reserved requests may still grow by, must fit in the free blocks.
        future = self.max_blocks(r)
        for x in self.running:
            future += self.max_blocks(x)
        if self.decode.n:
            future -= self.decode.blocks(self.s)
            if after_step:
                future -= self.decode.step_blocks(self.s)
        for x in self.prefilling:
            future -= R.held[x]
        for x, held in self.reserved.items():
            future += self.max_blocks(x) - held
        return future <= self.cache.num_free

    def release_sent(self, r: int) -> None:
        """Prefill role: request ``r``'s KV has left for a decode worker; free (and keep cached) its blocks."""
        nb = self.sending.pop(r)
        self.cache.release(r, nb, keep_upto=self.reqs.computed[r] // self.bs, reusable=False)

    def max_blocks(self, r: int) -> int:
        """KV blocks request ``r`` needs at most on this replica (the KV of its last sampled token is never
        written)."""
        R = self.reqs
        tokens = R.n_in[r] if self.role == "prefill" else R.n_in[r] + R.n_out[r] - 1
        return -(-tokens // self.bs)

    def rejection(self, r: int) -> str | None:
        """:meth:`reject_reason`, worked out once per row: it depends only on the row's lengths and the
        replica's fixed limits (policy, settings, KV capacity), never on its state, so replicas with the same
        limits share the answers."""
        memo = self.rejections
        if r in memo:
            return memo[r]
        why = memo[r] = self.reject_reason(r)
        return why

    def reject_reason(self, r: int) -> str | None:
        """Why request ``r`` can never run on this replica, or None."""
        R = self.reqs
        if R.n_in[r] < 1:
            return "empty_prompt"
        if R.n_out[r] < 1:
            return "no_output_tokens"
        if R.n_in[r] + R.n_out[r] > self.cfg.max_model_len:
            return "max_model_len"
        cfg = self.cfg
        # TensorRT-LLM without chunked prefill (engines/trtllm.py); not on a decode worker of a PD deployment, whose
        # requests never run a context step (LLM._check_arguments exempts generation-only requests)
        if (not cfg.enable_chunked_prefill and R.n_in[r] > cfg.step_token_budget and self.role != "decode"
                and get_engine(cfg.policy).prompt_must_fit_step_budget):
            return "prompt_over_step_budget"
        if self.max_blocks(r) > self.cache.num_blocks:
            return "kv_capacity"
        return None

    # ------------------------------------------------------------------ admission helpers
    def target(self, r: int) -> int:
        """Tokens to compute before request ``r`` samples its next token (prompt + tokens generated before a
        preemption)."""
        return self.reqs.n_in[r] + self.reqs.gen[r]

    def lookup(self, r: int):
        """(layout, hit) of request ``r`` in this replica's prefix cache."""
        cache = self.cache
        if not cache.enable_prefix_caching or (self.reqs.hash_ids is None and not cache.runs):
            return None, NO_HIT
        lay = self.reqs.layout(r, self.bs)
        return lay, cache.lookup(r, lay, self.target(r))

    def admit(self, r: int, now: float, lay, hit) -> None:
        """Move waiting request ``r`` (already popped) into running with the cached blocks of ``hit``."""
        R = self.reqs
        if hit.blocks or lay is not None:
            self.cache.admit(r, lay, hit)
        cached = hit.blocks * self.bs
        R.computed[r] = cached
        R.held[r] = hit.blocks
        if R.cached_tokens[r] < 0:
            R.cached_tokens[r] = cached
        if R.scheduled_s[r] != R.scheduled_s[r]:   # NaN: first time scheduled
            R.scheduled_s[r] = now
        self.running.append(r)
        self.prefilling.append(r)

    def start_prefill(self, plan: StepPlan, r: int, now: float, lay, hit, q: int, nb: int) -> None:
        """Admit waiting request ``r`` (already removed from the queue) and schedule its first chunk of ``q``
        tokens, allocating ``nb`` new KV blocks (checked by the caller)."""
        self.admit(r, now, lay, hit)
        self.add_chunk(plan, r, q)
        self.alloc_chunk(r, q, nb)

    @staticmethod
    def first_chunk_blocks(hit, q: int, bs: int) -> int:
        """New KV blocks a waiting request with prefix-cache ``hit`` needs for a first chunk of ``q`` tokens."""
        return -(-(hit.blocks * bs + q) // bs) - hit.blocks

    def chunk_blocks(self, r: int, q: int) -> int:
        """New KV blocks request ``r`` needs to compute ``q`` more tokens."""
        return -(-(self.reqs.computed[r] + q) // self.bs) - self.reqs.held[r]

    def alloc_chunk(self, r: int, q: int, nb: int) -> None:
        """Allocate ``nb`` blocks for the next ``q`` tokens of ``r`` (checked by the caller)."""
        R = self.reqs
        if nb > 0:
            self.cache.take(nb)
            R.held[r] += nb
        if self.register_on_alloc and self.cache.reqs:
            self.cache.register_full(r, (R.computed[r] + q) // self.bs)

    def admit_prefilled(self, now: float, budget: int) -> int:
        """Decode role: admit waiting requests whose prompt KV was computed elsewhere, while KV blocks last.
        Returns the step tokens they use (one decode token each)."""
        R, waiting, used = self.reqs, self.waiting, 0
        cap = self.max_running
        i = 0   # transferred requests hold reserved blocks: admit them past locally recomputing ones
        while i < len(waiting) and len(self.running) < cap and used < budget:
            r = waiting[i]
            if not R.remote_kv[r]:
                i += 1
                continue
            kv = R.computed[r]
            nb = -(-kv // self.bs)
            held = self.reserved.pop(r, None)
            if held is None:
                held = R.held[r] = 0
                if -(-(kv + 1) // self.bs) > self.cache.num_free:
                    break   # back-pressure: the KV stays on the prefill side until blocks free up
            elif kv % self.bs == 0:
                self.reserve_extra -= 1
            del waiting[i]
            R.remote_kv[r] = False
            if nb > held:
                self.cache.take(nb - held)
            R.held[r] = nb
            self.remote_admits.append((r, now))
            if self.first_token_at_admit:
                R.first_token_s[r] = now
                R.last_token_s[r] = now
            if R.cached_tokens[r] < 0:
                R.cached_tokens[r] = 0
            if R.scheduled_s[r] != R.scheduled_s[r]:
                R.scheduled_s[r] = now
            self.running.append(r)
            self.decode.add(r, kv, R.gen[r], R.n_out[r], self.s)
            used += 1
        return used

    # ------------------------------------------------------------------ leaving
    def leave_decode(self, r: int) -> None:
        """Take ``r`` out of the decode batch, bringing its row up to date. Its tokens were produced at the ends of
        decode steps ``join + 1 .. s``; their inter-token latencies are written by :meth:`flush_itls`."""
        R = self.reqs
        s = self.s
        kv, gen, join, gen_join = self.decode.remove(r, s)
        if s > join:
            self._segments.append((r, join, s, gen_join, R.last_token_s[r]))
            R.last_token_s[r] = self._dlog[s - 1]
        R.computed[r] = kv
        R.gen[r] = gen
        R.held[r] = -(-kv // self.bs)

    def flush_itls(self) -> None:
        """Write the inter-token latencies of all decode-batch stays into the request table."""
        if not self._segments:
            return
        dlog = np.frombuffer(self._dlog, dtype=np.float64)
        gaps = np.diff(dlog)            # gaps[i] = end of step i + 2 minus end of step i + 1
        itl, off = self.reqs.itl, self.reqs.itl_off
        for r, join, leave, gen_join, prev in self._segments:
            p = int(off[r]) + gen_join - 1
            itl[p] = dlog[join] - prev
            if leave - join > 1:
                itl[p + 1:p + leave - join] = gaps[join:leave - 1]
        self._segments = []

    def finish(self, r: int, now: float) -> None:
        """Request ``r`` generated its last token at ``now``."""
        R = self.reqs
        self.cache.release(r, R.held[r], keep_upto=R.computed[r] // self.bs, reusable=False)
        R.held[r] = 0
        R.completion_s[r] = now
        R.status[r] = "ok"
        self.running.remove(r)

    def preempt_keep_upto(self, r: int) -> int:
        """Block positions of a preempted request that stay cached for its re-admission."""
        return self.reqs.computed[r] // self.bs

    def preempt(self, r: int, now: float) -> None:
        """Recompute preemption: free ``r``'s KV blocks and send it back to waiting."""
        R = self.reqs
        if r in self.decode:
            self.leave_decode(r)
        else:
            self.prefilling.remove(r)
        self.cache.release(r, R.held[r], keep_upto=self.preempt_keep_upto(r), reusable=True)
        R.held[r] = 0
        R.computed[r] = 0
        R.remote_kv[r] = False
        R.preemptions[r] += 1
        self.num_preemptions += 1
        self.running.remove(r)
        if self.requeue_front:
            self.waiting.appendleft(r)
        else:
            self.waiting.append(r)

    # ------------------------------------------------------------------ steps
    def schedule(self, now: float) -> StepPlan | None:
        """Decide the next step at time ``now`` (allocating its KV blocks), or None when idle."""
        raise NotImplementedError

    def decode_plan(self, now: float, plan: StepPlan | None = None) -> StepPlan:
        """Add the decode batch to ``plan`` (a new plan if None), allocating the blocks of one decode step."""
        if plan is None:
            plan = StepPlan(now)
        dec = self.decode
        n = len(dec.members)
        if n:
            nb = dec.mod_count[(-self.s) % self.bs]
            if nb:
                self.cache.take(nb)
            plan.num_decode = n
            plan.decode_kv_sum = dec.sum_base + n * (self.s + 1)
        return plan

    def continue_decode(self, now: float) -> StepPlan | None:
        """Speculative decoding: the next token of the verify step in progress (the replica runs a step's later
        tokens without scheduling, see sim/speculative.py). None when its KV blocks do not fit (the step's
        pending tokens are then dropped and the policy schedules)."""
        if not self.decode.n or self.decode.step_blocks(self.s) > self.cache.num_free:
            return None
        plan = self.decode_plan(now)
        plan.steady = True
        return plan

    def add_chunk(self, plan: StepPlan, r: int, q: int) -> None:
        plan.chunks.append((r, q))
        plan.prefill_q.append(q)
        plan.prefill_kv.append(self.reqs.computed[r] + q)

    def steady_steps(self, plan: StepPlan, k_max: int) -> int:
        """How many of the next ``k_max`` decode-only steps the policy would schedule unchanged (>= 1)."""
        return k_max

    def alloc_decode_steps(self, plan: StepPlan, k: int) -> None:
        """Allocate the KV blocks of the first ``k`` decode steps of a stretch (step 1 is allocated already)."""
        if k > plan.alloc_steps:
            self.cache.take(self.decode.new_blocks(self.s + plan.alloc_steps, k - plan.alloc_steps))
            plan.alloc_steps = k

    def on_decode_steps(self, k: int) -> None:
        """Hook: ``k`` decode steps just completed."""

    def on_continued_steps(self, marks: list, k: int) -> None:
        """``k`` decode steps of a continued plan completed (``StepPlan.marks``): the hooks of one plan per
        continuation, in the same order."""
        prev = 0
        for m in marks:
            self.on_decode_steps(m - prev)
            self.on_steady_repeat()
            prev = m
        self.on_decode_steps(k - prev)

    def on_steady_repeat(self) -> None:
        """Hook: the policy scheduled its steady decode batch again (a continued plan, see ``StepPlan.marks``):
        the side effects :meth:`schedule` has when it schedules an unchanged decode batch, no KV allocation."""

    def complete_step(self, plan: StepPlan, now: float) -> list:
        """Apply a finished step (or stretch) ending at ``now``; returns the rows that finished."""
        R = self.reqs
        done = []
        k = plan.n_steps
        self.num_steps += k
        if plan.num_decode:
            if k > plan.alloc_steps:
                self.alloc_decode_steps(plan, k)
            ends = plan.ends
            if k == 1:
                self._dlog.append(ends[0])
            else:
                self._dlog.extend(ends if len(ends) == k else ends[:k])
            self.s += k
            if plan.marks is None:
                self.on_decode_steps(k)
            else:
                self.on_continued_steps(plan.marks, k)
            if self.decode.next_finish() <= self.s:
                for r in self.decode.finishing(self.s):
                    self.leave_decode(r)
                    self.finish(r, now)
                    done.append(r)
        if plan.chunks:
            bs = self.bs
            computed, n_in, gen = R.computed, R.n_in, R.gen
            register = not self.register_on_alloc
            for r, q in plan.chunks:
                c = computed[r] + q
                computed[r] = c
                if register:
                    self.cache.register_full(r, c // bs)
                if c == n_in[r] + gen[r]:
                    self._prefill_done(r, now, done)
        return done

    def _prefill_done(self, r: int, now: float, done: list) -> None:
        """The step that computed ``r``'s last prompt token sampled a token at ``now``."""
        R = self.reqs
        self.prefilling.remove(r)
        g = R.gen[r] + 1
        R.gen[r] = g
        if g == 1:
            R.first_token_s[r] = now
            R.last_token_s[r] = now
        else:
            R.write_one_token(r, g - 1, now)
        if g >= R.n_out[r]:
            self.finish(r, now)
            done.append(r)
        elif self.role == "prefill":
            self.sending[r] = R.held[r]   # the KV stays here until it is transferred (release_sent)
            R.held[r] = 0
            self.running.remove(r)
            self.handoffs.append(r)
        else:
            self.decode.add(r, R.computed[r], g, R.n_out[r], self.s)

    # ------------------------------------------------------------------ checks
    def check(self) -> None:
        """Assert the KV block accounting of this replica (debug mode)."""
        R, bs = self.reqs, self.bs
        own = {}
        for r in self.running:
            if r in self.decode:
                kv, _ = self.decode.state(r, self.s)
                own[r] = -(-kv // bs)
            else:
                own[r] = R.held[r]
                assert R.held[r] * bs >= R.computed[r]
        assert self.decode.blocks(self.s) == sum(own[r] for r in self.running if r in self.decode)
        own.update(self.sending)    # prefill role: KV waiting to be transferred
        own.update(self.reserved)   # decode role: blocks reserved for KV on its way here
        self.cache.check(own)
        assert self.reserve_extra == sum(1 for r in self.reserved if R.computed[r] % bs == 0)
        assert len(self.running) <= self.max_running
        assert len(self.decode.members) + len(self.prefilling) == len(self.running)
