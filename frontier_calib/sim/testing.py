"""Tiny traces for tests and benchmarks of the replay engine (no file I/O).

Uses the project's ``Trace`` (``frontier_calib.traces.schema``) when it exists, else a stand-in with the same
fields, so the engine can be tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

try:  # pragma: no cover - depends on the traces package being present
    from ..traces.schema import Trace
except Exception:  # noqa: BLE001
    @dataclass
    class Trace:  # type: ignore[no-redef]
        requests: pd.DataFrame
        hash_block_size: int | None = None
        concurrency: int | None = None
        source: str = ""


def make_trace(arrival_s, input_tokens, output_tokens, *, hash_ids=None, hash_block_size=None,
               concurrency=None, source="test") -> Trace:
    """A Trace from per-request sequences (seconds, tokens); ``hash_ids``: one list of ints per request."""
    n = len(arrival_s)
    cols = {
        "request_id": np.arange(n, dtype=np.int64),
        "arrival_s": np.asarray(arrival_s, dtype=np.float64),
        "input_tokens": np.asarray(input_tokens, dtype=np.int64),
        "output_tokens": np.asarray(output_tokens, dtype=np.int64),
    }
    if hash_ids is not None:
        cols["hash_ids"] = [list(h) for h in hash_ids]
    return Trace(pd.DataFrame(cols), hash_block_size=hash_block_size, concurrency=concurrency, source=source)


def poisson_trace(n: int, rate: float, input_tokens, output_tokens, *, seed: int = 0) -> Trace:
    """``n`` requests with Poisson arrivals at ``rate`` req/s; lengths are scalars or arrays of length n."""
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / rate, size=n))
    inp = np.broadcast_to(np.asarray(input_tokens, dtype=np.int64), (n,))
    out = np.broadcast_to(np.asarray(output_tokens, dtype=np.int64), (n,))
    return make_trace(arrival, inp, out, source=f"poisson({rate})")


def shared_prefix_trace(groups: int, per_group: int, system_tokens: int, question_tokens: int,
                        output_tokens: int, *, rate: float, hash_block_size: int = 16, seed: int = 0) -> Trace:
    """Shared-prefix load: ``groups`` system prompts x ``per_group`` questions each, Poisson arrivals in a
    random interleaving; hash ids chain the system prompt (shared within a group) and the question (unique)."""
    rng = np.random.default_rng(seed)
    n = groups * per_group
    group = rng.permutation(np.repeat(np.arange(groups), per_group))
    arrival = np.cumsum(rng.exponential(1.0 / rate, size=n))
    total = system_tokens + question_tokens
    n_blocks = -(-total // hash_block_size)
    n_sys = system_tokens // hash_block_size   # full hash blocks inside the system prompt
    next_id = groups * n_sys
    hashes = []
    for i in range(n):
        g = int(group[i])
        ids = [g * n_sys + j for j in range(n_sys)]
        ids += list(range(next_id, next_id + n_blocks - n_sys))
        next_id += n_blocks - n_sys
        hashes.append(ids)
    return make_trace(arrival, np.full(n, total), np.full(n, output_tokens), hash_ids=hashes,
                      hash_block_size=hash_block_size, source="shared_prefix")
