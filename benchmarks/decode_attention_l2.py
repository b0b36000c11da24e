"""Decode-attention table rows faster than HBM allows: the warm-L2 evidence behind the cost model's HBM floor.

A decode-attention kernel reads every cached K and V of its batch once. In a serving step the KV of one layer is
read once and then every other layer's weights and KV pass through L2 before it is read again, so it streams from
HBM: the kernel cannot take less than ``KV bytes / HBM bandwidth``. A benchmark that re-runs one layer on the same
small KV cache keeps it in L2 and can report less. This script lists, per GPU and engine, the measured
``attention_decode`` rows (16-bit KV, no sliding window) whose time is below that bound, how far below, and how
large their working set is next to the GPU's L2; and the streaming rate the same table reaches on rows whose KV is
well beyond L2 (at least 4x, where L2 cannot hold it).

    PYTHONPATH=. python benchmarks/decode_attention_l2.py --gpu rtx_pro_6000_server --gpu h100_sxm --gpu h200_sxm

Reads the profile tables the way ``fit`` does (imported on first use). Prints one summary line per GPU/engine,
then the rows below the bound for the first GPU's model shapes of interest (``--heads``/``--kv-heads``/``--head-dim``).
"""

from __future__ import annotations

import argparse

import pandas as pd

from frontier_calib.dtypes import DTYPE_BYTES
from frontier_calib.hardware import get_gpu
from frontier_calib.opmodel.registry import load_profiles


def rows_with_bound(gpu: str, engine: str) -> pd.DataFrame | None:
    tables = load_profiles(gpu, engine, families=["attention_decode"])
    t = tables.get("attention_decode")
    if t is None or t.empty:
        return None
    spec = get_gpu(gpu)
    t = t[(t["window"] == 0) & (t["kv_dtype"].isin(["bf16", "fp16"]))].copy()
    t["kv_bytes"] = t["batch_size"] * t["kv_len"] * 2 * t["num_kv_heads"] * t["head_dim"] * DTYPE_BYTES["bf16"]
    t["hbm_bound_ms"] = t["kv_bytes"] / spec.hbm_bandwidth * 1e3
    t["of_l2"] = t["kv_bytes"] / spec.l2_bytes
    t["rate_GBps"] = t["kv_bytes"] / (t["latency_ms"] / 1e3) / 1e9
    return t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="append", default=None)
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=128)
    a = ap.parse_args(argv)
    gpus = a.gpu or ["rtx_pro_6000_server"]
    pd.set_option("display.width", 200)
    first = None
    for gpu in gpus:
        t = rows_with_bound(gpu, a.engine)
        if t is None:
            print(f"{gpu}/{a.engine}: no attention_decode table")
            continue
        spec = get_gpu(gpu)
        below = t[t["latency_ms"] < t["hbm_bound_ms"]]
        cold = t[t["of_l2"] >= 4]
        print(f"{gpu}/{a.engine}: {len(t)} rows, {len(below)} below KV bytes / HBM bandwidth "
              f"({spec.hbm_bandwidth / 1e9:.0f} GB/s, L2 {spec.l2_bytes / 2**20:.0f} MiB); of those, working set "
              f"<= 2x L2: {int((below['of_l2'] <= 2).sum())}; median time / bound "
              f"{(below['latency_ms'] / below['hbm_bound_ms']).median():.2f}; best rate on rows >= 4x L2: "
              f"{cold['rate_GBps'].max():.0f} GB/s ({len(cold)} rows)")
        if first is None:
            first = t
    if first is not None:
        s = first[(first["num_heads"] == a.heads) & (first["num_kv_heads"] == a.kv_heads)
                  & (first["head_dim"] == a.head_dim) & (first["batch_size"] >= 8)]
        s = s[(s["kv_len"] >= 256) & (s["kv_len"] <= 4096)].sort_values(["batch_size", "kv_len"])
        cols = ["kernel", "batch_size", "kv_len", "latency_ms", "hbm_bound_ms", "of_l2", "rate_GBps"]
        print(f"\n{gpus[0]}: heads {a.heads}/{a.kv_heads}x{a.head_dim}, batch >= 8, kv 256-4096")
        print(s[cols].round(4).to_string(index=False))


if __name__ == "__main__":
    main()
