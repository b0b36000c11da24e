"""`frontier-calib profiles ...`: list, show and import profile tables."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from ..hardware import GPUS
from ..io import check_output_dir
from ..names import gpu_id
from ..options import KnownName
from . import store
from .first_use import DEFAULT_DTYPES, check_coverage, importable_gpus, write_imported
from .importers import aiconfigurator as aic
from .schema import FAMILIES, family as get_family


@click.group()
def profiles():
    """List, show and import profile tables (canonical schema: profiles/README.md)."""


@profiles.command("list")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="Profile folder (default: the bundled profiles/ and the user data folder).")
def list_cmd(root):
    """Coverage: families x GPU x engine x dtype, with row counts, and where each table lives."""
    avail = store.available(root)
    if avail.empty:
        raise click.ClickException(f"no profile tables under {store.describe_roots(root)}")
    names = {str(store.bundled_root()): "bundled", str(store.user_data_root()): "user data"}
    rows = []
    for r in avail.itertuples():
        df = store.read_table(Path(r.path), r.family)
        grp = get_family(r.family).group_column or "dtype"
        dts = ",".join(sorted(df[grp].unique())) if grp in df else "-"
        rows.append({"gpu": r.gpu, "engine": r.engine, "family": r.family, "dtypes": dts, "rows": len(df)})
        if root is None:  # two folders: say which one holds the table
            rows[-1]["where"] = names.get(r.root, r.root)
    click.echo(f"profile tables under {store.describe_roots(root)}\n")
    click.echo(pd.DataFrame(rows).to_string(index=False))
    if root is None:
        for label, folder in (("bundled", store.bundled_root()), ("user data", store.user_data_root())):
            click.echo(f"\n{label}: {folder}", nl=False)
        click.echo("")
        later = sorted(g for g in set(importable_gpus()) - set(avail["gpu"]) if g in GPUS)  # with a spec
        if later:
            click.echo(f"imported on first use (from {aic.SOURCE_PACKAGE}): {', '.join(later)}")


@profiles.command("show")
@click.option("--gpu", required=True)
@click.option("--engine", required=True)
@click.option("--family", "family_name", type=KnownName("operator family", FAMILIES), default=None,
              help="One family (default: all of this GPU/engine).")
@click.option("--root", type=click.Path(path_type=Path), default=None)
def show_cmd(gpu, engine, family_name, root):
    """Shape ranges, kernels and dtypes of the tables for one GPU/engine."""
    gpu = gpu_id(gpu)  # aliases (H100) -> the id the tables are filed under
    check_coverage(gpu, engine, root)   # imports a first-use GPU when root is None
    fams = [family_name] if family_name else list(FAMILIES)
    shown = 0
    for fam_name in fams:
        try:
            df = store.load_family(fam_name, gpu, engine, root)
        except Exception:
            if family_name:
                raise
            continue
        shown += 1
        fam = get_family(fam_name)
        click.echo(f"== {fam_name} ({len(df)} rows) - {fam.doc}")
        grp = fam.group_column
        for key, sub in (df.groupby(grp) if grp else [("all", df)]):
            kernels = ", ".join(f"{k} ({n})" for k, n in sub["kernel"].value_counts().items())
            click.echo(f"  [{grp or 'all'}={key}] {len(sub)} rows; kernels: {kernels}")
            for col in fam.shape_columns:
                vals = sub[col]
                click.echo(f"      {col:>14}: {vals.min()} .. {vals.max()} ({vals.nunique()} distinct)")
            click.echo(f"      {'latency_ms':>14}: {sub['latency_ms'].min():.4g} .. {sub['latency_ms'].max():.4g}")
    if not shown:
        raise click.ClickException(f"no tables for gpu={gpu} engine={engine} under {store.describe_roots(root)}")


@profiles.group("import")
def import_group():
    """Regenerate canonical tables from another tool's public data."""


@import_group.command("aiconfigurator")
@click.option("--gpu", "gpus", multiple=True, required=True, help="GPU id(s) as in the source, e.g. h100_sxm.")
@click.option("--engine", "engines", multiple=True, type=KnownName("engine", aic.ENGINES), default=aic.ENGINES,
              show_default=True)
@click.option("--dtype", "dtypes", multiple=True, default=DEFAULT_DTYPES, show_default=True,
              help="GEMM/MoE dtypes to keep (others are dropped to keep the bundle small).")
@click.option("--source", type=click.Path(exists=True, path_type=Path), default=None,
              help="aiconfigurator 'systems' folder (default: from the installed aiconfigurator-core).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Destination profile folder (default: the bundled profiles/).")
def import_aiconfigurator(gpus, engines, dtypes, source, out):
    """Convert aiconfigurator-core's kernel tables (pip install -e .[public-data])."""
    out = out or store.bundled_root()
    check_output_dir(out, option="--out")
    version = aic.package_version() if source is None else f"from {source}"
    # convert everything first: a source problem stops the import before any file is replaced
    tables = [t for gpu in gpus for t in aic.import_gpu(gpu, engines=engines, source=source, dtypes=set(dtypes))]
    entries = write_imported(tables, Path(out), version=version, echo=click.echo)
    click.echo(f"wrote {len(entries)} tables and {Path(out) / 'manifest.json'}")
