"""Speed and memory of the replay engine alone (analytic LinearCost, no fitted models).

Workload shaped like the project benchmark: the first 10,000 requests of the Azure LLM inference 2023
conversation trace (lengths only), Poisson arrivals at 6.45 req/s, one replica, vLLM policy with
max_num_batched_tokens 512, max_num_seqs 128, block size 16, ~7,000 KV blocks (Llama-2-7B on one H100 at
gpu_memory_utilization 0.9). Falls back to lognormal lengths with the same means when the trace file is absent.

    python benchmarks/bench_sim_engine.py [--n 10000] [--rate 6.45] [--policy vllm] [--no-fast-forward]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np

AZURE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "azure_llm_inference_2023_conv.csv"


def lengths(n: int, seed: int):
    if AZURE.exists():
        import pandas as pd
        df = pd.read_csv(AZURE, nrows=n, usecols=["ContextTokens", "GeneratedTokens"])
        return df["ContextTokens"].to_numpy(), df["GeneratedTokens"].to_numpy(), AZURE.name
    rng = np.random.default_rng(seed)
    inp = np.clip(rng.lognormal(np.log(900), 0.8, n), 2, 14000).astype(np.int64)
    out = np.clip(rng.lognormal(np.log(170), 0.7, n), 1, 1000).astype(np.int64)
    return inp, out, "synthetic lognormal"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=6.45)
    ap.add_argument("--policy", default="vllm")
    ap.add_argument("--kv-blocks", type=int, default=7000)
    ap.add_argument("--no-fast-forward", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
    from frontier_calib.sim.testing import make_trace

    inp, out, source = lengths(args.n, args.seed)
    rng = np.random.default_rng(args.seed)
    arrival = np.cumsum(rng.exponential(1.0 / args.rate, size=len(inp)))
    trace = make_trace(arrival, inp, out, source=source)
    cfg = SchedulerConfig(policy=args.policy, max_num_batched_tokens=512, max_num_seqs=128, max_model_len=16384,
                          block_size=16, num_kv_blocks=args.kv_blocks, enable_prefix_caching=True)
    t1 = time.perf_counter()
    res = simulate(trace, [ReplicaSpec(cfg, LinearCost())], fast_forward=not args.no_fast_forward)
    t2 = time.perf_counter()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s, st = res.summary, res.stats
    print(f"trace: {source}, {len(inp)} requests, {int(np.sum(out)):,} output tokens, policy {args.policy}")
    print(f"simulate wall: {t2 - t1:.3f} s  (engine loop {st['wall_s']:.3f} s); end to end incl. imports and "
          f"trace: {t2 - t0:.3f} s")
    print(f"simulated requests/s: {len(inp) / (t2 - t1):,.0f};  engine steps: {st['steps']:,} "
          f"({st['steps'] / (t2 - t1):,.0f} steps/s), cost-model calls: {st['cost_calls']:,}, "
          f"preemptions: {st['preemptions']}")
    print(f"peak RSS: {rss_mb:.0f} MB")
    print(f"simulated: duration {s['duration']:.1f} s, mean TTFT {s['mean_ttft_ms']:.1f} ms, "
          f"mean TPOT {s['mean_tpot_ms']:.2f} ms, p99 ITL {s['p99_itl_ms']:.2f} ms")


if __name__ == "__main__":
    main()
