"""Decode attention streams its KV cache from HBM in a serving step, whatever a warm-L2 benchmark row says.

A decode-attention kernel reads every cached K and V of its batch once per step. Between two reads of one
layer's KV the engine runs every other layer (its weights and KV, gigabytes on any served model) through the
GPU's L2, so in a forward pass that KV comes from HBM: one layer's decode attention takes at least

    KV bytes read  /  the rate the kernel streams from HBM

A kernel table measured by re-running one layer on one small KV cache keeps that cache in L2 and can report
less. The RTX PRO 6000 vLLM ``attention_decode`` table does: 1,051 of its 16,124 rows (16-bit KV, no window) are
faster than KV bytes / 1.79 TB/s (the card's memory bandwidth), every one of them with a working set no larger
than the card's 128 MiB L2 (median 0.84 x that bound; ``benchmarks/decode_attention_l2.py``), while its rows
with four times L2 or more stream at up to 1.53 TB/s. The H100 and H200 tables (48 MiB L2) have no row below the
bound. In-engine measurements on that card (vLLM 0.19, LLMServingSim's per-layer profile of Qwen3-30B-A3B, one
layer with a 43 M-token cache) side with the streaming rate, not with the warm rows: 79.5 us for 32 sequences of
1,384 tokens (91 MB of KV; priced from the table 45.0 us, floored 59.7 us at the 1,519 GB/s that deployment's grid
streams at) and 105.5 us for 128 of 410 (108 MB; 47.9 and 70.8 us).

The rate is the table's own: the fastest bytes per second it reaches where the KV cannot sit in L2 (at least
``COLD_L2_MULTIPLE`` x the GPU's L2), never above the GPU's memory bandwidth; where the queried grid has no such
cell, the GPU spec's memory bandwidth. Rows that stream at that rate or slower are unchanged, so the floor only
lifts warm rows, and it is a lower bound (the best cold rate, not a typical one). The cost model applies it to
every decode-attention table query of a kind that caches KV (:meth:`frontier_calib.cost.iteration.
IterationCostModel`; Mamba/GDN state is not KV and is not floored).
"""

from __future__ import annotations

import numpy as np

#: a working set this many times the L2 cannot be served from it (the RTX PRO 6000 table reaches its streaming
#: rate from 2x L2 on; 4x keeps the reference rows clear of any partial reuse)
COLD_L2_MULTIPLE = 4.0


def streaming_rate(kv_bytes, ms, l2_bytes: float, hbm_bandwidth: float) -> float:
    """Bytes per second a decode kernel streams KV from HBM, read off its own timings: the best ``kv_bytes`` /
    ``ms`` (milliseconds) over the entries whose bytes are at least ``COLD_L2_MULTIPLE`` x ``l2_bytes``, capped
    at ``hbm_bandwidth``; ``hbm_bandwidth`` itself when no entry is that large."""
    kv_bytes = np.asarray(kv_bytes, dtype=float).ravel()
    ms = np.asarray(ms, dtype=float).ravel()
    cold = (kv_bytes >= COLD_L2_MULTIPLE * l2_bytes) & (ms > 0) & np.isfinite(ms)
    if not cold.any():
        return float(hbm_bandwidth)
    return float(min(np.max(kv_bytes[cold] / (ms[cold] / 1e3)), hbm_bandwidth))


def floored_decode_ms(ms, kv_bytes, rate: float) -> np.ndarray:
    """``ms`` (milliseconds, elementwise) never below streaming ``kv_bytes`` at ``rate`` bytes per second."""
    return np.maximum(np.asarray(ms, dtype=float), np.asarray(kv_bytes, dtype=float) / rate * 1e3)
