"""Attention/FFN disaggregation (AF): the iteration time of an attention worker whose MLP/MoE layers run on a
separate FFN pool, with m micro-batches ping-ponging between the two.

Per layer, one micro-batch does attention on its attention rank (a ms), sends its hidden states to the FFN pool
(x ms), the FFN pool runs the MLP/MoE (f ms) and sends them back (x ms). With ``m`` identical micro-batches over
``L`` layers, the attention ranks, the FFN pool and each link direction are resources that every micro-batch uses
once per layer. The layer pipeline takes (milliseconds)::

    M = max(a, f, x),  S = a + f + 2x
    T = max(L·m·M + (S − M),  L·S + (m − 1)·M)

The first term is the busiest resource working L·m times, plus the shortest way into and out of it (the rest
of one round trip); the second is one micro-batch's L round trips back to back, plus the stagger (M) between
micro-batches. Both are lower bounds of a ping-pong schedule, and for identical micro-batches one of them is
reached, so T is exact under these assumptions:

* micro-batches are identical: tokens (and decode sequences, KV, prefill chunks) split evenly into m parts
  (ceil for token counts, so a batch smaller than m runs as that many micro-batches of one);
* every attention rank runs the same batch in lockstep (the FFN pool serves ``ranks`` such ranks; its
  micro-batch is ``ranks × tokens per micro-batch / ffn_workers`` tokens);
* the two link directions are separate (full duplex) and each transfer takes
  ``x = latency + tokens × hidden × 2 bytes / bandwidth`` (one direction, bf16 activations);
* lm_head (after the last layer), the engine overheads and sampling are not overlapped.

With m = 1 and x = 0 this is ``A + F`` = the co-located step when both pools have the co-located parallelism
(``a + f`` is the co-located token-op sum split into its attention and FFN parts, see ``IterationCostModel``'s
``ffn_ms`` table). Utilisation: attention ``L·m·a / T``, FFN ``L·m·f / T`` (over the pipelined part), bubble
fraction = 1 − utilisation, accumulated over the steps the simulator priced (a fast-forward stretch that was cut
short still counts its priced steps, so these are estimates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .engine_time import step_seconds


def pipeline_ms(a, f, x, m: int, layers: int):
    """The layer-pipeline time of ``m`` micro-batches over ``layers`` layers (see the module docstring).
    ``a``, ``f``, ``x``: per-layer, per-micro-batch milliseconds (scalars or arrays)."""
    a, f, x = np.asarray(a, float), np.asarray(f, float), np.asarray(x, float)
    big = np.maximum(np.maximum(a, f), x)
    s = a + f + 2 * x
    return np.maximum(layers * m * big + (s - big), layers * s + (m - 1) * big)


class AttentionPart:
    """The attention side of an :class:`~frontier_calib.cost.iteration.IterationCostModel`: every token op but
    the FFN/MoE share, prefill and decode attention, lm_head and the engine overheads."""

    def __init__(self, cm):
        self.cm = cm
        self.overheads = cm.overheads
        self.overlap = cm.engine_time.overlap   # the attention workers' CPU/GPU overlap (cost/engine_time.py)

    def token_ms(self, n: int) -> float:
        cm = self.cm
        return max(cm.token_ms(n) - cm.ffn_ms(n), 0.0)

    def lm_head_ms(self, n: int) -> float:
        return self.cm.lm_head_ms(n)

    def prefill_attention_ms(self, q, kv) -> float:
        return self.cm.prefill_step_attention_ms(q, kv)

    def decode_attention_ms(self, b: int, kv_sums: np.ndarray) -> np.ndarray:
        return self.cm.decode_attention_ms(b, kv_sums)


class FFNPart:
    """The FFN/MoE share of an IterationCostModel built for the FFN pool's worker (``ffn_ms`` table)."""

    def __init__(self, cm):
        self.cm = cm

    def ffn_ms(self, n: int) -> float:
        return self.cm.ffn_ms(n)


@dataclass
class AFCost:
    """Implements the simulator's IterationCost protocol for one attention rank of an AF deployment.

    ``attention``: an :class:`AttentionPart`-like object; ``ffn``: an :class:`FFNPart`-like object;
    ``ranks``: attention ranks the FFN pool serves; ``ffn_workers``: FFN instances sharing them;
    ``bytes_per_token``: activation bytes one token sends per direction per layer; ``bandwidth_bytes_s``
    / ``latency_s``: the effective link of one attention rank (one direction).
    """

    attention: object
    ffn: object
    layers: int
    micro_batches: int = 1
    ranks: int = 1
    ffn_workers: int = 1
    bytes_per_token: float = 0.0
    bandwidth_bytes_s: float = math.inf
    latency_s: float = 0.0
    busy: dict = field(default_factory=lambda: {"steps": 0, "step_s": 0.0, "pipeline_s": 0.0,
                                                "attention_s": 0.0, "ffn_s": 0.0, "link_s": 0.0})

    # ------------------------------------------------------------------ pieces
    def _x_ms(self, tokens: int) -> float:
        if tokens <= 0:
            return 0.0
        return (self.latency_s + tokens * self.bytes_per_token / self.bandwidth_bytes_s) * 1e3

    def _ffn_tokens(self, tokens: int) -> int:
        return max(1, math.ceil(tokens * self.ranks / self.ffn_workers))

    def _finish(self, a_tot, f_tot, x, m: int, n_seq: int, prefill: bool, tokens: int | None = None):
        L = self.layers
        pipe = pipeline_ms(np.asarray(a_tot) / L, f_tot / L, x, m, L)
        at = self.attention
        gpu = (pipe + at.lm_head_ms(n_seq)) / 1e3
        s = step_seconds(gpu, graphed=True, kernels=0, sequences=n_seq, tokens=n_seq if tokens is None else tokens,
                         has_prefill=prefill, overheads=at.overheads, overlap=at.overlap)
        b = self.busy
        k = np.size(s)
        b["steps"] += k
        b["step_s"] += float(np.sum(s))
        b["pipeline_s"] += float(np.sum(pipe)) / 1e3
        b["attention_s"] += float(np.sum(a_tot)) * m / 1e3 * (1 if np.ndim(a_tot) else k)
        b["ffn_s"] += f_tot * m / 1e3 * k
        b["link_s"] += 2 * L * x * m / 1e3 * k
        return s

    # ------------------------------------------------------------------ protocol
    def iteration_time(self, prefill_q, prefill_kv, num_decode: int, decode_kv_sum: int) -> float:
        q = np.asarray(prefill_q, dtype=np.int64)
        if len(q) == 0:
            return float(self.decode_times(int(num_decode), np.array([decode_kv_sum], dtype=float))[0]) \
                if num_decode else 0.0
        n_tok = int(q.sum()) + int(num_decode)
        n_seq = len(q) + int(num_decode)
        m = max(1, min(self.micro_batches, n_tok))
        t = math.ceil(n_tok / m)
        at = self.attention
        a = at.token_ms(t) + at.prefill_attention_ms(q, np.asarray(prefill_kv)) / m
        if num_decode:
            bd = math.ceil(num_decode / m)
            a += float(at.decode_attention_ms(bd, np.array([decode_kv_sum * bd / num_decode], float))[0])
        f = self.ffn.ffn_ms(self._ffn_tokens(t))
        return float(self._finish(a, f, self._x_ms(t), m, n_seq, True, n_tok))

    def decode_times(self, num_decode: int, decode_kv_sums) -> np.ndarray:
        kv = np.asarray(decode_kv_sums, dtype=float)
        b = int(num_decode)
        m = max(1, min(self.micro_batches, b))
        bd = math.ceil(b / m)
        at = self.attention
        a = at.token_ms(bd) + at.decode_attention_ms(bd, kv * bd / b)
        f = self.ffn.ffn_ms(self._ffn_tokens(bd))
        return np.asarray(self._finish(a, f, self._x_ms(bd), m, b, False), dtype=float)

    # ------------------------------------------------------------------ stats
    def pipeline_stats(self) -> dict:
        """Utilisation and bubble fraction of each pool over the priced steps (see the module docstring)."""
        b = self.busy
        step = b["step_s"] or 1.0
        pipe = b["pipeline_s"] or 1.0
        out = {"micro_batches": self.micro_batches, "steps_priced": b["steps"],
               "attention_utilisation": b["attention_s"] / step, "ffn_utilisation": b["ffn_s"] / step,
               "link_utilisation": b["link_s"] / 2 / step,
               "attention_bubble_fraction": 1 - b["attention_s"] / pipe, "ffn_bubble_fraction": 1 - b["ffn_s"] / pipe,
               "pipeline_fraction_of_step": b["pipeline_s"] / step}
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}
