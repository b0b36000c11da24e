"""vLLM serving benchmark results (``benchmark_serving.py`` / ``vllm bench serve --save-result --save-detailed``).

The JSON document has run settings (``request_rate``: requests/s, a number or "inf"; ``burstiness``;
``max_concurrency``), summary metrics, and per-request lists in request order: ``input_lens`` and
``output_lens`` (tokens), ``ttfts`` (seconds), ``itls`` (lists of seconds), ``generated_texts``, ``errors``.

Arrival times are not recorded, so they are reconstructed, and ``Trace.source`` says how:
``max_concurrency`` set -> closed loop with that many clients (arrivals all 0, list order kept);
else a finite ``request_rate`` -> gamma arrivals (shape ``burstiness``, 1 = Poisson) from ``seed``,
sampled for every request so that dropped ones keep their slots; else (inf) everything arrives at 0.

The measured timings become ground truth: measured_ttft_s, measured_itls_s, measured_e2e_s = ttft +
sum(itls), measured_tpot_s = (e2e - ttft) / (output_tokens - 1) (NaN for one-token outputs). Failed
requests (an error, an empty generated text, ttft 0 or output length 0) are dropped, counted in
``Trace.source`` and reported with a warning. ``request_id`` is the request's position in the lists.
Error rows are 1-based positions in the per-request lists.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from ..lazy import pandas as pd

from ..errors import FrontierError, InputError
from .arrivals import gamma
from .parsing import PathLike, float_list, float_values, int_values, json_document
from .schema import Trace, canonical_trace

PER_REQUEST = ("input_lens", "output_lens", "ttfts", "itls")
OPTIONAL_PER_REQUEST = ("generated_texts", "errors")


def read_vllm_bench(path: PathLike, *, seed: int = 0) -> Trace:
    """Read a vLLM bench detailed result JSON; ``seed`` drives the reconstructed open-loop arrivals."""
    doc = _load(path)
    lists = _per_request_lists(doc, path)
    n = len(lists["input_lens"])
    failed = _failed(lists, n)
    if failed.all():
        raise InputError(f"all {n} requests failed; nothing to replay", path=str(path), field="errors")
    keep = np.flatnonzero(~failed)
    rows = keep + 1
    kw = {"path": path}

    def kept(name: str) -> list:
        return [lists[name][i] for i in keep]

    ttft = float_values(kept("ttfts"), rows, field="ttfts", minimum=0.0, **kw)
    itls = [float_list(v, int(r), field="itls", **kw) for v, r in zip(kept("itls"), rows)]
    output_tokens = int_values(kept("output_lens"), rows, field="output_lens", **kw)
    e2e = ttft + np.array([math.fsum(v) for v in itls])
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(output_tokens > 1, (e2e - ttft) / (output_tokens - 1), np.nan)
    arrival_s, concurrency, how = _arrivals(doc, n, seed, path)
    frame = pd.DataFrame({
        "request_id": keep.astype(np.int64),
        "arrival_s": arrival_s[keep],
        "input_tokens": int_values(kept("input_lens"), rows, field="input_lens", **kw),
        "output_tokens": output_tokens,
        "measured_ttft_s": ttft,
        "measured_e2e_s": e2e,
        "measured_tpot_s": tpot,
        "measured_itls_s": itls,
    })
    model = doc.get("model_id") or doc.get("model_ids") or "?"
    source = f"{path}; vLLM bench result (model {model}, backend {doc.get('backend', '?')}); {how}"
    if failed.any():
        note = f"dropped {int(failed.sum())} of {n} failed requests (error, empty text, ttft 0 or no output)"
        warnings.warn(f"{path}: {note}", stacklevel=2)
        source += f"; {note}"
    return canonical_trace(frame, concurrency=concurrency, source=source)


def _load(path: PathLike) -> dict:
    doc = json_document(path)
    if not isinstance(doc, dict):
        raise InputError("a vLLM bench result is a JSON object", path=str(path))
    return doc


def _per_request_lists(doc: dict, path: PathLike) -> dict[str, list]:
    for name in PER_REQUEST:
        if name not in doc:
            raise InputError("missing per-request field", path=str(path), field=name,
                             fix="rerun vllm bench serve with --save-result --save-detailed")
    lists = {name: doc[name] for name in PER_REQUEST + OPTIONAL_PER_REQUEST if doc.get(name) is not None}
    n = len(lists["input_lens"]) if isinstance(lists["input_lens"], list) else -1
    for name, values in lists.items():
        if not isinstance(values, list) or len(values) != n:
            size = len(values) if isinstance(values, list) else type(values).__name__
            raise InputError(f"must be a list as long as input_lens ({n}), got {size}", path=str(path), field=name)
    if n == 0:
        raise InputError("no requests in the result", path=str(path), field="input_lens")
    return lists


def _failed(lists: dict[str, list], n: int) -> np.ndarray:
    """True for requests that failed: an error, an empty generated text, ttft 0 or output length 0."""
    errors = lists.get("errors", [None] * n)
    texts = lists.get("generated_texts", [None] * n)
    return np.array([bool(e) or t == "" or ttft in (0, None) or out in (0, None)
                     for e, t, ttft, out in zip(errors, texts, lists["ttfts"], lists["output_lens"])], dtype=bool)


def _arrivals(doc: dict, n: int, seed: int, path: PathLike) -> tuple[np.ndarray, int | None, str]:
    """Arrival times (s) for all n requests, the closed-loop concurrency (or None), and how they were made."""
    max_concurrency = doc.get("max_concurrency")
    rate = _rate(doc.get("request_rate", "inf"), path)
    if max_concurrency is not None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise InputError(f"value {max_concurrency!r} must be a whole number >= 1 or null", path=str(path),
                             field="max_concurrency")
        note = f" (request_rate {rate} also limited sending; not modelled)" if math.isfinite(rate) else ""
        return np.zeros(n), max_concurrency, f"closed loop with max_concurrency={max_concurrency}{note}"
    if math.isinf(rate):
        return np.zeros(n), None, "request_rate inf: all requests arrive at 0"
    burstiness = doc.get("burstiness") or 1.0
    try:
        process = gamma(rate, burstiness)
    except FrontierError as exc:
        raise InputError(str(exc), path=str(path), field="burstiness") from exc
    return process.sample(n, seed), None, (f"arrivals reconstructed (not recorded): gamma(rate={rate}/s, "
                                           f"burstiness={burstiness}) with seed={seed}")


def _rate(value: object, path: PathLike) -> float:
    try:
        rate = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        rate = math.nan
    if not rate > 0:
        raise InputError(f"value {value!r} must be a number > 0 or \"inf\"", path=str(path), field="request_rate")
    return rate
