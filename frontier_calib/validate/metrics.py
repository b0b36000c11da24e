"""Error metrics of predictions against measurements.

For predictions p and measurements m (both > 0) of one metric (TTFT or TPOT):

* APE = |p / m - 1| per row; **MAPE** = mean APE; **median APE** = median APE; **P90 APE**.
* **signed bias** = median(p / m) - 1: negative = the model predicts too low (e.g. -0.38 = 0.62x of measured).
* **within_10 / within_25**: share of rows with APE <= 10 % / 25 %.

Rows whose prediction or measurement is missing, non-finite or <= 0 are not scored (and counted as ``n_missing``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

METRICS = ("ttft", "tpot")
GROUP_COLUMNS = ("system", "backend", "mode")


#: the statistics of a latency sample that the per-request reports compare
LATENCY_STATS = ("mean", "median", "p90", "p99")


def latency_stats_ms(values_s) -> dict:
    """Mean, median, P90 and P99 (milliseconds) of the finite values of ``values_s`` (seconds); NaN when none."""
    v = np.asarray(values_s, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return {s: math.nan for s in LATENCY_STATS}
    return {"mean": float(v.mean()) * 1e3, "median": float(np.median(v)) * 1e3,
            "p90": float(np.percentile(v, 90)) * 1e3, "p99": float(np.percentile(v, 99)) * 1e3}


def error_stats(pred, meas) -> dict:
    """MAPE, median APE, P90 APE, signed bias and counts of one metric (fractions, not percent)."""
    p = np.asarray(pred, dtype=float)
    m = np.asarray(meas, dtype=float)
    good = np.isfinite(p) & np.isfinite(m) & (p > 0) & (m > 0)
    n_missing = int(len(p) - good.sum())
    if not good.any():
        return {"n": 0, "n_missing": n_missing, "mape": math.nan, "median_ape": math.nan, "p90_ape": math.nan,
                "bias": math.nan, "within_10": math.nan, "within_25": math.nan}
    ratio = p[good] / m[good]
    ape = np.abs(ratio - 1.0)
    return {"n": int(good.sum()), "n_missing": n_missing, "mape": float(ape.mean()),
            "median_ape": float(np.median(ape)), "p90_ape": float(np.percentile(ape, 90)),
            "bias": float(np.median(ratio) - 1.0), "within_10": float((ape <= 0.10 + 1e-12).mean()),
            "within_25": float((ape <= 0.25 + 1e-12).mean())}


def scored(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows that count: status 'ok'."""
    return rows[rows["status"] == "ok"] if "status" in rows.columns else rows


def summarize(rows: pd.DataFrame, *, by=GROUP_COLUMNS) -> dict:
    """{'overall': {ttft: stats, tpot: stats, n_rows}, 'groups': [{system, backend, mode, ttft, tpot, n_rows}]}
    over the ok rows of a rows frame (pred_ttft_ms, silicon_ttft_ms, pred_tpot_ms, silicon_tpot_ms)."""
    ok = scored(rows)
    out = {"overall": _block(ok), "groups": []}
    by = [c for c in by if c in ok.columns]
    if by and len(ok):
        for key, g in ok.groupby(by, sort=True, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            out["groups"].append({**dict(zip(by, key)), **_block(g)})
    return out


def _block(g: pd.DataFrame) -> dict:
    d = {"n_rows": int(len(g))}
    for m in METRICS:
        d[m] = error_stats(g[f"pred_{m}_ms"], g[f"silicon_{m}_ms"]) if len(g) else error_stats([], [])
    return d


def coverage(rows: pd.DataFrame) -> dict:
    """{'total', 'ok', 'ok_share', 'skipped': {reason: count}} (reasons shortened to their category)."""
    status = rows["status"].astype(str)
    reasons = status[status != "ok"].map(skip_category).value_counts()
    total = int(len(rows))
    ok = int((status == "ok").sum())
    return {"total": total, "ok": ok, "ok_share": ok / total if total else math.nan,
            "skipped": {str(k): int(v) for k, v in reasons.items()}}


def skip_category(status: str) -> str:
    """'skipped:missing profile coverage: no 'moe' rows for dtype=...' -> the reason with its specifics kept
    short: the text up to the first ';' (and at most 110 characters)."""
    s = str(status).removeprefix("skipped:")
    s = s.split(";")[0].strip()
    return s if len(s) <= 110 else s[:107] + "..."


def format_stats_table(summary: dict, *, title_cols=GROUP_COLUMNS) -> str:
    """A Markdown table of a summarize() result (percent, one decimal)."""
    head = list(title_cols) + ["rows", "TTFT MAPE", "TTFT med APE", "TTFT bias", "TPOT MAPE", "TPOT med APE",
                                "TPOT bias"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in summary["groups"]:
        lines.append("| " + " | ".join([str(g.get(c, "")) for c in title_cols] + _cells(g)) + " |")
    o = summary["overall"]
    lines.append("| " + " | ".join(["**overall**"] + [""] * (len(title_cols) - 1) + _cells(o)) + " |")
    return "\n".join(lines)


def _cells(b: dict) -> list:
    t, p = b["ttft"], b["tpot"]
    return [str(b["n_rows"]), pct(t["mape"]), pct(t["median_ape"]), pct(t["bias"], signed=True), pct(p["mape"]),
            pct(p["median_ape"]), pct(p["bias"], signed=True)]


def pct(x, *, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"
