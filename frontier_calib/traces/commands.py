"""``frontier-calib traces ...``: inspect trace files and generate synthetic ones from YAML specs."""

from __future__ import annotations

import click

from ..io import check_output_file
from ..options import KnownName, hash_block_size_option
from .detect import FORMATS, detect_format
from .loader import load_trace
from .native import write_trace
from .spec import load_spec, trace_from_spec
from .stats import format_summary, summarize


@click.group()
def traces() -> None:
    """Inspect request traces and generate synthetic ones."""


@traces.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "format_", type=KnownName("trace format", FORMATS),
              help="Trace format (default: detect from content).")
@hash_block_size_option
def show(path: str, format_: str | None, hash_block_size: int | None) -> None:
    """Print the format, size, arrival rate, token-length percentiles and prefix sharing of a trace."""
    fmt = format_ or detect_format(path)
    trace = load_trace(path, fmt, **({} if hash_block_size is None else {"hash_block_size": hash_block_size}))
    click.echo(f"format: {fmt}" + ("" if format_ else " (detected)"))
    click.echo(f"source: {trace.source}")
    click.echo(format_summary(summarize(trace)))


@traces.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output trace file: .csv, .jsonl or .parquet (native format).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file (without it, one is refused).")
def generate(spec: str, out: str, overwrite: bool) -> None:
    """Generate a synthetic trace from a YAML SPEC (see frontier_calib/traces/spec.py) into --out."""
    check_output_file(out, overwrite=overwrite)
    trace = trace_from_spec(load_spec(spec), spec_path=spec)
    write_trace(trace, out)
    click.echo(f"wrote {trace.num_requests} requests to {out}")


if __name__ == "__main__":  # until the group is registered in frontier_calib.cli
    traces()
