"""Per-request timestamp logs of a vLLM server run (one JSON object per line), as the LLMServingSim benchmark
harness records them from vLLM's request metrics::

    {"request_id": "bench-0", "input_toks": 2358, "output_toks": 531, "arrival_time": 1777142838.34,
     "queued_ts": 479748.3406, "scheduled_ts": 479748.3407, "first_token_ts": 479748.5102, "last_token_ts": 479764.05}

``arrival_time`` is the client's send time (epoch seconds) and becomes ``arrival_s``; the ``*_ts`` fields are the
engine's monotonic clock (seconds): ``queued_ts`` when the engine core received the request, ``first_token_ts``
and ``last_token_ts`` when it produced the first and last output tokens. The measured timings follow the
harness's definitions:

* ``measured_ttft_s = first_token_ts - queued_ts``
* ``measured_tpot_s = (last_token_ts - first_token_ts) / (output_toks - 1)`` (NaN for one-token outputs)
* ``measured_e2e_s = last_token_ts - queued_ts``

so they start when the **engine** queued the request, after the API server's front-end path (HTTP,
tokenization): the trace says so with ``Trace.timed_from = 'engine'`` and ``validate trace`` removes the
simulated front-end latency from the predictions it compares.
"""

from __future__ import annotations

import math

import numpy as np
from ..lazy import pandas as pd

from ..errors import InputError
from .parsing import PathLike, jsonl_objects
from .schema import canonical_trace

FIELDS = ("input_toks", "output_toks", "arrival_time", "queued_ts", "first_token_ts", "last_token_ts")


def read_vllm_request_log(path: PathLike):
    """Read a per-request timestamp log (see the module docstring) into a :class:`~.schema.Trace`."""
    rows = []
    for i, rec in jsonl_objects(path):
        for name in FIELDS:
            v = rec.get(name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"missing or not a finite number: {v!r}", path=str(path), row=i, field=name)
        if rec["input_toks"] < 1 or rec["output_toks"] < 1:
            raise InputError("input_toks and output_toks must be >= 1", path=str(path), row=i)
        if not rec["queued_ts"] <= rec["first_token_ts"] <= rec["last_token_ts"]:
            raise InputError("timestamps out of order (queued_ts <= first_token_ts <= last_token_ts)",
                             path=str(path), row=i)
        rows.append(rec)
    if not rows:
        raise InputError("the file is empty: no request records", path=str(path))
    df = pd.DataFrame(rows)
    out = df["output_toks"].to_numpy(dtype=np.int64)
    first, last, queued = (df[c].to_numpy(dtype=float) for c in ("first_token_ts", "last_token_ts", "queued_ts"))
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(out > 1, (last - first) / (out - 1), np.nan)
    frame = pd.DataFrame({
        "request_id": np.arange(len(df), dtype=np.int64),
        "arrival_s": df["arrival_time"].to_numpy(dtype=float),
        "input_tokens": df["input_toks"].to_numpy(dtype=np.int64),
        "output_tokens": out,
        "measured_ttft_s": first - queued,
        "measured_e2e_s": last - queued,
        "measured_tpot_s": tpot,
        "log_request_id": df.get("request_id", pd.Series(range(len(df)))).astype(str).to_numpy(),
        "measured_queued_ts": queued,
    })
    trace = canonical_trace(frame, source=f"{path}; vLLM per-request timestamp log ({len(df)} requests; "
                                          "timings from the engine's queue time)")
    trace.timed_from = "engine"
    return trace
