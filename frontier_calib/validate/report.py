"""Validation outputs: rows.csv, summary.json, report.md and PNG plots, written atomically as one set.

Every file is first written into a staging folder inside the output folder and moved into place only when all
of them were written, so a failed run (an exception, a full disk) never leaves a half-written or mixed set.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import staged_output, write_json, write_table, write_text
from ..plotting import figure, save_png
from .budget import budget_table, decoding_share, in_flight_shortfall, twin_disagreement
from .metrics import coverage, format_stats_table, pct, skip_category, summarize

#: the issue's acceptance targets (fractions)
TARGETS = {"ttft_mape": 0.15, "tpot_mape": 0.08}
ENGINE_COLORS = {"vllm": "#1f77b4", "sglang": "#d62728", "trtllm": "#2ca02c"}


# ------------------------------------------------------------------------------------------------ silicon
def write_silicon_report(rows: pd.DataFrame, out: Path, *, meta: dict) -> dict:
    """Write rows.csv, summary.json, report.md, pred_vs_measured.png and error_cdf.png into ``out``.
    Returns the summary dict."""
    summary = silicon_summary(rows, meta=meta)
    with staged_output(out) as st:
        write_table(rows, st / "rows.csv")
        write_json(summary, st / "summary.json")
        plot_pred_vs_measured(rows, st / "pred_vs_measured.png")
        plot_error_cdf(rows, st / "error_cdf.png")
        write_text(silicon_markdown(rows, summary), st / "report.md")
    return summary


def silicon_summary(rows: pd.DataFrame, *, meta: dict) -> dict:
    s = summarize(rows)
    cov = coverage(rows)
    o = s["overall"]
    targets = {"ttft_mape_target": TARGETS["ttft_mape"], "tpot_mape_target": TARGETS["tpot_mape"],
               "ttft_mape_met": bool(o["ttft"]["mape"] <= TARGETS["ttft_mape"]) if o["ttft"]["n"] else False,
               "tpot_mape_met": bool(o["tpot"]["mape"] <= TARGETS["tpot_mape"]) if o["tpot"]["n"] else False}
    versions = {}
    if "profile_tables" in rows.columns:
        ok = rows[rows["status"] == "ok"]
        for (eng, tables), g in ok.groupby(["backend", "profile_tables"]):
            versions.setdefault(eng, {})[tables] = int(len(g))
    budget = budget_table(rows)
    return {"coverage": cov, "coverage_by_gpu": coverage_by_gpu(rows), "overall": o, "groups": s["groups"],
            "targets": targets, "error_budget": budget.to_dict("records"), "profile_tables_by_engine": versions,
            **meta}


def coverage_by_gpu(rows: pd.DataFrame) -> dict:
    """{gpu: {'total', 'ok', 'skipped': {reason: rows}}} (reasons shortened as in :func:`coverage`)."""
    if "system" not in rows.columns:
        return {}
    return {str(g): coverage(grp) for g, grp in rows.groupby("system", sort=True)}


def _worst(rows: pd.DataFrame, metric: str, k: int = 10) -> pd.DataFrame:
    ok = rows[(rows["status"] == "ok") & rows[f"{metric}_ape"].notna()]
    return ok.sort_values(f"{metric}_ape", ascending=False).head(k)


def why(row: pd.Series, rows: pd.DataFrame, metric: str) -> str:
    """A short, mechanical explanation of a bad row: the regimes where the replay is known to be fragile."""
    hints = []
    load = row.get("kv_load", math.nan)
    if isinstance(load, float) and math.isfinite(load) and load > 0.6:
        hints.append(f"near/over KV capacity (full-length working set {load:.2f}x the KV cache: queueing and "
                     "preemption make the latencies hypersensitive to the exact KV size)")
    if row.get("pred_preemptions", 0) and row.get("pred_preemptions", 0) > 0:
        hints.append(f"{int(row['pred_preemptions'])} preemptions in the replay")
    sib = _sibling_note(row, rows, metric)
    if sib:
        hints.append(sib)
    short = _in_flight_note(row, rows)
    if short:
        hints.append(short)
    if metric == "tpot" and row.get("tpot_ratio", 1) > 2 and "moe=" in str(row.get("profile_tables", "")):
        hints.append("MoE decode cost: check the moe operator model's coverage of this expert shape/format "
                     "(out-of-table shapes are extrapolated)")
    if "notes" in row and isinstance(row["notes"], str) and row["notes"]:
        hints.append(row["notes"])
    return "; ".join(h for h in hints if h) or "–"


def _sibling_note(row, rows, metric) -> str:
    """Flag a measurement that disagrees with its twins (budget.twin_disagreement: the same deployment at the same
    isl and concurrency but another osl; TTFT barely depends on osl when the KV cache is not the limit)."""
    if metric != "ttft" or "config_key" not in rows.columns or row.name not in rows.index:
        return ""
    flag = twin_disagreement(rows).get(row.name)
    if flag is pd.NA or not flag:
        return ""
    sib = rows[(rows["config_key"] == row["config_key"]) & (rows["isl"] == row["isl"])
               & (rows["concurrency"] == row["concurrency"]) & (rows["osl"] != row["osl"])]
    osls = "/".join(str(int(o)) for o in sorted(sib["osl"].unique()))
    other = sib["silicon_ttft_ms"].median()
    return (f"measured TTFT is {row['silicon_ttft_ms'] / other:.1f}x that of the same deployment at osl={osls} "
            f"({other:.0f} ms): a measurement inconsistency the replay cannot follow")


def _in_flight_note(row, rows) -> str:
    """Flag a row whose benchmark kept fewer requests decoding than its clients (budget.in_flight_shortfall)."""
    if row.name not in rows.index:
        return ""
    flag = in_flight_shortfall(rows.loc[[row.name]]).iloc[0]
    if flag is pd.NA or not flag:
        return ""
    c = float(row["concurrency"])
    measured = decoding_share([row["silicon_ttft_ms"]], [row["silicon_tpot_ms"]], [row["osl"]]).iloc[0] * c
    replayed = decoding_share([row["pred_ttft_ms"]], [row["pred_tpot_ms"]], [row["osl"]]).iloc[0] * c
    return (f"measured: {measured:.0f} of {c:.0f} clients' requests decoding at once (Little's law), replay "
            f"{replayed:.0f}: the benchmark ran fewer requests at once than its concurrency")


def _row_md(r: pd.Series, rows: pd.DataFrame, metric: str) -> str:
    return ("| " + " | ".join([
        str(r["id"])[:48], str(r.get("system", "")), str(r.get("backend", "")), str(r.get("preset", "")),
        f"{r.get('dtype', '')}/{r.get('moe_dtype', '')}/kv {r.get('kv_dtype', '')}", str(r.get("parallel", "")),
        f"{int(r['isl'])}/{int(r['osl'])}", f"{int(r['concurrency'])}",
        f"{r[f'silicon_{metric}_ms']:.1f}", f"{r[f'pred_{metric}_ms']:.1f}", f"{r[f'{metric}_ratio']:.2f}",
        why(r, rows, metric)]) + " |")


def silicon_markdown(rows: pd.DataFrame, summary: dict) -> str:
    cov = summary["coverage"]
    o = summary["overall"]
    L = ["# Fidelity validation against measured serving benchmarks", ""]
    L += [f"Source: `{summary.get('csv', '?')}` ({summary.get('csv_rows', '?')} rows in the file, "
          f"{cov['total']} selected: {summary.get('selection', '')}).",
          f"Command: `{summary.get('command', '')}`",
          f"Calibration: {summary.get('calibration') or 'none (engine default overheads)'}; "
          f"benchmark desync: {summary.get('benchmark_desync')}.",
          f"Protocol: {summary.get('protocol_text', '')}", ""]
    L += ["## Coverage", "",
          f"**{cov['ok']} of {cov['total']} rows replayed ({pct(cov['ok_share'])})**; every other row has a reason:",
          "", "| reason | rows |", "|---|---|"]
    for reason, n in cov["skipped"].items():
        L.append(f"| {reason} | {n} |")
    by_gpu = summary.get("coverage_by_gpu") or {}
    if len(by_gpu) > 1:
        L += ["", "Per GPU (ok / rows; the largest skip reasons):", "", "| GPU | ok | rows | skipped by reason |",
              "|---|---|---|---|"]
        for g, c in by_gpu.items():
            top = "; ".join(f"{r} ({n})" for r, n in list(c["skipped"].items())[:4]) or "–"
            L.append(f"| {g} | {c['ok']} | {c['total']} | {top} |")
    L += ["", "## Error per GPU × engine × mode", "",
          "APE = |predicted / measured − 1|; bias = median(predicted / measured) − 1 (negative: predicted too low).",
          "", format_stats_table(summary), ""]
    t = summary["targets"]
    L += [f"Targets (issue 6): TTFT MAPE ≤ {pct(t['ttft_mape_target'])}: "
          f"**{'met' if t['ttft_mape_met'] else 'not met'}** ({pct(o['ttft']['mape'])}); "
          f"TPOT MAPE ≤ {pct(t['tpot_mape_target'])}: **{'met' if t['tpot_mape_met'] else 'not met'}** "
          f"({pct(o['tpot']['mape'])}).", ""]
    L += _budget_md(summary.get("error_budget") or [])
    L += _by_model(rows)
    for metric, name in (("ttft", "TTFT"), ("tpot", "TPOT")):
        worst = _worst(rows, metric)
        if worst.empty:
            continue
        L += [f"## The 10 worst rows by {name}", "",
              "| id | GPU | engine | model | dtype/moe/kv | parallel | isl/osl | conc | measured ms | predicted ms | "
              "ratio | why (mechanical hints) |", "|" + "---|" * 12]
        L += [_row_md(r, rows, metric) for _, r in worst.iterrows()]
        L.append("")
    L += ["## Profile tables used", "",
          "The rows were measured on many engine versions; the replay uses the bundled tables (engine/version "
          "per operator family, from profiles/manifest.json). Rows per engine and table set:", ""]
    for eng, sets in summary.get("profile_tables_by_engine", {}).items():
        for tables, n in sets.items():
            L.append(f"- **{eng}** ({n} rows): {tables}")
    if "backend_version" in rows.columns:
        ok = rows[rows["status"] == "ok"]
        vc = ok.groupby("backend")["backend_version"].apply(
            lambda s: ", ".join(f"{v} ({n})" for v, n in s.fillna("unknown").value_counts().items()))
        L += ["", "Engine versions of the measured rows (ok rows):", ""]
        L += [f"- **{e}**: {v}" for e, v in vc.items()]
    run = summary.get("run", {})
    if run:
        L += ["", "## Run", "", f"- wall time: {run.get('total_s', math.nan):.1f} s on {run.get('jobs')} processes "
              f"(operator models and cost tables ready after {run.get('prepare_s', math.nan):.1f} s, rows done after "
              f"{run.get('rows_s', math.nan):.1f} s: rows start as soon as their table exists)",
              f"- replay time per row: median {run.get('sim_s_median', math.nan):.3f} s, "
              f"max {run.get('sim_s_max', math.nan):.2f} s, sum {run.get('sim_s_sum', math.nan):.1f} s"]
    L += ["", "## Plots", "", "- `pred_vs_measured.png`: predicted vs measured TTFT and TPOT (log-log, by engine)",
          "- `error_cdf.png`: CDF of the absolute percentage error, per engine", ""]
    return "\n".join(L) + "\n"


def _budget_md(budget: list) -> list:
    if not budget:
        return []
    L = ["## Error budget per GPU × engine: the model's error or the data's?", "",
         "Where the predicted time goes (mean shares over the ok rows, from the replay's cost model: "
         "frontier_calib/validate/budget.py). TPOT: the steady decode step's kernels and engine overhead "
         "(padding, launches, CPU not hidden, output path), the rest is interference (prefill chunks and batch "
         "changes between steps). TTFT: the prompt prefilled alone (kernels, overhead), the front end, and "
         "queueing (what the replay's scheduler adds; for disagg rows also the KV hand-off). Twins: the same "
         "deployment at the same isl and concurrency but another osl; a row whose measured TTFT differs from its "
         "twins' by more than 1.8x is a measurement the data contradicts. Short of clients: by Little's law a "
         "closed loop keeps concurrency x (osl - 1) x TPOT / (TTFT + (osl - 1) x TPOT) requests decoding; a row "
         "measured below 60 % of its clients where the replay (engine running cap, a KV cache that holds the "
         "working set) keeps above 90 % ran fewer requests at once than it says. The MAPE is shown without the "
         "rows of either kind too.", "",
         "| GPU | engine | rows | TPOT kernels / overhead / interference | TTFT prefill kernels / overhead / "
         "front end / queueing | rows with twins | twins disagree | short of clients | TTFT MAPE (without) | "
         "TPOT MAPE (without) |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for b in budget:
        L.append(f"| {b['system']} | {b['backend']} | {b['rows']} | {pct(b['tpot_kernels'])} / "
                 f"{pct(b['tpot_overhead'])} / {pct(b['tpot_interference'], signed=True)} | "
                 f"{pct(b['ttft_prefill_kernels'])} / {pct(b['ttft_prefill_overhead'])} / {pct(b['ttft_frontend'])}"
                 f" / {pct(b['ttft_queueing'])} | {b['rows_with_twins']} | {b['twins_disagree']} | "
                 f"{b.get('short_in_flight', 0)} | "
                 f"{pct(b['ttft_mape'])} ({pct(b['ttft_mape_without'])}) | {pct(b['tpot_mape'])} "
                 f"({pct(b['tpot_mape_without'])}) |")
    return L + [""]


def _by_model(rows: pd.DataFrame) -> list:
    ok = rows[rows["status"] == "ok"]
    if ok.empty:
        return []
    g = ok.groupby(["model_path", "backend"]).agg(
        rows=("id", "size"), ttft_mape=("ttft_ape", "mean"), ttft_bias=("ttft_ratio", "median"),
        tpot_mape=("tpot_ape", "mean"), tpot_bias=("tpot_ratio", "median")).reset_index()
    g = g.sort_values("ttft_mape", ascending=False)
    L = ["## Error per model and engine (worst TTFT first)", "",
         "| model | engine | rows | TTFT MAPE | TTFT bias | TPOT MAPE | TPOT bias |", "|---|---|---|---|---|---|---|"]
    for _, r in g.iterrows():
        L.append(f"| {r['model_path']} | {r['backend']} | {r['rows']} | {pct(r['ttft_mape'])} | "
                 f"{pct(r['ttft_bias'] - 1, signed=True)} | {pct(r['tpot_mape'])} | {pct(r['tpot_bias'] - 1, signed=True)} |")
    return L + [""]


# ------------------------------------------------------------------------------------------------ plots

def plot_pred_vs_measured(rows: pd.DataFrame, dest: Path) -> Path:
    ok = rows[rows["status"] == "ok"]
    fig, axes = figure(1, 2, figsize=(12, 5.5))
    for ax, metric, name in ((axes[0], "ttft", "TTFT"), (axes[1], "tpot", "TPOT")):
        m, p = ok[f"silicon_{metric}_ms"], ok[f"pred_{metric}_ms"]
        good = (m > 0) & (p > 0) & np.isfinite(m) & np.isfinite(p)
        for eng, g in ok[good].groupby("backend"):
            ax.scatter(g[f"silicon_{metric}_ms"], g[f"pred_{metric}_ms"], s=10, alpha=0.6,
                       color=ENGINE_COLORS.get(eng), label=f"{eng} ({len(g)})")
        if good.any():
            lo = float(min(m[good].min(), p[good].min())) * 0.8
            hi = float(max(m[good].max(), p[good].max())) * 1.25
            xs = np.array([lo, hi])
            band = TARGETS[f"{metric}_mape"]
            ax.plot(xs, xs, "k-", lw=1, label="y = x")
            ax.fill_between(xs, xs * (1 - band), xs * (1 + band), color="0.85", zorder=0,
                            label=f"±{band * 100:.0f}% (target MAPE)")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"measured {name} (ms)")
        ax.set_ylabel(f"predicted {name} (ms)")
        ax.set_title(f"{name}: predicted vs measured")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return save_png(fig, dest)


def plot_error_cdf(rows: pd.DataFrame, dest: Path) -> Path:
    ok = rows[rows["status"] == "ok"]
    fig, axes = figure(1, 2, figsize=(12, 4.8))
    for ax, metric, name in ((axes[0], "ttft", "TTFT"), (axes[1], "tpot", "TPOT")):
        groups = [("all", ok, "k")] + [(e, g, ENGINE_COLORS.get(e)) for e, g in ok.groupby("backend")]
        for label, g, color in groups:
            ape = np.sort(g[f"{metric}_ape"].dropna().to_numpy()) * 100
            if len(ape):
                ax.step(ape, np.arange(1, len(ape) + 1) / len(ape), where="post", color=color,
                        lw=2 if label == "all" else 1.2, label=f"{label} ({len(ape)})")
        ax.axvline(TARGETS[f"{metric}_mape"] * 100, color="0.5", ls="--", lw=1, label="target MAPE")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel(f"{name} absolute percentage error (%)")
        ax.set_ylabel("share of rows")
        ax.set_ylim(0, 1.01)
        ax.set_title(f"{name} error CDF")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_png(fig, dest)



def skip_reasons_short(rows: pd.DataFrame) -> pd.Series:
    return rows.loc[rows["status"] != "ok", "status"].map(skip_category)


# ------------------------------------------------------------------------------------------------ calibration
def write_calibration_report(res: dict, out: Path, *, meta: dict) -> dict:
    """split.csv, rows_baseline.csv, rows_calibrated.csv, summary.json, report.md and the plots of the
    calibrated held-out rows, written as one set."""
    errs = res["errors"]
    summary = {**meta, "overheads": res["overheads"], "benchmark_desync": res.get("desync", {}),
               "fits": {e: {k: v for k, v in f.items()} for e, f in res["fits"].items()},
               "errors": errs, "coverage_baseline": coverage(res["baseline_rows"]),
               "coverage_calibrated": coverage(res["calibrated_rows"])}
    held = res["calibrated_rows"][(~res["train_mask"]).to_numpy()]
    with staged_output(out) as st:
        write_table(res["split"], st / "split.csv")
        write_table(res["baseline_rows"], st / "rows_baseline.csv")
        write_table(res["calibrated_rows"], st / "rows_calibrated.csv")
        write_json(summary, st / "summary.json")
        plot_pred_vs_measured(held, st / "held_out_pred_vs_measured.png")
        plot_error_cdf(held, st / "held_out_error_cdf.png")
        write_text(calibration_markdown(res, meta), st / "report.md")
    return summary


def calibration_markdown(res: dict, meta: dict) -> str:
    errs = res["errors"]
    unit = "engine x GPU" if res.get("group_by") == "engine-gpu" else "engine"
    L = ["# Calibration of the engine overheads", "",
         f"Command: `{meta.get('command', '')}`", "",
         f"Split: whole configurations (`config_key`: the deployment without isl/osl/concurrency), per {unit}, "
         f"seed {res['seed']}, {res['train_fraction']:.0%} of each {unit}'s configurations for training "
         f"({meta['split']['train_configs']} training / {meta['split']['held_out_configs']} held-out configurations). "
         f"Fitted on up to {res['max_rows']} training rows per {unit}; **the held-out error is the one to quote**.", "",
         "## Fitted constants", "",
         "Overheads fitted within their physical bounds (`cost/worker.py: OVERHEAD_BOUNDS`): step and per_seq "
         "(scheduler CPU per iteration and per sequence), frontend per request (added to TTFT); "
         "desync = share of the benchmark's clients that drift out of step (0: waves stay synchronised, 1: all spread; "
         "default 1).", ""]
    from ..engines import get_engine
    from .calibrate import PARAMS, format_constant as fmt

    PARAMS = tuple(res.get("params", PARAMS))  # noqa: N806 (the fitted constants of this run)

    L += [f"| {unit} | desync | " + " | ".join(PARAMS) + " | default (" + " / ".join(PARAMS) + ") | fit rows | "
          "loss before → after |", "|---|---|" + "---|" * len(PARAMS) + "---|---|---|"]
    for e, f in res["fits"].items():
        o, d = f["overheads"], get_engine(e.partition("@")[0]).overheads
        L.append(f"| {e} | {f.get('desync', 1.0):.2f} | " + " | ".join(fmt(k, o.get(k, d[k])) for k in PARAMS)
                 + " | " + " / ".join(fmt(k, d[k]) for k in PARAMS)
                 + f" | {f['rows']} | {f['default_loss']:.3f} → {f['loss']:.3f} |")
    L += ["", "## Held-out vs training, before vs after", "",
          "| split | overheads | rows | TTFT MAPE | TTFT med APE | TTFT bias | TPOT MAPE | TPOT med APE | TPOT bias |",
          "|---|---|---|---|---|---|---|---|---|"]
    for split in ("held_out", "train"):
        for when, label in (("before", "defaults"), ("after", "calibrated")):
            o = errs[split][when]["overall"]
            t, p = o["ttft"], o["tpot"]
            L.append(f"| {split.replace('_', '-')} | {label} | {o['n_rows']} | {pct(t['mape'])} | {pct(t['median_ape'])} | "
                     f"{pct(t['bias'], signed=True)} | {pct(p['mape'])} | {pct(p['median_ape'])} | "
                     f"{pct(p['bias'], signed=True)} |")
    for split in ("held_out", "train"):
        for when in ("before", "after"):
            L += ["", f"### {split.replace('_', '-')} rows, {'calibrated' if when == 'after' else 'default'} overheads",
                  "", format_stats_table(errs[split][when])]
    L += ["", "Files: `split.csv` (row → side), `rows_baseline.csv`, `rows_calibrated.csv`, "
          "`held_out_pred_vs_measured.png`, `held_out_error_cdf.png`, `summary.json`.", ""]
    return "\n".join(L)
