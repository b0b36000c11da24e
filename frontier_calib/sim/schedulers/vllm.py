"""vLLM V1 scheduler: one token budget per step, running requests first, chunked prefill, recompute preemption.

Each step has ``max_num_batched_tokens`` tokens. Running requests go first: every decode takes one token and every
request still in its prompt continues with a chunk of ``min(remaining, long_prefill_token_threshold, budget left)``
tokens. If their KV blocks do not fit, the most recently admitted running request is preempted (recompute: its
blocks are freed, it returns to the front of the waiting queue) until they do. Then, if nothing was preempted in
this step, waiting requests are admitted in FCFS order while the budget, ``max_num_seqs`` and the KV blocks allow:
each gets its prefix-cache hit and a prefill chunk from the remaining budget (without chunked prefill, a prompt
larger than the remaining budget is skipped for this step, as vLLM V1 does).

One simplification: vLLM walks running requests in admission order, so with ``long_prefill_token_threshold`` a
prefilling request admitted before a decoding one could take budget first; here decodes always go first (identical
whenever decodes + prefill chunks fit in the budget, which is the normal case).
"""

from __future__ import annotations

from .base import Scheduler, StepPlan


class VLLMScheduler(Scheduler):
    policy = "vllm"
    register_on_alloc = True
    requeue_front = True

    def schedule(self, now: float):
        cfg, R, cache, dec, bs = self.cfg, self.reqs, self.cache, self.decode, self.bs
        thr = cfg.long_prefill_token_threshold
        budget = cfg.max_num_batched_tokens
        if self.waiting and self.role == "decode":
            budget -= self.admit_prefilled(now, budget - dec.n)
        preempted = False
        while True:   # running requests; preempt the newest until their KV blocks fit
            n_dec = len(dec.members)
            left = budget - n_dec
            need = dec.mod_count[(-self.s) % bs] if n_dec else 0
            chunks = []
            if self.prefilling:
                computed, held, n_in, gen = R.computed, R.held, R.n_in, R.gen
                for r in self.prefilling:
                    if left <= 0:
                        break
                    c = computed[r]
                    q = n_in[r] + gen[r] - c
                    if 0 < thr < q:
                        q = thr
                    if q > left:
                        q = left
                    nb = -(-(c + q) // bs) - held[r]
                    chunks.append((r, q, nb))
                    need += nb
                    left -= q
            if need <= cache.clean + cache.evictable or not self.running:
                break
            self.preempt(self.running[-1], now)
            preempted = True
        if not self.running and not self.waiting:
            return None
        plan = self.decode_plan(now)
        for r, q, nb in chunks:
            self.add_chunk(plan, r, q)
            self.alloc_chunk(r, q, nb)
        if self.waiting and (not preempted or not (plan.chunks or plan.num_decode)):
            self._admit_waiting(now, plan, left)
        if not plan.chunks:
            if not plan.num_decode:
                return None
            plan.steady = not preempted
        return plan

    def _admit_waiting(self, now: float, plan: StepPlan, left: int) -> None:
        cfg, R, cache, waiting, bs = self.cfg, self.reqs, self.cache, self.waiting, self.bs
        thr = cfg.long_prefill_token_threshold
        i = 0   # queue position: without chunked prefill a prompt that does not fit the budget is skipped
        while i < len(waiting) and left > 0 and len(self.running) < cfg.max_num_seqs:
            r = waiting[i]
            if R.remote_kv[r]:
                break
            lay, hit = self.lookup(r)
            c0 = hit.blocks * bs
            q = R.n_in[r] + R.gen[r] - c0
            if 0 < thr < q:
                q = thr
            if q > left:
                if not cfg.enable_chunked_prefill:
                    i += 1
                    continue
                q = left
            nb = self.first_chunk_blocks(hit, q, bs)
            if nb > cache.clean + cache.evictable - hit.pinned:
                break
            if i:
                del waiting[i]
            else:
                waiting.popleft()
            self.start_prefill(plan, r, now, lay, hit, q, nb)
            left -= q
