"""Fidelity check against DeepSeek's published serving figures: DeepSeek-V3/R1 on H800, PD with large EP.

    python benchmarks/bench_published_deepseek.py [--scale 1.0] [--mtp]

Source (the figures quoted in docs/validation.md, "Published disaggregated results"): DeepSeek, "Day 6: One More
Thing, DeepSeek-V3/R1 Inference System Overview" (github.com/deepseek-ai/open-infra-index, 202502OpenSourceWeek,
2025-03-01), section "Online Service Statistics" (24 h, 2025-02-27 12:00 to 02-28 12:00 UTC+8):

* 608 B input tokens, 342 B (56.3 %) of them hits of the on-disk KV cache; 168 B output tokens;
* average output speed 20-22 tokens/s per request; average KV-cache length per output token 4,989 tokens;
* each H800 node delivers on average ~73.7 k input tokens/s during prefill (cache hits included) or ~14.8 k
  output tokens/s during decoding.

The layout (prefill units EP32/DP32 on 4 nodes, decode units EP144/DP144 on 18 nodes, 32 redundant experts, FP8
GEMMs and dispatch, dual micro-batch overlap) is ``deployments/deepseek-v3-h800-sglang-pd-ep32-ep144.yaml``.

The operating point is derived from the published figures only (printed by the script):

* prompt and output lengths: mean input / mean output = 608 / 168, and the mean KV length per output token
  E[I] + E[O^2] / (2 E[O]) = 4,989 (independent lognormal lengths, sigma 0.5; one output token attends to the
  prompt and the outputs before it);
* prefix-cache hits: every prompt starts with one of a few shared prefixes (``hash_ids``, SGLang's radix cache)
  sized for 56.3 % of the prompt tokens (the realised hit rate is printed);
* decode batch per GPU = per-node output rate / 8 GPUs / per-request speed (21 tokens/s, the middle of 20-22):
  88 sequences; the replay's clients keep that many requests per decode GPU (the realised mean is printed).

Two replays of the deployment (one prefill unit and one decode unit: per-node throughput is a property of one
unit; DeepSeek runs as many units as load needs):

1. prefill: a burst of prompts (all arrive at t = 0, two output tokens each) keeps the prefill unit saturated;
   the input rate is the prompt tokens (cache hits included) of the prompts whose prefill ends between the 10th
   and the 90th percentile of prefill end times, over that window, per node (4 nodes): the steady state, without
   the cold cache of the first batches and the drain at the end;
2. decode: a closed loop of 88 clients per decode GPU. Their prompts have the operating point's mean length and
   share one cached prefix up to their last 16 tokens, so prefill and the KV transfer take little time and the
   clients' requests are decoding nearly all the time (the decode cost depends on the KV lengths, not on how
   the prompt was prefilled); the output rate is the tokens emitted in a steady window (20th to 70th percentile
   of completions) / window / 18 nodes.

``--phase profile`` replays the prefill unit at the operating point of DeepSeek's own profile of this layout
(github.com/deepseek-ai/profile-data, ``prefill.json``: EP32, TP1, 4,096-token prompts, 16,384 tokens per GPU
per step, two micro-batches, "absolutely balanced" expert routing): a burst of fresh 4,096-token prompts (no
prefix-cache hits), four per rank per step. The reference is the SGLang team's reading of that profile, 62,713
input tokens/s per node (LMSYS blog "Deploying DeepSeek with PD Disaggregation and Large-scale Expert
Parallelism on 96 H100 GPUs", 2025-05-05, table "Overall Throughput": DeepSeek Profile, batch 16,384, input
4,096), next to which the same table puts the production figure without its cache hits, 32,206 (= 73.7 k x
(1 - 0.563)): "DeepSeek's profile reports a throughput roughly twice that of its production environment". It
also prices one decode step at the decode profile's point (128 sequences of 4,096 KV tokens per GPU) against that
table's DeepSeek decode profile, 18,598 output tokens/s per node (EP128 on 16 nodes there, EP144 here; whether
that profile ran MTP is not stated in the table; Step-3's paper quotes the same rate, 2,324 per GPU, as "no MTP").

``--scale`` multiplies the request counts (smaller is faster, noisier). ``--mtp`` adds DeepSeek's MTP module
(one draft token, 0.85 acceptance, the low end of the DeepSeek-V3 report's 85-90 %) to the decode pool: the
published write-up does not say whether the service ran it.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = REPO / "deployments" / "deepseek-v3-h800-sglang-pd-ep32-ep144.yaml"

#: DeepSeek Day 6 "Online Service Statistics" (see the module docstring)
PUBLISHED = {
    "input_tokens_total": 608e9, "output_tokens_total": 168e9, "cache_hit_rate": 0.563,
    "kv_per_output_token": 4989.0, "output_speed_per_request": 21.0,   # 20-22 tokens/s
    "prefill_input_per_node": 73.7e3, "decode_output_per_node": 14.8e3,
}
#: DeepSeek's prefill profile (EP32, 4,096-token prompts, 16,384 tokens per GPU), input tokens/s per node as the
#: SGLang team derived it from profile-data (see the module docstring)
PROFILE_PREFILL_PER_NODE = 62_713
PROFILE_PROMPT = 4096
#: DeepSeek's decode profile (128 sequences per GPU, 4K context): 18,598 output tokens/s per node in the same LMSYS
#: table; Step-3's paper (arXiv 2507.19427, abstract) quotes DeepSeek-V3 at 2,324 tokens/s per GPU (= 18,598 / 8)
#: "under 50ms TPOT SLA (4K context, FP8, no MTP)"
PROFILE_DECODE_PER_NODE = 18_598
PROFILE_DECODE_BATCH, PROFILE_DECODE_KV = 128, 4096
GPUS_PER_NODE = 8
SIGMA = 0.5            #: lognormal shape of prompt-question and output lengths (our assumption)
BLOCK = 16             #: prefix-hash block (tokens)


def operating_point() -> dict:
    """Mean prompt and output lengths, shared-prefix length and decode batch per GPU from the published figures."""
    p = PUBLISHED
    ratio = p["input_tokens_total"] / p["output_tokens_total"]
    cv2 = math.exp(SIGMA ** 2) - 1.0                      # lognormal: E[O^2] = E[O]^2 (1 + cv^2)
    out_mean = p["kv_per_output_token"] / (ratio + (1.0 + cv2) / 2.0)
    in_mean = ratio * out_mean
    prefix = int(round(p["cache_hit_rate"] * in_mean / BLOCK)) * BLOCK
    batch = p["decode_output_per_node"] / GPUS_PER_NODE / p["output_speed_per_request"]
    return {"input_mean": in_mean, "output_mean": out_mean, "prefix": prefix, "question_mean": in_mean - prefix,
            "decode_batch_per_gpu": int(round(batch))}


def prefill_trace(n: int, groups: int, op: dict, *, seed: int):
    """A burst of ``n`` prompts in ``groups`` shared-prefix groups, two output tokens each."""
    from frontier_calib.traces.generators import shared_prefix_trace
    from frontier_calib.traces.lengths import fixed, lognormal

    return shared_prefix_trace(groups, n // groups, op["prefix"],
                               lognormal(mean=op["question_mean"], sigma=SIGMA, max_tokens=32768), fixed(2),
                               seed=seed, hash_block_size=BLOCK)


def decode_trace(n: int, clients: int, op: dict, *, seed: int):
    """A closed loop: prompts of the mean length sharing one cached prefix but their last 16 tokens."""
    from frontier_calib.traces.generators import closed_loop, shared_prefix_trace
    from frontier_calib.traces.lengths import fixed, lognormal

    prompt = int(round(op["input_mean"]))
    trace = shared_prefix_trace(1, n, prompt - BLOCK, fixed(BLOCK),
                                lognormal(mean=op["output_mean"], sigma=SIGMA, max_tokens=32768),
                                seed=seed, hash_block_size=BLOCK)
    return closed_loop(trace, clients)


def deployment(mtp: bool = False):
    from frontier_calib.deployment import deployment_from_dict

    raw = copy.deepcopy(yaml.safe_load(DEPLOYMENT.read_text()))
    if mtp:
        raw["decode"]["speculative"] = {"method": "mtp", "num_draft_tokens": 1, "acceptance": 0.85}
    return deployment_from_dict(raw, source=str(DEPLOYMENT), base_dir=DEPLOYMENT.parent)


def run(dep, trace):
    from frontier_calib.deployment import build_replicas
    from frontier_calib.sim import simulate

    specs, _ = build_replicas(dep)
    t0 = time.perf_counter()
    res = simulate(trace, specs, router=dep.router, ttft=dep.ttft)
    return res, time.perf_counter() - t0


def prefill_rate(res, nodes: int) -> dict:
    r = res.requests
    ok = r[r["status"] == "ok"]
    end = ok["prefill_end_s"].to_numpy()
    t0, t1 = np.quantile(end, [0.1, 0.9])
    win = ok[(end > t0) & (end <= t1)]
    return {"per_node": float(win["input_tokens"].sum()) / (t1 - t0) / nodes, "window_s": (t0, t1),
            "hit_rate": float(win["cached_tokens"].sum() / win["input_tokens"].sum()), "requests": len(ok)}


def decode_rate(res, nodes: int, ranks: int) -> dict:
    r = res.requests
    ok = r[(r["status"] == "ok") & (r["output_tokens"] > 1)]
    t0, t1 = np.quantile(ok["completion_s"], [0.2, 0.7])
    start, end = ok["first_token_s"].to_numpy(), ok["completion_s"].to_numpy()
    overlap = np.clip(np.minimum(end, t1) - np.maximum(start, t0), 0, None)
    tokens = (ok["output_tokens"].to_numpy() - 1) * overlap / np.maximum(end - start, 1e-12)
    kv = ok["input_tokens"].to_numpy() + ok["output_tokens"].to_numpy() / 2.0
    out = ok["output_tokens"].to_numpy()
    return {"per_node": float(tokens.sum()) / (t1 - t0) / nodes, "window_s": (t0, t1),
            "batch_per_gpu": float(overlap.sum()) / (t1 - t0) / ranks,
            "speed_per_request": float(np.median((out - 1) / np.maximum(end - start, 1e-12))),
            "kv_per_output_token": float((kv * out).sum() / out.sum())}


def run_prefill(dep, op: dict, args) -> float:
    ranks_p = dep.prefill.worker.attention_dp
    n_p = int(ranks_p * 192 * args.scale)
    res, wall = run(dep, prefill_trace(n_p, 4, op, seed=args.seed))
    pre = prefill_rate(res, 4)
    print(f"prefill: {pre['requests']} prompts, window {pre['window_s'][0]:.0f}-{pre['window_s'][1]:.0f} s "
          f"simulated (replay {wall:.0f} s), prefix-cache hit rate {pre['hit_rate']:.1%} (published 56.3%)")
    return pre["per_node"]


def run_decode(dep, op: dict, args) -> float:
    ranks_d = dep.decode.worker.attention_dp
    clients = ranks_d * op["decode_batch_per_gpu"]
    n_d = int(clients * 2.5 * args.scale)
    res, wall = run(dep, decode_trace(n_d, clients, op, seed=args.seed))
    dec = decode_rate(res, 18, ranks_d)
    print(f"decode: {n_d} requests, {clients} clients, window {dec['window_s'][0]:.0f}-{dec['window_s'][1]:.0f} s "
          f"simulated (replay {wall:.0f} s): {dec['batch_per_gpu']:.1f} sequences per decode GPU, "
          f"{dec['speed_per_request']:.1f} tokens/s per request (published 20-22), KV length per output token "
          f"{dec['kv_per_output_token']:.0f} (published 4,989)" + ("; MTP on" if args.mtp else ""))
    return dec["per_node"]


def run_profile_point(dep, args) -> float:
    """Prefill rate at DeepSeek's profiled operating point: fresh 4,096-token prompts, 16,384 tokens per rank."""
    from frontier_calib.traces.generators import shared_prefix_trace
    from frontier_calib.traces.lengths import fixed

    ranks_p = dep.prefill.worker.attention_dp
    per_step = dep.prefill.scheduler.max_num_batched_tokens // PROFILE_PROMPT   # prompts per rank per step
    n_p = int(ranks_p * per_step * 24 * args.scale)
    trace = shared_prefix_trace(1, n_p, 0, fixed(PROFILE_PROMPT), fixed(2), seed=args.seed, hash_block_size=BLOCK)
    res, wall = run(dep, trace)
    pre = prefill_rate(res, 4)
    print(f"profile point: {pre['requests']} prompts of {PROFILE_PROMPT} tokens, {per_step} per rank per step, "
          f"window {pre['window_s'][0]:.1f}-{pre['window_s'][1]:.1f} s simulated (replay {wall:.0f} s), "
          f"prefix-cache hit rate {pre['hit_rate']:.1%}")
    return pre["per_node"]


def profile_decode_rate(dep) -> float:
    """Output tokens/s per node of one decode step of 128 sequences of 4,096 KV tokens per GPU (the decode
    profile's point; the step priced by the decode pool's cost model, no replay: every rank runs the same batch)."""
    from frontier_calib.cost.cache import cost_model_for

    pool = dep.decode
    cm = cost_model_for(pool.worker, max_tokens=pool.scheduler.max_num_batched_tokens,
                        max_seqs=pool.scheduler.max_num_seqs, max_model_len=pool.scheduler.max_model_len)
    b = PROFILE_DECODE_BATCH
    step = float(cm.decode_times(b, np.array([b * PROFILE_DECODE_KV], dtype=float))[0])
    print(f"decode profile point: {b} sequences of {PROFILE_DECODE_KV} KV tokens per GPU, step {step * 1e3:.1f} ms")
    return b * GPUS_PER_NODE / step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the request counts (default 1)")
    ap.add_argument("--mtp", action="store_true", help="decode with MTP (1 draft token, acceptance 0.85)")
    ap.add_argument("--seed", type=int, default=0, help="trace seed (lengths, prefix groups)")
    ap.add_argument("--phase", choices=("both", "prefill", "decode", "profile"), default="both",
                    help="which replay to run (profile: prefill at DeepSeek's profiled operating point)")
    args = ap.parse_args()
    op = operating_point()
    print(f"operating point (from the published figures): prompt {op['input_mean']:.0f} tokens (shared prefix "
          f"{op['prefix']}), output {op['output_mean']:.0f} tokens, decode batch {op['decode_batch_per_gpu']} per GPU")

    dep = deployment(mtp=args.mtp)
    print(dep.describe())
    rows = []
    if args.phase in ("both", "prefill"):
        pre = run_prefill(dep, op, args)
        rows.append(("prefill input tokens/s (hits incl.)", pre, PUBLISHED["prefill_input_per_node"]))
    if args.phase == "profile":
        rows.append(("prefill at the profile point", run_profile_point(dep, args), PROFILE_PREFILL_PER_NODE))
        rows.append(("decode at the profile point", profile_decode_rate(dep), PROFILE_DECODE_PER_NODE))
    if args.phase in ("both", "decode"):
        dec = run_decode(dep, op, args)
        rows.append(("decode output tokens/s", dec, PUBLISHED["decode_output_per_node"]))
    print(f"\n{'per H800 node':<36}{'predicted':>12}{'reference':>12}{'error':>9}")
    for name, pred, pub in rows:
        print(f"{name:<36}{pred:>12,.0f}{pub:>12,.0f}{(pred - pub) / pub:>+9.1%}")


if __name__ == "__main__":
    main()
