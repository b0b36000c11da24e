"""TensorRT-LLM's expert-parallel dispatch and combine inside one NVLink domain: the NVLinkOneSided all-to-all.

With attention data parallelism and expert parallelism, TensorRT-LLM moves each token to the ranks of its routed
experts (dispatch) and sums the experts' outputs back (combine). Inside one NVLink domain (an 8-GPU HGX B200
board, a 72-GPU GB200 NVL72 rack) it does so with its own kernels, **NVLinkOneSided**, "the default communication
strategy within a single NVLink domain in TensorRT LLM" (NVIDIA/TensorRT-LLM tech blog 18, *Optimizing MoE
Communication with One-Sided AlltoAll Over NVLink*, ``docs/source/blogs/tech_blog/``): the sender writes each token
once per target rank straight into the target's symmetric memory, the combine pulls and reduces the experts'
outputs, and two flag barriers synchronise the ranks. It is not DeepEP, whose kernels the imported ``moe_a2a``
tables time (DeepEP within one 4-GPU tray on GB200, extrapolated to wider EP by the operator model).

The blog measures the kernels on GB200 NVL72 with DeepSeek-V3's shape (hidden 7,168, top-8 of 256 experts, BF16
payload, 14,336 bytes per token) for EP 8, 16, 32 and 64 and 1-2,048 tokens per rank: :data:`MEASURED_US` holds
its four tables. Below ~64 tokens per rank both kernels sit at a synchronisation floor (dispatch ~19 us, combine
~31 us at every EP size); above it they approach ~80 % of the 900 GB/s per-direction NVLink bandwidth.

Other shapes and formats are read off the same tables at the **same bytes on the wire**: the dispatch of a token
carries ``min(ep, top_k)`` copies of its activations (one per target rank), in the format the experts consume
(TensorRT-LLM quantizes before dispatch: NVFP4 4,032 bytes per 7,168-wide token, FP8 with 1x128 block scales
7,392, BF16 14,336); the combine returns BF16 outputs. A call of ``n`` tokens per rank is priced as the measured
call of ``n x (its bytes per token x min(ep, top_k)) / (14,336 x min(ep, 8))`` tokens. The blog's own post-quant
measurement checks the rule: at 2,048 tokens per rank (EP 8) NVFP4 dispatch takes 101.7 us and MXFP8 172.2 us;
the BF16 table at the equal-byte token counts (576 and 1,056) gives 102.6 and 172.8 us. Token counts below one
measured token stay at the 1-token floor; above 2,048 the time grows in proportion to the bytes (the last measured
rate). EP sizes between the measured ones are interpolated; below 8 the EP-8 figures apply (fewer peers, the same
kernels and barriers), above 64 the EP-64 ones.

The measurements are GB200's NVLink 5 (900 GB/s per direction); the cost model applies them where the GPU's
NVLink is at least that fast (:data:`MEASURED_NVLINK_BANDWIDTH`; B200, B300, GB200, GB300) and the expert-parallel
group fits one NVLink domain. The blog's post-quant figure was taken on B200. TensorRT-LLM enables all-to-all
only when the EP size exceeds the top-k (``select_alltoall_method_type`` in its fused-MoE modules: ``moe_ep_size <=
top_k`` -> not enabled; a token reaches at most top-k ranks, so all-to-all saves bytes only above it); at or below,
the layer all-gathers and reduce-scatters the tokens (NCCL tables, :class:`~frontier_calib.cost.iteration.
IterationCostModel`), as it does on Hopper and across NVLink domains: DeepEP only runs when the operator sets
``TRTLLM_CAN_USE_DEEP_EP``.
"""

from __future__ import annotations

import numpy as np

#: per-direction NVLink bandwidth of the measured system (GB200 NVL72), bytes/s
MEASURED_NVLINK_BANDWIDTH = 900e9
#: bytes per token of the measured payload (DeepSeek-V3 hidden 7,168 in BF16)
MEASURED_BYTES_PER_TOKEN = 7168 * 2
#: top-k of the measured routing
MEASURED_TOPK = 8
#: tokens per rank of the measured rows
MEASURED_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
#: ep_size -> (dispatch us, combine us) per entry of :data:`MEASURED_TOKENS` (tech blog 18, "Scaling With Batch
#: Size and EP Size", GB200 NVL72, BF16)
MEASURED_US = {
    8: ((18.9, 18.4, 18.1, 17.6, 18.5, 18.2, 22.3, 31.7, 50.8, 89.5, 166.3, 311.8),
        (31.0, 31.1, 31.4, 31.4, 32.6, 32.7, 34.1, 38.1, 53.0, 91.7, 175.6, 322.6)),
    16: ((18.8, 19.1, 18.5, 18.9, 18.4, 20.2, 24.1, 34.6, 54.8, 97.1, 181.2, 343.3),
         (30.8, 31.4, 31.6, 31.8, 33.0, 34.2, 35.6, 39.9, 57.0, 98.2, 188.2, 348.4)),
    32: ((19.8, 19.7, 19.6, 19.4, 18.9, 21.1, 26.2, 37.8, 61.5, 109.6, 197.5, 373.7),
         (31.4, 31.3, 31.4, 32.2, 33.4, 34.6, 36.4, 41.1, 59.7, 102.5, 197.5, 369.5)),
    64: ((27.8, 24.8, 29.1, 20.4, 20.6, 23.1, 28.8, 41.6, 65.3, 115.7, 209.4, 399.2),
         (32.6, 32.2, 33.0, 33.3, 35.0, 36.1, 37.7, 44.5, 62.9, 106.7, 199.2, 372.1)),
}

#: bytes per activation element on the wire, by the experts' format (the dispatch carries what they consume;
#: block scales included: NVFP4 one byte per 16 elements, FP8 four bytes per 128)
DISPATCH_BYTES_PER_ELEMENT = {"nvfp4": 0.5 + 1 / 16, "fp8": 1 + 4 / 128, "fp8_block": 1 + 4 / 128,
                              "mxfp4_fp8": 1 + 4 / 128}
#: the combine returns the experts' outputs in BF16
COMBINE_BYTES_PER_ELEMENT = 2.0


def dispatch_bytes_per_element(moe_dtype: str) -> float:
    """Bytes per hidden element a dispatched token carries for experts in ``moe_dtype`` (BF16 for formats whose
    activations stay 16-bit, e.g. weight-only ``mxfp4`` / ``int4_wo``)."""
    return DISPATCH_BYTES_PER_ELEMENT.get(str(moe_dtype), 2.0)


def _measured_us(tokens: np.ndarray, column: np.ndarray) -> np.ndarray:
    """Microseconds at ``tokens`` (equal-byte tokens per rank) from one measured column: log-linear interpolation
    between measured token counts, the 1-token floor below, proportional to the tokens above 2,048."""
    x = np.log2(np.asarray(MEASURED_TOKENS, dtype=float))
    t = np.maximum(np.asarray(tokens, dtype=float), 1.0)
    inside = np.interp(np.log2(t), x, column)
    return np.where(t > MEASURED_TOKENS[-1], column[-1] * t / MEASURED_TOKENS[-1], inside)


def _at_ep(ep: int, phase: int, tokens: np.ndarray) -> np.ndarray:
    """Microseconds of one phase (0 dispatch, 1 combine) at ``ep`` ranks, interpolated linearly in log2(ep)
    between the measured EP sizes (clamped to 8..64)."""
    sizes = sorted(MEASURED_US)
    e = float(min(max(int(ep), sizes[0]), sizes[-1]))
    lo = max(s for s in sizes if s <= e)
    hi = min(s for s in sizes if s >= e)
    a = _measured_us(tokens, np.asarray(MEASURED_US[lo][phase], dtype=float))
    if hi == lo:
        return a
    b = _measured_us(tokens, np.asarray(MEASURED_US[hi][phase], dtype=float))
    w = (np.log2(e) - np.log2(lo)) / (np.log2(hi) - np.log2(lo))
    return a + w * (b - a)


def one_sided_ms(tokens_per_rank, ep: int, hidden: int, topk: int, moe_dtype: str) -> np.ndarray:
    """Milliseconds of one MoE layer's NVLinkOneSided dispatch + combine for ``tokens_per_rank`` tokens on each
    of ``ep`` ranks, ``hidden``-wide activations routed to ``topk`` experts each, experts in ``moe_dtype``."""
    n = np.asarray(tokens_per_rank, dtype=float)
    copies = min(int(ep), int(topk)) / min(int(ep), MEASURED_TOPK)
    out = np.zeros(n.shape)
    for phase, per_element in ((0, dispatch_bytes_per_element(moe_dtype)), (1, COMBINE_BYTES_PER_ELEMENT)):
        equal_bytes = n * hidden * per_element * copies / MEASURED_BYTES_PER_TOKEN
        out += _at_ep(ep, phase, equal_bytes)
    return out / 1e3
