"""Measured step time of a run folder's engine, second by second, against the cost model's step at the same batch.

For each second of ``timeseries.csv`` with generation: the requests in decode at its midpoint (from
``requests.jsonl``: first token before, last token after), split evenly over the attention-DP ranks of the
deployment ``validate run`` builds for the folder. Every request in decode gains one token per step, so steps per
second = generation tokens of that second / requests in decode, and the measured step = 1 / steps per second; the
prefill tokens per rank and step = prompt tokens of that second / ranks / steps. The predicted step is the cost model's
``breakdown`` of one rank's step at that batch, mean context (the requests' input plus the generated share of their
output at that time) and prefill chunk, with its parts: token-proportional ops (GEMMs, experts, collectives),
LM head, prefill and decode attention, engine overhead. The summary gives measured / predicted per batch band over
the decode-only seconds (under 20 prefill tokens per rank and step), where the step is a kernel sum.

    PYTHONPATH=. python benchmarks/run_step_gap.py ../shared/validation/llmservingsim_rtxpro6000/Qwen3-30B-A3B-Instruct-2507 \
        --gpu rtx_pro_6000_server

An approximation: the ranks' batches are taken as equal and a second's prefill tokens as spread over its steps
(the replay itself prices each rank's own batch and the lockstep); use it to see where in the batch range the
step is mispriced, not as the replay's error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from frontier_calib.deployment import build_replicas, deployment_from_dict
from frontier_calib.validate.run_folder import deployment_for_run, read_timeseries


def step_table(folder: Path, gpu: str) -> pd.DataFrame:
    dep = deployment_from_dict(deployment_for_run(folder, gpu), source=str(folder))
    _, cost = build_replicas(dep)
    ranks = max(1, dep.worker.attention_dp)
    req = pd.read_json(folder / "requests.jsonl", lines=True)
    ts = read_timeseries(folder)
    if ts is None:
        raise SystemExit(f"{folder}: no timeseries.csv")
    t0 = req["queued_ts"].min()
    first, last = req["first_token_ts"] - t0, req["last_token_ts"] - t0
    rows = []
    for _, r in ts.iterrows():
        t = r["t"] - 0.5
        live = req[(first <= t) & (last > t)]
        b = len(live) // ranks
        if b < 1 or r["gen_throughput"] <= 0:
            continue
        done = (t - (live["first_token_ts"] - t0)) / (live["last_token_ts"] - live["first_token_ts"])
        kv = int((live["input_toks"] + done * live["output_toks"]).sum() / ranks)
        steps = r["gen_throughput"] / len(live)                # steps per second
        chunk = int(r["prompt_throughput"] / ranks / steps)
        bd = cost.breakdown([chunk], [chunk], b, kv) if chunk >= 1 else cost.breakdown([], [], b, kv)
        rows.append({"t": r["t"], "batch": b, "mean_kv": kv // b, "chunk": chunk, "measured_ms": 1e3 / steps,
                     "predicted_ms": bd.total_ms, "token_ops_ms": bd.token_ops_ms, "lm_head_ms": bd.lm_head_ms,
                     "prefill_attn_ms": bd.prefill_attention_ms, "decode_attn_ms": bd.decode_attention_ms,
                     "overhead_ms": bd.overhead_ms})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--gpu", default="rtx_pro_6000_server")
    ap.add_argument("--all", action="store_true", help="print every second, not only the summary")
    a = ap.parse_args(argv)
    d = step_table(a.folder, a.gpu)
    pd.set_option("display.width", 200)
    if a.all:
        print(d.round(2).to_string(index=False))
    dec = d[d["chunk"] < 20].copy()
    dec["band"] = pd.cut(dec["batch"], [0, 16, 32, 64, 96, 120, 10**6],
                         labels=["1-16", "17-32", "33-64", "65-96", "97-120", "121+"])
    g = dec.groupby("band", observed=True).agg(seconds=("t", "size"), mean_kv=("mean_kv", "mean"),
                                               measured_ms=("measured_ms", "mean"),
                                               predicted_ms=("predicted_ms", "mean"),
                                               decode_attn_ms=("decode_attn_ms", "mean"))
    g["measured/predicted"] = g["measured_ms"] / g["predicted_ms"]
    print(f"{a.folder.name}: decode-only seconds (< 20 prefill tokens per rank and step), per rank")
    print(g.round(2).to_string())


if __name__ == "__main__":
    main()
