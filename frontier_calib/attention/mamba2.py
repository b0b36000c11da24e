"""Mamba2 mixers (Nemotron-H, Nemotron-3 hybrids): a recurrent SSM state per sequence, no growing KV cache.

A Mamba2 mixer runs a causal depthwise convolution over its x, B and C channels and the SSD (state-space
duality) scan: chunked over the new tokens in prefill (``mamba_chunk_scan_combined``), one state step per
sequence in decode (``selective_state_update``); the state carries the whole context, so neither cost depends on
the cached prefix. Per running sequence and GPU a layer keeps ``num_heads / tp`` SSM states of ``head_dim x
state_size`` elements (the config's ``mamba_ssm_cache_dtype``) plus the convolution's last ``conv_kernel - 1``
inputs (bf16), and nothing per token. Heads and B/C groups are split by tensor parallelism (column-parallel
``in_proj``, row-parallel ``out_proj``), as in vLLM's ``MambaMixer2`` and TensorRT-LLM's ``Mamba2Mixer``.

The public tables (aiconfigurator-core ``mamba2_perf``, TensorRT-LLM only) time the convolution kernels
(``causal_conv1d_fn``, ``causal_conv1d_update``) and no SSD-scan rows, although its ``Mamba2Kernel`` names four
kernels. The fitted families are therefore the convolution's (``mamba2_conv_prefill`` / ``mamba2_conv_decode``),
and the scan is added by :func:`ssd_scan_ms` from the roofline of its FLOPs and bytes at the GPU's peak bf16 rate
and HBM bandwidth (:mod:`frontier_calib.hardware`) plus a launch floor per kernel. Decode's state update is
memory-bound and runs near that roofline (the measured GDN decode step, its closest timed sibling, is 1.2-1.9x
its roofline on H200); a chunked prefill scan does not (the measured chunked gated-delta-rule kernels run 6-20x
above their roofline), so the prefill scan's roofline is scaled by the same engine's measured GDN prefill
efficiency (the fitted ``gdn_prefill`` model over its roofline, at the same tokens and a GDN layer holding the same
state per GPU), where that engine has GDN tables; else the roofline alone stands (a lower bound). Mamba2 paper
(Dao & Gu 2024, "Transformers are SSMs", Sec. 6) for the chunked SSD algorithm's work.
"""

from __future__ import annotations

import numpy as np
from ..lazy import pandas as pd

from ..hardware import get_gpu
from .base import AttentionKind, register

#: kernels the SSD scan launches per layer and call: prefill (chunk cumsum, chunk state, state passing, BMM of
#: C and B, chunk scan) and decode (one selective_state_update)
SCAN_KERNELS = {"prefill": 5, "decode": 1}
#: fixed per-kernel floor, milliseconds (launch + tail; the operator models' LAUNCH_FLOOR_MS)
KERNEL_FLOOR_MS = 0.003


def _shape(ctx):
    mb, tp = ctx.worker.model.mamba, ctx.worker.tp
    return {"num_heads": mb.num_heads // tp, "head_dim": mb.head_dim, "d_state": mb.state_size,
            "n_groups": max(1, mb.n_groups // tp), "conv_kernel": mb.conv_kernel}


def _prefill(ctx, q, kv):
    return "mamba2_conv_prefill", pd.DataFrame({"batch_size": 1, "q_len": q, **_shape(ctx)})


def _decode(ctx, b, kv):
    return "mamba2_conv_decode", pd.DataFrame({"batch_size": b, **_shape(ctx)})


def ssd_scan_ms(ctx, phase: str, sizes, kv) -> np.ndarray:
    """Roofline milliseconds of one layer's SSD scan on one GPU (the kernels the public tables do not time).

    prefill (``sizes`` = q_len, one sequence): per token and head, the intra-chunk part costs ``2 Q (N + P)``
    FLOPs (C B^T within the chunk, times x) and the chunk states ``4 N P`` (B^T x in, C h out), Q = min(chunk,
    q_len); bytes: x, B, C and dt in, y out (bf16), the final state out. decode (``sizes`` = batch size): each
    sequence reads and writes its state once (``2 heads P N state_bytes``) and does ``6 P N`` FLOPs per head.
    """
    mb, tp = ctx.worker.model.mamba, ctx.worker.tp
    gpu = get_gpu(ctx.worker.gpu)
    nh, p, n, ng = mb.num_heads // tp, mb.head_dim, mb.state_size, max(1, mb.n_groups // tp)
    x = np.asarray(sizes, dtype=float)
    state = nh * p * n * mb.state_bytes
    if phase == "prefill":
        qc = np.minimum(x, mb.chunk_size)
        flops = x * nh * (2 * qc * (n + p) + 4 * n * p)
        nbytes = x * (2 * nh * p * 2 + 2 * ng * n * 2 + nh * 4) + state
    else:
        flops = x * nh * 6 * p * n
        nbytes = x * (2 * state + 2 * nh * p * 2 + 2 * ng * n * 2)
    roof = np.maximum(flops / gpu.flops("bf16"), nbytes / gpu.hbm_bandwidth) * 1e3
    if phase == "prefill":
        roof = roof * gdn_prefill_efficiency(ctx, x)
    return roof + SCAN_KERNELS[phase] * KERNEL_FLOOR_MS


#: head width of the GDN layer a Mamba2 layer's prefill scan is compared with (the public GDN tables' dk = dv)
GDN_HEAD_DIM = 128


def gdn_prefill_efficiency(ctx, q_len) -> np.ndarray:
    """Measured over roofline time of the chunked gated-delta-rule prefill (conv + scan) of the worker's engine,
    at ``q_len`` tokens, for the GDN layer whose per-GPU state equals this Mamba2 layer's (value heads of
    128 x 128 fp32; as many key heads); 1 where the fitted models hold no ``gdn_prefill`` (never below 1)."""
    models = ctx.models
    if models is None or not models.has("gdn_prefill"):
        return np.ones(len(np.atleast_1d(q_len)))
    mb, tp = ctx.worker.model.mamba, ctx.worker.tp
    heads = max(1, round((mb.num_heads // tp) * mb.head_dim * mb.state_size / GDN_HEAD_DIM ** 2))
    df = pd.DataFrame({"batch_size": 1, "q_len": np.atleast_1d(q_len), "num_k_heads": heads, "num_v_heads": heads,
                       "head_k_dim": GDN_HEAD_DIM, "head_v_dim": GDN_HEAD_DIM, "conv_kernel": mb.conv_kernel})
    from ..opmodel.features import featurize   # here: the replay of cached tables does not import opmodel

    _, roof = featurize("gdn_prefill", df, get_gpu(ctx.worker.gpu))
    return np.maximum(models.predict("gdn_prefill", df) / np.asarray(roof), 1.0)


def state_bytes(model, tp):
    """SSM state + convolution state of one layer for one sequence on one GPU (bytes)."""
    mb = model.mamba
    return (mb.num_heads // tp) * mb.head_dim * mb.state_size * mb.state_bytes \
        + (mb.conv_kernel - 1) * mb.conv_dim // tp * 2


MAMBA2 = register(AttentionKind(
    name="mamba2", doc=__doc__.strip().splitlines()[0],
    families=("mamba2_conv_prefill", "mamba2_conv_decode", "gdn_prefill"),   # gdn_prefill: the scan's efficiency
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=lambda model, b, tp: 0.0,
    state_bytes_per_sequence=state_bytes, untimed_ms=ssd_scan_ms))
