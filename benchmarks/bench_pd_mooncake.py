"""Speed benchmark: the Mooncake conversation trace through a 16-GPU PD DeepSeek-V3 deployment on H200 (1P1D).

    python benchmarks/bench_pd_mooncake.py [--limit N] [--deployment D.yaml]

Prints the wall time of the replay (the timed part), its CPU time (the steadier figure on a loaded machine) and the
peak RSS of the process. Building the cost models
(the first run fits the MLA / MoE / GEMM operator models and caches them; later runs load cached tables) happens
before the timer starts and is printed separately.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO.parent / "shared" / "traces" / "mooncake_conversation_trace.jsonl"
DEPLOYMENT = REPO / "deployments" / "deepseek-v3-h200-sglang-pd-1p1d.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace", type=Path, default=TRACE)
    ap.add_argument("--deployment", type=Path, default=DEPLOYMENT)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    from frontier_calib.deployment import build_replicas, load_deployment
    from frontier_calib.sim import simulate
    from frontier_calib.traces import load_trace

    t0 = time.perf_counter()
    dep = load_deployment(args.deployment)
    specs, _ = build_replicas(dep)
    trace = load_trace(args.trace, None, limit=args.limit)
    setup = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    res = simulate(trace, specs, router=dep.router, ttft=dep.ttft)
    wall, cpu = time.perf_counter() - t1, time.process_time() - c1
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = res.summary
    print(dep.describe())
    print(f"requests {trace.num_requests:,}  completed {s['completed']:,}  failed {s['failed']:,}")
    print(f"mean TTFT {s['mean_ttft_ms']:.1f} ms  mean TPOT {s['mean_tpot_ms']:.2f} ms  "
          f"mean KV transfer {s['mean_kv_transfer_ms']:.2f} ms  mean KV wait {s['mean_kv_transfer_wait_ms']:.2f} ms")
    print(f"pools busy: " + ", ".join(f"{k} {v['busy_fraction']:.2f}" for k, v in res.stats['pools'].items()))
    print(f"setup (load + cost models) {setup:.1f} s  |  replay wall {wall:.2f} s (CPU {cpu:.2f} s)  |  "
          f"peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
