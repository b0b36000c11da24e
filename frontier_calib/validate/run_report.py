"""`validate run`: replay measured run folders (validate/run_folder.py) and report, per run, the error of the
mean/median/P90/P99 TTFT, TPOT and E2E against the measurement, next to another simulator's own error on the same
run when the folder has it, with CDF overlays and running/waiting requests over time against the engine's gauges.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import staged_output, write_json, write_table, write_text
from ..plotting import figure, save_png
from .metrics import pct
from .run_folder import deployment_for_run, read_other_simulator, read_timeseries, simulated_occupancy
from .trace import plot_cdfs

KEY_METRICS = [f"{s}_{m}_ms" for m in ("ttft", "tpot", "e2el") for s in ("mean", "median", "p90", "p99")]


def compare_run(folder: Path, gpu: str, *, seed: int = 0, overrides: dict | None = None) -> dict:
    """Replay one run folder on ``gpu``; returns compare_trace's result plus 'deployment', 'other', 'occupancy'."""
    from ..deployment import deployment_from_dict
    from .trace import compare_trace

    folder = Path(folder)
    raw = deployment_for_run(folder, gpu)
    for k, v in (overrides or {}).items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    dep = deployment_from_dict(raw, source=str(folder / "meta.json"))
    res = compare_trace(dep, folder / "requests.jsonl", seed=seed)
    res["deployment"] = raw
    res["other"] = read_other_simulator(folder)
    ts = read_timeseries(folder)
    res["timeseries"] = ts
    if ts is not None:
        res["occupancy"] = simulated_occupancy(res["result"], float(ts["t"].max()), frontend=dep.entry_overheads)
    res["run"] = folder.name
    return res


def run_table(results: list[dict]) -> pd.DataFrame:
    """One row per run x metric: measured, ours (predicted, error), the other simulator's error."""
    rows = []
    for r in results:
        agg = r["aggregate"].set_index("metric")
        other = r["other"].set_index("metric") if r["other"] is not None else None
        for m in KEY_METRICS:
            if m not in agg.index:
                continue
            rows.append({"run": r["run"], "metric": m, "measured": agg.loc[m, "measured"],
                         "predicted": agg.loc[m, "predicted"], "error": agg.loc[m, "error"],
                         "other_error": other.loc[m, "error"] if other is not None and m in other.index
                         else math.nan})
    return pd.DataFrame(rows)


def plot_occupancy(results: list[dict], dest: Path) -> Path:
    with_ts = [r for r in results if r.get("timeseries") is not None]
    n = max(len(with_ts), 1)
    fig, axes = figure(1, n, figsize=(6 * n, 4))
    for ax, r in zip(np.atleast_1d(axes), with_ts):
        ts, occ = r["timeseries"], r["occupancy"]
        ax.plot(ts["t"], ts["running"], "k-", label="running (measured)")
        ax.plot(ts["t"], ts["waiting"], "k:", label="waiting (measured)")
        ax.plot(occ["t"], occ["running"], "C1-", label="running (simulated)")
        ax.plot(occ["t"], occ["waiting"], "C1:", label="waiting (simulated)")
        ax.set_title(r["run"])
        ax.set_xlabel("time (s)")
        ax.set_ylabel("requests")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, dest)


def run_markdown(results: list[dict], table: pd.DataFrame) -> str:
    L = ["# Measured runs: replay vs measurement", "",
         "Errors are predicted / measured − 1. TTFT and E2E start at the engine's queue time (the runs' own "
         "definition); the other simulator's error is its authors' own, read from the run folder.", ""]
    for r in results:
        d = r["deployment"]
        L += [f"## {r['run']}", "",
              f"{d['model']} on {d['gpu']} ({d['engine']}), parallel {d['parallel']}, replicas "
              f"{d.get('replicas', 1)}, scheduler {d['scheduler']}; {r['summary']['requests']} requests, "
              f"{r['summary']['replayed_ok']} replayed ok."
              + (f" GPU-to-GPU link from the run folder's cluster description: {d['cluster']['link']} "
                 "(collectives priced over it, not from the profiled tables)." if "link" in d.get("cluster", {})
                 else ""), "",
              "| metric | measured | predicted | error | other simulator's error |", "|---|---|---|---|---|"]
        for _, row in table[table["run"] == r["run"]].iterrows():
            L.append(f"| {row['metric']} | {row['measured']:.1f} | {row['predicted']:.1f} | "
                     f"{pct(row['error'], signed=True)} | {pct(row['other_error'], signed=True)} |")
        L.append("")
    L += ["`runs.csv`: the table above; `<run>/`: per-request results (`requests.csv`), `cdf.png`; "
          "`occupancy.png`: running and waiting requests over time, simulated against the engine's gauges.", ""]
    return "\n".join(L)


def write_run_report(results: list[dict], out: Path) -> pd.DataFrame:
    table = run_table(results)
    with staged_output(out) as st:
        write_table(table, st / "runs.csv")
        for r in results:
            sub = st / r["run"]
            sub.mkdir(parents=True, exist_ok=True)
            write_table(r["requests"], sub / "requests.csv")
            write_table(r["aggregate"], sub / "aggregate.csv")
            write_json({**r["summary"], "deployment": r["deployment"]}, sub / "summary.json")
            plot_cdfs(r["series"], sub / "cdf.png")
        plot_occupancy(results, st / "occupancy.png")
        write_text(run_markdown(results, table), st / "report.md")
    return table


def mean_abs(table: pd.DataFrame, column: str) -> float:
    v = np.abs(table[column].to_numpy(dtype=float))
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else math.nan
