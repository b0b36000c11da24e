"""Running many silicon rows: cost models prepared once per deployment shape, rows on a local process pool.

Every row is a pure, seeded function (:func:`~frontier_calib.validate.silicon.run_scenario`), so the pool only
changes the wall time. Before a row runs, the operator models its (GPU, engine) pair needs are fitted once
(one task per pair, so two processes never fit the same model) and the cost table of its deployment shape is
built once; both land in the cost cache (``$FRONTIER_CALIB_CACHE``) and the rows then load them in milliseconds.
Fits, tables and rows share one pool (:mod:`.taskpool`): a shape's rows replay as soon as its table exists, while
other pairs are still fitting. A second run with the same inputs skips straight to the rows.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace

import pandas as pd

from .silicon import RESULT_COLUMNS, Protocol, Scenario, build_deployment, run_scenario, scenario_for_row

#: silicon columns copied into rows.csv (when present), before the results
ROW_COLUMNS = ("id", "system", "backend", "backend_version", "mode", "model_path", "precision", "gemm_quant_mode",
               "moe_quant_mode", "isl", "osl", "concurrency", "concurrency_source", "config_key", "config_id",
               "batch_size", "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size",
               "prefill_num_workers", "prefill_tp_size", "decode_num_workers", "decode_tp_size",
               "decode_batch_size", "silicon_ttft_ms", "silicon_tpot_ms")


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _init_worker():
    # one OpenMP thread per process (the pool already uses every core); passive waiting (see tests/conftest.py)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ["OMP_NUM_THREADS"] = "1"
    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("frontier_calib").setLevel(logging.ERROR)  # extrapolation notes: one per table, noisy


def _fit_pair(gpu: str, engine: str, families: list, groups: dict, threads: int | None = None) -> str | None:
    from ..opmodel.registry import cached_model_set

    try:
        cached_model_set(gpu, engine, families=families, groups=groups, threads=threads)
    except Exception as exc:  # noqa: BLE001 - the rows that need it report it
        return f"{gpu}/{engine}: {exc}"
    return None


def _build_tables(scn: Scenario) -> str | None:
    """Build (and cache) the cost table of a scenario's deployment; the skip reason when that fails."""
    from ..deployment import build_replicas
    from .silicon import classify_error

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_replicas(build_deployment(scn))
    except Exception as exc:  # noqa: BLE001 - becomes the rows' skip reason
        return classify_error(exc)
    return None


def _fit_and_build(gpu: str, engine: str, families: list, groups: dict, scns: list,
                   threads: int | None = None) -> tuple:
    """Fit one (GPU, engine) pair's operator models (``threads`` XGBoost threads), then build the cost tables of its
    deployment shapes in the same process, which keeps the models loaded between shapes.
    Returns (fit error or None, fit seconds, skip reason or None per shape, table seconds)."""
    t0 = time.perf_counter()
    err = _fit_pair(gpu, engine, families, groups, threads)
    t1 = time.perf_counter()
    reasons = [_build_tables(s) for s in scns]
    return err, t1 - t0, reasons, time.perf_counter() - t1


def _run_rows(scns: list[Scenario]) -> list[dict]:
    return [run_scenario(s) for s in scns]


def _pools(dep) -> list:
    """(worker, scheduler) of every distinct worker kind of a deployment (PD: prefill and decode)."""
    if dep.mode == "pd":
        return [(dep.prefill.worker, dep.prefill.scheduler), (dep.decode.worker, dep.decode.scheduler)]
    return [(dep.worker, dep.scheduler)]


def _shape_key(dep) -> tuple:
    """What the cost tables depend on (each worker without its overheads, and the table limits)."""
    from ..cost.cache import worker_fields
    from ..engines import token_budget

    key = []
    for worker, s in _pools(dep):
        w = worker_fields(worker)
        w.pop("overheads")
        key.append((repr(sorted(w.items(), key=lambda kv: kv[0])), token_budget(s),
                    max(s.max_num_seqs, s.max_batch_size or 0), s.max_model_len))
    return (tuple(key), getattr(dep, "profiles", None))


@dataclass
class CostPlan:
    """What the ok scenarios need before they can replay: the operator models of each (GPU, engine) pair and the
    cost table of each distinct deployment shape (see :func:`plan_cost_models`)."""

    pairs: dict = field(default_factory=dict)        #: (gpu, engine) -> (families, {family: dtype groups})
    shapes: dict = field(default_factory=dict)       #: shape key -> the first scenario with that shape
    shape_pairs: dict = field(default_factory=dict)  #: shape key -> {(gpu, engine) of each of its pools}
    members: dict = field(default_factory=dict)      #: shape key -> indices of the scenarios with that shape
    seconds: float = 0.0                             #: time spent planning

    def pair_shapes(self) -> tuple[dict, list]:
        """({pair: shape keys whose pools all run on that pair}, [shape keys that span pairs])."""
        by_pair: dict = {}
        spanning = []
        # one model's shapes next to each other: their tables ask the operator models the same queries, which the
        # models answer from memory (OperatorModel.predict) while they are recent
        for k in sorted(self.shapes, key=lambda k: (str(self.shapes[k].deployment.get("model")), repr(k))):
            if len(self.shape_pairs[k]) == 1:
                by_pair.setdefault(next(iter(self.shape_pairs[k])), []).append(k)
            else:
                spanning.append(k)
        return by_pair, spanning

    def fit_task(self, pair: tuple, shape_keys: list, threads: int | None = None) -> tuple:
        """Arguments of :func:`_fit_and_build` for one pair."""
        fams, grps = self.pairs[pair]
        return (*pair, sorted(fams), {k: sorted(v) for k, v in grps.items() if k in fams},
                [self.shapes[k] for k in shape_keys], threads)


def plan_cost_models(scenarios: list[Scenario]) -> CostPlan:
    """The operator models and cost tables the ok scenarios need. A scenario whose deployment cannot be built is
    left out (its row reports why when it runs)."""
    from ..cost.cache import needed_families, needed_groups

    t0 = time.perf_counter()
    plan = CostPlan()
    for i, scn in enumerate(scenarios):
        if scn.status != "ok":
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dep = build_deployment(scn)
        except Exception:  # noqa: BLE001 - reported when the row runs
            continue
        for w, _ in _pools(dep):
            fams, grps = plan.pairs.setdefault((w.gpu, w.engine), (set(), {}))
            fams.update(needed_families(w))
            for fam, g in needed_groups(w).items():
                grps.setdefault(fam, set()).update(g)
        key = _shape_key(dep)
        plan.shapes.setdefault(key, scn)
        plan.shape_pairs.setdefault(key, {(w.gpu, w.engine) for w, _ in _pools(dep)})
        plan.members.setdefault(key, []).append(i)
    plan.seconds = time.perf_counter() - t0
    return plan


#: priority of preparation tasks over row replays (rows' priorities are their weights, far below this)
_PREPARE_FIRST = 1e30


def _skipped(scn: Scenario, reason: str) -> Scenario:
    """The scenario of a row whose cost model could not be built: skipped with that reason, before any replay."""
    out = replace(scn, status=f"skipped:{reason}", notes=list(scn.notes))
    out.notes.append("cost model could not be built for this deployment")
    return out


def run_prepared(scenarios: list[Scenario], *, jobs: int, progress: bool = True) -> tuple[list[dict], dict]:
    """Fit the operator models, build the cost tables and replay every scenario, on one pool of ``jobs`` processes.

    One task per (GPU, engine) pair fits its models and then builds the cost tables of the deployment shapes that
    run there, in the same process (the fitted models stay loaded; loading them from the cache takes seconds per
    family). A shape whose pools span pairs is built once all its pairs are fitted. The rows of a shape replay as
    soon as its table exists, while other pairs are still fitting: preparation tasks go first (the pair whose rows
    weigh most first), then rows, heaviest first. A shape whose cost model cannot be built (e.g. missing profile
    coverage) skips its rows with that reason, without retrying them one by one.

    Returns (one result per scenario, in order; statistics). The scenarios of skipped shapes are replaced in
    ``scenarios`` (their status and notes say why)."""
    from .taskpool import TaskPool

    plan = plan_cost_models(scenarios)
    by_pair, spanning = plan.pair_shapes()
    t0 = time.perf_counter()
    pool = TaskPool(jobs, _init_worker)
    results: dict[int, dict] = {}
    bar = _bar(len(scenarios), "models, tables, rows", "row", progress)

    def add_rows(indices):
        order = sorted(indices, key=lambda i: -_weight(scenarios[i]))
        for c in range(0, len(order), 4):
            chunk = order[c:c + 4]
            pool.add(_weight(scenarios[chunk[0]]), ("rows", chunk), _run_rows, [scenarios[i] for i in chunk])

    def shape_done(key, reason):
        if reason:
            for i in plan.members[key]:
                scenarios[i] = _skipped(scenarios[i], reason)
                results[i] = run_scenario(scenarios[i])   # a skipped scenario returns at once
            bar.update(len(plan.members[key]))
        else:
            add_rows(plan.members[key])

    planned = {i for k in plan.members for i in plan.members[k]}
    for i in range(len(scenarios)):   # skipped rows, and rows whose deployment is rejected: no replay, answered here
        if i not in planned:
            results[i] = run_scenario(scenarios[i])
    bar.update(len(scenarios) - len(planned))
    pair_weight = {p: sum(_weight(scenarios[i]) for k in by_pair.get(p, ()) for i in plan.members[k])
                   for p in plan.pairs}
    # fewer pairs than processes: each pair's fits use the cores no other pair would (same models either way);
    # in this process (jobs 1), XGBoost's own default
    threads = max(1, jobs // max(1, len(plan.pairs))) if jobs > 1 else None
    for p in sorted(plan.pairs, key=lambda p: (-pair_weight[p], p)):
        pool.add(_PREPARE_FIRST + pair_weight[p], ("pair", p), _fit_and_build,
                 *plan.fit_task(p, by_pair.get(p, []), threads))
    pending_pairs = set(plan.pairs)
    waiting = list(spanning)
    stats = {"pairs": len(plan.pairs), "shapes": len(plan.shapes), "plan_s": plan.seconds, "fit_worker_s": 0.0,
             "tables_worker_s": 0.0, "fit_errors": [], "failed_shapes": 0}
    prepared_at = t0
    for (kind, what), res in pool.results():
        if kind == "rows":
            for i, r in zip(what, res):
                results[i] = r
            bar.update(len(what))
            continue
        prepared_at = time.perf_counter()
        if kind == "pair":
            err, fit_s, reasons, table_s = res
            stats["fit_worker_s"] += fit_s
            stats["tables_worker_s"] += table_s
            if err:
                stats["fit_errors"].append(err)
            keys = by_pair.get(what, [])
            pending_pairs.discard(what)
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"{len(plan.pairs) - len(pending_pairs)}/{len(plan.pairs)} gpu/engine fitted")
            ready = [k for k in waiting if not (plan.shape_pairs[k] & pending_pairs)]
            waiting = [k for k in waiting if k not in ready]
            for k in ready:
                pool.add(_PREPARE_FIRST, ("shape", k), _build_tables, plan.shapes[k])
        else:
            keys, reasons = [what], [res]
        for k, reason in zip(keys, reasons):
            stats["failed_shapes"] += bool(reason)
            shape_done(k, reason)
    bar.close()
    t1 = time.perf_counter()
    stats["models_and_tables_s"] = prepared_at - t0
    stats["rows_done_s"] = t1 - t0
    return [results[i] for i in range(len(scenarios))], stats


class _NoBar:
    def update(self, n=1):
        pass

    def close(self):
        pass


def _bar(total: int, desc: str, unit: str, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, mininterval=0.5, dynamic_ncols=True)


def run_silicon(df: pd.DataFrame, *, overheads: dict | None = None, desync: dict | None = None,
                protocol: Protocol | None = None, jobs: int | None = None, progress: bool = True,
                prepare: bool = True, assume_pd_layout: bool = False) -> tuple[pd.DataFrame, dict]:
    """Replay every row of a silicon frame (from read_silicon_csv); returns (rows frame, run statistics).
    ``overheads`` / ``desync``: per-engine calibration (see scenario_for_row)."""
    jobs = jobs or default_jobs()
    protocol = protocol or Protocol()
    t0 = time.perf_counter()
    records = df.to_dict("records")
    scenarios = [scenario_for_row(r, overheads=overheads, protocol=protocol, desync=desync,
                                  assume_pd_layout=assume_pd_layout) for r in records]
    stats = {"jobs": jobs, "rows": len(scenarios)}
    t1 = time.perf_counter()
    if prepare:   # fits, tables and rows on one pool: rows start while the last pairs still fit
        results, prep = run_prepared(scenarios, jobs=jobs, progress=progress)
        stats["prepare"] = prep
    else:
        results = run_scenarios(scenarios, jobs=jobs, progress=progress)
    t2 = time.perf_counter()
    frame = rows_frame(df, scenarios, results)
    stats.update(rows_s=t2 - t1, total_s=t2 - t0,
                 sim_s_sum=float(frame["sim_wall_s"].sum(skipna=True)),
                 sim_s_median=float(frame["sim_wall_s"].median(skipna=True)) if frame["sim_wall_s"].notna().any()
                 else math.nan,
                 sim_s_max=float(frame["sim_wall_s"].max(skipna=True)) if frame["sim_wall_s"].notna().any()
                 else math.nan)
    return frame, stats


def run_scenarios(scenarios: list[Scenario], *, jobs: int | None = None, progress: bool = True,
                  desc: str = "silicon rows") -> list[dict]:
    """run_scenario over a list (heavy rows first, 4 rows per pool task); results in input order."""
    from .taskpool import TaskPool

    pool = TaskPool(jobs or default_jobs(), _init_worker)
    order = sorted(range(len(scenarios)), key=lambda i: -_weight(scenarios[i]))
    for c in range(0, len(order), 4):
        chunk = order[c:c + 4]
        pool.add(_weight(scenarios[chunk[0]]), chunk, _run_rows, [scenarios[i] for i in chunk])
    results: dict[int, dict] = {}
    bar = _bar(len(scenarios), desc, "row", progress)
    for chunk, res in pool.results():
        results.update(zip(chunk, res))
        bar.update(len(chunk))
    bar.close()
    return [results[i] for i in range(len(scenarios))]


def _weight(scn: Scenario) -> float:
    return scn.num_requests * (scn.osl + scn.isl / 64) if scn.status == "ok" else 0.0


def rows_frame(df: pd.DataFrame, scenarios: list[Scenario], results: list[dict]) -> pd.DataFrame:
    """One output row per input row: the silicon columns, what the scenario used, and the prediction."""
    base = df[[c for c in ROW_COLUMNS if c in df.columns]].reset_index(drop=True).copy()
    res = pd.DataFrame(results, columns=list(RESULT_COLUMNS))
    dep_cols = pd.DataFrame([_scenario_columns(s) for s in scenarios])
    out = pd.concat([base, dep_cols, res], axis=1)
    if len(scenarios) and "mode" in out.columns:   # a scenario may replay an agg-labelled row as disagg (silicon.py)
        out["mode"] = [s.mode for s in scenarios]
    out["ttft_ratio"] = out["pred_ttft_ms"] / out["silicon_ttft_ms"]
    out["tpot_ratio"] = out["pred_tpot_ms"] / out["silicon_tpot_ms"]
    out["ttft_ape"] = (out["ttft_ratio"] - 1).abs()
    out["tpot_ape"] = (out["tpot_ratio"] - 1).abs()
    first = ["id", "system", "backend", "mode", "model_path", "isl", "osl", "concurrency", "silicon_ttft_ms",
             "silicon_tpot_ms", "pred_ttft_ms", "pred_tpot_ms", "status"]
    return out[first + [c for c in out.columns if c not in first]]


def _scenario_columns(s: Scenario) -> dict:
    d = s.deployment or {}
    par = d.get("parallel") or {}
    if d.get("mode") == "pd":   # e.g. "P 1x(tp=8 ...) / D 2x(tp=1 attention_dp=8 ...)"
        layout = " / ".join(f"{side[0].upper()} {d[side]['workers']}x({_fmt_par(d[side]['parallel'])})"
                            for side in ("prefill", "decode"))
    else:
        layout = _fmt_par(par) if par else ""
    return {"preset": d.get("model", ""), "dtype": d.get("dtype", ""), "moe_dtype": d.get("moe_dtype", ""),
            "kv_dtype": d.get("kv_dtype", ""), "parallel": layout,
            "seed": s.seed, "desync": s.protocol.desync, "simulated_rounds": s.protocol.rounds, "overheads": str(d.get("overheads", "")) if d.get("overheads") else "engine defaults"}


def _fmt_par(par: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in par.items())
