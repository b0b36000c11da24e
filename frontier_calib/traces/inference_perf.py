"""inference-perf per-request results (kubernetes-sigs/inference-perf, ``per_request_lifecycle_metrics.json``).

inference-perf (the Kubernetes serving benchmark behind constant-rate stage sweeps and its ``sharedPrefix``
workload) writes, with ``report: {request_lifecycle: {per_request: true}}``, one JSON array with a record per
request (``inference_perf/reportgen/base.py``)::

    [{"start_time": 1731.20, "end_time": 1732.41, "request": "{\\"prompt\\": \\"...\\", ...}", "response": "...",
      "info": {"input_tokens": 192, "output_tokens": 64, "output_token_times": [1731.25, 1731.26, ...]},
      "error": null}, ...]

Later versions nest the counts (``info.request_metrics.text.input_tokens``; ``info.response_metrics`` with
``output_tokens``, ``output_token_times``, ``chunk_times`` and the server's ``usage``) and add ``stage_id``; both
layouts are read, and the server's ``usage`` token counts win where present (the client re-tokenizes the text).
``start_time`` / ``end_time`` and ``output_token_times`` are the client's clock (seconds); the requests were sent
open loop at their ``start_time``, so arrivals are recorded, not reconstructed: ``arrival_s`` = ``start_time`` -
the earliest ``start_time``. Measured timings (ground truth for ``validate trace``), from the client as the
benchmark reports them:

* ``measured_ttft_s`` = first output-token time - ``start_time``;
* ``measured_e2e_s`` = ``end_time`` - ``start_time``;
* ``measured_tpot_s`` = (last - first output-token time) / (``output_tokens`` - 1) (NaN for one-token outputs).

``measured_cached_tokens`` is the server's ``usage.prompt_tokens_details.cached_tokens`` where the records carry
it (later versions): the prompt tokens its prefix cache served, a check on the prefixes read off the text.
``measured_itls_s`` is left empty (None): inference-perf stamps every token of a streamed chunk with the chunk's
arrival, so the gaps between ``output_token_times`` are not inter-token latencies (on the public kubecon-na-2025
vLLM H100 runs the median gap is 31-41 us and half the gaps lie inside one chunk, against a ~7 ms decode step).

**Shared prompt prefixes** (the ``sharedPrefix`` workload: groups of prompts that start with the same system
prompt) are read off the prompt text the ``request`` field carries (the request body as JSON: ``prompt``, or the
``messages`` contents in order): two prompts share the KV cache of the characters they have in common at the
start. Without a tokenizer, characters map to tokens at the file's mean ratio (all prompt characters over all
prompt tokens): block ``k`` of ``hash_block_size`` tokens gets a content hash of the prompt's first
``(k + 1) x hash_block_size`` tokens' worth of characters when those characters lie inside the prefix the prompt
shares with some other prompt of the file, and a hash of its own otherwise (so the chained ids of two prompts
agree exactly as long as their text does). Prompts given as token ids are compared token by token. Without
prompt text (a redacted or omitted ``request``) the trace carries no prefix information and ``Trace.source``
says so.

Failed requests (``error`` set, no output-token times, or no output tokens) are dropped, counted in
``Trace.source`` and reported with a warning. ``request_id`` is the record's 0-based position in the array; error
rows are 1-based positions.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings

import numpy as np
from ..lazy import pandas as pd

from ..errors import InputError
from .parsing import PathLike, json_document
from .schema import Trace, canonical_trace

#: prompt tokens per prefix hash (vLLM's default KV block size)
HASH_BLOCK_SIZE = 16


def read_inference_perf(path: PathLike, *, hash_block_size: int = HASH_BLOCK_SIZE) -> Trace:
    """Read an inference-perf ``per_request_lifecycle_metrics.json`` (see the module docstring)."""
    records = _load(path)
    kw = {"path": str(path)}
    rows, dropped = [], 0
    for pos, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            raise InputError("a record is not a JSON object", row=pos, **kw)
        parsed = _record(rec, pos, kw)
        if parsed is None:
            dropped += 1
            continue
        rows.append((pos - 1,) + parsed)
    if not rows:
        raise InputError(f"all {len(records)} requests failed; nothing to replay", field="error", **kw)
    ids, start, end, n_in, n_out, times, prompts, _stages, cached = (list(col) for col in zip(*rows))
    start = np.asarray(start, dtype=float)
    first = np.array([t[0] for t in times])
    last = np.array([t[-1] for t in times])
    n_out = np.asarray(n_out, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(n_out > 1, (last - first) / (n_out - 1), np.nan)
    frame = pd.DataFrame({
        "request_id": np.asarray(ids, dtype=np.int64),
        "arrival_s": start - start.min(),
        "input_tokens": np.asarray(n_in, dtype=np.int64),
        "output_tokens": n_out,
        "measured_ttft_s": first - start,
        "measured_e2e_s": np.asarray(end, dtype=float) - start,
        "measured_tpot_s": tpot,
        "measured_itls_s": [None] * len(ids),
    })
    if np.isfinite(cached).any():   # the server's usage.prompt_tokens_details.cached_tokens: measured cache hits
        frame["measured_cached_tokens"] = np.asarray(cached, dtype=float)
    hash_ids, prefix_note = prefix_hash_ids(prompts, frame["input_tokens"].to_numpy(), int(hash_block_size))
    block = None
    if hash_ids is not None:
        frame["hash_ids"] = hash_ids
        block = int(hash_block_size)
    source = f"{path}; inference-perf per-request lifecycle metrics ({len(frame)} requests, open loop); {prefix_note}"
    if dropped:
        note = f"dropped {dropped} of {len(records)} failed requests (error, no output tokens)"
        warnings.warn(f"{path}: {note}", stacklevel=2)
        source += f"; {note}"
    return canonical_trace(frame, hash_block_size=block, source=source)


def record_starts_and_stages(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Every record's ``start_time`` (s; NaN where missing) and ``stage_id`` (-1 where the file's version does not
    write one), in the file's order, failed records included (the position is the trace's ``request_id``)."""
    records = _load(path)
    starts = np.array([float(r["start_time"]) if isinstance(r, dict) and isinstance(r.get("start_time"), (int, float))
                       and not isinstance(r.get("start_time"), bool) else math.nan for r in records])
    stages = np.array([int(r["stage_id"]) if isinstance(r, dict) and isinstance(r.get("stage_id"), int)
                       and not isinstance(r.get("stage_id"), bool) else -1 for r in records], dtype=np.int64)
    return starts, stages


def _load(path: PathLike) -> list:
    doc = json_document(path)
    if not isinstance(doc, list):
        raise InputError("an inference-perf per-request file is a JSON array of request records",
                         path=str(path), fix="point at per_request_lifecycle_metrics.json")
    if not doc:
        raise InputError("the array holds no request records", path=str(path))
    return doc


def _number(value, pos: int, field: str, kw: dict) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"missing or not a finite number: {value!r}", row=pos, field=field, **kw)
    return float(value)


def _count(value, pos: int, field: str, kw: dict, minimum: int) -> int:
    v = _number(value, pos, field, kw)
    if v != math.floor(v) or v < minimum:
        raise InputError(f"must be a whole number >= {minimum}, got {value!r}", row=pos, field=field, **kw)
    return int(v)


def _first(*candidates):
    """The first (field name, value) whose value is not None."""
    for name, value in candidates:
        if value is not None:
            return name, value
    return candidates[-1]


def _record(rec: dict, pos: int, kw: dict):
    """(start, end, input tokens, output tokens, output-token times, prompt, stage, cached prompt tokens the
    server reported, NaN if none) of one record; None if it
    failed. Reads both layouts of ``info``: the flat one (``input_tokens``, ``output_tokens``,
    ``output_token_times``) and the later nested one (``request_metrics.text.input_tokens``, ``response_metrics``
    with ``output_tokens``, ``output_token_times`` / ``chunk_times`` and the server's ``usage``, whose token counts
    win: they are the server's own, not a client-side re-tokenization)."""
    info = rec.get("info")
    if rec.get("error") or not isinstance(info, dict):
        return None
    resp = info.get("response_metrics") if isinstance(info.get("response_metrics"), dict) else {}
    usage = resp.get("server_usage") if isinstance(resp.get("server_usage"), dict) else {}
    text = (info.get("request_metrics") or {}).get("text") if isinstance(info.get("request_metrics"), dict) else None
    text = text if isinstance(text, dict) else {}
    t_field, times = _first(("info.output_token_times", info.get("output_token_times") or None),
                            ("info.response_metrics.output_token_times", resp.get("output_token_times") or None),
                            ("info.response_metrics.chunk_times", resp.get("chunk_times") or None))
    o_field, n_out = _first(("info.response_metrics.server_usage.completion_tokens", usage.get("completion_tokens")),
                            ("info.response_metrics.output_tokens", resp.get("output_tokens")),
                            ("info.output_tokens", info.get("output_tokens")))
    if not isinstance(times, list) or not times or not n_out:
        return None
    i_field, n_in = _first(("info.response_metrics.server_usage.prompt_tokens", usage.get("prompt_tokens")),
                           ("info.input_tokens", info.get("input_tokens")),
                           ("info.request_metrics.text.input_tokens", text.get("input_tokens")))
    start = _number(rec.get("start_time"), pos, "start_time", kw)
    end = _number(rec.get("end_time"), pos, "end_time", kw)
    times = [_number(t, pos, t_field, kw) for t in times]
    if not start <= times[0] or any(b < a for a, b in zip(times, times[1:])) or end < times[0]:
        raise InputError(f"timestamps out of order (start_time <= {t_field.split('.')[-1]}, ascending, <= "
                         "end_time)", row=pos, **kw)
    n_in = _count(n_in, pos, i_field, kw, 1)
    n_out = _count(n_out, pos, o_field, kw, 1)
    stage = rec.get("stage_id")
    stage = int(stage) if isinstance(stage, int) and not isinstance(stage, bool) else -1
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    cached = details.get("cached_tokens")
    cached = min(float(cached), n_in) if isinstance(cached, (int, float)) and not isinstance(cached, bool) \
        and cached >= 0 else math.nan
    return (start, end, n_in, n_out, np.asarray(times), _prompt(rec.get("request", rec.get("request_data"))), stage,
            cached)


def _prompt(request):
    """The prompt of a request body (JSON text or object): a string, a tuple of token ids, or None."""
    if isinstance(request, str):
        try:
            request = json.loads(request)
        except (json.JSONDecodeError, ValueError):
            return request or None   # the body is the prompt text itself
    if not isinstance(request, dict):
        return None
    prompt = request.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt or None
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
        return tuple(prompt)
    messages = request.get("messages")
    if isinstance(messages, list):
        parts = []
        for m in messages:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list):   # OpenAI content parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            if isinstance(content, str):
                parts.append(f"{m.get('role', '')}:{content}\n")
        return "".join(parts) or None
    return None


def _common_prefix(a, b) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def shared_prefix_lengths(prompts: list) -> np.ndarray:
    """For each prompt (string or token-id tuple), the length of the longest prefix it shares with any other
    prompt of the list (characters or tokens; 0 for None). The longest common prefix with any other element is
    reached at a neighbour in sorted order, so this is one sort and one pass."""
    n = len(prompts)
    out = np.zeros(n, dtype=np.int64)
    for kind in (str, tuple):
        idx = [i for i, p in enumerate(prompts) if isinstance(p, kind)]
        idx.sort(key=lambda i: prompts[i])
        for a, b in zip(idx, idx[1:]):
            lcp = _common_prefix(prompts[a], prompts[b])
            out[a] = max(out[a], lcp)
            out[b] = max(out[b], lcp)
    return out


def prefix_hash_ids(prompts: list, input_tokens: np.ndarray, block: int) -> tuple[list | None, str]:
    """Prefix-chained hash ids per prompt (``block`` tokens each; see the module docstring) and a note on how
    they were made; (None, note) when no record carries prompt text."""
    if block < 1:
        raise ValueError("hash_block_size must be >= 1")
    have = [p is not None for p in prompts]
    if not any(have):
        return None, "no prompt text in the records: prefix sharing unknown (none replayed)"
    chars = sum(len(p) for p, h in zip(prompts, have) if h and isinstance(p, str))
    tokens = sum(int(t) for p, t, h in zip(prompts, input_tokens, have) if h and isinstance(p, str))
    per_token = chars / tokens if tokens else 1.0
    shared = shared_prefix_lengths(prompts)
    out, shared_tokens = [], 0
    for i, (p, n) in enumerate(zip(prompts, input_tokens)):
        n_blocks = -(-int(n) // block)   # the last block may be partial
        ids, prev, begin = [], b"", 0
        for k in range(n_blocks):
            upto = min((k + 1) * block, int(n))   # tokens up to this block's end
            end = upto if isinstance(p, tuple) else int(round(upto * per_token))
            if p is not None and end <= shared[i]:
                prev = _chain(prev, p[begin:end])   # chained: equal ids <=> equal text up to this block's end
                ids.append(int.from_bytes(prev, "big") >> 1)
                shared_tokens += upto - k * block
                begin = end
            else:
                ids.append(int.from_bytes(_chain(b"unique", (i, k)), "big") >> 1)
        out.append(ids)
    total = int(np.sum(input_tokens))
    note = (f"shared prompt prefixes from the prompt text ({shared_tokens} of {total} prompt tokens, "
            f"{100.0 * shared_tokens / max(total, 1):.1f} %, in blocks shared with another prompt; "
            f"{per_token:.2f} characters per token)")
    if not all(have):
        note += f"; {len(have) - sum(have)} records without prompt text get unique blocks"
    return out, note


def _chain(prev: bytes, chunk) -> bytes:
    """8-byte digest of ``prev`` (the previous block's digest) followed by ``chunk`` (text, token ids or a marker)."""
    data = chunk.encode("utf-8") if isinstance(chunk, str) else repr(chunk).encode("utf-8")
    return hashlib.blake2b(prev + data, digest_size=8).digest()
