"""`frontier-calib sweep SWEEP.yaml --out DIR`: run every point of a sweep file, resumably, then summarise.

Writes into DIR: ``results.parquet`` (+ ``results.csv``; one row per point, ordered by point index),
``best.csv`` (best configuration per SLO set), ``goodput.csv`` (per configuration), ``summary.json``,
``pareto.png``, ``goodput.png``, and with a ``rate_search:`` section ``rate_search.parquet`` / ``.csv``.
Finished rows are kept in ``DIR/*.parts/``; rerunning the same command skips them.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd

from ..errors import InputError
from ..io import check_output_dir, write_json, write_table
from .analysis import best_per_slo, goodput_table, pareto_front, slo_names
from .executors import EXECUTORS, default_workers, run_tasks
from .models import prepare_models
from .outdir import claim_out_dir
from .rate_search import SearchTask, search_rate, search_tasks
from .run import make_shared, run_point
from .spec import SweepSpec, load_sweep
from .store import ResultStore


#: every file :func:`write_outputs` may write into the results folder
OUTPUT_FILES = frozenset({"results.parquet", "results.csv", "best.csv", "goodput.csv", "pareto.png", "goodput.png",
                          "rate_search.parquet", "rate_search.csv", "summary.json"})


@dataclass
class SweepOutcome:
    """What :func:`run_sweep` did. ``results``: rows of the sweep's points finished so far (index order)."""

    spec: SweepSpec
    results: pd.DataFrame
    rate_search: pd.DataFrame | None
    total_points: int
    ran_points: int
    skipped_points: int
    wall_s: float
    complete: bool
    files: dict = field(default_factory=dict)


def _check_rejections(spec: SweepSpec, deployments: list[dict]) -> None:
    """A typo in a dotted path makes every deployment fail with 'unknown key': say so once, naming the sweep
    file, instead of filling the results with infeasible rows."""
    from ..errors import FrontierError
    from .models import parse_distinct

    for _, exc in parse_distinct(deployments, spec.deployment_base_dir):
        if isinstance(exc, FrontierError) and re.search(r"unknown (\w+ )?key", str(exc)):
            raise InputError(f"the deployment of a point has an unknown key ({exc})", path=spec.source,
                             field="axes", fix="check the dotted paths in base/set/axes/zip") from None


def run_task(task, shared) -> tuple[str, dict]:
    """A grid point or a rate search (one pool serves both): ('results' | 'rate_search', row)."""
    if isinstance(task, SearchTask):
        return "rate_search", search_rate(task, shared)
    return "results", run_point(task, shared)


def _run_store(tasks, shared, stores: dict, *, executor, workers, address, model_files, progress) -> int:
    """Run ``tasks`` through the executor, each row into its store; returns how many finished. Flushes the
    stores on any exit (finished, interrupted, crashed)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(tasks), desc="sweep", unit="pt", disable=not progress, dynamic_ncols=True)
    done = 0
    try:
        for kind, row in run_tasks(run_task, tasks, shared, executor=executor, workers=workers, address=address,
                                   model_files=model_files):
            stores[kind].add(row)
            done += 1
            bar.update(1)
            if row.get("status") in ("error", "infeasible"):
                bar.write(f"{row['status']} point {row['point_id']} ({row.get('label', '')}): {row.get('reason')}")
    finally:
        for store in stores.values():
            store.flush()
        bar.close()
    return done


def run_sweep(sweep_file: str | Path, out: str | Path, *, executor: str = "local", workers: int | None = None,
              address: str | None = None, max_points: int | None = None, progress: bool = True,
              plots: bool = True, overwrite: bool = False) -> SweepOutcome:
    """Run the unfinished points of ``sweep_file`` (at most ``max_points``), then write the outputs.

    ``out`` may hold an earlier run of the same sweep (by name): its finished points are kept and not run
    again. Any other content is refused, unless ``overwrite``, which discards the folder's earlier content
    (finished points included) before the run starts."""
    t0 = time.perf_counter()
    out = Path(out)
    spec = load_sweep(sweep_file)
    points = spec.points()
    tasks = search_tasks(spec)
    _check_rejections(spec, [p.deployment for p in points])
    shared = make_shared(spec, None)
    claim_out_dir(out, spec.name, overwrite=overwrite)
    out.mkdir(parents=True, exist_ok=True)
    write_json({"name": spec.name, "source": str(sweep_file), "points": len(points), "axes": spec.axis_names,
                "traces": list(spec.traces), "rates": spec.rates, "fingerprint": spec.fingerprint()},
               out / "sweep.json")
    store = ResultStore(out, "results")
    finished = store.finished_ids()
    todo = [p for p in points if p.id not in finished]
    skipped = len(points) - len(todo)
    budget = max_points if max_points is not None else len(todo) + len(tasks)
    todo = todo[:budget]
    search_store = ResultStore(out, "rate_search") if tasks else None
    s_todo = [t for t in tasks if t.id not in search_store.finished_ids()] if tasks else []
    s_todo = s_todo[:max(0, budget - len(todo))]
    if progress:
        click.echo(f"{spec.name}: {len(points)} points ({skipped} finished earlier, {len(todo)} to run)"
                   + (f", {len(tasks)} rate searches ({len(s_todo)} to run)" if tasks else "")
                   + f"; executor {executor}" + (f" ({workers or default_workers()} workers)"
                                                 if executor == "local" else ""))
    model_files = None
    if todo or s_todo:
        model_files = prepare_models([p.deployment for p in todo] + [t.point.deployment for t in s_todo],
                                     spec.deployment_base_dir, progress=progress, collect=executor == "ray")
    stores = {"results": store, **({"rate_search": search_store} if search_store is not None else {})}
    ran = _run_store(todo + s_todo, shared, stores, executor=executor, workers=workers, address=address,
                     model_files=model_files, progress=progress) if todo or s_todo else 0
    results = store.final([p.id for p in points])
    searched = search_store.final([t.id for t in tasks]) if search_store else None
    complete = len(results) == len(points) and (searched is None or len(searched) == len(tasks)) and \
        not (results["status"] == "error").any()
    if complete:   # nothing left to resume: one part file per store instead of one per flush
        for st in stores.values():
            st.compact()
    outcome = SweepOutcome(spec=spec, results=results, rate_search=searched, total_points=len(points),
                           ran_points=ran, skipped_points=skipped, wall_s=time.perf_counter() - t0,
                           complete=complete)
    write_outputs(outcome, out, plots=plots)
    return outcome


def write_outputs(o: SweepOutcome, out: Path, *, plots: bool = True) -> None:
    """results.parquet/.csv, best.csv, goodput.csv, rate_search.*, summary.json and the plots."""
    df = o.results
    files = {}
    if not df.empty:
        files["results"] = write_table(df, out / "results.parquet")
        write_table(df, out / "results.csv")
        best = best_per_slo(df)
        files["best"] = write_table(best, out / "best.csv")
        slos = slo_names(df)
        if slos:
            files["goodput"] = write_table(goodput_table(df, slos[0]), out / "goodput.csv")
        if plots:
            from .plots import plot_goodput, plot_pareto

            for name, fn in (("pareto", plot_pareto), ("goodput_png", plot_goodput)):
                path = fn(df, out / f"{name.removesuffix('_png')}.png", title="")
                if path is not None:
                    files[name] = path
    else:
        best = pd.DataFrame()
    if o.rate_search is not None and not o.rate_search.empty:
        files["rate_search"] = write_table(o.rate_search, out / "rate_search.parquet")
        write_table(o.rate_search, out / "rate_search.csv")
    status = df["status"].value_counts().to_dict() if not df.empty else {}
    front = pareto_front(df) if not df.empty else pd.DataFrame()
    summary = {
        "name": o.spec.name, "points": o.total_points, "finished": len(df), "complete": o.complete,
        "status_counts": status, "ran_this_time": o.ran_points, "skipped_finished": o.skipped_points,
        "wall_s_this_time": round(o.wall_s, 3),
        "slos": {s.name: s.describe() for s in o.spec.slos},
        "best_per_slo": best.to_dict(orient="records"),
        "pareto_front": front[["point_id", "label", "rate_rps", "num_gpus", "per_user_tok_s",
                               "output_tok_s_per_gpu"]].to_dict(orient="records") if not front.empty else [],
        "rate_search": (o.rate_search[["label", "trace", "slo", "status", "max_rate_rps", "num_gpus"]]
                        .to_dict(orient="records") if o.rate_search is not None and not o.rate_search.empty
                        else []),
        "files": {k: str(v) for k, v in files.items()},
    }
    files["summary"] = write_json(summary, out / "summary.json")
    written = {Path(p).name for p in files.values()}
    written |= {f"{k}.csv" for k in ("results", "rate_search") if k in files}
    for name in OUTPUT_FILES - written:  # an earlier run's file this run did not rewrite would look current
        (out / name).unlink(missing_ok=True)
    o.files = files


def print_best(o: SweepOutcome) -> None:
    df = o.results
    if df.empty:
        return
    best = best_per_slo(df)
    for slo in o.spec.slos:
        row = best[best["slo"] == slo.name]
        if row.empty or pd.isna(row["point_id"].iloc[0]):
            click.echo(f"SLO '{slo.name}' ({slo.describe()}): no point meets it")
            continue
        r = row.iloc[0]
        rate = "own arrivals" if pd.isna(r["rate_rps"]) else f"{r['rate_rps']:g} req/s"
        click.echo(f"SLO '{slo.name}' ({slo.describe()}): best {r['label']} at {rate} on {int(r['num_gpus'])} GPUs"
                   f": {r['output_tok_s_per_gpu']:.1f} output tok/s/GPU, {r['per_user_tok_s']:.1f} tok/s/user, "
                   f"goodput {r['goodput_rps']:.3f} req/s ({int(r['meeting_points'])} points meet it)")
    if o.rate_search is not None and not o.rate_search.empty:
        click.echo("rate search (highest rate meeting the SLO):")
        for _, r in o.rate_search.iterrows():
            val = f"{r['max_rate_rps']:.3g} req/s" if r["status"] in ("ok", "at_high") else "-"
            click.echo(f"  {r['label']:<50} {val:>14}  [{r['status']}]")


@click.command()
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Results folder; rerunning the same sweep into it continues where it stopped (finished points "
                   "are kept). A folder holding anything else is refused unless --overwrite.")
@click.option("--overwrite", is_flag=True,
              help="Discard the folder's earlier content (finished points included) and run every point afresh.")
@click.option("--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
              help="local: a process pool on this machine; ray: a Ray cluster (pip install .[ray]).")
@click.option("--workers", type=int, default=None, help="Processes (local) or Ray actors. Default: all CPUs.")
@click.option("--address", default=None, help="Ray cluster address (e.g. ray://head:10001 or auto); default: "
                                               "start a local Ray instance.")
@click.option("--max-points", type=int, default=None, help="Run at most N unfinished points, then stop.")
@click.option("--no-plots", is_flag=True, help="Skip pareto.png and goodput.png.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sweep(sweep_file, out, overwrite, executor, workers, address, max_points, no_plots, quiet):
    """Run a sweep file: every point one seeded replay; rows to DIR/results.parquet as they finish.

    See docs/sweeps.md for the file format. Interrupt at any time; the same command continues.
    """
    if workers is not None and workers < 1:
        raise InputError("must be >= 1", field="--workers")
    if max_points is not None and max_points < 0:
        raise InputError("must be >= 0", field="--max-points")
    check_output_dir(out, option="--out")
    try:
        o = run_sweep(sweep_file, out, executor=executor, workers=workers, address=address, max_points=max_points,
                      progress=not quiet, plots=not no_plots, overwrite=overwrite)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted; finished points are stored in {out}/results.parts/ - rerun the same command "
                   "to continue", err=True)
        raise SystemExit(130) from None
    print_best(o)
    n_err = int((o.results["status"] == "error").sum()) if not o.results.empty else 0
    left = o.total_points - len(o.results)
    searches = "" if o.rate_search is None else f" and {len(o.rate_search)} rate searches"
    click.echo(f"{len(o.results)}/{o.total_points} points{searches} finished ({o.ran_points} tasks this run, "
               f"{o.wall_s:.1f} s)" + (f"; {left} left: rerun to continue" if left else "")
               + (f"; {n_err} errors (retried on rerun)" if n_err else "") + f" -> {out}/")
    if n_err:
        raise SystemExit(1)
