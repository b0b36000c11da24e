"""One sweep point = one pure, seeded run: (deployment, trace, rate) -> one flat result row.

``run_point(point, shared)`` depends on nothing but its arguments and the on-disk model cache (whose
contents are a pure function of the profile tables), so the same point gives the same row in any process,
on any executor, in any order. The only non-deterministic column is ``wall_s``.

Row columns (units in the names: ``_s`` seconds, ``_rps`` requests/s, ``_tok_s`` tokens/s):

- ``point_id``, ``index``, ``config_id`` (hash of the deployment and trace, equal across rates), ``status``
  ('ok' | 'infeasible': the deployment was rejected, see ``reason`` | 'error': a bug, see ``reason``);
- one column per axis (dotted path; mappings/lists written as JSON), ``label``, ``trace``, ``rate_rps``
  (requested mean rate; NaN = the trace's own arrivals), ``offered_rate_rps`` (what the replayed trace has);
- ``num_gpus``, ``num_requests``, ``completed``, ``failed``, ``completed_frac``, ``duration_s``;
- ``request_throughput_rps``, ``output_tok_s``, ``output_tok_s_per_gpu`` (output tokens/s per GPU),
  ``per_user_tok_s`` (1 / median TPOT: the token rate one user sees);
- ``ttft_{p50,p90,p99}_s``, ``tpot_{p50,p90,p99}_s``, ``e2e_{p50,p90,p99}_s`` over completed requests;
- per SLO set NAME: ``meets__NAME`` (every limit holds, percentiles taken over *all* requests with failed ones
  counted as infinitely slow), ``goodput_rps__NAME`` (completed requests meeting every limit individually,
  per second of the run), ``slo_met_frac__NAME`` (their share of all requests);
- ``wall_s``: seconds this point took (not deterministic; excluded from identity checks).
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FrontierError
from .spec import SLO, Point, SweepSpec, TraceSource

NONDETERMINISTIC_COLUMNS = ("wall_s",)
_FAILED = 1e30   # the latency a failed request counts with in SLO percentiles (s): larger than any limit
PCTS = (50, 90, 99)


@dataclass
class Shared:
    """What every point needs besides itself, shipped once to each worker: the loaded traces (canonical tables),
    SLO sets, seed, arrivals mode and the folder deployment paths are relative to."""

    traces: dict                   # name -> frontier_calib.traces.Trace (as loaded: own arrivals)
    slos: list[SLO]
    seed: int
    arrivals: str
    axis_names: list[str]
    source: str = "<sweep>"
    deployment_base_dir: str | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def trace_at(self, name: str, rate: float | None):
        """Trace ``name`` with mean arrival rate ``rate`` requests/s (None: unchanged).

        'rescale': every arrival time is multiplied by (own rate / rate), keeping the trace's burstiness.
        'poisson': arrivals are redrawn as a Poisson process of that rate; the unit-rate gaps come from
        ``seed`` only, so every rate uses the same random numbers (curves over rate are smooth).
        Own rate = (n - 1) / (last arrival - first arrival).
        """
        key = (name, rate)
        if key not in self._cache:
            base = self.traces[name]
            if rate is None:
                self._cache[key] = base
            else:
                n = base.num_requests
                if self.arrivals == "rescale":
                    own = (n - 1) / base.duration_s if base.duration_s > 0 else math.inf
                    if not math.isfinite(own):
                        raise FrontierError(f"trace {name!r} has all arrivals at one instant; rescaling to a rate "
                                            "needs spread arrivals (use arrivals: poisson)")
                    arrivals = base.requests["arrival_s"].to_numpy() * (own / rate)
                else:
                    gaps = np.random.default_rng(np.random.SeedSequence([self.seed, 7919])).exponential(1.0, n - 1)
                    arrivals = np.concatenate(([0.0], np.cumsum(gaps))) / rate
                self._cache[key] = base.with_arrivals(arrivals)
            if len(self._cache) > 64:
                self._cache.pop(next(iter(self._cache)))
        return self._cache[key]


def load_traces(spec: SweepSpec) -> dict:
    """name -> Trace of every trace of the sweep (files read once, generators run once)."""
    from ..traces import load_trace, trace_from_spec

    out = {}
    for name, src in spec.traces.items():
        out[name] = _load_one(src, spec.base_dir, load_trace, trace_from_spec)
    return out


def _load_one(src: TraceSource, base_dir: Path, load_trace, trace_from_spec):
    if src.path is not None:
        trace = load_trace(base_dir / src.path, src.format, limit=src.limit)
    else:
        trace = trace_from_spec(src.spec, spec_path=src.spec_path)
        if src.limit is not None:
            trace = trace.head(src.limit)
    return trace


def make_shared(spec: SweepSpec, traces: dict | None = None) -> Shared:
    for name, t in (traces or {}).items():
        if t.concurrency is not None and spec.rates != [None]:
            raise FrontierError(f"trace {name!r} is closed-loop (concurrency {t.concurrency}); rates need an "
                                "open-loop trace")
    return Shared(traces=traces if traces is not None else load_traces(spec), slos=spec.slos, seed=spec.seed,
                  arrivals=spec.arrivals, axis_names=spec.axis_names, source=spec.source,
                  deployment_base_dir=str(spec.deployment_base_dir) if spec.deployment_base_dir else None)


def axis_value(v):
    """An axis value as a Parquet-friendly scalar: mappings and lists as compact JSON."""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return v


def short_label(params: dict) -> str:
    """'workers=2 ep=16 ...': each axis by the shortest dotted suffix that is unique among the axes."""
    names = list(params)
    short = {}
    for p in names:
        parts = p.split(".")
        for k in range(1, len(parts) + 1):
            cand = ".".join(parts[-k:])
            if sum(1 for q in names if q == cand or q.endswith("." + cand)) == 1:
                short[p] = cand
                break
    return " ".join(f"{short[p]}={_compact(v)}" for p, v in params.items()) or "base"


def _compact(v) -> str:
    """A value for labels: mappings as {k:v,...} without quotes (tp:1,attention_dp:8 reads better than JSON)."""
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{_compact(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ",".join(_compact(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def empty_row(point: Point, shared: Shared) -> dict:
    row = {"point_id": point.id, "index": point.index, "config_id": point.config_id, "status": "ok", "reason": ""}
    for name in shared.axis_names:
        row[name] = axis_value(point.params.get(name))
    row.update({"label": short_label(point.params), "trace": point.trace,
                "rate_rps": math.nan if point.rate is None else float(point.rate), "offered_rate_rps": math.nan,
                "num_gpus": 0, "num_requests": 0, "completed": 0, "failed": 0, "completed_frac": math.nan,
                "duration_s": math.nan, "request_throughput_rps": math.nan, "output_tok_s": math.nan,
                "output_tok_s_per_gpu": math.nan, "per_user_tok_s": math.nan})
    for m in ("ttft", "tpot", "e2e"):
        for q in PCTS:
            row[f"{m}_p{q}_s"] = math.nan
    for slo in shared.slos:
        row[f"meets__{slo.name}"] = False
        row[f"goodput_rps__{slo.name}"] = math.nan
        row[f"slo_met_frac__{slo.name}"] = math.nan
    row["wall_s"] = math.nan
    return row


def run_point(point: Point, shared: Shared) -> dict:
    """Simulate one point; never raises for a rejected deployment (status 'infeasible') or a bug ('error')."""
    from ..deployment import build_replicas, deployment_from_dict, simulate_deployment

    t0 = time.perf_counter()
    row = empty_row(point, shared)
    base_dir = Path(shared.deployment_base_dir) if shared.deployment_base_dir else None
    try:
        dep = deployment_from_dict(point.deployment, source="deployment", base_dir=base_dir)
        row["num_gpus"] = int(dep.total_gpus)
        replicas, _ = build_replicas(dep)
    except FrontierError as exc:
        row.update(status="infeasible", reason=_reason(exc))
        row["wall_s"] = time.perf_counter() - t0
        return row
    except Exception as exc:  # a bug: keep the row, say what happened; the point is retried on resume
        row.update(status="error", reason=f"{type(exc).__name__}: {exc} | {_where(exc)}")
        row["wall_s"] = time.perf_counter() - t0
        return row
    try:
        trace = shared.trace_at(point.trace, point.rate)
        result = simulate_deployment(dep, trace, replicas, seed=shared.seed)
        row.update(metrics(result.requests, row["num_gpus"], shared.slos))
        n = trace.num_requests
        row["offered_rate_rps"] = (n - 1) / trace.duration_s if trace.duration_s > 0 else math.nan
    except FrontierError as exc:
        row.update(status="infeasible", reason=_reason(exc))
    except Exception as exc:
        row.update(status="error", reason=f"{type(exc).__name__}: {exc} | {_where(exc)}")
    row["wall_s"] = time.perf_counter() - t0
    return row


def _reason(exc: Exception) -> str:
    """One line saying why the deployment was rejected ("deployment, field 'decode.parallel': ...")."""
    return " ".join(str(exc).split())


def _where(exc: Exception) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""


def metrics(requests, num_gpus: int, slos: list[SLO]) -> dict:
    """Throughput, latency percentiles and SLO attainment of a per-request table (seconds; see module doc)."""
    status = requests["status"].to_numpy()
    ok = status == "ok"
    n = len(requests)
    completed = int(ok.sum())
    ttft = requests["ttft_s"].to_numpy(dtype=np.float64)
    tpot = requests["tpot_s"].to_numpy(dtype=np.float64)
    e2e = requests["e2e_s"].to_numpy(dtype=np.float64)
    arrival = requests["arrival_s"].to_numpy(dtype=np.float64)
    out_tokens = requests["output_tokens"].to_numpy(dtype=np.int64)
    duration = float(np.nanmax(requests["completion_s"].to_numpy(dtype=np.float64)[ok]) - np.nanmin(arrival)) \
        if completed else math.nan
    out = {"num_requests": n, "completed": completed, "failed": n - completed,
           "completed_frac": completed / n if n else math.nan, "duration_s": duration}
    rate = (lambda x: x / duration) if duration and duration > 0 else (lambda x: math.nan)
    out["request_throughput_rps"] = rate(completed)
    out["output_tok_s"] = rate(float(out_tokens[ok].sum()))
    out["output_tok_s_per_gpu"] = out["output_tok_s"] / num_gpus if num_gpus else math.nan
    values = {"ttft": ttft, "tpot": tpot, "e2e": e2e}
    for m, v in values.items():
        good = v[ok]
        good = good[~np.isnan(good)]
        pct = np.percentile(good, PCTS) if good.size else [math.nan] * len(PCTS)
        for q, x in zip(PCTS, pct):
            out[f"{m}_p{q}_s"] = float(x)
    med_tpot = out["tpot_p50_s"]
    out["per_user_tok_s"] = 1.0 / med_tpot if med_tpot and med_tpot > 0 else math.nan
    for slo in slos:
        met = ok.copy()
        meets = completed > 0
        for m, stat, limit in slo.limits:
            v = values[m]
            # per request: a 1-token output has no TPOT and so cannot miss a TPOT limit
            met &= (v <= limit) | (np.isnan(v) & ok & (m == "tpot"))
            meets = meets and _stat_all(v, ok, stat) <= limit
        out[f"meets__{slo.name}"] = bool(meets)
        out[f"goodput_rps__{slo.name}"] = rate(float(met.sum()))
        out[f"slo_met_frac__{slo.name}"] = float(met.sum()) / n if n else math.nan
    return out


def _stat_all(v: np.ndarray, ok: np.ndarray, stat: str) -> float:
    """``stat`` ('p<q>' or 'mean') of ``v`` over all requests, failed ones counted as 1e30 s.
    NaN values of completed requests (TPOT of 1-token outputs) are left out."""
    x = np.where(ok, v, _FAILED)
    x = x[~np.isnan(x)]
    if not x.size:
        return math.inf
    if stat == "mean":
        return float(np.mean(x))
    return float(np.percentile(x, float(stat[1:])))
