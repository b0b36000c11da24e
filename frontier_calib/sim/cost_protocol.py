"""What the replay engine needs from a cost model: the time of one engine step.

The engine calls :meth:`IterationCost.iteration_time` for every step that contains prefill work, and
:meth:`IterationCost.decode_times` to advance a static decode batch many steps at once (fast-forward).
Both return **seconds**. Token counts are tokens, KV lengths are tokens held in the KV cache.

Contract between the two methods (the fast-forward equivalence relies on it)::

    decode_times(B, np.array([S]))[0] == iteration_time(empty, empty, B, S)

bit for bit, where ``empty = np.zeros(0, np.int64)``.

Optional: ``decode_stretches(num_decode, first_kv_sums, k)`` prices several decode batches' next ``k`` steps at
once (an array, one row per batch, row i equal to ``decode_times(num_decode[i], first_kv_sums[i] + num_decode[i] *
arange(k))`` bit for bit, or None to decline); attention-DP ranks in lockstep that share one cost model use it
(:mod:`frontier_calib.sim.lockstep`, :meth:`frontier_calib.cost.iteration.IterationCostModel.decode_stretches`).

Optional: ``schedules_ahead`` (bool attribute, default False): the engine plans step n+1 while step n runs on the
GPU (vLLM V1 async scheduling, SGLang's and TensorRT-LLM's overlap schedulers), so a request that reaches the
scheduler during step n first runs in step n+2 (:class:`frontier_calib.sim.replica.ReplicaSpec`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class IterationCost(Protocol):
    def iteration_time(self, prefill_q: np.ndarray, prefill_kv: np.ndarray, num_decode: int,
                       decode_kv_sum: int) -> float:
        """Seconds for one engine step: prefill chunks (q = new tokens of each chunk, kv = keys attended =
        cached/computed-before + q) plus num_decode decode sequences whose KV lengths sum to decode_kv_sum.
        ``prefill_q`` / ``prefill_kv`` are int sequences: the replay passes lists, callers may pass arrays."""

    def decode_times(self, num_decode: int, decode_kv_sums: np.ndarray) -> np.ndarray:
        """Vectorised: seconds of decode-only steps for a static batch of num_decode sequences at each
        KV-length sum in decode_kv_sums."""


@dataclass(frozen=True)
class LinearCost:
    """A simple analytic cost model for tests and speed measurements (not calibrated to any GPU).

    ``iteration_time = step_s + token_s * (sum(q) + num_decode) + prefill_attn_s * sum(q * kv)
    + decode_kv_s * decode_kv_sum`` seconds.

    The defaults are the right order of magnitude for a 7B model on one H100: ~17 ms for a 512-token prefill
    chunk, ~8 ms for a decode step of 22 sequences holding 27k KV tokens.
    """

    step_s: float = 4.0e-3          # per step: weights read + launch overhead (s)
    token_s: float = 2.5e-5         # per new token (prefill or decode) (s/token)
    prefill_attn_s: float = 1.0e-9  # per (query token, key) pair in prefill attention (s)
    decode_kv_s: float = 1.5e-7     # per KV token read by decode attention (s/token)

    def iteration_time(self, prefill_q, prefill_kv, num_decode, decode_kv_sum):
        q = prefill_q.tolist() if hasattr(prefill_q, "tolist") else list(prefill_q)
        kv = prefill_kv.tolist() if hasattr(prefill_kv, "tolist") else list(prefill_kv)
        tokens = sum(q) + int(num_decode)
        pairs = float(sum(a * b for a, b in zip(q, kv)))
        # Same operation order as decode_times so that a decode-only step is bit-identical.
        return (self.step_s + self.token_s * tokens) + self.prefill_attn_s * pairs \
            + self.decode_kv_s * int(decode_kv_sum)

    def decode_times(self, num_decode, decode_kv_sums):
        s = np.asarray(decode_kv_sums, dtype=np.int64)
        return (self.step_s + self.token_s * int(num_decode)) + self.prefill_attn_s * 0.0 + self.decode_kv_s * s

    def decode_kernel_ms(self, num_decode, decode_kv_sums):
        """(token ms, LM head ms, attention ms per KV sum) of a decode step: the step and per-token terms count as
        token work, the KV term as attention (for a speculative drafter's share, cost/speculative.py)."""
        kv = np.asarray(decode_kv_sums, dtype=float)
        return (self.step_s + self.token_s * int(num_decode)) * 1e3, 0.0, self.decode_kv_s * kv * 1e3
