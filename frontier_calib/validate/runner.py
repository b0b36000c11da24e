"""Running many silicon rows: cost models prepared once per deployment shape, rows on a local process pool.

Every row is a pure, seeded function (:func:`~frontier_calib.validate.silicon.run_scenario`), so the pool only
changes the wall time. Before the rows run, the operator models each (GPU, engine) pair needs are fitted once
(one task per pair, so two processes never fit the same model) and the cost table of every distinct deployment
shape is built once; both land in the cost cache (``$FRONTIER_CALIB_CACHE``) and the rows then load them in
milliseconds. A second run with the same inputs skips straight to the rows.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

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


def _fit_pair(gpu: str, engine: str, families: list, groups: dict) -> str | None:
    from ..opmodel.registry import cached_model_set

    try:
        cached_model_set(gpu, engine, families=families, groups=groups)
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


def _fit_and_build(gpu: str, engine: str, families: list, groups: dict, scns: list) -> tuple:
    """Fit one (GPU, engine) pair's operator models, then build the cost tables of its deployment shapes in the
    same process, which keeps the models loaded between shapes (loading them takes seconds per family).
    Returns (fit error or None, fit seconds, skip reason or None per shape, table seconds)."""
    t0 = time.perf_counter()
    err = _fit_pair(gpu, engine, families, groups)
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
    from dataclasses import asdict

    from ..engines import token_budget

    key = []
    for worker, s in _pools(dep):
        w = asdict(worker)
        w.pop("overheads")
        key.append((repr(sorted(w.items(), key=lambda kv: kv[0])), token_budget(s),
                    max(s.max_num_seqs, s.max_batch_size or 0), s.max_model_len))
    return (tuple(key), getattr(dep, "profiles", None))


def prepare_cost_models(scenarios: list[Scenario], *, jobs: int, progress: bool = True) -> dict:
    """Fit the operator models and build the cost tables the ok scenarios need (cached on disk).

    Returns timing and counts, and ``failed``: {scenario index: skip reason} for the scenarios whose cost model
    cannot be built (e.g. missing profile coverage), so their rows are not retried one by one."""
    from ..cost.cache import needed_families, needed_groups

    t0 = time.perf_counter()
    pairs: dict = {}
    shapes: dict = {}
    shape_pair: dict = {}   # shape -> {(gpu, engine) of each of its pools}
    members: dict = {}
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
            fams, grps = pairs.setdefault((w.gpu, w.engine), (set(), {}))
            fams.update(needed_families(w))
            for fam, g in needed_groups(w).items():
                grps.setdefault(fam, set()).update(g)
        key = _shape_key(dep)
        shapes.setdefault(key, scn)
        shape_pair.setdefault(key, {(w.gpu, w.engine) for w, _ in _pools(dep)})
        members.setdefault(key, []).append(i)
    t1 = time.perf_counter()
    # One task per (GPU, engine) pair: fit its models, then build the tables of the shapes whose pools all run
    # there, in the same process (the models stay loaded). Shapes of a pair that fits nothing new still load
    # each model once, not once per shape. The pair with the most shapes goes first; shapes that span pairs
    # are built after every pair is fitted.
    by_pair: dict = {}
    spanning = []
    for k in shapes:
        if len(shape_pair[k]) == 1:
            by_pair.setdefault(next(iter(shape_pair[k])), []).append(k)
        else:
            spanning.append(k)
    order = sorted(pairs, key=lambda p: (-len(by_pair.get(p, ())), p))
    tasks = [(g, e, sorted(pairs[(g, e)][0]), {k: sorted(v) for k, v in pairs[(g, e)][1].items()
                                               if k in pairs[(g, e)][0]}, [shapes[k] for k in by_pair.get((g, e), [])])
             for g, e in order]
    done = _pool_map(_fit_and_build, tasks, jobs=jobs, progress=progress, desc="operator models + cost tables",
                     unit="gpu/engine", ordered=True)
    reasons = {}
    for (g, e), (_, _, rs, _) in zip(order, done):
        reasons.update(zip(by_pair.get((g, e), []), rs))
    reasons.update(zip(spanning, _pool_map(_build_tables, [(shapes[k],) for k in spanning], jobs=jobs,
                                           progress=progress, desc="cost tables", unit="shape", ordered=True)))
    t2 = time.perf_counter()
    failed = {i: reason for k, reason in reasons.items() if reason for i in members[k]}
    return {"pairs": len(tasks), "shapes": len(shapes), "plan_s": t1 - t0, "models_and_tables_s": t2 - t1,
            "fit_worker_s": sum(d[1] for d in done), "tables_worker_s": sum(d[3] for d in done),
            "fit_errors": [d[0] for d in done if d[0]],
            "failed_shapes": sum(1 for r in reasons.values() if r), "failed": failed}


def _pool_map(fn, arg_list: list, *, jobs: int, progress: bool, desc: str, unit: str,
              ordered: bool = False) -> list:
    """fn(*args) for each args, on a spawn pool when jobs > 1; results in completion order (or input order)."""
    if not arg_list:
        return []
    bar = _bar(len(arg_list), desc, unit, progress)
    out: dict = {}
    if jobs <= 1 or len(arg_list) == 1:
        for i, args in enumerate(arg_list):
            out[i] = fn(*args)
            bar.update(1)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=min(jobs, len(arg_list)), mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as ex:
            futs = {ex.submit(fn, *args): i for i, args in enumerate(arg_list)}
            for n, f in enumerate(as_completed(futs)):
                out[futs[f] if ordered else n] = f.result()
                bar.update(1)
    bar.close()
    return [out[i] for i in range(len(arg_list))]


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
    if prepare:
        prep = prepare_cost_models(scenarios, jobs=jobs, progress=progress)
        for i, reason in prep.pop("failed").items():   # known before the rows run: no retry per row
            scenarios[i] = replace(scenarios[i], status=f"skipped:{reason}", notes=list(scenarios[i].notes))
            scenarios[i].notes.append("cost model could not be built for this deployment")
        stats["prepare"] = prep
    t1 = time.perf_counter()
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
    jobs = jobs or default_jobs()
    results: dict[int, dict] = {}
    order = sorted(range(len(scenarios)), key=lambda i: -_weight(scenarios[i]))
    chunks = [order[i:i + 4] for i in range(0, len(order), 4)]
    bar = _bar(len(scenarios), desc, "row", progress)
    if jobs <= 1:
        for ch in chunks:
            for i, res in zip(ch, _run_rows([scenarios[i] for i in ch])):
                results[i] = res
            bar.update(len(ch))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as ex:
            futs = {ex.submit(_run_rows, [scenarios[i] for i in ch]): ch for ch in chunks}
            for f in as_completed(futs):
                ch = futs[f]
                for i, res in zip(ch, f.result()):
                    results[i] = res
                bar.update(len(ch))
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
