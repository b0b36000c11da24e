"""``validate inference-perf``: replay the stages of an inference-perf run from its per-stage reports and compare.

inference-perf (kubernetes-sigs/inference-perf) runs a load as **stages**: each stage sends requests open loop at
one rate for a fixed time (``load: {type: constant | poisson, stages: [{rate, duration}]}`` or a ``sweep``), and
with ``report: {request_lifecycle: {per_stage: true}}`` it writes ``stage_<N>_lifecycle_metrics.json`` per stage:

* ``load_summary``: ``requested_rate`` (requests/s), ``send_duration`` (s), ``count`` (requests sent);
* ``successes.latency``: distributions (``mean``, ``median``, ``p90``, ``p99``, ... in seconds) of
  ``time_to_first_token``, ``normalized_time_per_output_token`` (request latency / output tokens),
  ``time_per_output_token``, ``inter_token_latency``, ``request_latency``;
* ``successes.throughput``: ``output_tokens_per_sec``, ``requests_per_sec``;
* ``successes.prompt_len`` / ``output_len``: the distributions of the request lengths (tokens).

When the run also wrote ``per_request_lifecycle_metrics.json`` (beside the stage reports), its recorded
requests are replayed as one run (send times, lengths, shared prompt prefixes: :mod:`frontier_calib.traces.
inference_perf`) and each request counts for the stage it was sent in (its ``stage_id`` where the records carry
one, else its place in the send order against the reports' ``load_summary.count``). Without it this command rebuilds each stage
as a trace: ``round(rate x duration)`` requests at the stage's rate (evenly spaced for ``constant`` load, exponential
gaps for ``poisson``: the ``load.type`` of the ``config.yaml`` beside the reports or in their parent folder;
constant when there is none), prompt and output lengths drawn from the stage's own reported percentiles
(:class:`~frontier_calib.traces.lengths.QuantileLengths`, seeded; prompt and output drawn independently, since the
report does not pair them), and, for ``data: {type: shared_prefix}`` configs, the groups of prompts sharing a
system prompt that the config describes (:func:`~frontier_calib.traces.generators.shared_prefix_trace`; question
and output lengths from the config, which is what the requests carried). Every stage is replayed from an empty
engine through the given deployment and compared per metric: predicted / measured - 1. The client's timings
include the server's front end, and so do the predictions.
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io import staged_output, write_json, write_table, write_text
from ..plotting import figure, save_png
from ..traces.parsing import json_document
from .metrics import LATENCY_STATS, latency_stats_ms, pct

#: report percentile keys -> probability
_QUANTILE_KEYS = {"min": 0.0, "p0.1": 0.001, "p1": 0.01, "p5": 0.05, "p10": 0.10, "p25": 0.25, "median": 0.5,
                  "p75": 0.75, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p99.9": 0.999, "max": 1.0}
#: compared metrics: (report key in successes.latency, our name)
LATENCIES = (("time_to_first_token", "ttft"), ("normalized_time_per_output_token", "ntpot"),
             ("request_latency", "e2el"), ("time_per_output_token", "tpot"))
#: metrics compared and summarised; ``tpot`` is kept in stages.csv but not summarised: inference-perf derives it
#: from the streamed chunks' times, which do not map one to one onto tokens (its median inter-token latency on the
#: kubecon-na-2025 vLLM H100 runs is 31-41 us, half its gaps are within one chunk), so it reads about half the
#: decode step; ``ntpot`` (request latency / output tokens, per request) is defined by whole requests
COMPARED = ("ttft", "ntpot", "e2el")
STATS = LATENCY_STATS
_STAGE_FILE = re.compile(r"^stage_(\d+)_lifecycle_metrics\.json$")


def stage_files(folder: Path) -> list[tuple[int, Path]]:
    """(stage index, path) of every ``stage_<N>_lifecycle_metrics.json`` in ``folder`` (or its ``results/``)."""
    for where in (folder, folder / "results"):
        if where.is_dir():
            found = sorted((int(m.group(1)), p) for p in where.iterdir() if (m := _STAGE_FILE.match(p.name)))
            if found:
                return found
    raise InputError("no stage_<N>_lifecycle_metrics.json here or in results/", path=str(folder),
                     fix="point at an inference-perf report folder written with "
                         "report: {request_lifecycle: {per_stage: true}}")


def read_config(folder: Path) -> tuple[dict, Path | None]:
    """The inference-perf ``config.yaml`` (or ``.yml``) beside the reports, in their parent or grandparent."""
    import yaml

    for where in (folder, folder.parent, folder.parent.parent):
        for name in ("config.yaml", "config.yml"):
            p = where / name
            if p.is_file():
                try:
                    doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
                except yaml.YAMLError as exc:
                    raise InputError(f"not valid YAML ({exc})", path=str(p)) from None
                if not isinstance(doc, dict):
                    raise InputError("an inference-perf config is a mapping", path=str(p))
                return doc, p
    return {}, None


def _num(doc, path: Path, *keys, required: bool = True):
    v = doc
    for k in keys:
        v = v.get(k) if isinstance(v, dict) else None
    if v is None and not required:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError(f"missing or not a finite number: {v!r}", path=str(path), field=".".join(keys))
    return float(v)


def read_stage(path: Path) -> dict:
    """One stage report: rate, duration, count, the latency distributions (s), throughputs and length quantiles."""
    doc = json_document(path)
    if not isinstance(doc, dict):
        raise InputError("a stage report is a JSON object", path=str(path))
    rate = _num(doc, path, "load_summary", "requested_rate", required=False)
    if rate is None:
        rate = _num(doc, path, "load_summary", "achieved_rate")
    duration = _num(doc, path, "load_summary", "send_duration")
    if not rate > 0 or not duration > 0:
        raise InputError(f"rate {rate} and send_duration {duration} must be > 0", path=str(path), field="load_summary")
    ok = doc.get("successes") or {}
    lat = ok.get("latency") or {}
    out = {"path": str(path), "rate": rate, "duration": duration,
           "count": _num(doc, path, "load_summary", "count", required=False),
           "successes": _num(doc, path, "successes", "count", required=False),
           "failures": _num(doc, path, "failures", "count", required=False) or 0.0,
           "output_tokens_per_sec": _num(doc, path, "successes", "throughput", "output_tokens_per_sec",
                                         required=False),
           "latency": {}}
    for key, name in LATENCIES:
        dist = lat.get(key)
        if isinstance(dist, dict):
            out["latency"][name] = {s: float(dist[s]) for s in STATS if isinstance(dist.get(s), (int, float))}
    if "ttft" not in out["latency"]:
        raise InputError("no time_to_first_token distribution", path=str(path), field="successes.latency",
                         fix="the stage needs streamed requests (api: {streaming: true})")
    for name in ("prompt_len", "output_len"):
        out[name] = _quantiles(ok.get(name), path, f"successes.{name}")
    return out


def _quantiles(dist, path: Path, field: str) -> tuple[tuple, tuple]:
    if not isinstance(dist, dict):
        raise InputError("missing length distribution", path=str(path), field=field)
    pts = sorted((p, float(dist[k])) for k, p in _QUANTILE_KEYS.items() if isinstance(dist.get(k), (int, float)))
    if len(pts) < 2 or pts[0][0] != 0.0 or pts[-1][0] != 1.0:
        raise InputError("needs at least min and max", path=str(path), field=field)
    probs = tuple(p for p, _ in pts)
    tokens = tuple(np.maximum.accumulate([max(1.0, t) for _, t in pts]))
    return probs, tokens


def stage_trace(stage: dict, config: dict, *, seed: int = 0, stage_index: int = 0):
    """The replayed requests of one stage (see the module docstring)."""
    from ..traces.arrivals import constant, poisson
    from ..traces.generators import shared_prefix_trace, synthetic_trace
    from ..traces.lengths import QuantileLengths, fixed

    n = max(1, int(round(stage["rate"] * stage["duration"])))
    load_type = str((config.get("load") or {}).get("type", "constant")).lower()
    arrival = poisson(stage["rate"]) if load_type == "poisson" else constant(stage["rate"])
    data = config.get("data") or {}
    sp = data.get("shared_prefix") or {}
    seed_seq = [int(seed), int(stage_index)]
    if str(data.get("type", "")).replace("_", "").lower() == "sharedprefix" and sp:
        groups = int(sp.get("num_groups", sp.get("num_unique_system_prompts", 1)))
        per = int(sp.get("num_prompts_per_group", sp.get("num_users_per_system_prompt", 1)))
        trace = shared_prefix_trace(groups, max(per, -(-n // max(groups, 1))), int(sp.get("system_prompt_len", 0)),
                                    fixed(int(sp.get("question_len", 1))), fixed(int(sp.get("output_len", 1))),
                                    arrival=arrival, seed=int(np.random.SeedSequence(seed_seq).generate_state(1)[0]))
        return trace.head(n)
    p_in, p_out = stage["prompt_len"], stage["output_len"]
    return synthetic_trace(n, arrival=arrival, input_len=QuantileLengths(*p_in, label="prompt_len"),
                           output_len=QuantileLengths(*p_out, label="output_len"),
                           seed=int(np.random.SeedSequence(seed_seq).generate_state(1)[0]))


PER_REQUEST_FILE = "per_request_lifecycle_metrics.json"


def per_request_file(stage_path: Path) -> Path | None:
    """``per_request_lifecycle_metrics.json`` beside the stage reports, if the run wrote one."""
    p = stage_path.parent / PER_REQUEST_FILE
    return p if p.is_file() else None


def stage_of_requests(per_request: Path, stage_ids: list[int], counts: list[int],
                      request_id: np.ndarray) -> np.ndarray:
    """The position in ``stage_ids`` of each replayed request's stage. Records that say their ``stage_id``
    (inference-perf's later reports) are taken at their word; otherwise stages run one after the other, so stage
    ``k`` holds the ``counts[k]`` requests sent after the earlier stages' (every record, failed ones included,
    ordered by ``start_time``). ``request_id``: the replayed requests' positions in the file."""
    from ..traces.inference_perf import record_starts_and_stages

    starts, recorded = record_starts_and_stages(per_request)
    request_id = np.asarray(request_id, dtype=np.int64)
    if (recorded >= 0).all():
        where = {s: k for k, s in enumerate(stage_ids)}
        return np.array([where.get(int(recorded[i]), -1) for i in request_id], dtype=np.int64)
    if min(counts) < 0:
        raise InputError("a stage report has no load_summary.count and the records carry no stage_id",
                         path=str(per_request), field="load_summary.count",
                         fix="keep the stage reports inference-perf wrote for this run beside the file")
    if len(starts) != sum(counts):
        raise InputError(f"{len(starts)} requests in the file but the stage reports count {sum(counts)} "
                         f"({counts})", path=str(per_request),
                         fix="keep the per-request file and the stage reports of one run together")
    order = np.argsort(starts, kind="stable")
    stage_of_record = np.empty(len(starts), dtype=np.int64)
    stage_of_record[order] = np.repeat(np.arange(len(counts)), counts)
    return stage_of_record[request_id]


def _stage_row(idx: int, st: dict, done, requests: int) -> dict:
    """One stage's measured and predicted statistics (``done``: the replayed requests of that stage, ok)."""
    pred = {"ttft": latency_stats_ms(done["ttft_s"]), "tpot": latency_stats_ms(done["tpot_s"]),
            "ntpot": latency_stats_ms(done["e2e_s"] / done["output_tokens"]), "e2el": latency_stats_ms(done["e2e_s"])}
    row = {"stage": idx, "rate": st["rate"], "duration_s": st["duration"], "requests": requests,
           "replayed_ok": int(len(done)), "measured_failures": st["failures"]}
    for name in COMPARED + ("tpot",):
        meas = st["latency"].get(name, {})
        for s in STATS:
            m = meas.get(s, math.nan) * 1e3 if s in meas else math.nan
            p = pred[name][s]
            row[f"{s}_{name}_ms_measured"] = m
            row[f"{s}_{name}_ms_predicted"] = p
            row[f"{s}_{name}_error"] = p / m - 1 if m and math.isfinite(m) else math.nan
    m_tp = st["output_tokens_per_sec"]
    span = float(done["completion_s"].max() - done["arrival_s"].min()) if len(done) else math.nan
    p_tp = float(done["output_tokens"].sum()) / span if span and math.isfinite(span) else math.nan
    row.update({"output_tok_s_measured": m_tp if m_tp is not None else math.nan, "output_tok_s_predicted": p_tp})
    row["output_tok_s_error"] = p_tp / m_tp - 1 if m_tp else math.nan
    return row


def compare_stages(deployment_path, folder: Path, *, seed: int = 0, progress: bool = False) -> dict:
    """Replay the run of the report folder and compare per stage; returns {'stages': frame, 'summary': dict}.

    With ``per_request_lifecycle_metrics.json`` beside the stage reports, the recorded requests are replayed as
    one run (their send times, lengths and shared prefixes; stages follow each other, so each request's stage is
    its place in the send order, :func:`stage_of_requests`); otherwise every stage is rebuilt from its report
    (:func:`stage_trace`) and replayed from an empty engine."""
    from ..deployment import build_replicas, load_deployment, simulate_deployment
    from ..traces import load_trace

    t0 = time.perf_counter()
    folder = Path(folder)
    files = stage_files(folder)
    stages_in = [(idx, read_stage(path)) for idx, path in files]
    config, config_path = read_config(files[0][1].parent)
    dep = load_deployment(deployment_path) if isinstance(deployment_path, (str, Path)) else deployment_path
    replicas, _ = build_replicas(dep, progress=progress)
    rows = []
    per_request = per_request_file(files[0][1])
    if per_request is not None:
        counts = [int(st["count"]) if st["count"] is not None else -1 for _, st in stages_in]
        trace = load_trace(per_request, "inference_perf")
        res = simulate_deployment(dep, trace, replicas, seed=seed, progress=progress)
        sim = res.requests
        stage = stage_of_requests(per_request, [idx for idx, _ in stages_in], counts, sim["request_id"].to_numpy())
        for k, (idx, st) in enumerate(stages_in):
            part = sim[stage == k]
            rows.append(_stage_row(idx, st, part[part["status"] == "ok"], int(len(part))))
        how = f"recorded requests ({per_request.name}: {trace.source.split('; ', 1)[-1]})"
    else:
        for idx, st in stages_in:
            trace = stage_trace(st, config, seed=seed, stage_index=idx)
            sim = simulate_deployment(dep, trace, replicas, seed=seed, progress=False).requests
            rows.append(_stage_row(idx, st, sim[sim["status"] == "ok"], trace.num_requests))
        how = "each stage rebuilt from its report (rate, duration, length percentiles or the shared-prefix config)"
    stages = pd.DataFrame(rows)
    summary = {"deployment": str(deployment_path), "folder": str(folder), "requests_from": how,
               "config": str(config_path) if config_path else None,
               "load_type": str((config.get("load") or {}).get("type", "constant")),
               "data_type": str((config.get("data") or {}).get("type", "from the reports' length percentiles")),
               "model": dep.worker.model.name, "gpu": dep.worker.gpu, "engine": dep.worker.engine,
               "stages": len(stages), "seed": seed, "wall_seconds": round(time.perf_counter() - t0, 3)}
    for name in COMPARED:
        for s in ("mean", "p90"):
            e = stages[f"{s}_{name}_error"].to_numpy(dtype=float)
            e = e[np.isfinite(e)]
            summary[f"{s}_{name}_mape"] = float(np.mean(np.abs(e))) if len(e) else math.nan
            summary[f"{s}_{name}_bias"] = float(np.median(e)) if len(e) else math.nan
    return {"stages": stages, "summary": summary}


def write_stage_report(result: dict, out: Path) -> dict:
    with staged_output(out) as st:
        write_table(result["stages"], st / "stages.csv")
        write_json(result["summary"], st / "summary.json")
        plot_stages(result["stages"], st / "stages.png")
        write_text(stage_markdown(result), st / "report.md")
    return result["summary"]


def stage_markdown(result: dict) -> str:
    s, df = result["summary"], result["stages"]
    L = ["# inference-perf stages: replay vs measured", "",
         f"Deployment `{s['deployment']}` ({s['model']} on {s['gpu']}, {s['engine']}); reports `{s['folder']}`; "
         f"load `{s['load_type']}`, data `{s['data_type']}`; config `{s['config']}`; seed {s['seed']}.", "",
         f"Requests: {s['requests_from']}. Errors are predicted / measured - 1 against each stage's report "
         "(frontier_calib/validate/inference_perf.py).", "",
         "| stage | rate (req/s) | requests | TTFT mean (meas / pred ms, err) | TTFT p90 | NTPOT mean | E2E mean "
         "| output tok/s |", "|---|---|---|---|---|---|---|---|"]

    def cell(r, key):
        m, p, e = r[f"{key}_measured"], r[f"{key}_predicted"], r[f"{key[:-3]}_error"] if key.endswith("_ms") else \
            r[f"{key}_error"]
        return f"{m:.1f} / {p:.1f} ({pct(e, signed=True)})"

    for _, r in df.iterrows():
        tp = f"{r['output_tok_s_measured']:.0f} / {r['output_tok_s_predicted']:.0f} " \
             f"({pct(r['output_tok_s_error'], signed=True)})"
        L.append(f"| {int(r['stage'])} | {r['rate']:.2f} | {int(r['requests'])} | {cell(r, 'mean_ttft_ms')} | "
                 f"{cell(r, 'p90_ttft_ms')} | {cell(r, 'mean_ntpot_ms')} | {cell(r, 'mean_e2el_ms')} | {tp} |")
    L += ["", "Over the stages (mean absolute error, median signed error): "
          + "; ".join(f"{s_}_{m} {pct(s[f'{s_}_{m}_mape'])} ({pct(s[f'{s_}_{m}_bias'], signed=True)})"
                      for m in COMPARED for s_ in ("mean", "p90")) + ".", "",
          "NTPOT: request latency / output tokens, per request (inference-perf's normalized_time_per_output_token). "
          "Its time_per_output_token (kept in `stages.csv` as `tpot`) is derived from streamed chunk times that do "
          "not map one to one onto tokens, so it is not compared.", "",
          "`stages.csv`: every statistic, measured and predicted; `stages.png`: latency against the rate.", ""]
    return "\n".join(L)


def plot_stages(df: pd.DataFrame, dest: Path) -> Path:
    fig, axes = figure(1, 3, figsize=(15, 4))
    for ax, (name, title) in zip(axes, (("ttft", "TTFT"), ("ntpot", "NTPOT"), ("e2el", "E2E latency"))):
        for s, style in (("mean", "-"), ("p90", ":")):
            ax.plot(df["rate"], df[f"{s}_{name}_ms_measured"], "k" + style + "o", ms=4, label=f"measured {s}")
            ax.plot(df["rate"], df[f"{s}_{name}_ms_predicted"], "C1" + style + "s", ms=4, label=f"predicted {s}")
        ax.set_xlabel("request rate (req/s)")
        ax.set_ylabel(f"{title} (ms)")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, dest)
