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
"""

from __future__ import annotations

from .base import Scheduler


class TRTLLMScheduler(Scheduler):
    policy = "trtllm"
    register_on_alloc = True
    requeue_front = True

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
        plan = self.decode_plan(now)
        for r, q, nb in chunks:
            self.add_chunk(plan, r, q)
            self.alloc_chunk(r, q, nb)
        if not self.hold_context and (not preempted or not (plan.chunks or plan.num_decode)):
            self._admit_waiting(now, plan, left)
        if not plan.chunks and not plan.num_decode:
            return None
        plan.steady = not plan.chunks and not preempted
        return plan

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
