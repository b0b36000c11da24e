"""Summary statistics of a trace, for ``traces show`` and for people comparing workloads."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ..lazy import pandas as pd

from .schema import MEASURED_FLOAT_COLUMNS, Trace

PERCENTILES = (50, 90, 99)


def summarize(trace: Trace) -> dict:
    """Counts, duration (s), mean arrival rate (requests/s), token-length and measured-latency
    distributions and prefix-sharing statistics, as a JSON-friendly dict."""
    df = trace.requests
    n = trace.num_requests
    duration = trace.duration_s
    summary: dict = {
        "requests": n,
        "duration_s": duration,
        "concurrency": trace.concurrency,
        # n arrivals span n - 1 gaps; meaningless for closed loops (arrivals only order the requests)
        "mean_rate_rps": (n - 1) / duration if duration > 0 and trace.concurrency is None else None,
        "input_tokens": distribution(df["input_tokens"]),
        "output_tokens": distribution(df["output_tokens"]),
    }
    if "session_id" in df.columns:
        summary["sessions"] = int(df["session_id"].nunique())
    if "hash_ids" in df.columns:
        summary["prefix"] = prefix_sharing(df["hash_ids"], trace.hash_block_size)
    for name in MEASURED_FLOAT_COLUMNS:
        if name in df.columns and df[name].notna().any():
            summary[name.replace("_s", "_ms", 1) if name.endswith("_s") else name] = distribution(df[name] * 1000.0)
    return summary


def distribution(values: pd.Series) -> dict[str, float]:
    """mean, min, p50, p90, p99, max of the non-missing values."""
    x = values.dropna().to_numpy(dtype=np.float64)
    out = {"mean": float(x.mean()), "min": float(x.min())}
    out.update({f"p{p}": float(np.percentile(x, p)) for p in PERCENTILES})
    out["max"] = float(x.max())
    return out


def prefix_sharing(hash_ids: Iterable[list[int]], hash_block_size: int) -> dict:
    """How much prompt prefix an infinite prefix cache would reuse, replaying in arrival order.

    A request reuses its longest prefix of hash ids that all appeared in earlier requests.
    """
    seen: set[int] = set()
    total = reused = reusing_requests = requests = 0
    for ids in hash_ids:
        k = 0
        for h in ids:
            if h not in seen:
                break
            k += 1
        total += len(ids)
        reused += k
        reusing_requests += k > 0
        requests += 1
        seen.update(ids)
    return {
        "hash_block_size": hash_block_size,
        "blocks": total,
        "unique_blocks": len(seen),
        "reused_block_fraction": reused / total,
        "requests_reusing_prefix_fraction": reusing_requests / requests,
    }


def format_summary(summary: dict) -> str:
    """Human-readable lines for :func:`summarize`'s dict."""
    lines = [f"requests: {summary['requests']}", f"duration: {summary['duration_s']:.3f} s"]
    if summary["concurrency"] is not None:
        lines.append(f"closed loop: {summary['concurrency']} concurrent clients")
    if summary["mean_rate_rps"] is not None:
        lines.append(f"mean arrival rate: {summary['mean_rate_rps']:.3f} req/s")
    if "sessions" in summary:
        lines.append(f"sessions: {summary['sessions']}")
    for key, dist in summary.items():
        if isinstance(dist, dict) and "mean" in dist:
            unit = "ms" if key.endswith("_ms") else "tokens"
            stats = "  ".join(f"{k} {v:,.1f}" for k, v in dist.items())
            lines.append(f"{key} ({unit}): {stats}")
    if "prefix" in summary:
        p = summary["prefix"]
        lines.append(f"prefix blocks: {p['blocks']:,} of {p['hash_block_size']} tokens, {p['unique_blocks']:,} unique")
        lines.append(f"prefix reuse (infinite cache, arrival order): {p['reused_block_fraction']:.1%} of blocks, "
                     f"{p['requests_reusing_prefix_fraction']:.1%} of requests")
    return "\n".join(lines)
