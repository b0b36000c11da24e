"""Speed benchmark (issue 4): replay 10,000 Azure-conversation requests through Llama-2-7B on one H100.

Workload: the first 10,000 requests of ../shared/traces/azure_llm_inference_2023_conv.csv (their input
and output lengths), re-timed with Poisson arrivals at 6.45 req/s (seed 0); vLLM policy, chunked prefill
512 tokens, max_num_seqs 128 (deployments/llama2-7b-h100-vllm.yaml). Prints wall time end to end
(imports excluded, cost tables loaded from the cache; the first run fits and caches them), simulated
requests per second, and peak RSS.

    python benchmarks/bench_replay_azure.py [--trace PATH] [--requests 10000] [--rate 6.45]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", default=str(REPO.parent / "shared" / "traces" / "azure_llm_inference_2023_conv.csv"))
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=6.45)
    ap.add_argument("--deployment", default=str(REPO / "deployments" / "llama2-7b-h100-vllm.yaml"))
    args = ap.parse_args()
    if not Path(args.trace).exists():
        print(f"trace not found: {args.trace} (the shared traces sit next to the repository)", file=sys.stderr)
        return 2

    from frontier_calib.deployment import build_replicas, load_deployment
    from frontier_calib.sim import simulate
    from frontier_calib.traces import load_trace
    from frontier_calib.traces.arrivals import poisson

    # warm the cost-table cache outside the timed region (first run only)
    build_replicas(load_deployment(args.deployment))

    t0 = time.perf_counter()
    dep = load_deployment(args.deployment)
    trace = load_trace(args.trace, limit=args.requests)
    trace = trace.with_arrivals(poisson(args.rate).sample(trace.num_requests, seed=0))
    replicas, _ = build_replicas(dep)
    t1 = time.perf_counter()
    result = simulate(trace, replicas, router=dep.router, seed=0)
    t2 = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = result.summary
    print(f"requests: {trace.num_requests} (completed {s['completed']}, rejected {s.get('failed', 0)})")
    print(f"setup (deployment + trace + cost tables): {t1 - t0:.3f} s")
    print(f"simulation: {t2 - t1:.3f} s  ({trace.num_requests / (t2 - t1):,.0f} simulated requests/s)")
    print(f"end to end: {t2 - t0:.3f} s")
    print(f"peak RSS: {rss_mb:.0f} MB")
    print(f"simulated: duration {s['duration']:.1f} s, mean TTFT {s['mean_ttft_ms']:.1f} ms, "
          f"mean TPOT {s['mean_tpot_ms']:.2f} ms, stats {result.stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
