"""`frontier-calib replay` and `frontier-calib demo`: a trace through a deployment, results on disk."""

from __future__ import annotations

import time
from pathlib import Path

import click

from .io import check_output_dir, staged_output, write_json, write_table
from .options import hash_block_size_option, overwrite_option

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_DEPLOYMENT = REPO_ROOT / "deployments" / "llama2-7b-h100-vllm.yaml"
DEMO_TRACE = REPO_ROOT / "traces" / "poisson_lognormal_1k.csv"

SUMMARY_ROWS = [("completed", "{:.0f}"), ("failed", "{:.0f}"), ("duration", "{:.2f} s"),
                ("request_throughput", "{:.3f} req/s"), ("output_throughput", "{:.1f} tok/s"),
                ("mean_ttft_ms", "{:.1f}"), ("median_ttft_ms", "{:.1f}"), ("p99_ttft_ms", "{:.1f}"),
                ("mean_tpot_ms", "{:.2f}"), ("median_tpot_ms", "{:.2f}"), ("p99_tpot_ms", "{:.2f}"),
                ("mean_itl_ms", "{:.2f}"), ("p99_itl_ms", "{:.2f}"), ("mean_e2el_ms", "{:.1f}"),
                ("p99_e2el_ms", "{:.1f}")]


def run_replay(deployment: Path, trace_path: Path, *, out: Path, fmt: str | None = None, limit: int | None = None,
               seed: int = 0, timeline: bool = False, requests_format: str = "parquet", progress: bool = True,
               hash_block_size: int | None = None):
    """Replay and write ``requests.<fmt>``, ``summary.json`` (and ``timeline.json``) into ``out``, replacing
    whatever ``out`` held (the command refuses an earlier run there unless --overwrite, before calling this)."""
    from .deployment import build_replicas, cost_summary, load_deployment, simulate_deployment  # heavy: not for --help
    from .traces import load_trace

    t0 = time.perf_counter()
    dep = load_deployment(deployment)
    options = {} if hash_block_size is None else {"hash_block_size": hash_block_size}
    trace = load_trace(trace_path, fmt, limit=limit, **options)
    click.echo(dep.describe())
    click.echo(f"trace: {trace_path} ({trace.num_requests:,} requests)")
    replicas, cost = build_replicas(dep, progress=progress)
    result = simulate_deployment(dep, trace, replicas, seed=seed, progress=progress, timeline=timeline)
    wall = time.perf_counter() - t0
    summary = dict(result.summary)
    summary.update({"deployment": str(deployment), "trace": str(trace_path), "seed": seed,
                    "model": dep.worker.model.name, "gpu": dep.worker.gpu, "engine": dep.worker.engine,
                    "num_gpus": dep.total_gpus, "kv_blocks_per_rank": dep.memory.kv_blocks,
                    "simulation_stats": result.stats, "wall_seconds": round(wall, 3)})
    summary.update(cost_summary(dep, cost))   # the mode's own entries (AF: per-pool utilisation, pipeline bubbles)
    # Every file goes into a staging folder first, which replaces `out` as a whole only when all were written:
    # a failure (disk full, an unserialisable value) never leaves a partial result set, nor an older run's files.
    with staged_output(out) as staging:
        write_table(result.requests, staging / f"requests.{requests_format}")
        write_json(summary, staging / "summary.json")
        if timeline and result.timeline is not None:
            write_json({"traceEvents": result.timeline, "displayTimeUnit": "ms"}, staging / "timeline.json",
                       indent=None)
    return result, summary


def print_summary(summary: dict) -> None:
    click.echo("\n============ Serving Benchmark Result (simulated) ============")
    for key, fmt in SUMMARY_ROWS:
        if key in summary and summary[key] is not None:
            click.echo(f"{key:<28}{fmt.format(summary[key]):>20}")
    click.echo("=" * 62)


@click.command()
@click.option("--deployment", "-d", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Deployment YAML (see deployments/ and docs/deployments.md).")
@click.option("--trace", "-t", "trace_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Trace file: native CSV/Parquet/JSONL, Mooncake JSONL, Azure CSV, BurstGPT CSV, vLLM bench JSON.")
@click.option("--format", "fmt", default=None, help="Trace format (default: detected from content).")
@click.option("--limit", type=int, default=None, help="Replay only the first N requests.")
@hash_block_size_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/replay"), show_default=True)
@overwrite_option
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--timeline", is_flag=True, help="Also write a Chrome-trace/Perfetto timeline.json of iterations.")
@click.option("--csv", "as_csv", is_flag=True, help="Write requests.csv instead of requests.parquet.")
def replay(deployment, trace_path, fmt, limit, hash_block_size, out, overwrite, seed, timeline, as_csv):
    """Replay a request trace through a deployment; write per-request timings and a vLLM-style summary."""
    check_output_dir(out, overwrite=overwrite)
    _, summary = run_replay(deployment, trace_path, out=out, fmt=fmt, limit=limit, seed=seed, timeline=timeline,
                            requests_format="csv" if as_csv else "parquet", hash_block_size=hash_block_size)
    print_summary(summary)
    click.echo(f"results -> {out}/ (wall {summary['wall_seconds']:.2f} s)")


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("out/demo"), show_default=True)
@overwrite_option
def demo(out, overwrite):
    """Replay the bundled sample trace through the bundled Llama-2-7B / H100 / vLLM deployment.

    The first run fits the operator models it needs (about a minute on 2 cores) and caches them.
    """
    check_output_dir(out, overwrite=overwrite)
    _, summary = run_replay(DEMO_DEPLOYMENT, DEMO_TRACE, out=out, timeline=True)
    print_summary(summary)
    click.echo(f"results -> {out}/ (requests.parquet, summary.json, timeline.json)")
