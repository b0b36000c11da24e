"""TensorRT-LLM scheduler: in-flight batching with a capacity scheduler and a micro-batch scheduler.

The capacity scheduler decides which requests may be active (``max_batch_size``):

* ``guaranteed_no_evict`` admits a request only if the KV blocks for its *whole* length (prompt + all output
  tokens) fit next to the blocks every active request will still need, so running requests are never evicted;
* ``max_utilization`` admits while the next chunk's blocks fit and pauses (recompute preemption of the most recently
  admitted request) when a step runs out of blocks.

The micro-batch scheduler fills ``max_num_tokens`` per step: generation requests first (one token each), then
context requests in FCFS order, chunked to the tokens left (non-final chunks are multiples of ``block_size``, the
chunk unit of context chunking). KV block reuse (prefix caching) works as in vLLM.

With attention DP and ``attention_dp_balance`` the ranks' lockstep group may hold new context requests for a step
(``hold_context``, set by :class:`~frontier_calib.sim.lockstep.LockstepGroup`): the step schedules the generation
requests and context chunks already started, and admits nothing from the waiting queue.

Batch waiting (``batch_wait_timeout_iters`` / ``batch_wait_max_tokens_ratio``, off by default; not with attention
DP): ``PyExecutor._schedule`` passes a step that has both context and generation requests through
``PyExecutor._waiting_requests``, which drops the step's context requests unless the tokens scheduled (each context
request's whole prompt, ``len(get_tokens(0))``, plus one token per generation request; TensorRT-LLM adds its draft
tokens, which the replay does not count) reach
``batch_wait_max_tokens_ratio x max_num_tokens`` or the context requests have been held ``batch_wait_timeout_iters``
steps in a row (the count restarts when they go). A held step decodes only.
"""

from __future__ import annotations

from .base import Scheduler


class TRTLLMScheduler(Scheduler):
    policy = "trtllm"
    register_on_alloc = True
    requeue_front = True
    batch_wait_iters = 0     # steps the context requests have been held in a row (batch waiting)
    attention_dp = False     # a rank of an attention-DP worker (set by its lockstep group): no batch waiting

    def schedule(self, now: float):
        cfg, R, cache, bs = self.cfg, self.reqs, self.cache, self.bs
        budget = self.step_token_budget
        chunking = cfg.enable_chunked_prefill
        if self.waiting and self.role == "decode":
            budget -= self.admit_prefilled(now, budget - self.decode.n)
        preempted = False
        while True:
            left = budget - self.decode.n
            need = self.decode.step_blocks(self.s) if self.decode.n else 0
            chunks = []
            for r in self.prefilling:
                rest = R.n_in[r] + R.gen[r] - R.computed[r]
                q = rest if rest <= left else ((left // bs) * bs if chunking else 0)
                if q <= 0:
                    break
                nb = self.chunk_blocks(r, q)
                chunks.append((r, q, nb))
                need += nb
                left -= q
            if need <= cache.num_free or not self.running:
                break
            self.preempt(self.running[-1], now)   # pause the most recently admitted request
            preempted = True
        hold = self.hold_context
        if cfg.batch_waiting and not self.attention_dp and self.decode.n and (chunks or self.waiting):
            hold = hold or self._batch_wait(chunks, left, budget)
            if hold and chunks:     # the held step decodes only: context chunks already planned wait too
                left += sum(q for _, q, _ in chunks)
                chunks = []
        plan = self.decode_plan(now)
        for r, q, nb in chunks:
            self.add_chunk(plan, r, q)
            self.alloc_chunk(r, q, nb)
        if not hold and (not preempted or not (plan.chunks or plan.num_decode)):
            self._admit_waiting(now, plan, left)
        if not plan.chunks and not plan.num_decode:
            return None
        # a step whose contexts batch waiting held is one step: the next one counts the wait again
        plan.steady = not plan.chunks and not preempted and not (hold and not self.hold_context)
        return plan

    def _batch_wait(self, chunks, left: int, budget: int) -> bool:
        """TensorRT-LLM's batch waiting for this step (class docstring): True to hold its context requests. The
        context requests the step would take are the chunks already planned and the waiting prompts that fit the
        ``left`` tokens in arrival order (whole prompts without chunked prefill); their whole prompts count."""
        cfg, R = self.cfg, self.reqs
        tokens = sum(R.n_in[r] for r, _, _ in chunks)
        room, n_run = left, len(self.running)
        for r in self.waiting:
            if n_run >= self.max_running or room <= 0:
                break
            q = R.n_in[r] + R.gen[r]
            if q > room and not cfg.enable_chunked_prefill:
                break
            tokens += R.n_in[r]
            room -= q
            n_run += 1
        if not tokens:
            return False
        gen = self.decode.n      # one token per generation request (draft tokens: not counted here)
        waited = self.batch_wait_iters
        if waited >= cfg.batch_wait_timeout_iters or tokens + gen >= cfg.batch_wait_max_tokens_ratio * budget:
            self.batch_wait_iters = 0
            return False
        self.batch_wait_iters = waited + 1
        return True

    def _future_blocks(self) -> int:
        """Blocks the active requests will still allocate before they finish."""
        total = 0
        for r in self.running:
            total += self.max_blocks(r)
        held = self.decode.blocks(self.s) + (self.decode.step_blocks(self.s) if self.decode.n else 0)
        held += sum(self.reqs.held[r] for r in self.prefilling)
        return total - held

    def _admit_waiting(self, now: float, plan, left: int) -> None:
        cfg, R, cache, bs, waiting = self.cfg, self.reqs, self.cache, self.bs, self.waiting
        gne = cfg.capacity_scheduler_policy == "guaranteed_no_evict"
        future = None
        while waiting and left > 0 and len(self.running) < self.max_running:
            r = waiting[0]
            if R.remote_kv[r]:
                break
            lay, hit = self.lookup(r)
            c0 = hit.blocks * bs
            rest = R.n_in[r] + R.gen[r] - c0
            q = rest if rest <= left else ((left // bs) * bs if cfg.enable_chunked_prefill else 0)
            if q <= 0:
                break
            nb = self.first_chunk_blocks(hit, q, bs)
            if gne:
                if future is None:
                    future = self._future_blocks()
                full = self.max_blocks(r) - hit.blocks
                if future + full > cache.num_free - hit.pinned:
                    break
                future += full - nb
            elif nb > cache.num_free - hit.pinned:
                break
            waiting.popleft()
            self.start_prefill(plan, r, now, lay, hit, q, nb)
            left -= q
