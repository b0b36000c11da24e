"""``validate trace``: replay a trace that carries measured per-request timings and compare, per request and in
aggregate.

Ground truth comes from the trace's canonical ``measured_*`` columns (``measured_ttft_s``, ``measured_tpot_s``,
``measured_e2e_s``, ``measured_itls_s``), which the vLLM ``bench serve --save-detailed`` reader fills and native
CSV/Parquet traces may carry. The same requests are replayed through the deployment (closed loop when the
benchmark was, e.g. ``max_concurrency``) and compared:

* per request (joined on ``request_id``): predicted / measured TTFT, TPOT and E2E, and their ratios;
* in aggregate: mean, median, P90 and P99 of TTFT, TPOT, ITL and E2E latency, plus request and output-token
  throughput (measured from the file's own summary when it has one: vLLM's ``duration``, else from arrivals
  and completions), each with the signed error predicted / measured - 1;
* CDF overlays (measured vs predicted) of TTFT, TPOT, ITL and E2E in ``cdf.png``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import write_json, write_table, write_text
from .metrics import LATENCY_STATS, error_stats, latency_stats_ms, pct
from ..io import staged_output
from ..plotting import figure, save_png

STATS = LATENCY_STATS
METRICS = ("ttft", "tpot", "itl", "e2el")


def measured_duration(path: Path, trace) -> tuple[float, str]:
    """Benchmark duration (s): the vLLM result's own ``duration`` when the file has one, else first arrival to
    last measured completion (meaningful for traces with recorded arrival times)."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        d = float(doc.get("duration"))
        if math.isfinite(d) and d > 0:
            return d, "the result file's duration"
    except (OSError, ValueError, TypeError, AttributeError, json.JSONDecodeError, UnicodeDecodeError):
        pass
    df = trace.requests
    if "measured_e2e_s" in df.columns and trace.concurrency is None:
        end = (df["arrival_s"] + df["measured_e2e_s"]).max()
        d = float(end - df["arrival_s"].min())
        if math.isfinite(d) and d > 0:
            return d, "first arrival to last measured completion"
    return math.nan, "unknown (closed-loop trace without a recorded duration)"


def compare_trace(deployment_path, trace_path: Path, *, fmt: str | None = None, seed: int = 0,
                  progress: bool = False) -> dict:
    """Replay and compare; returns {'requests': frame, 'aggregate': frame, 'summary': dict, 'itls': (meas, pred)}.
    ``deployment_path``: a deployment YAML, or an already built deployment.

    When the trace's timings start at the engine's queue (``Trace.timed_from == 'engine'``, e.g. vLLM request
    logs), the predicted TTFT and E2E are taken from the same point: the simulated front-end latency of each
    request (``overheads.frontend_s + frontend_per_token_s x prompt tokens``) is removed from them."""
    from ..deployment import build_replicas, load_deployment, simulate_deployment
    from ..traces import load_trace

    t0 = time.perf_counter()
    dep = load_deployment(deployment_path) if isinstance(deployment_path, (str, Path)) else deployment_path
    trace = load_trace(trace_path, fmt)
    df = trace.requests
    have = [c for c in ("measured_ttft_s", "measured_tpot_s", "measured_e2e_s", "measured_itls_s") if c in df.columns]
    if "measured_ttft_s" not in have or df["measured_ttft_s"].notna().sum() == 0:
        raise InputError("the trace has no measured per-request timings (measured_ttft_s ...)", path=str(trace_path),
                         fix="use a vLLM bench result saved with --save-result --save-detailed, or a native trace "
                             "with measured_* columns")
    replicas, _ = build_replicas(dep, progress=progress)
    res = simulate_deployment(dep, trace, replicas, seed=seed, progress=progress)
    wall = time.perf_counter() - t0
    sim = res.requests.set_index("request_id")
    if getattr(trace, "timed_from", "client") == "engine":
        ov = dep.entry_overheads
        fe = ov.frontend_s + ov.frontend_per_token_s * sim["input_tokens"].to_numpy(dtype=float)
        sim = sim.assign(ttft_s=sim["ttft_s"] - fe, e2e_s=sim["e2e_s"] - fe)
    per = pd.DataFrame({"request_id": df["request_id"], "input_tokens": df["input_tokens"],
                        "output_tokens": df["output_tokens"]})
    for m, col in (("ttft", "measured_ttft_s"), ("tpot", "measured_tpot_s"), ("e2e", "measured_e2e_s")):
        per[f"measured_{m}_ms"] = df[col].to_numpy() * 1e3 if col in df.columns else math.nan
        per[f"pred_{m}_ms"] = sim.loc[df["request_id"], f"{m}_s"].to_numpy() * 1e3
        per[f"{m}_ratio"] = per[f"pred_{m}_ms"] / per[f"measured_{m}_ms"]
    per["pred_status"] = sim.loc[df["request_id"], "status"].to_numpy()
    itl_lists = [np.asarray(x, dtype=float) for x in df["measured_itls_s"]
                 if isinstance(x, (list, np.ndarray))] if "measured_itls_s" in df.columns else []
    meas_itl = np.concatenate(itl_lists) if itl_lists else np.zeros(0)   # none measured: ITL rows read NaN
    pred_itl = np.asarray(res.itls if res.itls is not None else [], dtype=float)
    ok = per["pred_status"] == "ok"
    meas = {"ttft": df["measured_ttft_s"], "tpot": df.get("measured_tpot_s", pd.Series(dtype=float)),
            "itl": meas_itl, "e2el": df.get("measured_e2e_s", pd.Series(dtype=float))}
    pred = {"ttft": sim.loc[df["request_id"][ok.to_numpy()], "ttft_s"],
            "tpot": sim.loc[df["request_id"][ok.to_numpy()], "tpot_s"], "itl": pred_itl,
            "e2el": sim.loc[df["request_id"][ok.to_numpy()], "e2e_s"]}
    rows = []
    for m in METRICS:
        ms, ps = latency_stats_ms(meas[m]), latency_stats_ms(pred[m])
        for s in STATS:
            rows.append({"metric": f"{s}_{m}_ms", "measured": ms[s], "predicted": ps[s],
                         "error": ps[s] / ms[s] - 1 if ms[s] and math.isfinite(ms[s]) else math.nan})
    dur, how = measured_duration(Path(trace_path), trace)
    n_meas = int(df["measured_ttft_s"].notna().sum())
    out_meas = float(df.loc[df["measured_ttft_s"].notna(), "output_tokens"].sum())
    sim_dur = float(res.summary.get("duration", math.nan))
    for name, m_val, p_val in (
            ("request_throughput", n_meas / dur if dur > 0 else math.nan, res.summary.get("request_throughput")),
            ("output_throughput", out_meas / dur if dur > 0 else math.nan, res.summary.get("output_throughput")),
            ("duration_s", dur, sim_dur)):
        p_val = float(p_val) if p_val is not None else math.nan
        rows.append({"metric": name, "measured": m_val, "predicted": p_val,
                     "error": p_val / m_val - 1 if m_val and math.isfinite(m_val) else math.nan})
    if "measured_cached_tokens" in df.columns and np.isfinite(df["measured_cached_tokens"].to_numpy(float)).any():
        have_c = np.isfinite(df["measured_cached_tokens"].to_numpy(float)) & ok.to_numpy()
        ids = df["request_id"][have_c]
        n_in = float(df["input_tokens"][have_c].sum())
        m_val = float(df["measured_cached_tokens"][have_c].sum()) / n_in if n_in else math.nan
        p_val = float(sim.loc[ids, "cached_tokens"].sum()) / n_in if n_in else math.nan
        rows.append({"metric": "prefix_cache_hit_share", "measured": m_val, "predicted": p_val,
                     "error": p_val / m_val - 1 if m_val and math.isfinite(m_val) else math.nan})
    agg = pd.DataFrame(rows)
    summary = {
        "deployment": str(deployment_path), "trace": str(trace_path), "trace_source": trace.source,
        "requests": int(len(df)), "replayed_ok": int(ok.sum()), "closed_loop_concurrency": trace.concurrency,
        "measured_duration_from": how, "seed": seed, "wall_seconds": round(wall, 3),
        "per_request": {m: error_stats(per[f"pred_{m}_ms"], per[f"measured_{m}_ms"]) for m in ("ttft", "tpot", "e2e")},
        "aggregate": {r["metric"]: {"measured": r["measured"], "predicted": r["predicted"], "error": r["error"]}
                      for r in rows},
        "model": dep.worker.model.name, "gpu": dep.worker.gpu, "engine": dep.worker.engine,
        "timed_from": getattr(trace, "timed_from", "client"),
    }
    return {"requests": per, "aggregate": agg, "summary": summary, "itls": (meas_itl, pred_itl),
            "series": (meas, pred), "result": res}


def write_trace_report(result: dict, out: Path) -> dict:
    with staged_output(out) as st:
        write_table(result["requests"], st / "requests.csv")
        write_table(result["aggregate"], st / "aggregate.csv")
        write_json(result["summary"], st / "summary.json")
        plot_cdfs(result["series"], st / "cdf.png")
        write_text(trace_markdown(result), st / "report.md")
    return result["summary"]


def trace_markdown(result: dict) -> str:
    s = result["summary"]
    L = ["# Trace replay vs measured timings", "",
         f"Deployment `{s['deployment']}` ({s['model']} on {s['gpu']}, {s['engine']}); trace `{s['trace']}` "
         f"({s['requests']} requests, {s['replayed_ok']} replayed ok"
         + (f", closed loop at concurrency {s['closed_loop_concurrency']}" if s["closed_loop_concurrency"] else "")
         + ").", "", "## Aggregate", "", "| metric | measured | predicted | error |", "|---|---|---|---|"]
    for _, r in result["aggregate"].iterrows():
        L.append(f"| {r['metric']} | {r['measured']:.3f} | {r['predicted']:.3f} | {pct(r['error'], signed=True)} |")
    L += ["", f"Measured duration from: {s['measured_duration_from']}.", "", "## Per request", "",
          "| metric | n | MAPE | median APE | bias |", "|---|---|---|---|---|"]
    for m, e in s["per_request"].items():
        L.append(f"| {m} | {e['n']} | {pct(e['mape'])} | {pct(e['median_ape'])} | {pct(e['bias'], signed=True)} |")
    L += ["", "`requests.csv`: every request, measured and predicted; `cdf.png`: CDF overlays.", ""]
    return "\n".join(L)


def plot_cdfs(series, dest: Path) -> Path:
    meas, pred = series
    fig, axes = figure(1, 4, figsize=(16, 4))
    for ax, m, name in zip(axes, METRICS, ("TTFT", "TPOT", "ITL", "E2E latency")):
        for label, vals, style in (("measured", meas[m], "k-"), ("predicted", pred[m], "C1--")):
            v = np.sort(np.asarray(vals, dtype=float))
            v = v[np.isfinite(v)] * 1e3
            if len(v):
                ax.plot(v, np.arange(1, len(v) + 1) / len(v), style, lw=1.5, label=f"{label} ({len(v)})",
                        drawstyle="steps-post")
        ax.set_xlabel(f"{name} (ms)")
        ax.set_ylabel("share")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_png(fig, dest)
