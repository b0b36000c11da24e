"""The measured RDMA rate of DeepEP's low-latency all-to-all across nodes: a floor under the fitted model.

The bundled ``moe_a2a`` tables are measured inside one node (EP 8 over NVLink); across nodes the fitted model
extrapolates along the network roofline (``opmodel/features.py``: bytes / the GPU spec's ``network_bandwidth``).
DeepEP's own measurement of its low-latency kernels across nodes is slower than that roofline: on H800 with one
ConnectX-7 400 Gb/s NIC per GPU (~50 GB/s), 128 tokens per rank, hidden 7168, top-8, FP8 dispatch and BF16
combine, the RDMA rate falls from 98 / 127 GB/s at EP 8 to 39 / 39 GB/s at EP 128 (dispatch / combine; DeepEP V1
README, ``docs/legacy.md`` in github.com/deepseek-ai/DeepEP, "Low-latency kernels with pure RDMA"):

====  ========  =========
EP    dispatch  combine
====  ========  =========
8     98 GB/s   127 GB/s
16    63        74
32    48        53
64    43        46
128   39        39
256   39        40
====  ========  =========

The low-latency kernels send every token to each of its ``top-k`` experts' GPUs directly (no NVLink forwarding),
FP8 with one fp32 scale per 128 values on dispatch and BF16 on combine, so the bytes behind those rates are
``tokens x top-k x (hidden + hidden / 128 x 4)`` and ``tokens x top-k x hidden x 2`` (the table's own numbers:
128 x 8 x 7,392 B / 98 GB/s = 77 us, the measured dispatch latency at EP 8; 128 x 8 x 14,336 B / 127 GB/s = 116 us,
the measured 114 us combine). :func:`ll_floor_ms` is that byte count over the table's rate at the worker's EP
size (interpolated in log2 EP, the ends held), scaled by the GPU's NIC against the 50 GB/s of the measurement
(a 800 Gb/s NIC halves the time; an assumption: the kernels were measured on one NIC type only). It applies to
low-latency kernels whose EP group spans nodes; the normal (prefill) kernels' RDMA bytes depend on how many
nodes each token's experts sit on, and the fitted model is already slower than DeepEP's normal-kernel rate there
(docs/validation.md, "DeepSeek-V3/R1 on H800"), so they get no floor.
"""

from __future__ import annotations

import numpy as np

#: (EP size, dispatch GB/s, combine GB/s): DeepEP V1 low-latency kernels across H800 nodes (module docstring)
LL_RDMA_GBPS = ((8, 98.0, 127.0), (16, 63.0, 74.0), (32, 48.0, 53.0), (64, 43.0, 46.0), (128, 39.0, 39.0),
                (256, 39.0, 40.0))
#: NIC bandwidth of the measurement: one 400 Gb/s ConnectX-7 per GPU, bytes/s
MEASURED_NIC = 50e9


def ll_rate(phase: str, ep: int) -> float:
    """DeepEP's measured low-latency RDMA rate (bytes/s) for ``phase`` ('dispatch' or 'combine') at EP ``ep``."""
    col = {"dispatch": 1, "combine": 2}[phase]
    eps = np.log2([r[0] for r in LL_RDMA_GBPS])
    return float(np.interp(np.log2(max(int(ep), 1)), eps, [r[col] for r in LL_RDMA_GBPS])) * 1e9


def ll_bytes(phase: str, tokens, topk: int, hidden: int) -> np.ndarray:
    """Bytes one rank sends in a low-latency ``phase`` for ``tokens`` tokens: every (token, expert) pair once,
    FP8 plus one fp32 scale per 128 values on dispatch, BF16 on combine."""
    per = hidden + hidden / 128 * 4 if phase == "dispatch" else hidden * 2
    return np.asarray(tokens, dtype=float) * topk * per


def ll_floor_ms(phase: str, tokens, topk: int, hidden: int, ep: int, nic_bandwidth: float) -> np.ndarray:
    """Milliseconds below which a cross-node low-latency ``phase`` of ``tokens`` tokens per rank cannot run: its
    bytes at DeepEP's measured rate for ``ep``, scaled by ``nic_bandwidth`` (bytes/s per GPU) / 50 GB/s."""
    rate = ll_rate(phase, ep) * nic_bandwidth / MEASURED_NIC
    return ll_bytes(phase, tokens, topk, hidden) / rate * 1e3
