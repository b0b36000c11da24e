"""Speculative decoding in the replay: how many tokens each verify step emits, drawn with a seed.

The decode batch (:mod:`.decode_batch`) advances every member by one token per *decode sub-step*, which keeps its
closed form. A verify step that emits ``t`` tokens per sequence is ``t`` sub-steps: the first one costs the whole
verify step (:class:`~frontier_calib.cost.speculative.SpeculativeCost`), the other ``t - 1`` take no time, so the
``t`` tokens reach the client together at the end of the step, as they do from an engine (their inter-token
latencies are the step time, then zeros). While a step's later tokens are pending the replica runs them without
asking the scheduler (nothing is admitted inside one engine step).

``t`` is drawn per verify step from the acceptance distribution (:meth:`SpeculativeSpec.token_probabilities`), one
draw for the whole decode batch of that step: each sequence's tokens per step follow the acceptance, but the
sequences of one step accept the same number of drafts (the decode batch advances in lockstep). Draw ``i`` of a
replica is a function of (seed, replica index, i) only, so a replay is the same step by step and fast-forwarded,
and the same for the same seed. A sequence that finishes inside a step stops there; a step whose decode batch
empties drops its pending tokens.
"""

from __future__ import annotations

import numpy as np

_BLOCK = 4096   # draws generated at a time


class SpeculativeSteps:
    """The verify-step draws of one replica and where the current step's pending sub-steps end.

    ``s`` arguments are the scheduler's count of decode sub-steps done."""

    def __init__(self, spec, replica_index: int):
        p = spec.token_probabilities()
        self._cdf = np.cumsum(p)
        self._cdf[-1] = 1.0
        self._rng = np.random.default_rng([int(spec.seed), int(replica_index), 0x5bec])
        self._draws = np.zeros(0, dtype=np.int64)
        self.next_start = 0    # sub-step counter at which the next verify step starts
        self.index = 0         # draw of that step
        self.steps = 0         # verify steps started
        self.tokens = 0        # tokens per sequence those steps were drawn to emit

    def _draw(self, i: int, count: int) -> np.ndarray:
        """Tokens per sequence of verify steps ``i .. i + count - 1``."""
        while len(self._draws) < i + count:
            u = self._rng.random(_BLOCK)
            self._draws = np.concatenate((self._draws, np.searchsorted(self._cdf, u, side="right") + 1))
        return self._draws[i:i + count]

    def pending(self, s: int, decode_members: int) -> int:
        """Sub-steps still owed by the verify step in progress after ``s`` sub-steps (0: the next decode sub-step
        starts a new verify step). A step whose decode batch emptied owes nothing."""
        self.advance(s)
        if self.next_start > s and not decode_members:
            self.next_start = s
        return self.next_start - s

    def advance(self, s: int) -> None:
        """Account the verify steps started within the first ``s`` sub-steps."""
        while self.next_start < s:
            t = int(self._draw(self.index, 1)[0])
            self.next_start += t
            self.index += 1
            self.steps += 1
            self.tokens += t

    def step_flags(self, s: int, count: int) -> np.ndarray:
        """1.0 for each of the sub-steps ``s + 1 .. s + count`` that starts a verify step, else 0.0 (no state
        changes: :meth:`pending` advances as the sub-steps complete)."""
        flags = np.zeros(count)
        pos, i = self.next_start, self.index
        while pos < s + count:
            chunk = self._draw(i, max(16, (s + count - pos) // 2))
            starts = pos + np.concatenate(([0], np.cumsum(chunk)[:-1]))
            flags[starts[(starts >= s) & (starts < s + count)] - s] = 1.0
            pos = int(starts[-1] + chunk[-1])
            i += len(chunk)
        return flags

    def stats(self, s: int) -> dict:
        """Verify steps started within ``s`` sub-steps and the mean tokens per sequence they were drawn to emit."""
        self.advance(s)
        return {"verify_steps": self.steps,
                "tokens_per_verify_step": round(self.tokens / self.steps, 4) if self.steps else None}
