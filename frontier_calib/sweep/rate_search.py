"""Rate search: the highest arrival rate (requests/s) at which one configuration still meets an SLO set.

Bisection in log space (the midpoint of [lo, hi] is sqrt(lo * hi), so a range like 0.5-64 req/s is searched
evenly): ``high`` is tried first (meets: the answer is at least ``high``, status 'at_high'), then ``low`` (misses:
status 'below_low'), then midpoints until hi / lo - 1 <= ``tolerance`` or ``max_iter`` midpoints ran. It assumes
that a configuration meeting the SLO at some rate also meets it at every lower rate. Each evaluation is
:func:`~frontier_calib.sweep.run.run_point` at that rate, so the search is as pure and seeded as a point.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from .run import Shared, axis_value, run_point, short_label
from .spec import Point, RateSearch, SweepSpec, stable_hash


@dataclass
class SearchTask:
    """One configuration's search: ``point`` holds the deployment and trace (its rate is ignored)."""

    id: str
    index: int
    point: Point
    search: RateSearch


def search_tasks(spec: SweepSpec) -> list[SearchTask]:
    """One task per configuration and trace (the points of the sweep's first rate)."""
    if spec.rate_search is None:
        return []
    first = spec.rates[0]
    points = [p for p in spec.points() if p.rate == first]
    s = spec.rate_search
    key = {"low": s.low, "high": s.high, "tolerance": s.tolerance, "max_iter": s.max_iter, "slo": s.slo}
    return [SearchTask(id=stable_hash({"config": p.config_id, "search": key}), index=i, point=p, search=s)
            for i, p in enumerate(points)]


def search_rate(task: SearchTask, shared: Shared) -> dict:
    """Bisect the rate for one configuration; returns one row (see module doc and docs/sweeps.md)."""
    t0 = time.perf_counter()
    s, p = task.search, task.point
    meets_col = f"meets__{s.slo}"
    evaluations: list[tuple[float, bool]] = []

    def evaluate(rate: float) -> dict:
        row = run_point(Point(id=p.id, index=p.index, config_id=p.config_id, params=p.params,
                              deployment=p.deployment, trace=p.trace, rate=rate), shared)
        evaluations.append((rate, bool(row[meets_col]) if row["status"] == "ok" else False))
        return row

    out = {"point_id": task.id, "index": task.index, "config_id": p.config_id}
    for name in shared.axis_names:
        out[name] = axis_value(p.params.get(name))
    out.update({"label": short_label(p.params), "trace": p.trace, "slo": s.slo, "status": "ok", "reason": "",
                "max_rate_rps": math.nan, "lo_rps": math.nan, "hi_rps": math.nan, "num_gpus": 0})
    best = evaluate(s.high)
    out["num_gpus"] = best["num_gpus"]
    if best["status"] != "ok":
        out.update(status=best["status"], reason=best["reason"])
    elif best[meets_col]:
        out.update(status="at_high", max_rate_rps=s.high, lo_rps=s.high, hi_rps=math.inf)
    else:
        low_row = evaluate(s.low)
        if not (low_row["status"] == "ok" and low_row[meets_col]):
            out.update(status="below_low", lo_rps=0.0, hi_rps=s.low, reason=low_row["reason"])
            best = low_row
        else:
            lo, hi, best = s.low, s.high, low_row
            for _ in range(s.max_iter):
                if hi / lo - 1 <= s.tolerance:
                    break
                mid = math.sqrt(lo * hi)
                row = evaluate(mid)
                if row["status"] == "ok" and row[meets_col]:
                    lo, best = mid, row
                else:
                    hi = mid
            out.update(max_rate_rps=lo, lo_rps=lo, hi_rps=hi)
    for k in ("request_throughput_rps", "output_tok_s_per_gpu", "per_user_tok_s", "ttft_p90_s", "tpot_p90_s",
              "e2e_p90_s", f"goodput_rps__{s.slo}"):
        out[k if not k.startswith("goodput") else "goodput_rps"] = best.get(k, math.nan)
    out["evaluations"] = len(evaluations)
    out["trail"] = " ".join(f"{r:.4g}{'+' if ok else '-'}" for r, ok in evaluations)
    out["wall_s"] = time.perf_counter() - t0
    return out
