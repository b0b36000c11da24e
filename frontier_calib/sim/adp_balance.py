"""TensorRT-LLM's attention-DP balance: ranks hold new context requests until every rank has one.

With attention DP the ranks of a worker step in lockstep (:mod:`.lockstep`), so a step in which one rank runs a
context (prefill) phase lasts that long on every rank: one rank's prompt stalls every rank's decode. TensorRT-LLM's
``attention_dp_config: {enable_balance: true}`` (``PyExecutor._balance_adp_requests``; tech blog 10, *ADP Balance
Strategy*) has every rank gather, each iteration, how many context and generation requests each rank would
schedule, and then:

* every rank has a context request and room for it (its generation requests below ``max_batch_size``): the
  contexts run (the waiting count restarts); if every rank also has generation requests, they first wait up to
  ``batching_wait_iters`` iterations more, to gather more contexts per rank;
* otherwise the ranks' contexts are held and the waiting count goes up by one; they run when it reaches
  ``timeout_iters``, or at once when some rank has no generation request (nothing would be stalled).

So the contexts of different ranks tend to run in the same iteration, and decode steps are stalled about once per
round instead of once per rank, at the price of a longer wait before the first token. The count runs every
iteration, also while no context waits (it restarts at ``timeout_iters``), as in the engine.

:class:`ADPBalance` keeps the two counts of one lockstep group. The group calls :meth:`decide` before each common
step (or fast-forwarded stretch of common decode steps, whose iterations all take the same branch) and
:meth:`advance` with the steps that stretch ran; :meth:`decide` returns whether new contexts are held and how many
common steps may run before the held contexts would be released by the count, so that a stretch stops there.
Held contexts here are the ranks' waiting (not yet admitted) requests; context chunks already started continue.
"""

from __future__ import annotations


class ADPBalance:
    """The waiting and batching counts of one attention-DP group (TensorRT-LLM ``attention_dp_config``)."""

    __slots__ = ("timeout_iters", "batching_wait_iters", "wait", "batch", "branch", "_counted")

    def __init__(self, timeout_iters: int, batching_wait_iters: int):
        self.timeout_iters = int(timeout_iters)
        self.batching_wait_iters = int(batching_wait_iters)
        self.wait = 0         # iterations the contexts have been held for (adp_ctx_waiting_iters_count)
        self.batch = 0        # iterations of batching wait (adp_ctx_batching_wait_iters_count)
        self.branch = None    # the branch the last decision took: "wait", "batch" or None (contexts ran)
        self._counted = None  # the step-end list of the stretch already counted by advance()

    def advance(self, ends) -> None:
        """Count the iterations after the first of the common step or stretch that just ran (``ends``: its step
        end times; the first iteration was counted by :meth:`decide`). Idempotent for the same list."""
        if ends is self._counted or not ends:
            return
        self._counted = ends
        extra = len(ends) - 1
        if extra <= 0:
            return
        if self.branch == "wait":
            self.wait = (self.wait + extra) % self.timeout_iters if self.timeout_iters else 0
        elif self.branch == "batch":
            self.batch = min(self.batch + extra, self.batching_wait_iters)

    def decide(self, ranks) -> tuple[bool, int | None]:
        """One iteration's decision. ``ranks``: (has a context to schedule, generation requests, max batch size)
        per rank. Returns (hold the ranks' new contexts, most common steps before the decision may change by
        the counts alone; None: no limit)."""
        all_ctx = all(ctx for ctx, _, _ in ranks)
        all_gen = all(gen > 0 for _, gen, _ in ranks)
        all_free = all(gen < cap for _, gen, cap in ranks)
        if all_free and all_ctx:
            self.wait = 0
            if all_gen and self.batch < self.batching_wait_iters:
                self.batch += 1
                self.branch = "batch"
                return True, self.batching_wait_iters - self.batch + 1
            self.batch = 0
            self.branch = None
            return False, None
        if not all_gen:   # some rank has nothing to stall: the contexts run (the count restarts every iteration)
            self.wait = 0
            self.branch = None
            return False, None
        self.wait += 1
        self.branch = "wait"
        if self.wait >= self.timeout_iters:
            self.wait = 0
            return False, None
        if not any(ctx for ctx, _, _ in ranks):   # nothing held: the count runs on (advance), no step limit
            return False, None
        return True, self.timeout_iters - self.wait
