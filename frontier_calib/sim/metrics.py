"""Latency metrics with vLLM ``bench serve`` conventions.

Per request (seconds): TTFT = first token - arrival; E2E = completion - arrival; TPOT = (E2E - TTFT) /
(output tokens - 1), NaN for one-token outputs; ITL = gaps between consecutive tokens. The summary reports
milliseconds (``*_ms``) like ``bench serve --save-result``.
"""

from __future__ import annotations

import math

import numpy as np

PERCENTILES = (90, 99)
METRICS = ("ttft", "tpot", "itl", "e2el")


def valid_itls(itl: np.ndarray, offsets: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The flat float32 array of the gaps of the requests with ``valid[i]`` (``itl`` and ``offsets`` as in
    :func:`itl_stats`, which returns the same array): what a summary needs, without the per-request statistics."""
    lens = np.diff(offsets)
    use = valid & (lens > 0)
    if not use.any():
        return np.zeros(0, dtype=np.float32)
    vals = itl if use[lens > 0].all() else itl[np.repeat(use, lens)]
    return np.ascontiguousarray(vals, dtype=np.float32)


def itl_stats(itl: np.ndarray, offsets: np.ndarray, valid: np.ndarray):
    """Per-request mean, median, p99 and max of inter-token latencies (seconds).

    ``itl[offsets[i]:offsets[i + 1]]`` holds request ``i``'s gaps (float32, >= 0); only requests with ``valid[i]``
    count. Returns four float64 arrays (NaN where a request has no gap) and the flat float32 array of all valid
    gaps. Percentiles interpolate linearly like ``numpy.percentile``.
    """
    n = len(offsets) - 1
    lens = np.diff(offsets)
    use = valid & (lens > 0)
    out = [np.full(n, np.nan) for _ in range(4)]
    if not use.any():
        return (*out, np.zeros(0, dtype=np.float32))
    vals = valid_itls(itl, offsets, valid)
    seg_lens = lens[use]
    starts = np.zeros(len(seg_lens), dtype=np.int64)
    np.cumsum(seg_lens[:-1], out=starts[1:])
    mean = np.add.reduceat(vals, starts, dtype=np.float64) / seg_lens
    vmax = np.maximum.reduceat(vals, starts).astype(np.float64)
    # Sort within segments: key = segment index in the high 32 bits, float32 bits (monotone for x >= 0) below.
    keys = np.repeat(np.arange(len(seg_lens), dtype=np.uint64) << np.uint64(32), seg_lens)
    keys |= np.maximum(vals, np.float32(0)).view(np.uint32)
    keys.sort()
    svals = keys.astype(np.uint32).view(np.float32)

    def seg_percentile(q):
        pos = q / 100.0 * (seg_lens - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, seg_lens - 1)
        a = svals[starts + lo].astype(np.float64)
        b = svals[starts + hi].astype(np.float64)
        return a + (b - a) * (pos - lo)

    idx = np.flatnonzero(use)
    out[0][idx] = mean
    out[1][idx] = seg_percentile(50)
    out[2][idx] = seg_percentile(99)
    out[3][idx] = vmax
    return (*out, vals)


def _order_stats(v: np.ndarray, ks: list) -> list:
    """The ``ks``-th smallest values of ``v`` (0-based ranks).

    Large non-negative float32 arrays (all ITLs of a replay) use an exact two-level radix select: the float32 bit
    pattern orders non-negative values, a 65,536-bucket histogram of the high 16 bits finds each rank's bucket, and
    only those buckets are sorted. Anything else uses ``numpy.partition``.
    """
    if v.dtype == np.float32 and v.size > 100_000 and float(v.min()) >= 0.0:
        u = v.view(np.uint32)
        top = u >> np.uint32(16)
        counts = np.bincount(top, minlength=65536)
        below = np.concatenate(([0], np.cumsum(counts)))
        buckets = np.searchsorted(below, np.asarray(ks), side="right") - 1
        wanted = np.unique(buckets)
        pick = np.zeros(65536, dtype=bool)
        pick[wanted] = True
        sub = np.sort(u[pick[top]])
        start = dict(zip(wanted.tolist(), (np.cumsum(counts[wanted]) - counts[wanted]).tolist()))
        return [float(sub[start[b] + k - below[b]].view(np.float32)) for k, b in zip(ks, buckets.tolist())]
    part = np.partition(v, sorted(set(ks)))
    return [float(part[k]) for k in ks]


def _percentiles(v: np.ndarray, qs) -> list:
    """``numpy.percentile(v, qs)`` with linear interpolation, via order statistics."""
    n = len(v)
    pos = [q / 100.0 * (n - 1) for q in qs]
    los = [int(math.floor(p)) for p in pos]
    his = [min(lo + 1, n - 1) for lo in los]
    vals = _order_stats(v, los + his)
    a, b = vals[:len(qs)], vals[len(qs):]
    return [x + (y - x) * (p - lo) for x, y, p, lo in zip(a, b, pos, los)]


def _describe(prefix: str, values_s: np.ndarray) -> dict:
    """mean/median/std/p90/p99 in milliseconds of ``values_s`` (seconds, NaN ignored)."""
    v = np.asarray(values_s)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    if np.isnan(v).any():
        v = v[~np.isnan(v)]
    d = {}
    if v.size == 0:
        d[f"mean_{prefix}_ms"] = d[f"median_{prefix}_ms"] = d[f"std_{prefix}_ms"] = math.nan
        for p in PERCENTILES:
            d[f"p{p}_{prefix}_ms"] = math.nan
        return d
    d[f"mean_{prefix}_ms"] = float(np.mean(v, dtype=np.float64)) * 1e3
    d[f"median_{prefix}_ms"] = math.nan
    d[f"std_{prefix}_ms"] = float(np.std(v, dtype=np.float64)) * 1e3
    med, *pct = _percentiles(v, (50,) + PERCENTILES)
    d[f"median_{prefix}_ms"] = med * 1e3
    for p, x in zip(PERCENTILES, pct):
        d[f"p{p}_{prefix}_ms"] = x * 1e3
    return d


def summary_from_requests(df, itls=None, *, duration: float | None = None) -> dict:
    """vLLM ``bench serve`` summary of a per-request table (simulated or measured).

    ``df`` (a DataFrame, or a dict of equal-length column arrays) needs ``input_tokens``, ``output_tokens``,
    ``ttft_s`` and ``e2e_s`` (seconds); optional ``status``
    (rows other than 'ok' count as failed), ``tpot_s`` (else derived), and ``arrival_s`` / ``completion_s`` for the
    duration (first arrival to last completion, seconds) unless ``duration`` is given. ``itls``: all inter-token
    latencies in seconds (a flat array, or one sequence per request); without them the ITL keys are NaN.
    Keys: completed, failed, duration, total_input_tokens, total_output_tokens, request_throughput,
    output_throughput, total_token_throughput, and mean_/median_/std_/p90_/p99_ of ttft_ms, tpot_ms, itl_ms,
    e2el_ms (milliseconds). Empty metrics are NaN (vLLM writes 0).
    """
    if isinstance(df, dict):
        names, column = set(df), (lambda name: np.asarray(df[name]))
        keep = np.asarray(df["status"]) == "ok" if "status" in names else None
    else:
        names, column = set(df.columns), (lambda name: df[name].to_numpy())
        keep = (df["status"] == "ok").to_numpy(dtype=bool, na_value=False) if "status" in names else None
    n_rows = len(column("input_tokens"))

    def ok(name: str, dtype=None) -> np.ndarray:
        values = column(name) if dtype is None else column(name).astype(dtype, copy=False)
        return values if keep is None else values[keep]

    completed = n_rows if keep is None else int(np.count_nonzero(keep))
    failed = int(n_rows - completed)
    if duration is None:
        if completed and "arrival_s" in names and "completion_s" in names:
            duration = float(np.nanmax(ok("completion_s", np.float64))
                             - np.nanmin(column("arrival_s").astype(np.float64, copy=False)))
        else:
            duration = math.nan
    # the sums skip missing values, as pandas' Series.sum does
    n_in = int(np.nansum(ok("input_tokens"))) if completed else 0
    n_out = int(np.nansum(ok("output_tokens"))) if completed else 0
    rate = (lambda x: x / duration) if duration and duration > 0 else (lambda x: math.nan)
    summary = {
        "completed": completed, "failed": failed, "duration": duration,
        "total_input_tokens": n_in, "total_output_tokens": n_out,
        "request_throughput": rate(completed), "output_throughput": rate(n_out),
        "total_token_throughput": rate(n_in + n_out),
    }
    ttft = ok("ttft_s", np.float64)
    e2e = ok("e2e_s", np.float64)
    if "tpot_s" in names:
        tpot = ok("tpot_s", np.float64)
    else:
        out = ok("output_tokens", np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            tpot = np.where(out > 1, (e2e - ttft) / (out - 1), np.nan)
    if itls is None:
        itl = np.full(0, np.nan)
    elif isinstance(itls, np.ndarray) and itls.dtype != object:
        itl = itls.ravel()
    else:
        parts = [np.asarray(x, dtype=np.float64).ravel() for x in itls]
        itl = np.concatenate(parts) if parts else np.zeros(0)
    summary.update(_describe("ttft", ttft))
    summary.update(_describe("tpot", tpot))
    summary.update(_describe("itl", itl))
    summary.update(_describe("e2el", e2e))
    return summary
