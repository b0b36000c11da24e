"""`frontier-calib fit`: fit every operator family for one GPU/engine and report held-out accuracy."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from ..io import check_output_dir, check_output_file, write_json
from ..names import gpu_id
from ..options import KnownName
from ..profiles.schema import FAMILIES
from ..profiles.first_use import check_coverage
from ..cache_folder import cache_dir
from .registry import fit_all, save_to_cache
from .screen import RULE


@click.command()
@click.option("--gpu", required=True, help="GPU id, e.g. h100_sxm (see `frontier-calib profiles list`).")
@click.option("--engine", required=True, help="Engine whose kernel tables to fit: vllm, sglang, trtllm, ...")
@click.option("--profiles", "root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Profile folder (default: the bundled profiles/).")
@click.option("--family", "families", multiple=True, type=KnownName("operator family", FAMILIES),
              help="Only these operator families (default: all).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to save the fitted model set (default: the user cache, used by replay).")
@click.option("--report-json", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the accuracy report as JSON.")
@click.option("--no-baselines", is_flag=True, help="Skip the random-forest and roofline baselines.")
@click.option("--seed", type=int, default=0, show_default=True)
def fit(gpu, engine, root, families, out, report_json, no_baselines, seed):
    """Fit one XGBoost latency model per (operator family, dtype group) and print their accuracy.

    Each model is fitted on 80% of its table; the 20% it never saw give the `random` split error,
    and a second fit with whole shape groups held out gives the `extrapolation` error. Measurement glitches
    (rows several times slower than both neighbours along a shape column) are screened out of each table first,
    for every model alike, and counted in the output.
    """
    gpu = gpu_id(gpu)  # aliases (H100) -> the id the tables are filed under
    check_coverage(gpu, engine, root)
    check_output_dir(out if out is not None else cache_dir(), option="--out" if out is not None else "model cache")
    if report_json:
        check_output_file(report_json, option="--report-json")
    report = fit_all(gpu, engine, root=root, families=list(families) or None, seed=seed,
                     with_baselines=not no_baselines, progress=True)
    ms = report.model_set
    if out is None:  # the per-user cache, one folder per family, where replay looks (cached_model_set)
        save_to_cache(ms, root)
        out = cache_dir() / "models" / gpu / engine
    else:
        ms.save(out)
    table = pd.DataFrame(report.results)
    if not table.empty:
        wide = table.pivot_table(index=["op", "dtype", "split"], columns="model",
                                 values=["median_ape", "p90_ape"], aggfunc="first")
        wide.columns = [f"{model}_{stat.replace('_ape', '')}" for stat, model in wide.columns]
        wide = wide[[c for c in ("xgboost_median", "xgboost_p90", "random_forest_median", "random_forest_p90",
                                 "roofline_median", "roofline_p90") if c in wide.columns]]
        rows = table.drop_duplicates(["op", "dtype", "split"]).set_index(["op", "dtype", "split"])["rows"]
        wide.insert(0, "test_rows", rows)
        click.echo("\nHeld-out absolute percentage error (fractions: 0.02 = 2%)")
        click.echo((wide.reset_index()).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    click.echo(f"\nMeasurement-glitch screen ({RULE}):")
    for fam, (n_screened, n_rows) in sorted(report.screened.items()):
        click.echo(f"  {fam}: {n_screened} of {n_rows} rows screened")
    for (fam, grp), why in sorted(ms.not_fitted.items()):
        click.echo(f"  {fam}/{grp}: not fitted, {why}")
    click.echo(f"\nfitted {len(ms.models)} models in {report.fit_seconds:.1f} s -> {out}")
    if report_json:
        write_json({"gpu": gpu, "engine": engine, "fit_seconds": round(report.fit_seconds, 2),
                    "kernels": ms.kernels, "results": report.results,
                    "screen": {"rule": RULE, "families": {fam: {"rows": n_rows, "screened": n_screened}
                                                          for fam, (n_screened, n_rows) in report.screened.items()},
                               "not_fitted": [{"family": f, "group": g, "reason": why}
                                              for (f, g), why in sorted(ms.not_fitted.items())]}}, report_json)
        click.echo(f"report -> {report_json}")
