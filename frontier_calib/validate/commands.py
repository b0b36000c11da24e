"""CLI: ``frontier-calib validate silicon``, ``frontier-calib validate trace`` and ``frontier-calib calibrate``."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click

from ..errors import InputError
from ..io import check_output_dir, check_output_file
from ..engines import engine_names
from ..options import KnownName, gpus_callback, overwrite_option


def _command_line() -> str:
    return "frontier-calib " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def effective_modes(df):
    """Each row's mode as the replay runs it: its ``mode`` column, except the agg-labelled rows of a multinode
    disaggregated series (``validate/harness.py``, :func:`~frontier_calib.validate.harness.multinode_series`),
    which replay, and are reported, as ``disagg``."""
    import pandas as pd

    from .harness import multinode_series

    modes = df["mode"].astype(str).str.strip().str.lower()
    if len(df) == 0:
        return modes
    multinode = [multinode_series(r) is not None for r in df.to_dict("records")]
    return modes.where(~pd.Series(multinode, index=df.index), "disagg")


def _select(df, gpus, engines, mode, model, limit, sample=None):
    sel = []
    if gpus:
        df = df[df["system"].isin(gpus)]
        sel.append("gpu " + "/".join(gpus))
    if engines:
        df = df[df["backend"].isin(engines)]
        sel.append("engine " + "/".join(engines))
    if mode:
        df = df[effective_modes(df) == mode]
        sel.append(f"mode {mode}")
    if model:
        df = df[df["model_path"].astype(str).str.contains(model, case=False, regex=False)]
        sel.append(f"model ~ {model!r}")
    if limit:
        df = df.head(limit)
        sel.append(f"first {limit}")
    if sample and sample < len(df):
        df = df.sample(n=sample, random_state=0).sort_index()
        sel.append(f"{sample} drawn at random (seed 0)")
    return df, ", ".join(sel) or "all rows"


def _load_csv(csv_path: Path | None):
    from .silicon import default_csv_path, read_silicon_csv

    path = csv_path or default_csv_path()
    if path is None:
        raise InputError("no silicon CSV: aiconfigurator-core is not installed",
                         fix="pass --csv PATH, or pip install -e '.[public-data]'")
    return read_silicon_csv(path), Path(path)


def _csv_meta(path: Path, df_all) -> dict:
    from ..profiles.store import file_sha256

    meta = {"csv": str(path), "csv_sha256": file_sha256(path), "csv_rows": int(len(df_all))}
    try:
        from importlib.metadata import version

        meta["aiconfigurator_core_version"] = version("aiconfigurator-core")
    except Exception:  # noqa: BLE001 - informative only
        pass
    return meta


PROTOCOL_TEXT = ("closed loop, N clients all sending at t=0 (the benchmark's profiling phase after its drained "
                 "warm-up), {rpc} x N fixed-length requests (EOS ignored); the first-wave output lengths of a share "
                 "of the clients (desync, per engine) are spread over 1..osl so that they drift out of step; TTFT = "
                 "mean over all requests, TPOT = mean after the first wave, rebuilt from {rounds} replayed rounds "
                 "(docs/validation.md).")

_common = [
    click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Silicon CSV (default: silicon_sample.csv of the installed aiconfigurator-core)."),
    click.option("--engine", "engines", multiple=True, type=KnownName("engine", engine_names()),
                 help="Engine(s) to keep (repeat; default all)."),
    click.option("--mode", type=click.Choice(["agg", "disagg"]), default=None,
                 help="Aggregated or disaggregated rows only, as they replay (agg-labelled multinode disagg series count as disagg; default both)."),
    click.option("--model", default=None, help="Keep rows whose model_path contains this (case-insensitive)."),
    click.option("--limit", type=int, default=None, help="Only the first N selected rows."),
    click.option("--sample", type=click.IntRange(min=1), default=None,
                 help="Only N selected rows drawn at random (seed 0; for timing a subset)."),
    click.option("--jobs", type=int, default=None, help="Processes (default: the number of cores)."),
    click.option("--requests-per-client", type=int, default=10, show_default=True,
                 help="Requests per client (genai-perf --request-count = 10 x concurrency)."),
]


def _gpu_option(default: tuple):
    return click.option("--gpu", "gpus", multiple=True, default=default, show_default=bool(default),
                        callback=gpus_callback,
                        help="GPU(s) to keep (repeat; ids or aliases such as H100; default: "
                             + (", ".join(default) if default else "every GPU in the file") + ").")


def _with_common(f, gpus: tuple = ()):
    for opt in reversed([_common[0], _gpu_option(gpus), *_common[1:]]):
        f = opt(f)
    return f


def _with_common_hopper(f):
    """The calibration's default selection stays the Hopper rows its constants were fitted on."""
    return _with_common(f, ("h100_sxm", "h200_sxm"))


@click.group()
def validate():
    """Fidelity validation: replay measured benchmarks and report the error."""


@validate.command("silicon")
@_with_common
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/validate-silicon"),
              show_default=True)
@overwrite_option
@click.option("--calibration", default=None, metavar="FILE|none",
              help="Calibration file from `frontier-calib calibrate` (engine overheads, client desync); default: the "
                   "one shipped with the package (frontier_calib/data/calibration/default.yaml); 'none': the "
                   "physical defaults alone.")
@click.option("--assume-pd-layout", is_flag=True,
              help="Replay disagg rows without worker counts as 1 prefill + 1 decode worker (else skipped).")
def silicon_cmd(csv_path, gpus, engines, mode, model, limit, sample, jobs, requests_per_client, out, overwrite,
                calibration, assume_pd_layout):
    """Replay every selected row of the silicon benchmarks; write rows.csv, summary.json, report.md and plots."""
    from ..cost.calibration import calibration_path, read_calibration
    from .metrics import pct
    from .report import write_silicon_report
    from .runner import default_jobs, run_silicon
    from .silicon import Protocol

    check_output_dir(out, overwrite=overwrite)
    t0 = time.perf_counter()
    cal_path = calibration_path(calibration)
    cal = read_calibration(cal_path) if cal_path is not None else {}
    overheads, desync = cal.get("overheads"), cal.get("benchmark_desync")
    df_all, path = _load_csv(csv_path)
    df, selection = _select(df_all, gpus, engines, mode, model, limit, sample)
    if df.empty:
        raise InputError(f"no rows match the selection ({selection})", path=str(path))
    jobs = jobs or default_jobs()
    protocol = Protocol(requests_per_client=requests_per_client)
    click.echo(f"{len(df)} rows ({selection}) from {path}; {jobs} processes")
    rows, stats = run_silicon(df, overheads=overheads, desync=desync, protocol=protocol, jobs=jobs, progress=True,
                              assume_pd_layout=assume_pd_layout)
    stats["prepare_s"] = sum(stats.get("prepare", {}).get(k, 0.0) for k in ("plan_s", "models_and_tables_s"))
    stats["total_s"] = time.perf_counter() - t0
    meta = {**_csv_meta(path, df_all), "selection": selection, "command": _command_line(),
            "calibration": str(cal_path) if cal_path is not None else None, "overheads": overheads,
            "benchmark_desync": desync or {"all engines": protocol.desync}, "assume_pd_layout": assume_pd_layout,
            "protocol": vars(protocol), "protocol_text": PROTOCOL_TEXT.format(rpc=requests_per_client, rounds=protocol.rounds), "run": stats}
    summary = write_silicon_report(rows, out, meta=meta)
    cov, o = summary["coverage"], summary["overall"]
    click.echo(f"ok {cov['ok']}/{cov['total']} rows; TTFT MAPE {pct(o['ttft']['mape'])} (median "
               f"{pct(o['ttft']['median_ape'])}, bias {pct(o['ttft']['bias'], signed=True)}), TPOT MAPE "
               f"{pct(o['tpot']['mape'])} (median {pct(o['tpot']['median_ape'])}, bias "
               f"{pct(o['tpot']['bias'], signed=True)}); {stats['total_s']:.1f} s")
    click.echo(f"report -> {out}/report.md")


@validate.command("trace")
@click.option("--deployment", "-d", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Deployment YAML.")
@click.option("--trace", "-t", "trace_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Trace with measured per-request timings (vLLM --save-detailed JSON, inference-perf per_request_lifecycle_metrics.json, or measured_* columns).")
@click.option("--format", "fmt", default=None, help="Trace format (default: detected).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/validate-trace"),
              show_default=True)
@overwrite_option
@click.option("--seed", type=int, default=0, show_default=True)
def trace_cmd(deployment, trace_path, fmt, out, overwrite, seed):
    """Replay a measured trace and compare per request and in aggregate (with CDF overlays)."""
    from .metrics import pct
    from .trace import compare_trace, write_trace_report

    check_output_dir(out, overwrite=overwrite)
    result = compare_trace(deployment, trace_path, fmt=fmt, seed=seed, progress=False)
    summary = write_trace_report(result, out)
    agg = summary["aggregate"]
    for key in ("mean_ttft_ms", "p99_ttft_ms", "mean_tpot_ms", "mean_itl_ms", "mean_e2el_ms", "output_throughput",
                "prefix_cache_hit_share"):
        if key not in agg:
            continue
        a = agg[key]
        click.echo(f"{key:<22} measured {a['measured']:10.2f}  predicted {a['predicted']:10.2f}  "
                   f"({pct(a['error'], signed=True)})")
    click.echo(f"report -> {out}/report.md")


@validate.command("inference-perf")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--deployment", "-d", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Deployment YAML of the served model.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/validate-inference-perf"),
              show_default=True)
@overwrite_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the rebuilt stage requests.")
def inference_perf_cmd(folder, deployment, out, overwrite, seed):
    """Replay each stage of an inference-perf report folder (stage_<N>_lifecycle_metrics.json, config.yaml) and
    compare TTFT, NTPOT (latency per output token), E2E and throughput per stage. With per_request_lifecycle_metrics.json, prefer
    `validate trace -t` on that file (request by request)."""
    from .inference_perf import compare_stages, write_stage_report
    from .metrics import pct

    check_output_dir(out, overwrite=overwrite)
    result = compare_stages(deployment, folder, seed=seed)
    summary = write_stage_report(result, out)
    for _, r in result["stages"].iterrows():
        click.echo(f"stage {int(r['stage'])} at {r['rate']:.2f} req/s: TTFT mean {pct(r['mean_ttft_error'], signed=True)}, "
                   f"NTPOT mean {pct(r['mean_ntpot_error'], signed=True)}, E2E mean {pct(r['mean_e2el_error'], signed=True)}")
    click.echo(f"over {summary['stages']} stages: mean TTFT MAPE {pct(summary['mean_ttft_mape'])}, "
               f"mean NTPOT MAPE {pct(summary['mean_ntpot_mape'])}, mean E2E MAPE {pct(summary['mean_e2el_mape'])}")
    click.echo(f"report -> {out}/report.md")


@validate.command("run")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--gpu", default=None,
              help="The GPU the runs used, e.g. rtx_pro_6000_server (default: meta.json's hardware.device_name, which "
                   "newer LLMServingSim harnesses record; a folder without it needs --gpu).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/validate-run"),
              show_default=True)
@overwrite_option
@click.option("--seed", type=int, default=0, show_default=True)
def run_cmd(folders, gpu, out, overwrite, seed):
    """Replay measured run folders (requests.jsonl + meta.json; a folder of such folders stands for all of them,
    e.g. ../shared/validation/llmservingsim_rtxpro6000) and compare mean/median/P90/P99 TTFT, TPOT and E2E per
    run, beside another simulator's error when the folder has it."""
    from ..hardware import get_gpu
    from .metrics import pct
    from .run_folder import run_folders, run_gpu_from_meta
    from .run_report import compare_run, write_run_report

    gpu = get_gpu(gpu).name if gpu else None
    check_output_dir(out, overwrite=overwrite)
    results = []
    for f in run_folders(folders):
        run_gpu = gpu or run_gpu_from_meta(f)
        click.echo(f"replaying {f} on {run_gpu} ...")
        results.append(compare_run(f, run_gpu, seed=seed))
    table = write_run_report(results, out)
    for run, grp in table.groupby("run", sort=False):
        g = grp.set_index("metric")
        parts = []
        for m in ("mean_ttft_ms", "mean_tpot_ms", "mean_e2el_ms"):
            if m in g.index:
                other = g.loc[m, "other_error"]
                parts.append(f"{m.split('_')[1].upper()} {pct(g.loc[m, 'error'], signed=True)}"
                             + (f" (other simulator {pct(other, signed=True)})" if other == other else ""))
        click.echo(f"{run}: mean " + ", ".join(parts))
    click.echo(f"report -> {out}/report.md")


@click.command("calibrate")
@_with_common_hopper
@click.option("--train-fraction", type=float, default=0.5, show_default=True,
              help="Share of each engine's configurations on the training side.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the configuration split.")
@click.option("--seeds", "n_seeds", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Repeat the whole protocol on this many split seeds (SEED, SEED+1, ...) and report the spread of "
                   "the held-out error; the file keeps SEED's fit.")
@click.option("--params", "params_text", default="step_s,per_seq_s,frontend_s", show_default=True,
              help="Overhead fields to fit (comma-separated, from step_s, per_seq_s, frontend_s); the others keep "
                   "their physical defaults.")
@click.option("--max-rows", type=int, default=48, show_default=True,
              help="Training rows replayed per fit group while fitting (a subsample spread over configurations).")
@click.option("--fit-rounds", "fit_rounds", type=click.IntRange(1, 5), default=2, show_default=True,
              help="Gauss-Newton-like rounds of the overhead fit per group (each replays the subsample 4 times).")
@click.option("--group-by", type=click.Choice(["engine", "engine-gpu"]), default="engine", show_default=True,
              help="One set of constants per engine, or per engine x GPU (keys ENGINE@GPU; the split is "
                   "stratified the same way).")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="rows.csv of an uncalibrated `validate silicon` run of the same selection (skips one replay).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("calibration.yaml"),
              show_default=True, help="Calibration file to write (.yaml or .json).")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the split, both rows tables and the side-by-side report (default: next to --out).")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier run's calibration file and report folder (without it, they are refused).")
def calibrate_cmd(csv_path, gpus, engines, mode, model, limit, sample, jobs, requests_per_client, train_fraction, seed,
                  n_seeds, params_text, max_rows, fit_rounds, group_by, baseline, out, report_dir, overwrite):
    """Fit the per-engine overheads on a training split of the silicon rows; report held-out vs training error."""
    import pandas as pd

    from ..cost.calibration import write_calibration
    from .calibrate import calibrate
    from .report import write_calibration_report
    from .runner import default_jobs
    from .silicon import Protocol

    if not 0 < train_fraction < 1:
        raise click.BadParameter("must be in (0, 1)", param_hint="--train-fraction")
    from .calibrate import PARAMS

    params = tuple(p.strip() for p in str(params_text).split(",") if p.strip())
    bad = [p for p in params if p not in PARAMS]
    if bad or not params or len(set(params)) != len(params):
        raise InputError(f"unknown or repeated field(s) {bad or list(params)}", field="--params",
                         fix=f"a comma-separated subset of {', '.join(PARAMS)}")
    report_dir = report_dir or Path(out).with_suffix("")
    if Path(report_dir) == Path(out):
        raise InputError("the report folder would be the calibration file itself", field="--out",
                         fix="give --out a .yaml or .json suffix, or pass --report-dir")
    check_output_file(out, overwrite=overwrite)
    check_output_dir(report_dir, option="--report-dir", overwrite=overwrite)
    t0 = time.perf_counter()
    df_all, path = _load_csv(csv_path)
    df, selection = _select(df_all, gpus, engines, mode, model, limit, sample)
    if df.empty:
        raise InputError(f"no rows match the selection ({selection})", path=str(path))
    base = None
    if baseline is not None:
        base = pd.read_csv(baseline, dtype={"id": str})
        missing = sorted(set(df["id"]) - set(base["id"]))
        if missing:
            raise InputError(f"{len(missing)} selected rows are not in the baseline (first: {missing[0]})",
                             path=str(baseline), fix="run `validate silicon` with the same selection first")
    jobs = jobs or default_jobs()
    click.echo(f"{len(df)} rows ({selection}) from {path}; {jobs} processes")
    res = calibrate(df, train_fraction=train_fraction, seed=seed, max_rows=max_rows, jobs=jobs, progress=True,
                    protocol=Protocol(requests_per_client=requests_per_client), baseline=base, group_by=group_by,
                    rounds=fit_rounds, log=click.echo, params=params)
    errs = res["errors"]
    spread = None
    if n_seeds > 1:
        from .calibrate import seed_spread

        spread = seed_spread(df, range(seed + 1, seed + n_seeds), baseline=res["baseline_rows"], first=res,
                             train_fraction=train_fraction, max_rows=max_rows, jobs=jobs, progress=True,
                             protocol=Protocol(requests_per_client=requests_per_client), group_by=group_by,
                             rounds=fit_rounds, log=click.echo, params=params)

    def brief(block):
        o = block["overall"]
        return {m: {k: o[m][k] for k in ("n", "mape", "median_ape", "bias")} for m in ("ttft", "tpot")}

    provenance = {"command": _command_line(), **_csv_meta(path, df_all), "selection": selection,
                  "split": {"by": f"config_key (deployment without workload), per {group_by}", "seed": seed,
                            "train_fraction": train_fraction,
                            "train_configs": int(res["split"].loc[res["split"]["split"] == "train",
                                                                   "config_key"].nunique()),
                            "held_out_configs": int(res["split"].loc[res["split"]["split"] == "held_out",
                                                                      "config_key"].nunique())},
                  "group_by": group_by, "fit_rounds": fit_rounds, "params": list(params),
                  "fit_rows_per_group": {e: f["rows"] for e, f in res["fits"].items()},
                  "held_out": {"before": brief(errs["held_out"]["before"]), "after": brief(errs["held_out"]["after"])},
                  "train": {"before": brief(errs["train"]["before"]), "after": brief(errs["train"]["after"])}}
    if spread is not None:
        provenance["held_out_over_seeds"] = {k: spread[k] for k in ("ttft_mape", "tpot_mape", "ttft_mape_before",
                                                                    "tpot_mape_before")}
        provenance["held_out_over_seeds"]["seeds"] = [p["seed"] for p in spread["seeds"]]
    write_calibration(out, res["overheads"], benchmark_desync=res["desync"], provenance=provenance)
    write_calibration_report(res, report_dir, meta={**provenance, "seconds": time.perf_counter() - t0})
    from .metrics import pct

    for split in ("held_out", "train"):
        for when in ("before", "after"):
            o = errs[split][when]["overall"]
            click.echo(f"{split:>8} {when:>6}: TTFT MAPE {pct(o['ttft']['mape']):>7} median {pct(o['ttft']['median_ape']):>6}"
                       f" bias {pct(o['ttft']['bias'], signed=True):>7} | TPOT MAPE {pct(o['tpot']['mape']):>7} "
                       f"median {pct(o['tpot']['median_ape']):>6} bias {pct(o['tpot']['bias'], signed=True):>7}")
    if spread is not None:
        for key, name in (("ttft_mape", "TTFT"), ("tpot_mape", "TPOT")):
            sp, b = spread[key], spread[key + "_before"]
            click.echo(f"held-out {name} MAPE over {n_seeds} split seeds: calibrated mean {pct(sp['mean'])} "
                       f"(min {pct(sp['min'])}, max {pct(sp['max'])}); defaults mean {pct(b['mean'])}")
    click.echo(f"calibration -> {out}; report -> {report_dir}/report.md ({time.perf_counter() - t0:.0f} s)")
