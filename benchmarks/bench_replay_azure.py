"""Speed benchmark (issue 4, issue 15): replay 10,000 Azure-conversation requests through Llama-2-7B on one H100.

Workload: the first 10,000 requests of ../shared/traces/azure_llm_inference_2023_conv.csv (their input
and output lengths), re-timed with Poisson arrivals at 6.45 req/s (seed 0); vLLM policy, chunked prefill
512 tokens, max_num_seqs 128 (deployments/llama2-7b-h100-vllm.yaml). Prints the start-up (interpreter and
imports), the setup (deployment, trace, cost tables from the cache; the first run fits and caches them), the
simulation, the process wall time from exec to the end, simulated requests per second and peak RSS.

Comparison with Vidur (microsoft/vidur, the simulator the README compares with):

* without ``--vs-vidur``: prints the reference recorded in the README's measurement notes (Vidur on the same
  workload on this machine class: 34.5 s wall, 2.1 GB, plus about 36 minutes of random-forest training on its
  first run) and the ratio to this run;
* ``--vs-vidur PATH``: PATH is a Vidur checkout with its requirements installed (``--vidur-python`` picks the
  interpreter, default this one). The same requests (lengths and arrival times) are written as a Vidur
  ``trace_replay`` CSV and Vidur's own CLI (``python -m vidur.main``, run in the checkout, where its profiling
  data lives) replays them on one H100 (``h100`` / ``h100_dgx``), TP1, Sarathi scheduler (chunked prefill 512,
  batch cap 128: vLLM V1's chunked-prefill policy); the wall time of that process is compared with this one's.
  Vidur's first run trains its random forests (about 36 minutes) and caches them in the checkout's ``cache/``;
  time a second run. Vidur shortens prompts that do not fit its ``max_tokens`` (4,096, Llama-2's context)
  where frontier-calib rejects those requests; both count. ``--vidur-arg`` passes more flags (repeat), e.g. for a
  Vidur version whose flag names differ.

    python benchmarks/bench_replay_azure.py [--trace PATH] [--requests 10000] [--rate 6.45] [--vs-vidur PATH]
"""

from __future__ import annotations

import time

T_SCRIPT = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: Vidur on this workload, this machine class (2 cores): README measurement notes / benchmarks/README.md
VIDUR_REFERENCE_S = 34.5
VIDUR_REFERENCE_RSS_GB = 2.1
VIDUR_MAX_TOKENS = 4096


def process_age_s() -> float | None:
    """Seconds since this process was exec'd (Linux /proc; None elsewhere): the wall time including start-up."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])   # field 22 (starttime), counted after the command name
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def vidur_checkout(path: str) -> Path:
    """The Vidur checkout at ``path``, or exit with a one-line error saying what is missing."""
    p = Path(path).expanduser()
    if not (p / "vidur" / "main.py").is_file():
        what = "does not exist" if not p.exists() else "has no vidur/main.py"
        sys.exit(f"bench_replay_azure: --vs-vidur {path}: {what}; pass a Vidur checkout (git clone of "
                 "microsoft/vidur with its requirements installed), or leave --vs-vidur out to compare with the "
                 f"recorded reference ({VIDUR_REFERENCE_S} s)")
    return p.resolve()


def write_vidur_trace(trace, path: Path) -> None:
    """The requests as a Vidur ``trace_replay`` CSV. Current Vidur reads ``arrived_at`` (s),
    ``num_prefill_tokens`` and ``num_decode_tokens``; earlier releases read ``Time``, ``PromptTokenCount``,
    ``CompletionTokenCount`` and keep the rows whose ``Date`` is their default date (2023-08-21): both sets are
    written, so either reads the same requests without extra flags."""
    df = trace.requests
    with open(path, "w") as fh:
        fh.write("arrived_at,num_prefill_tokens,num_decode_tokens,Date,Time,PromptTokenCount,CompletionTokenCount\n")
        for t, i, o in zip(df["arrival_s"].tolist(), df["input_tokens"].tolist(), df["output_tokens"].tolist()):
            fh.write(f"{t!r},{int(i)},{int(o)},2023-08-21,{t!r},{int(i)},{int(o)}\n")


def vidur_command(python: str, trace_csv: Path, out_dir: Path, extra: list) -> list:
    """Vidur's CLI for the same deployment: ``vidur/config/flat_dataclass.py`` turns every config field into
    ``--<snake_case config class>_<field>`` (``--trace_request_generator_config_trace_file``) and every polymorphic
    config into a ``--<field>_type`` choice (``--request_generator_config_type trace_replay``)."""
    return [python, "-m", "vidur.main",
            "--replica_config_device", "h100", "--replica_config_network_device", "h100_dgx",
            "--replica_config_model_name", "meta-llama/Llama-2-7b-hf",
            "--replica_config_tensor_parallel_size", "1", "--cluster_config_num_replicas", "1",
            "--request_generator_config_type", "trace_replay",
            "--trace_request_generator_config_trace_file", str(trace_csv),
            "--trace_request_generator_config_prefill_scale_factor", "1",
            "--trace_request_generator_config_decode_scale_factor", "1",
            "--trace_request_generator_config_time_scale_factor", "1",
            "--trace_request_generator_config_max_tokens", str(VIDUR_MAX_TOKENS),
            "--replica_scheduler_config_type", "sarathi",
            "--sarathi_scheduler_config_chunk_size", "512", "--sarathi_scheduler_config_batch_size_cap", "128",
            "--output_dir", str(out_dir), *extra]


def run_vidur(checkout: Path, python: str, trace, extra: list) -> tuple[float, float | None]:
    """(wall seconds, peak RSS GB or None) of Vidur replaying ``trace``; exits with a one-line error if it fails."""
    with tempfile.TemporaryDirectory(prefix="vidur_bench_") as tmp:
        csv = Path(tmp) / "azure_conv_trace_replay.csv"
        write_vidur_trace(trace, csv)
        cmd = vidur_command(python, csv, Path(tmp) / "out", extra)
        env = dict(os.environ, PYTHONPATH=str(checkout) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
        except OSError as exc:
            sys.exit(f"bench_replay_azure: cannot start Vidur with {python!r}: {exc.strerror}; pass --vidur-python")
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"bench_replay_azure: Vidur exited with status {proc.returncode}: {last[:300]} "
                 f"(command: {' '.join(cmd[:3])} ...; see --vidur-arg for flags your Vidur version names otherwise)")
    return wall, (peak / 1024 / 1024 if peak > before else None)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", default=str(REPO.parent / "shared" / "traces" / "azure_llm_inference_2023_conv.csv"))
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=6.45)
    ap.add_argument("--deployment", default=str(REPO / "deployments" / "llama2-7b-h100-vllm.yaml"))
    ap.add_argument("--vs-vidur", metavar="PATH", help="a Vidur checkout: run Vidur on the same requests")
    ap.add_argument("--vidur-python", default=sys.executable, help="interpreter with Vidur's requirements")
    ap.add_argument("--vidur-arg", action="append", default=[], help="extra flag for vidur.main (repeat)")
    args = ap.parse_args()
    checkout = vidur_checkout(args.vs_vidur) if args.vs_vidur else None
    if not Path(args.trace).exists():
        print(f"trace not found: {args.trace} (the shared traces sit next to the repository)", file=sys.stderr)
        return 2

    t_imp = time.perf_counter()
    from frontier_calib.deployment import build_replicas, load_deployment
    from frontier_calib.sim import simulate
    from frontier_calib.traces import load_trace
    from frontier_calib.traces.arrivals import poisson

    t0 = time.perf_counter()
    dep = load_deployment(args.deployment)
    trace = load_trace(args.trace, limit=args.requests)
    trace = trace.with_arrivals(poisson(args.rate).sample(trace.num_requests, seed=0))
    replicas, _ = build_replicas(dep)   # cost tables from the cache (the first run fits and caches them)
    t1 = time.perf_counter()
    result = simulate(trace, replicas, router=dep.router, seed=0)
    t2 = time.perf_counter()
    age = process_age_s()
    total = age if age is not None else t2 - T_SCRIPT
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = result.summary
    print(f"requests: {trace.num_requests} (completed {s['completed']}, rejected {s.get('failed', 0)})")
    print(f"start-up: interpreter {total - (t2 - t_imp):.3f} s + imports {t0 - t_imp:.3f} s")
    print(f"setup (deployment + trace + cost tables): {t1 - t0:.3f} s")
    print(f"simulation: {t2 - t1:.3f} s  ({trace.num_requests / (t2 - t1):,.0f} simulated requests/s)")
    print(f"end to end after imports: {t2 - t0:.3f} s")
    print(f"process wall, start-up included: {total:.3f} s")
    print(f"peak RSS: {rss_mb:.0f} MB")
    print(f"simulated: duration {s['duration']:.1f} s, mean TTFT {s['mean_ttft_ms']:.1f} ms, "
          f"mean TPOT {s['mean_tpot_ms']:.2f} ms, steps {result.stats['steps']:,}")
    if checkout is None:
        print(f"Vidur (recorded reference, same workload, 2 cores; README measurement notes): "
              f"{VIDUR_REFERENCE_S} s, {VIDUR_REFERENCE_RSS_GB} GB -> {VIDUR_REFERENCE_S / total:.1f}x this run "
              "(--vs-vidur PATH runs it here)")
        return 0
    longer = int(((trace.requests["input_tokens"] + trace.requests["output_tokens"]) > VIDUR_MAX_TOKENS).sum())
    print(f"running Vidur from {checkout} ... ({longer} requests exceed {VIDUR_MAX_TOKENS} tokens: Vidur shortens "
          "their prompts, frontier-calib rejects them)", flush=True)
    v_wall, v_rss = run_vidur(checkout, args.vidur_python, trace, args.vidur_arg)
    rss = f", peak RSS {v_rss:.2f} GB" if v_rss is not None else ""
    print(f"Vidur: {v_wall:.1f} s wall{rss} -> {v_wall / total:.1f}x this run ({total:.2f} s)")
    return 0


if __name__ == "__main__":
    code = main()
    from frontier_calib.shutdown import skip_exit_collections

    skip_exit_collections()   # as the CLI does: the interpreter's exit skips collecting what is alive now
    sys.exit(code)
