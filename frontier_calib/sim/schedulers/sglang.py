"""SGLang scheduler: prefill first, radix-cache prefix matching, conservative KV admission, decode retraction.

Each step SGLang first tries to build a prefill batch (``PrefillAdder``): the request whose chunked prefill is in
progress continues, then waiting requests are added in FCFS order while

* ``len(running) < max_running`` (``max_num_seqs``),
* the prefill tokens fit ``chunked_prefill_size`` (a longer prompt gets a chunk and is continued next step; chunks
  are multiples of the page = ``block_size``) and ``max_prefill_tokens``,
* its ``extend tokens + min(max_new_tokens, 4096)`` stays below the KV tokens left after reserving, for every
  running request, ``min(remaining output, 4096) x new_token_ratio``.

If a prefill batch forms it runs *without* the decodes (unless ``enable_mixed_chunk``); otherwise all running
requests decode. ``new_token_ratio`` starts at ``0.7 x schedule_conservativeness``, decays linearly to
``0.14 x`` that over 600 decode steps, and jumps back up after a retraction. When a decode step's KV does not fit,
requests are retracted (least generated tokens first, then longest prompt), their prompts stay in the radix cache,
and they rejoin the back of the waiting queue. Computed blocks enter the radix cache after the step that computed
them.

With ``scheduler_recv_interval`` N > 1 (``--scheduler-recv-interval``; SGLang's ``SchedulerRecvSkipper``,
``python/sglang/srt/managers/scheduler_recv_skipper.py``) new requests wait in an inbox until the scheduler polls
the tokenizer: at the start of each loop iteration a counter grows by the weight of the last batch's forward mode
(decode 1, any step with prefill 1,000, no batch 1) and the scheduler receives when it reaches N, then restarts at
0. So after a step with prefill it receives at once; while decoding, every N-th step. An idle scheduler loops
without a batch and its counter reaches N within microseconds: an idle replica receives at once.
"""

from __future__ import annotations

import numpy as np

from .base import FOREVER, Scheduler, StepPlan

CLIP_MAX_NEW_TOKENS = 4096      # SGLang CLIP_MAX_NEW_TOKENS_ESTIMATION
RETRACT_DECODE_STEPS = 20       # global_config.retract_decode_steps
INIT_NEW_TOKEN_RATIO = 0.7
MIN_NEW_TOKEN_RATIO_FACTOR = 0.14
NEW_TOKEN_RATIO_DECAY_STEPS = 600
RECV_WEIGHT_PREFILL = 1000      # SGLANG_SCHEDULER_RECV_SKIPPER_WEIGHT_DEFAULT (any forward mode but decode / verify)


class SGLangScheduler(Scheduler):
    policy = "sglang"
    register_on_alloc = False
    requeue_front = False

    def __init__(self, cfg, reqs, cache, role="both"):
        super().__init__(cfg, reqs, cache, role)
        self.init_ratio = min(INIT_NEW_TOKEN_RATIO * cfg.schedule_conservativeness, 1.0)
        self.min_ratio = min(self.init_ratio * MIN_NEW_TOKEN_RATIO_FACTOR, 1.0)
        self.decay = (self.init_ratio - self.min_ratio) / NEW_TOKEN_RATIO_DECAY_STEPS
        self.ratio = self.init_ratio
        self.num_retractions = 0
        self._blocked = None     # (row, tokens it needs) when the head waited for the KV reservation
        self._has_long = bool(reqs.n) and max(reqs.n_out) > CLIP_MAX_NEW_TOKENS
        self.recv_interval = int(getattr(cfg, "scheduler_recv_interval", 1))
        self._recv_count = 0      # the receive counter after the last step (SchedulerRecvSkipper._counter)
        self._recv_due = True     # the counter reached the interval at this step boundary: receive now

    # ------------------------------------------------------------------ receive interval
    def enqueue(self, r: int, now: float) -> None:
        if self.recv_interval > 1:
            self.inbox.append(r)   # taken at the next receive (schedule)
        else:
            self.waiting.append(r)

    def _receive(self) -> None:
        """Take the inbox into the waiting queue when the scheduler polls now: the counter reached the interval
        at this step boundary, or nothing runs (the idle loop polls at once)."""
        if self.inbox and (self._recv_due or not self.running):
            self.waiting.extend(self.inbox)
            self.inbox.clear()

    def _count_steps(self, plan) -> None:
        """Advance the receive counter over a finished step or decode stretch (``plan``)."""
        n = self.recv_interval
        if plan.chunks:                       # a step with prefill: one increment of RECV_WEIGHT_PREFILL
            c = self._recv_count + RECV_WEIGHT_PREFILL
            self._recv_count, self._recv_due = (0, True) if c >= n else (c, False)
            return
        c = (self._recv_count + plan.n_steps) % n   # one per decode step, back to 0 each time it reaches n
        self._recv_count, self._recv_due = c, c == 0

    def complete_step(self, plan, now: float) -> list:
        done = super().complete_step(plan, now)
        if self.recv_interval > 1:
            self._count_steps(plan)
        return done

    def reject_reason(self, r: int):
        why = super().reject_reason(r)
        if why is None:
            R = self.reqs
            # Admission needs prompt + min(output, 4096) tokens below the free KV tokens (strict, as SGLang).
            if R.n_in[r] + min(R.n_out[r], CLIP_MAX_NEW_TOKENS) >= self.cache.num_blocks * self.bs:
                return "kv_capacity"
        return why

    def preempt_keep_upto(self, r: int) -> int:
        # Retraction frees the generated tokens; the computed prompt stays in the radix tree.
        R = self.reqs
        return min(R.computed[r], R.n_in[r]) // self.bs

    # ------------------------------------------------------------------ reservation
    def _reserve_tokens(self, s: int, ratio: float) -> float:
        """KV tokens reserved for the future decode tokens of the running requests."""
        dec = self.decode
        if not dec.n:
            return 0.0
        total = dec.remaining_sum(s)
        if self._any_long():
            for m in dec.members.values():
                extra = m[3] - s - CLIP_MAX_NEW_TOKENS
                if extra > 0:
                    total -= extra
        return total * ratio

    def _any_long(self) -> bool:
        """Whether some request may have more than CLIP_MAX_NEW_TOKENS tokens left (then clip per request)."""
        return self._has_long

    # ------------------------------------------------------------------ schedule
    def schedule(self, now: float):
        if self.inbox:
            self._receive()
        if self.waiting and self.role == "decode":
            self.admit_prefilled(now, FOREVER)
        self._blocked = None
        if self.prefilling or self.waiting:
            plan = self._prefill_batch(now)
            if plan is not None:
                return plan
        if not self.decode.n:
            return None
        retracted = False
        if self.decode.step_blocks(self.s) > self.cache.num_free:
            self._retract(now)
            retracted = True
            if not self.decode.n:
                return self._prefill_batch(now)
        else:
            self.ratio = max(self.ratio - self.decay, self.min_ratio)
        plan = self.decode_plan(now)
        plan.steady = not retracted
        return plan

    def _prefill_batch(self, now: float):
        cfg, R, cache, bs = self.cfg, self.reqs, self.cache, self.bs
        max_running = cfg.max_num_seqs
        if len(self.running) >= max_running and not self.prefilling:
            return None
        mixed = cfg.enable_mixed_chunk and self.decode.n > 0
        n_dec = self.decode.n if mixed else 0
        dec_blocks = self.decode.step_blocks(self.s) if mixed else 0
        rem_chunk = self.prefill_chunk_tokens - n_dec
        rem_input = cfg.max_prefill_tokens - n_dec
        rem_total = (cache.num_free - dec_blocks) * bs - self._reserve_tokens(self.s, self.ratio) - n_dec
        plan = StepPlan(now)
        for r in list(self.prefilling):   # the chunked request in progress
            rest = R.n_in[r] + R.gen[r] - R.computed[r]
            q = rest if rest <= rem_chunk else (rem_chunk // bs) * bs
            if q <= 0:
                break
            nb = self.chunk_blocks(r, q)
            if nb > cache.num_free - dec_blocks:
                break
            self.add_chunk(plan, r, q)
            self.alloc_chunk(r, q, nb)
            rem_chunk -= q
            rem_input -= q
            rem_total -= q + (min(R.n_out[r] - R.gen[r], CLIP_MAX_NEW_TOKENS) if q == rest else 0)
        waiting = self.waiting
        while waiting and len(self.running) < max_running and rem_chunk > 0:
            r = waiting[0]
            if R.remote_kv[r]:
                break
            lay, hit = self.lookup(r)
            c0 = hit.blocks * bs
            extend = R.n_in[r] + R.gen[r] - c0
            max_new = min(R.n_out[r] - R.gen[r], CLIP_MAX_NEW_TOKENS)
            pinned_tokens = hit.pinned * bs
            if extend + max_new >= rem_total - pinned_tokens:
                self._blocked = (r, extend + max_new + pinned_tokens)
                break
            if extend > rem_input and plan.chunks:
                break
            if extend <= rem_chunk:
                q, truncated = extend, False
            else:
                q, truncated = (rem_chunk // bs) * bs, True
                if q <= 0:
                    break
            nb = self.first_chunk_blocks(hit, q, bs)
            if nb > cache.num_free - hit.pinned - dec_blocks:
                break
            waiting.popleft()
            self.start_prefill(plan, r, now, lay, hit, q, nb)
            rem_chunk -= q
            rem_input -= q
            rem_total -= q + pinned_tokens + (0 if truncated else max_new)
            if truncated:
                break
        if not plan.chunks:
            return None
        if mixed and self.decode.step_blocks(self.s) <= cache.num_free:
            self.decode_plan(now, plan)
        return plan

    def _retract(self, now: float) -> None:
        """Retract decode requests until one decode step fits and ~20 steps of headroom remain."""
        R, dec, cache, bs = self.reqs, self.decode, self.cache, self.bs
        order = sorted(dec.members, key=lambda r: (dec.state(r, self.s)[1], -R.n_in[r], -r), reverse=True)
        first = True
        while first or cache.num_free * bs < RETRACT_DECODE_STEPS * len(order) \
                or dec.step_blocks(self.s) > cache.num_free:
            if len(order) <= 1:
                break
            first = False
            self.preempt(order.pop(), now)
            self.num_retractions += 1
        # A chunked prefill in progress holds blocks too: retract it if the last decode still does not fit.
        while dec.n and dec.step_blocks(self.s) > cache.num_free and self.prefilling:
            self.preempt(self.prefilling[-1], now)
            self.num_retractions += 1
        decoded = sum(dec.state(r, self.s)[1] for r in dec.members)
        max_new = sum(R.n_out[r] for r in dec.members)
        if max_new:
            self.ratio = min(1.0, (decoded + RETRACT_DECODE_STEPS * dec.n) / max_new)

    def continue_decode(self, now: float):
        plan = super().continue_decode(now)
        if plan is not None:   # new_token_ratio decays once per decode token, as in a scheduled decode step
            self.ratio = max(self.ratio - self.decay, self.min_ratio)
        return plan

    def on_continued_steps(self, marks: list, k: int) -> None:
        if self.ratio == self.min_ratio:   # decayed to the floor: every hook leaves it there
            return
        super().on_continued_steps(marks, k)

    def on_steady_repeat(self) -> None:
        self.ratio = max(self.ratio - self.decay, self.min_ratio)   # as schedule() does for a decode step

    def on_decode_steps(self, k: int) -> None:
        if k > 1:   # the first step's decay happened when it was scheduled
            self.ratio = max(self.ratio - (k - 1) * self.decay, self.min_ratio)

    def steady_steps(self, plan: StepPlan, k_max: int) -> int:
        """While the waiting head only lacks reserved KV tokens, the reservation shrinks as the running requests
        decode and ``new_token_ratio`` decays: stop the stretch at the first step after which it would fit."""
        if self.inbox:   # the next receive: after recv_interval - counter more decode steps
            k_max = min(k_max, self.recv_interval - self._recv_count)
        if self._blocked is None or not self.waiting or self.waiting[0] != self._blocked[0]:
            return k_max
        need = self._blocked[1]
        dec, bs = self.decode, self.bs
        n = dec.n
        k_cap = min(k_max, 1 << 16)
        k = np.arange(1, k_cap + 1, dtype=np.int64)          # schedule at counter s + k
        s = self.s
        # Free blocks then: now minus the blocks of decode steps 2..k.
        cyc = np.array([dec.mod_count[(-(s + 1 + i)) % bs] for i in range(bs)], dtype=np.int64)
        cum = np.concatenate(([0], np.cumsum(cyc)))
        j = k - 1
        free = self.cache.num_free - ((j // bs) * n + cum[j % bs])
        ratio = np.maximum(self.ratio - (k - 1) * self.decay, self.min_ratio)
        remaining = dec.remaining_sum(s) - n * k
        if self._any_long():
            fin = np.array([m[3] for m in dec.members.values()], dtype=np.int64)
            fin = fin[fin - s > CLIP_MAX_NEW_TOKENS]
            if fin.size:
                remaining = remaining - np.maximum(fin[:, None] - (s + k)[None, :] - CLIP_MAX_NEW_TOKENS, 0).sum(0)
        fits = need < free * bs - remaining * ratio
        idx = np.flatnonzero(fits)
        return int(idx[0]) + 1 if idx.size else k_cap
