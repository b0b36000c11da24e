"""Work per shape (FLOPs, bytes moved, memory footprint) and a roofline estimate of profiling time.

Used by ``--dry-run`` (how long will this take?), by ``--budget-minutes`` (how to split the time
between families) and to leave out shapes that would not fit in device memory. Units: FLOPs,
bytes, seconds. The estimate is a lower-bound style roofline plus fixed costs; real kernels are
slower on small shapes, which the per-shape overhead mostly hides.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from ..dtypes import DTYPE_BYTES, activation_bytes
from ..hardware import GPUSpec
from .plan import MLA_TABLE_DIMS, ProfilePlan, Shape

def _host_memory_bytes() -> float:
    """Physical memory of this host in bytes (8 GiB when the OS does not say)."""
    try:
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return 8.0 * 2**30


#: Nominal figures for profiling on the host CPU (pipeline tests only; never used as a GPU).
CPU_SPEC = GPUSpec(
    "cpu", "host CPU (nominal figures; numbers only for testing the pipeline)", sm_count=1,
    memory_bytes=_host_memory_bytes(),
    hbm_bandwidth=20e9, peak_flops={"bf16": 100e9}, gpus_per_node=1, nvlink_bandwidth=5e9,
    network_bandwidth=1e9, l2_bytes=32e6)

LAUNCH_S = {"cuda": 8e-6, "cpu": 5e-6}        #: per kernel call, seconds
SETUP_S = {"cuda": 0.04, "cpu": 0.015}        #: per shape: allocation, random init, Python, seconds


@dataclass(frozen=True)
class Work:
    flops: float          #: floating-point operations of one call
    bytes: float          #: bytes read + written from device memory by one call
    footprint: float      #: device memory the benchmark allocates, bytes
    kernels: int = 1      #: kernel launches per call (reference implementations launch several)
    dtype: str = "bf16"   #: compute dtype for the peak FLOP/s


def _act_bytes(dtype: str) -> float:
    return activation_bytes(dtype)


def attention_pairs(q_len: int, kv_len: int, window: int) -> float:
    """Query-key pairs of one sequence: q_len new tokens at the end of kv_len keys, causal,
    within ``window`` keys when window > 0."""
    p0 = kv_len - q_len
    if not window:
        return float(q_len * p0 + q_len * (q_len + 1) // 2)
    # query i sees min(window, p0 + i + 1) keys
    full_from = max(0, window - p0 - 1)          # queries i >= full_from see exactly `window` keys
    ramp = min(q_len, full_from)
    ramp_pairs = ramp * (p0 + 1) + ramp * (ramp - 1) // 2
    return float(ramp_pairs + (q_len - ramp) * window)


def work(shape: Shape) -> Work:
    """FLOPs, bytes and memory footprint of one call of ``shape``."""
    s = shape.as_dict()
    f = shape.family
    if f == "gemm":
        m, n, k, dt = s["m"], s["n"], s["k"], s["dtype"]
        nbytes = m * k * _act_bytes(dt) + n * k * DTYPE_BYTES[dt] + m * n * 2
        return Work(2.0 * m * n * k, nbytes, nbytes, 1, dt)
    if f == "attention_prefill":
        b, q, kv, h, hk, d = (s[c] for c in ("batch_size", "q_len", "kv_len", "num_heads", "num_kv_heads",
                                              "head_dim"))
        pairs = attention_pairs(q, kv, s["window"])
        kvb = DTYPE_BYTES[s["kv_dtype"]]
        nbytes = b * (2 * q * h * d * 2 + 2 * kv * hk * d * kvb)
        # the torch reference with an explicit mask also holds the mask and K/V expanded to all heads
        extra = q * kv + 2 * b * kv * h * d * 2 if (kv != q or s["window"]) else 0
        return Work(4.0 * b * h * d * pairs, nbytes, nbytes + extra, 1, s["dtype"])
    if f == "attention_decode":
        b, kv, h, hk, d = (s[c] for c in ("batch_size", "kv_len", "num_heads", "num_kv_heads", "head_dim"))
        seen = min(kv, s["window"]) if s["window"] else kv
        kvb = DTYPE_BYTES[s["kv_dtype"]]
        return Work(4.0 * b * h * d * seen, b * (2 * seen * hk * d * kvb + 2 * h * d * 2),
                    b * (2 * kv * hk * d * kvb + 2 * h * d * 2), 1, s["dtype"])
    if f == "mla_prefill":
        t = MLA_TABLE_DIMS
        qk, v = t.qk_nope_head_dim + t.qk_rope_head_dim, t.v_head_dim
        b, q, kv, h = s["batch_size"], s["q_len"], s["kv_len"], s["num_heads"]
        pairs = attention_pairs(q, kv, 0)
        nbytes = b * h * (q * qk + kv * qk + kv * qk + q * qk) * 2      # V padded to the QK head dim
        extra = q * kv if kv != q else 0
        return Work(2.0 * b * h * pairs * (qk + v), nbytes, nbytes + extra, 1, s["dtype"])
    if f == "mla_decode":
        t = MLA_TABLE_DIMS
        lat = t.kv_lora_rank + t.qk_rope_head_dim
        b, kv, h = s["batch_size"], s["kv_len"], s["num_heads"]
        nbytes = b * (kv * lat * DTYPE_BYTES[s["kv_dtype"]] + h * (lat + t.kv_lora_rank) * 2)
        return Work(2.0 * b * h * kv * (lat + t.kv_lora_rank), nbytes + b * h * kv * 2 * 2,
                    nbytes + b * h * kv * 4 * 2, 3, s["dtype"])
    if f == "moe":
        t, hd, inter, topk, e = (s[c] for c in ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts"))
        tp, ep, dt = s["moe_tp"], s["moe_ep"], s["dtype"]
        local = max(1, e // ep)
        assigned = t * topk / ep
        active = min(local, max(1, math.ceil(assigned)))
        per_expert = 3 * hd * inter / tp
        wb = DTYPE_BYTES[dt]
        nbytes = active * per_expert * wb + t * hd * 2 * 2 + assigned * (2 * inter / tp) * 2 * 2
        footprint = local * per_expert * wb + t * hd * 2 * 4 + t * topk * (3 * inter / tp + hd) * 2
        return Work(2.0 * assigned * per_expert, nbytes, footprint, 6 * active + 2, dt)
    if f == "collective":
        n, size = s["num_gpus"], s["message_bytes"]
        factor = 2.0 * (n - 1) / n if s["op"] == "all_reduce" else (n - 1) / n
        return Work(0.0, size * factor, 2.0 * size, 1, s["dtype"])
    raise ValueError(f"no work model for family {f}")


def fits_memory(shape: Shape, memory_bytes: float, fraction: float = 0.5) -> bool:
    """True when the benchmark for ``shape`` needs at most ``fraction`` of ``memory_bytes``."""
    return work(shape).footprint <= fraction * memory_bytes


def call_seconds(shape: Shape, spec: GPUSpec, device: str) -> float:
    """Roofline time of one call plus launch overhead, seconds."""
    w = work(shape)
    if shape.family == "collective":
        n = shape["num_gpus"]
        lat = (spec.nvlink_latency_s if device == "cuda" else 20e-6) * max(1, math.ceil(math.log2(n)))
        return lat + w.bytes / spec.nvlink_bandwidth
    compute = w.flops / spec.flops(w.dtype) if w.flops else 0.0
    memory = w.bytes / spec.hbm_bandwidth
    return max(compute, memory) + w.kernels * LAUNCH_S[device]


def shape_seconds(shape: Shape, spec: GPUSpec, device: str, *, warmup: int, repeats: int,
                  flush_l2: bool) -> float:
    """Estimated wall time to profile one shape: setup + (warm-up + repeats) x (call + L2 flush)."""
    flush = 2 * spec.l2_bytes / spec.hbm_bandwidth if (flush_l2 and device == "cuda") else 0.0
    return SETUP_S[device] + (warmup + repeats) * (call_seconds(shape, spec, device) + flush)


def plan_seconds(plan: ProfilePlan, spec: GPUSpec, device: str, *, warmup: int, repeats: int,
                 flush_l2: bool) -> dict[str, float]:
    """Estimated seconds per family."""
    return {fam: sum(shape_seconds(s, spec, device, warmup=warmup, repeats=repeats, flush_l2=flush_l2)
                     for s in shapes)
            for fam, shapes in plan.shapes.items()}
