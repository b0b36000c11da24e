"""Physics-informed features for operator-latency models.

Every family turns a canonical profile table (or a query frame with the same shape columns)
into (1) a feature matrix and (2) a roofline time in milliseconds: max(FLOPs / peak FLOP/s,
bytes / HBM bytes/s) plus a fixed launch floor, from :mod:`frontier_calib.hardware`.
Models learn log(latency / roofline), the achieved fraction of the roofline, which keeps their
answers sensible on shapes the tables never measured (a new (n, k), a prefill chunk attending
to a cached prefix, an unseen head layout) because the roofline carries the scaling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..dtypes import DTYPE_BYTES, activation_bytes
from ..hardware import GPUSpec

LAUNCH_FLOOR_MS = 0.003  #: fixed per-call floor (kernel launch + tail), milliseconds

# DeepSeek-V3 MLA dimensions: the public MLA tables were measured on that layer.
MLA_QK_HEAD_DIM = 192      # 128 no-RoPE + 64 RoPE
MLA_V_HEAD_DIM = 128
MLA_LATENT = 576           # kv_lora_rank 512 + RoPE 64 (cached per token)
MLA_KV_LORA = 512
MLA_HIDDEN = 7168
MLA_Q_LORA = 1536

_OP_CODES = {"all_reduce": 0, "all_gather": 1, "reduce_scatter": 2, "all_to_all": 3}
_IMPL_CODES = {"nccl": 0, "custom": 1, "custom_eager": 2}
_BUS_FACTOR = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0, "all_to_all": 1.0}


def _factor(series):
    """(codes, distinct values) of a categorical column; factorise once, reuse for every per-value lookup."""
    if isinstance(series, tuple):
        return series
    if len(series) and (series == series.iloc[0]).all():  # one dtype (rows routed per group): no hashing
        return np.zeros(len(series), dtype=np.intp), [series.iloc[0]]
    return pd.factorize(series)


def _per_value(series, fn) -> np.ndarray:
    """Apply ``fn`` once per distinct value of ``series`` (a column or its :func:`_factor`) and broadcast
    (dtype columns have few values)."""
    codes, uniques = _factor(series)
    return np.array([fn(u) for u in uniques], dtype=float)[codes]


def _bytes(series) -> np.ndarray:
    return _per_value(series, DTYPE_BYTES.__getitem__)


def _peak(series, gpu: GPUSpec) -> np.ndarray:
    """Peak FLOP/s per row for the dtype in ``series``."""
    return _per_value(series, gpu.flops)


def _act_bytes(series) -> np.ndarray:
    """Activation bytes per element: fp8/int8/nvfp4 formats quantise activations, weight-only ones do not."""
    return _per_value(series, activation_bytes)


def _num(df, col) -> np.ndarray:
    return df[col].to_numpy(dtype=float)


def _log(x) -> np.ndarray:
    """log2 in float32 (what the models read; twice as fast as float64 on a million rows)."""
    v = np.array(x, dtype=np.float32)
    np.maximum(v, np.float32(1e-30), out=v)
    return np.log2(v, out=v)


def _pad_eff(x, tile) -> np.ndarray:
    """Useful fraction of work when x is padded up to a multiple of ``tile``."""
    return x / (np.ceil(x / tile) * tile)


def _alignment(x, cap: int = 8) -> np.ndarray:
    """log2 of the largest power of two dividing x (capped): odd sizes defeat vectorised loads."""
    xi = np.maximum(np.asarray(x, dtype=np.int64), 1)
    return np.minimum(np.log2((xi & -xi).astype(float)), cap)


def _wave_eff(ctas, sms) -> np.ndarray:
    """Fraction of SM slots busy across the waves needed for ``ctas`` thread blocks."""
    waves = np.ceil(np.maximum(ctas, 1) / sms)
    return ctas / (waves * sms)


def _roofline(flops, nbytes, peak, bw):
    t_c = flops / peak * 1e3
    t_m = nbytes / bw * 1e3
    return t_c, t_m, np.maximum(t_c, t_m) + LAUNCH_FLOOR_MS


def causal_pairs(q_len, kv_len, window) -> np.ndarray:
    """Query-key pairs one sequence computes: q_len new tokens at the end of kv_len, causal,
    optionally within a sliding window (0 = full). A prefix-cached chunk has kv_len > q_len."""
    q = np.asarray(q_len, dtype=float)
    kv = np.asarray(kv_len, dtype=float)
    w = np.asarray(window, dtype=float)

    def s(x):  # sum_{p=0}^{x-1} min(p + 1, w)
        full = x * (x + 1) / 2
        capped = w * (w + 1) / 2 + (x - w) * w
        return np.where((w > 0) & (x > w), capped, full)

    return s(kv) - s(kv - q)


# ----------------------------------------------------------------------------- families

def gemm(df: pd.DataFrame, gpu: GPUSpec):
    m, n, k = _num(df, "m"), _num(df, "n"), _num(df, "k")
    dt = _factor(df["dtype"])
    wb, ab = _bytes(dt), _act_bytes(dt)
    flops = 2 * m * n * k
    nbytes = m * k * ab + k * n * wb + m * n * 2
    t_c, t_m, roof = _roofline(flops, nbytes, _peak(dt, gpu), gpu.hbm_bandwidth)
    tiles = np.ceil(m / 128) * np.ceil(n / 128)
    x = {
        "log_m": _log(m), "log_n": _log(n), "log_k": _log(k),
        "log_t_compute": _log(t_c), "log_t_memory": _log(t_m),
        "log_intensity": _log(flops / nbytes),
        "m_pad64": _pad_eff(m, 64), "m_pad128": _pad_eff(m, 128), "n_pad128": _pad_eff(n, 128),
        "k_pad128": _pad_eff(k, 128),
        "wave_eff": _wave_eff(tiles, gpu.sm_count), "log_waves": _log(tiles / gpu.sm_count),
        "weight_bytes": wb, "m_align": _alignment(m), "n_align": _alignment(n), "k_align": _alignment(k),
    }
    # the library picks among tile shapes by how well their CTA grid fills the SMs: expose each choice
    for tm, tn in ((64, 128), (128, 256), (256, 128)):
        x[f"wave_eff_{tm}x{tn}"] = _wave_eff(np.ceil(m / tm) * np.ceil(n / tn), gpu.sm_count)
    return x, roof


def attention_prefill(df: pd.DataFrame, gpu: GPUSpec):
    b, q, kv = _num(df, "batch_size"), _num(df, "q_len"), _num(df, "kv_len")
    h, kvh, d, w = _num(df, "num_heads"), _num(df, "num_kv_heads"), _num(df, "head_dim"), _num(df, "window")
    kvb = _bytes(df["kv_dtype"])
    pairs = causal_pairs(q, kv, w)
    kv_read = np.where(w > 0, np.minimum(kv, w + q), kv)
    flops = 4 * b * h * d * pairs
    nbytes = b * (2 * q * h * d * 2 + kv_read * kvh * d * 2 * kvb)
    t_c, t_m, roof = _roofline(flops, nbytes, _peak(df["dtype"], gpu), gpu.hbm_bandwidth)
    ctas = b * h * np.ceil(q / 128)
    x = {
        "log_batch": _log(b), "log_q": _log(q), "log_pairs_per_seq": _log(pairs),
        "log_keys_per_query": _log(pairs / q), "heads": h, "kv_heads": kvh, "head_dim": d,
        "gqa_ratio": h / kvh, "windowed": (w > 0).astype(float),
        "log_t_compute": _log(t_c), "log_t_memory": _log(t_m),
        "q_pad128": _pad_eff(q, 128), "wave_eff": _wave_eff(ctas, gpu.sm_count), "log_ctas": _log(ctas),
        "kv_bytes": kvb,
    }
    return x, roof


def attention_decode(df: pd.DataFrame, gpu: GPUSpec):
    b, kv = _num(df, "batch_size"), _num(df, "kv_len")
    h, kvh, d, w = _num(df, "num_heads"), _num(df, "num_kv_heads"), _num(df, "head_dim"), _num(df, "window")
    kvb = _bytes(df["kv_dtype"])
    kv_eff = np.where(w > 0, np.minimum(kv, w), kv)
    flops = 4 * b * h * d * kv_eff
    nbytes = b * kv_eff * kvh * d * 2 * kvb + b * h * d * 2 * 2
    t_c, t_m, roof = _roofline(flops, nbytes, _peak(df["dtype"], gpu), gpu.hbm_bandwidth)
    x = {
        "log_batch": _log(b), "log_kv": _log(kv_eff), "log_kv_tokens": _log(b * kv_eff),
        "log_kv_full": _log(kv), "log_window": _log(np.maximum(w, 1)),
        "heads": h, "kv_heads": kvh, "head_dim": d, "gqa_ratio": h / kvh, "windowed": (w > 0).astype(float),
        "log_t_compute": _log(t_c), "log_t_memory": _log(t_m),
        "wave_eff": _wave_eff(b * kvh, gpu.sm_count), "kv_bytes": kvb,
    }
    # split-KV decode: (sequence, kv head) pairs too few to fill the SMs get their keys split across
    # CTAs (FlashAttention's num_splits heuristic, 256-key blocks); what one CTA streams from HBM
    pairs = b * kvh
    splits = np.clip(np.floor(gpu.sm_count / pairs), 1, np.ceil(kv_eff / 256))
    ctas = pairs * splits
    x["log_splits"] = _log(splits)
    x["split_wave_eff"] = _wave_eff(ctas, gpu.sm_count)
    x["log_cta_kv_bytes"] = _log(kv_eff / splits * d * 2 * kvb)
    return x, roof


def _mla_projection_cost(tokens, h, scope, wb):
    """FLOPs and weight bytes of the MLA projections (q_a, q_b, kv_a, kv_b, o) for module-scope rows."""
    per_tok = (MLA_HIDDEN * MLA_Q_LORA + MLA_Q_LORA * h * MLA_QK_HEAD_DIM + MLA_HIDDEN * MLA_LATENT
               + MLA_KV_LORA * h * (MLA_QK_HEAD_DIM - 64 + MLA_V_HEAD_DIM) + h * MLA_V_HEAD_DIM * MLA_HIDDEN)
    is_mod = (scope == "module").astype(float)
    return is_mod * 2 * tokens * per_tok, is_mod * per_tok * wb, is_mod


def mla_prefill(df: pd.DataFrame, gpu: GPUSpec):
    b, q, kv, h = _num(df, "batch_size"), _num(df, "q_len"), _num(df, "kv_len"), _num(df, "num_heads")
    kvb, wb = _bytes(df["kv_dtype"]), _bytes(df["dtype"])
    pairs = causal_pairs(q, kv, np.zeros_like(q))
    p_flops, p_bytes, is_mod = _mla_projection_cost(b * q, h, df["scope"].to_numpy(), wb)
    flops = b * h * pairs * 2 * (MLA_QK_HEAD_DIM + MLA_V_HEAD_DIM) + p_flops
    nbytes = b * kv * MLA_LATENT * kvb + b * q * h * (MLA_QK_HEAD_DIM + MLA_V_HEAD_DIM) * 2 + p_bytes
    t_c, t_m, roof = _roofline(flops, nbytes, _peak(df["dtype"], gpu), gpu.hbm_bandwidth)
    x = {
        "log_batch": _log(b), "log_q": _log(q), "log_pairs_per_seq": _log(pairs),
        "log_keys_per_query": _log(pairs / q), "heads": h, "module": is_mod,
        "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "kv_bytes": kvb, "weight_bytes": wb,
        "wave_eff": _wave_eff(b * h * np.ceil(q / 64), gpu.sm_count),
    }
    return x, roof


#: TensorRT-LLM's MLA generation kernels on Blackwell (trtllm-gen; ``TllmGenFmhaKernel`` in
#: cpp/tensorrt_llm/kernels/trtllmGenKernels/fmha/fmhaKernels.h, ``hashFromRunnerParams`` and ``computeNumCtas``). MLA
#: has one KV head, so every query head of the GPU shares it. The *low-latency* kernel (MMA operands swapped: the KV
#: tokens fill the tile's long side) runs when heads <= 32 or when batch x ceil(heads / 16) x 2 <= SMs (one query
#: token); it takes the heads in tiles of 8 (heads <= 8) or 16, one CTA per (sequence, head tile), and splits the
#: keys over min(ceil(kv / 128), SMs // CTAs) CTAs (``multiCtasKvMode``); a grid that still fills at most half (a
#: quarter) of the SMs splits the 512 value columns over 2 (4) CTAs (``headDimPerCtaV`` 256 or 128). Otherwise the
#: *high-throughput* kernel takes 64 heads per CTA, without key splitting (persistent scheduler).
MLA_GEN_LOW_LATENCY_MAX_HEADS = 32
MLA_GEN_TILE_HEADS = (8, 16, 64)     #: low-latency tiles (heads <= 8, else), high-throughput tile
MLA_GEN_TILE_KV = 128                #: keys per CTA step (``tileSizeKv``)


def mla_generation_kernel(b, h, kv, sm_count) -> dict:
    """The trtllm-gen MLA generation kernel's launch for decode rows (one query token per sequence): ``low_latency``
    (1/0), ``head_tile`` (query heads per CTA), ``head_tiles`` (CTAs per sequence over the heads), ``kv_splits`` (CTAs
    per sequence over the keys) and ``ctas`` (the grid, value-column splits included). See
    :data:`MLA_GEN_LOW_LATENCY_MAX_HEADS`; batch-1 rows use the same thresholds here (the source halves the
    value-split threshold for them)."""
    b, h, kv = (np.asarray(v, dtype=float) for v in (b, h, kv))
    small, mid, wide = MLA_GEN_TILE_HEADS
    low = (h <= MLA_GEN_LOW_LATENCY_MAX_HEADS) | (b * np.ceil(h / mid) * 2 <= sm_count)
    tile = np.where(low, np.where(h <= small, small, mid), wide)
    tiles = np.ceil(h / tile)
    splits = np.where(low, np.minimum(np.ceil(kv / MLA_GEN_TILE_KV), np.maximum(1, np.floor(sm_count / (b * tiles)))),
                      1.0)
    ctas = b * tiles * splits
    value_split = np.where(low & (ctas * 2 <= sm_count), np.where(ctas * 4 <= sm_count, 4.0, 2.0), 1.0)
    return {"low_latency": low.astype(float), "head_tile": tile, "head_tiles": tiles, "kv_splits": splits,
            "ctas": ctas * value_split}


def mla_decode(df: pd.DataFrame, gpu: GPUSpec):
    """MLA decode (kernel or module scope): every FLOP at the weights' rate, the latent rows read once. On the GPUs
    that run TensorRT-LLM's trtllm-gen kernels (``GPUSpec.has_trtllm_gen_kernels``), :func:`mla_decode_trtllm_gen`."""
    if gpu.has_trtllm_gen_kernels:
        return mla_decode_trtllm_gen(df, gpu)
    b, kv, h = _num(df, "batch_size"), _num(df, "kv_len"), _num(df, "num_heads")
    kvb, wb = _bytes(df["kv_dtype"]), _bytes(df["dtype"])
    p_flops, p_bytes, is_mod = _mla_projection_cost(b, h, df["scope"].to_numpy(), wb)
    flops = b * h * kv * 2 * (MLA_LATENT + MLA_KV_LORA) + p_flops
    nbytes = b * kv * MLA_LATENT * kvb + p_bytes
    t_c, t_m, roof = _roofline(flops, nbytes, _peak(df["dtype"], gpu), gpu.hbm_bandwidth)
    x = {
        "log_batch": _log(b), "log_kv": _log(kv), "log_kv_tokens": _log(b * kv), "heads": h, "module": is_mod,
        "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "kv_bytes": kvb, "weight_bytes": wb,
        "wave_eff": _wave_eff(b * np.ceil(h / 64), gpu.sm_count),
    }
    return x, roof


def mla_decode_trtllm_gen(df: pd.DataFrame, gpu: GPUSpec):
    """MLA decode on data-centre Blackwell (kernel or module scope). The attention's FLOPs count the query heads as
    the generation kernel tiles them (:func:`mla_generation_kernel`: 1-8 heads cost a tile of 8, 9-16 a tile of 16)
    and run at the KV cache format's tensor-core rate: with an FP8 KV cache the kernels take FP8 queries (the
    E4M3-query kernels of fmhaKernels.h; the B200 TensorRT-LLM kernel table times 128 heads, batch 128, 131,072 keys
    at 1.70 ms, under the 2.08 ms its BF16 FLOPs would need); the projections run at the weights' rate. The kernel's launch is exposed as
    features (low-latency kernel or not, head tiles, key splits, CTAs, and the latent rows read once per head tile)."""
    b, kv, h = _num(df, "batch_size"), _num(df, "kv_len"), _num(df, "num_heads")
    kvb, wb = _bytes(df["kv_dtype"]), _bytes(df["dtype"])
    p_flops, p_bytes, is_mod = _mla_projection_cost(b, h, df["scope"].to_numpy(), wb)
    launch = mla_generation_kernel(b, h, kv, gpu.sm_count)
    attn_flops = b * launch["head_tiles"] * launch["head_tile"] * kv * 2 * (MLA_LATENT + MLA_KV_LORA)
    t_c = attn_flops / _peak(df["kv_dtype"], gpu) * 1e3 + p_flops / _peak(df["dtype"], gpu) * 1e3
    kv_bytes = b * kv * MLA_LATENT * kvb
    t_m = (kv_bytes + p_bytes) / gpu.hbm_bandwidth * 1e3
    roof = np.maximum(t_c, t_m) + LAUNCH_FLOOR_MS
    x = {
        "log_batch": _log(b), "log_kv": _log(kv), "log_kv_tokens": _log(b * kv), "heads": h, "module": is_mod,
        "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "kv_bytes": kvb, "weight_bytes": wb,
        "wave_eff": _wave_eff(b * np.ceil(h / 64), gpu.sm_count),
        "low_latency_kernel": launch["low_latency"], "head_tiles": launch["head_tiles"],
        "log_kv_splits": _log(launch["kv_splits"]), "log_ctas": _log(launch["ctas"]),
        "cta_wave_eff": _wave_eff(launch["ctas"], gpu.sm_count), "log_cta_kv": _log(kv / launch["kv_splits"]),
        "log_t_kv_per_tile": _log(kv_bytes * launch["head_tiles"] / gpu.hbm_bandwidth * 1e3),
    }
    return x, roof


#: tokens per chunk of the chunked gated delta rule (FLA / FlashInfer kernels)
GDN_CHUNK = 64


def _gdn_common(b, tokens, nk, nv, dk, dv, conv):
    """Roofline terms shared by gated-DeltaNet prefill and decode: per token, each value head updates its
    dk x dv state (decay, rank-1 delta update, read-out: ~6 dk dv FLOPs) and the convolution runs over
    q, k and v; each sequence reads and writes its fp32 state once per call."""
    conv_dim = 2 * nk * dk + nv * dv
    state = b * nv * dk * dv * 4
    flops = tokens * (nv * 6 * dk * dv + 2 * conv * conv_dim)
    nbytes = tokens * conv_dim * 2 * 3 + 2 * state
    return flops, nbytes, state


def gdn_prefill(df: pd.DataFrame, gpu: GPUSpec):
    b, q = _num(df, "batch_size"), _num(df, "q_len")
    nk, nv, dk, dv = (_num(df, c) for c in ("num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim"))
    conv = _num(df, "conv_kernel")
    tokens = b * q
    flops, nbytes, state = _gdn_common(b, tokens, nk, nv, dk, dv, conv)
    flops = flops + tokens * nv * 2 * np.minimum(q, GDN_CHUNK) * (dk + dv)   # intra-chunk attention
    t_c, t_m, roof = _roofline(flops, nbytes, gpu.flops("bf16"), gpu.hbm_bandwidth)
    chunks = b * np.ceil(q / GDN_CHUNK)
    x = {"log_batch": _log(b), "log_q": _log(q), "log_tokens": _log(tokens), "k_heads": nk, "v_heads": nv,
         "log_state_bytes": _log(state), "log_t_compute": _log(t_c), "log_t_memory": _log(t_m),
         "log_chunks": _log(chunks), "wave_eff": _wave_eff(b * nv, gpu.sm_count),
         "q_pad_chunk": _pad_eff(q, GDN_CHUNK)}
    return x, roof


def gdn_decode(df: pd.DataFrame, gpu: GPUSpec):
    b = _num(df, "batch_size")
    nk, nv, dk, dv = (_num(df, c) for c in ("num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim"))
    flops, nbytes, state = _gdn_common(b, b, nk, nv, dk, dv, _num(df, "conv_kernel"))
    t_c, t_m, roof = _roofline(flops, nbytes, gpu.flops("bf16"), gpu.hbm_bandwidth)
    x = {"log_batch": _log(b), "k_heads": nk, "v_heads": nv, "log_state_bytes": _log(state),
         "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "wave_eff": _wave_eff(b * nv, gpu.sm_count)}
    return x, roof


def _mamba2_conv_common(df):
    """(batch, channels, state bytes) of a Mamba2 convolution call: the depthwise convolution runs over the x, B
    and C channels; each sequence keeps the last conv_kernel - 1 inputs (bf16)."""
    b, k = _num(df, "batch_size"), _num(df, "conv_kernel")
    channels = _num(df, "num_heads") * _num(df, "head_dim") + 2 * _num(df, "n_groups") * _num(df, "d_state")
    return b, k, channels, b * (k - 1) * channels * 2


def mamba2_conv_prefill(df: pd.DataFrame, gpu: GPUSpec):
    b, k, ch, state = _mamba2_conv_common(df)
    q = _num(df, "q_len")
    tokens = b * q
    flops = 2 * k * ch * tokens
    nbytes = tokens * ch * 2 * 2 + 2 * state          # read the inputs, write the outputs, the conv state
    t_c, t_m, roof = _roofline(flops, nbytes, gpu.flops("bf16"), gpu.hbm_bandwidth)
    x = {"log_batch": _log(b), "log_q": _log(q), "log_tokens": _log(tokens), "log_channels": _log(ch),
         "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "wave_eff": _wave_eff(b * np.ceil(ch / 64), gpu.sm_count)}
    return x, roof


def mamba2_conv_decode(df: pd.DataFrame, gpu: GPUSpec):
    b, k, ch, state = _mamba2_conv_common(df)
    flops = 2 * k * ch * b
    nbytes = b * ch * 2 * 2 + 2 * state
    t_c, t_m, roof = _roofline(flops, nbytes, gpu.flops("bf16"), gpu.hbm_bandwidth)
    x = {"log_batch": _log(b), "log_channels": _log(ch), "log_state_bytes": _log(state),
         "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "wave_eff": _wave_eff(b * np.ceil(ch / 64), gpu.sm_count)}
    return x, roof


#: per-head widths of the absorbed MLA BMMs the mla_bmm tables time (DeepSeek-V3: qk_nope_head_dim, kv_lora_rank)
MLA_BMM_NOPE, MLA_BMM_LATENT = 128, 512


def mla_bmm(df: pd.DataFrame, gpu: GPUSpec):
    """Per head a [tokens x 128] @ [128 x 512] (pre) or [tokens x 512] @ [512 x 128] (post) product: the same
    FLOPs both ways; the weights of every head are read once, the activations in and out once."""
    t, h = _num(df, "num_tokens"), _num(df, "num_heads")
    wb = _bytes(df["dtype"])
    flops = 2 * t * h * MLA_BMM_NOPE * MLA_BMM_LATENT
    nbytes = h * MLA_BMM_NOPE * MLA_BMM_LATENT * wb + t * h * (MLA_BMM_NOPE + MLA_BMM_LATENT) * 2
    t_c, t_m, roof = _roofline(flops, nbytes, _peak(df["dtype"], gpu), gpu.hbm_bandwidth)
    x = {"log_tokens": _log(t), "heads": h, "log_t_compute": _log(t_c), "log_t_memory": _log(t_m),
         "post": (df["op"] == "post").to_numpy(dtype=float), "weight_bytes": wb,
         "m_pad_64": _pad_eff(t, 64), "wave_eff": _wave_eff(h * np.ceil(t / 64), gpu.sm_count)}
    return x, roof


def mhc(df: pd.DataFrame, gpu: GPUSpec):
    """Memory-bound stream mixing: 'pre' reads the hc_mult streams and writes one input (plus the mixing
    projection, hc_mult x hidden -> hc_mult^2 + 2 hc_mult, and the Sinkhorn steps on hc_mult x hc_mult), 'post'
    reads the output and the streams and writes the streams back; bf16 activations."""
    t, hid, n, it = (_num(df, c) for c in ("num_tokens", "hidden_size", "hc_mult", "sinkhorn_iters"))
    post = (df["op"] == "post").to_numpy(dtype=float)
    nbytes = t * hid * 2 * np.where(post > 0, 2 * n + 1, n + 1)
    flops = t * np.where(post > 0, 2 * n * hid, 2 * n * hid * (n * n + 2 * n) + it * n * n * 4)
    t_c, t_m, roof = _roofline(flops, nbytes, gpu.flops("bf16"), gpu.hbm_bandwidth)
    x = {"log_tokens": _log(t), "log_hidden": _log(hid), "hc_mult": n, "post": post, "log_t_compute": _log(t_c),
         "log_t_memory": _log(t_m), "wave_eff": _wave_eff(np.ceil(t / 64), gpu.sm_count)}
    return x, roof


#: fixed milliseconds of one DSA module call beyond its roofline: the module runs some 40 small kernels (MLA and
#: indexer projections with their FP8 quantisation, norms, RoPE, indexer logits, top-k, sparse attention). Read off
#: the flat region of the public H100/H200 module tables (short prefills ~0.8 ms per call, timed eagerly; decode
#: ~0.05 ms, CUDA-graph replay). Without it the roofline scales with heads and tokens where the measured time is flat.
DSA_PREFILL_FLOOR_MS = 0.8
DSA_DECODE_FLOOR_MS = 0.05


def _dsa_terms(df, tokens):
    """Per-GPU dimensions and the projection FLOPs / weight bytes of a DSA module (MLA + indexer) for ``tokens``."""
    h, hid = _num(df, "num_heads"), _num(df, "hidden_size")
    ql, kvl = _num(df, "q_lora_rank"), _num(df, "kv_lora_rank")
    nope, rope, v = _num(df, "qk_nope_head_dim"), _num(df, "qk_rope_head_dim"), _num(df, "v_head_dim")
    ih, idim = _num(df, "index_n_heads"), _num(df, "index_head_dim")
    q_in = np.where(ql > 0, ql, hid)
    per_tok = (np.where(ql > 0, hid * ql, 0) + q_in * h * (nope + rope) + hid * (kvl + rope)
               + kvl * h * (nope + v) + h * v * hid + q_in * ih * idim + hid * (idim + ih))
    wb = _bytes(df["dtype"])
    return h, kvl + rope, kvl, ih * idim, 2 * tokens * per_tok, per_tok * wb, wb


#: query heads one sparse-MLA attention tile processes: FlashMLA's sparse kernels run the query heads of a token in
#: blocks of 64 (fewer are padded up to 64), so a module with 1-64 heads pays one block's attention, 65-128 two
DSA_HEAD_BLOCK = 64


def _dsa_sparse_terms(df, gpu, tokens, kv):
    """Features of the sparse MLA stage as the kernels run it: head blocks of :data:`DSA_HEAD_BLOCK` and
    ``index_topk`` key slots per query token whatever the context (the top-k index buffer is a fixed size; the
    TensorRT-LLM decode tables are flat in the context below ``index_topk`` and double from 64 to 128 heads), and
    the context over ``index_topk`` (where the indexer and the top-k selection take over from dense attention)."""
    h, lat, kvl = _num(df, "num_heads"), _num(df, "kv_lora_rank") + _num(df, "qk_rope_head_dim"), \
        _num(df, "kv_lora_rank")
    topk = _num(df, "index_topk")
    blocks = np.ceil(h / DSA_HEAD_BLOCK)
    flops = tokens * blocks * DSA_HEAD_BLOCK * topk * 2 * (lat + kvl)
    return {"head_blocks": blocks, "log_t_attn_padded": _log(flops / _peak(df["dtype"], gpu) * 1e3),
            "log_kv_over_topk": _log(kv / topk)}


def dsa_sparse_prefill_ms(df, gpu, tokens, kv) -> np.ndarray:
    """Milliseconds of the sparse-MLA stage of a DSA prefill as the kernel runs it, at the bf16 tensor-core peak
    (the latent cache is read, or dequantised, into bf16 tiles): every query token attends its ``index_topk`` key
    slots (the top-k index buffer is a fixed size) in blocks of :data:`DSA_HEAD_BLOCK` query heads (FlashMLA's
    sparse prefill kernel takes the heads in multiples of 64, so its callers pad them: LMDeploy's
    ``flash_mla_prefill``, "flash_mla_sparse_fwd requires query heads to be multiple of 64"). Linear in the query
    tokens; 0 where the context fits the top-k (``kv <= index_topk``: SGLang on Hopper attends densely there, its
    ``SGLANG_NSA_PREFILL_DENSE_ATTN_KV_LEN_THRESHOLD`` defaulting to ``index_topk``; what other engines' kernels
    do with the unused slots is left to the fit). Part of the prefill roofline, so that the fitted ratio stays flat
    between the tables' prompt lengths (4,096 and 8,192 tokens: the SGLang H200 GLM-5 module measures 2.63 and
    5.16 ms per call, linear in the tokens, and without this term a fit put 7,767 tokens at 3.35 ms;
    docs/validation.md, "Session 12: GLM-5 TPOT")."""
    h, lat, kvl = _num(df, "num_heads"), _num(df, "kv_lora_rank") + _num(df, "qk_rope_head_dim"), \
        _num(df, "kv_lora_rank")
    topk = _num(df, "index_topk")
    flops = tokens * np.ceil(h / DSA_HEAD_BLOCK) * DSA_HEAD_BLOCK * topk * 2 * (lat + kvl)
    return np.where(kv > topk, flops / gpu.flops("bf16") * 1e3, 0.0)


#: the TensorRT-LLM indexer top-k decode kernel (``invokeIndexerTopKDecode``, cpp/tensorrt_llm/kernels/indexerTopK.cu,
#: the 1.x releases the public tables were measured with): one thread block of this many threads per row (query
#: token) runs a radix select over the row's logits and ranks the candidates left in the threshold bin, at most
#: ``TOPK_FINAL_ITEMS`` of them, by **insertion sort** (O(n^2 / threads)) while the row is narrower than
#: ``TOPK_INSERTION_SORT_COLUMNS`` (wider rows sort them by block radix sort); a bin holding more candidates is
#: refined by the next radix pass instead, which emits ties without sorting.
TOPK_THREADS_PER_BLOCK = 512
TOPK_FINAL_ITEMS = 2048
TOPK_INSERTION_SORT_COLUMNS = 12288


def _dsa_topk_sort_terms(df, gpu, rows, kv):
    """The indexer top-k's final-pass sort as the module tables time it. The collector decodes over a cache of
    identical keys, so every cached token (kv - 1) lands in the threshold bin: once kv passes ``index_topk`` by
    less than ``TOPK_FINAL_ITEMS`` (one 2,048-token block) they are all ranked by the single-block insertion sort,
    (kv - 1)^2 / TOPK_THREADS_PER_BLOCK compare steps per row, one block per row in waves over the SMs; a longer
    context overflows the bin and skips the sort. This is the TensorRT-LLM tables' ~50 % bump at kv = index_topk
    + 1 (batch >= 8), which falls back at 2 x index_topk; engines whose top-k has no such path see a zero feature.

    ``indexer_tied_keys`` (a query column, default 1 = the tables' identical keys) is the share of the cached
    tokens that tie in the threshold bin. Real keys score apart, so the radix passes leave a handful of candidates
    and the sort is negligible: the replay's queries set it to 0 (``attention/dsa.py``), which prices the decode
    without the collector's artefact (the feature's value of every table row outside the bump)."""
    topk = _num(df, "index_topk")
    tied = _num(df, "indexer_tied_keys") if "indexer_tied_keys" in df.columns else 1.0
    items = np.where((kv > topk) & (kv - 1 <= TOPK_FINAL_ITEMS) & (kv < TOPK_INSERTION_SORT_COLUMNS),
                     tied * (kv - 1), 0.0)
    steps = np.ceil(rows / gpu.sm_count) * items * items / TOPK_THREADS_PER_BLOCK
    return {"log_topk_sort_steps": _log(1 + steps)}


def _dsa_identity(df):
    """The module's layer dimensions as features (the tables hold a few models; a tree can tell them apart)."""
    return {"log_hidden": _log(_num(df, "hidden_size")), "q_lora_rank": _num(df, "q_lora_rank"),
            "v_head_dim": _num(df, "v_head_dim"), "index_heads": _num(df, "index_n_heads"),
            "log_topk": _log(_num(df, "index_topk"))}


def _msa_terms(df, tokens):
    """Per-GPU heads and the projection FLOPs / weight bytes of an MSA module (GQA + block indexer) for ``tokens``."""
    h, kvh, d, hid = (_num(df, c) for c in ("num_heads", "num_kv_heads", "head_dim", "hidden_size"))
    ih, idim = _num(df, "index_n_heads"), _num(df, "index_head_dim")
    per_tok = hid * (h + 2 * kvh) * d + h * d * hid + hid * (ih * idim + idim + ih)
    wb = _bytes(df["dtype"])
    return h, kvh, d, ih * idim, 2 * tokens * per_tok, per_tok * wb, wb


def msa_prefill(df: pd.DataFrame, gpu: GPUSpec):
    """As dsa_prefill, with GQA over the selected keys and an indexer that scores one key per block."""
    b, q, kv, topk = _num(df, "batch_size"), _num(df, "q_len"), _num(df, "kv_len"), _num(df, "index_topk")
    h, kvh, d, idx, p_flops, p_bytes, wb = _msa_terms(df, b * q)
    kvb = _bytes(df["kv_dtype"])
    selected = causal_pairs(q, kv, topk)
    pairs = causal_pairs(q, kv, np.zeros_like(q))
    scored = pairs / _num(df, "block_size")
    attn_flops, index_flops = b * h * selected * 4 * d, b * scored * idx * 2
    flops = attn_flops + index_flops + p_flops
    nbytes = b * kv * 2 * kvh * d * kvb + p_bytes
    peak = _peak(df["dtype"], gpu)
    t_c, t_m, _ = _roofline(flops, nbytes, peak, gpu.hbm_bandwidth)
    roof = t_c + t_m + LAUNCH_FLOOR_MS * 8      # projections, indexer, top-k, attention: kernels in sequence
    x = {"log_batch": _log(b), "log_q": _log(q), "log_kv": _log(kv), "log_selected": _log(selected),
         "log_scored": _log(scored), "sparse": (kv > topk).astype(float), "heads": h, "kv_heads": kvh,
         "log_tokens": _log(b * q), "log_t_attention": _log(attn_flops / peak * 1e3),
         "log_t_indexer": _log(index_flops / peak * 1e3), "log_t_proj": _log(p_flops / peak * 1e3),
         "log_prefix": _log(kv - q + 1), "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "kv_bytes": kvb,
         # an engine whose short-context path attends densely: the time of attention over every causal pair
         "log_t_dense": _log(b * h * pairs * 4 * d / peak * 1e3),
         "weight_bytes": wb, "wave_eff": _wave_eff(b * h * np.ceil(q / 64), gpu.sm_count)}
    return x, roof


def msa_decode(df: pd.DataFrame, gpu: GPUSpec):
    """MSA decode module. Besides the selected keys' K and V and the projections' weights, the roofline reads one
    ``index_head_dim`` index key per cached token (in the KV cache's format), which the block indexer scores every
    step: with 2 or 4 KV heads, the B200 TensorRT-LLM table at batch 256 grows by 0.037-0.038 ns per cached token
    and sequence from 65,536 to 131,072 tokens (256 bytes at 88-91 % of HBM bandwidth), where the selected keys alone
    (index_topk per sequence) would stay flat past index_topk. A reading of the measured scaling: no public source of
    the module's indexer was found (docs/validation-results/fit-b200-trtllm-session12.md)."""
    b, kv, topk = _num(df, "batch_size"), _num(df, "kv_len"), _num(df, "index_topk")
    h, kvh, d, idx, p_flops, p_bytes, wb = _msa_terms(df, b)
    kvb = _bytes(df["kv_dtype"])
    sel = np.minimum(kv, topk)
    flops = b * h * sel * 4 * d + b * kv / _num(df, "block_size") * idx * 2 + p_flops
    nbytes = b * sel * 2 * kvh * d * kvb + b * kv * _num(df, "index_head_dim") * kvb + p_bytes
    t_c, t_m, _ = _roofline(flops, nbytes, _peak(df["dtype"], gpu), gpu.hbm_bandwidth)
    roof = t_c + t_m + LAUNCH_FLOOR_MS * 8
    x = {"log_batch": _log(b), "log_kv": _log(kv), "log_selected": _log(sel), "log_kv_tokens": _log(b * kv),
         "heads": h, "kv_heads": kvh, "log_t_compute": _log(t_c), "log_t_memory": _log(t_m),
         "log_proj_flops": _log(p_flops), "kv_bytes": kvb, "weight_bytes": wb,
         "wave_eff": _wave_eff(b * np.ceil(h / 64), gpu.sm_count)}
    return x, roof


def dsa_prefill(df: pd.DataFrame, gpu: GPUSpec):
    b, q, kv, topk = _num(df, "batch_size"), _num(df, "q_len"), _num(df, "kv_len"), _num(df, "index_topk")
    h, lat, kvl, idx, p_flops, p_bytes, wb = _dsa_terms(df, b * q)
    kvb = _bytes(df["kv_dtype"])
    selected = causal_pairs(q, kv, topk)            # query-key pairs after top-k selection
    scored = causal_pairs(q, kv, np.zeros_like(q))  # the indexer scores every causal pair
    attn_flops, index_flops = b * h * selected * 2 * (lat + kvl), b * scored * idx * 2
    flops = attn_flops + index_flops + p_flops
    nbytes = b * kv * (lat * kvb + _num(df, "index_head_dim")) + p_bytes
    peak = _peak(df["dtype"], gpu)
    t_c, t_m, _ = _roofline(flops, nbytes, peak, gpu.hbm_bandwidth)
    # the module's kernels run one after another (projections, indexer, top-k, attention): a sum, not a max
    roof = t_c + t_m + DSA_PREFILL_FLOOR_MS + dsa_sparse_prefill_ms(df, gpu, b * q, kv)
    x = {"log_batch": _log(b), "log_q": _log(q), "log_kv": _log(kv), "log_selected": _log(selected),
         "log_scored": _log(scored), "sparse": (kv > topk).astype(float), "heads": h, "log_tokens": _log(b * q),
         "log_t_attention": _log(attn_flops / peak * 1e3), "log_t_indexer": _log(index_flops / peak * 1e3),
         "log_t_proj": _log(p_flops / peak * 1e3), "log_prefix": _log(kv - q + 1),
         "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "log_proj_flops": _log(p_flops),
         "kv_bytes": kvb, "weight_bytes": wb, "wave_eff": _wave_eff(b * h * np.ceil(q / 64), gpu.sm_count),
         **_dsa_identity(df), **_dsa_sparse_terms(df, gpu, b * q, kv)}
    return x, roof


def dsa_decode(df: pd.DataFrame, gpu: GPUSpec):
    b, kv, topk = _num(df, "batch_size"), _num(df, "kv_len"), _num(df, "index_topk")
    h, lat, kvl, idx, p_flops, p_bytes, wb = _dsa_terms(df, b)
    kvb = _bytes(df["kv_dtype"])
    sel = np.minimum(kv, topk)
    flops = b * h * sel * 2 * (lat + kvl) + b * kv * idx * 2 + p_flops
    nbytes = b * (sel * lat * kvb + kv * _num(df, "index_head_dim")) + p_bytes
    peak = _peak(df["dtype"], gpu)
    t_c, t_m, _ = _roofline(flops, nbytes, peak, gpu.hbm_bandwidth)
    # the roofline prices the attention the sparse kernels run: every query token's index_topk key slots in blocks
    # of DSA_HEAD_BLOCK heads (_dsa_sparse_terms), whatever the context, for the FLOPs and for the latent rows read
    # (the kernels walk the whole top-k index buffer in fixed tiles; the TensorRT-LLM tables are flat in the context
    # below index_topk); the selected keys stay features (log_selected, log_t_memory)
    padded = b * np.ceil(h / DSA_HEAD_BLOCK) * DSA_HEAD_BLOCK * topk * 2 * (lat + kvl) + b * kv * idx * 2 + p_flops
    slot_bytes = b * (topk * lat * kvb + kv * _num(df, "index_head_dim")) + p_bytes
    roof = padded / peak * 1e3 + slot_bytes / gpu.hbm_bandwidth * 1e3 + DSA_DECODE_FLOOR_MS
    x = {"log_batch": _log(b), "log_kv": _log(kv), "log_selected": _log(sel), "log_kv_tokens": _log(b * kv),
         "heads": h, "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "log_proj_flops": _log(p_flops),
         "kv_bytes": kvb, "weight_bytes": wb, "wave_eff": _wave_eff(b * np.ceil(h / 64), gpu.sm_count),
         **_dsa_identity(df), **_dsa_sparse_terms(df, gpu, b, kv), **_dsa_topk_sort_terms(df, gpu, b, kv),
         # the indexer scores every cached token of every sequence; sparse: the top-k path runs (kv > index_topk)
         "log_t_indexer": _log(b * kv * idx * 2 / peak * 1e3), "sparse": (kv > topk).astype(float)}
    return x, roof


def routing_alpha(distribution: pd.Series) -> np.ndarray:
    """Power-law exponent of a routing distribution name ('balanced' -> 0)."""
    def parse(s):
        if s == "balanced":
            return 0.0
        if s.startswith("power_law_"):
            return float(s[len("power_law_"):])
        raise ValueError(f"unknown routing distribution '{s}' (use 'balanced' or 'power_law_<alpha>')")
    table = {s: parse(s) for s in distribution.unique()}
    return distribution.map(table).to_numpy(dtype=float)


def _power_law_top_share(e: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """1 / sum_{i=1..E} i^-alpha, computed once per distinct (E, alpha)."""
    out = np.empty(len(e))
    pairs = pd.DataFrame({"e": e, "a": alpha})
    for (ei, a), idx in pairs.groupby(["e", "a"]).groups.items():
        out[np.asarray(idx)] = 1.0 / np.sum(np.arange(1, int(ei) + 1, dtype=float) ** -a)
    return out


def moe(df: pd.DataFrame, gpu: GPUSpec):
    t, hdim, inter = _num(df, "num_tokens"), _num(df, "hidden_size"), _num(df, "inter_size")
    k, e, tp, ep = _num(df, "topk"), _num(df, "num_experts"), _num(df, "moe_tp"), _num(df, "moe_ep")
    dt = _factor(df["dtype"])
    wb, ab = _bytes(dt), _act_bytes(dt)
    alpha = routing_alpha(df["distribution"])
    inter_local = inter / tp
    e_local = e / ep
    pairs_local = t * k / ep                            # token-expert pairs on this GPU (balanced)
    # experts that get >= 1 token: balanced routing (stride ceil(E/k) over the experts) uses exactly
    # min(E, t*k) of them, spread evenly over the ranks; random routing leaves some unused
    active_local = np.where(alpha == 0, np.clip(t * k / ep, 1, e_local),
                            e_local * (1 - np.power(1 - 1 / e, t * k)))
    flops = 2 * pairs_local * hdim * inter_local * 3      # gate + up + down
    nbytes = active_local * 3 * hdim * inter_local * wb + pairs_local * (2 * hdim + 2 * inter_local) * ab
    t_c, t_m, roof = _roofline(flops, nbytes, _peak(dt, gpu), gpu.hbm_bandwidth)
    per_expert = pairs_local / np.maximum(active_local, 1e-9)
    # the busiest expert under power-law routing: share p_max = 1 / sum_i i^-alpha (1/E when balanced)
    p_max = _power_law_top_share(e, alpha)
    x = {
        "log_tokens": _log(t), "log_hidden": _log(hdim), "log_inter_local": _log(inter_local), "topk": k,
        "log_experts": _log(e), "log_experts_local": _log(e_local), "moe_tp": tp, "moe_ep": ep,
        "alpha": alpha, "log_pairs_local": _log(pairs_local), "log_active_local": _log(active_local),
        "log_tokens_per_expert": _log(per_expert), "expert_m_pad64": _pad_eff(np.maximum(per_expert, 1), 64),
        "log_busiest_expert_tokens": _log(np.maximum(t * k * p_max, 1.0)),
        "log_pairs_per_expert": _log(t * k / e),
        "log_t_compute": _log(t_c), "log_t_memory": _log(t_m), "weight_bytes": wb,
    }
    return x, roof


def moe_deepep(df: pd.DataFrame, gpu: GPUSpec):
    """The ``moe`` features (same roofline: balanced share of the token-expert pairs and the local experts'
    weights on each GPU) plus the DeepEP layout (``decode``: 1 for the masked low-latency layout)."""
    x, roof = moe(df, gpu)
    x["decode"] = (df["phase"] == "decode").to_numpy(dtype=float)
    return x, roof


def collective(df: pd.DataFrame, gpu: GPUSpec):
    n, nbytes = _num(df, "num_gpus"), _num(df, "message_bytes")
    factor = df["op"].map(_BUS_FACTOR).to_numpy(dtype=float)
    t_bw = nbytes * factor * (n - 1) / n / gpu.nvlink_bandwidth * 1e3
    roof = t_bw + LAUNCH_FLOOR_MS
    x = {
        "log_bytes": _log(nbytes), "num_gpus": n, "op": df["op"].map(_OP_CODES).to_numpy(dtype=float),
        "implementation": df["implementation"].map(_IMPL_CODES).fillna(3).to_numpy(dtype=float),
        "log_t_bandwidth": _log(t_bw),
    }
    return x, roof


def expected_ranks(num_experts, topk, ep_size) -> np.ndarray:
    """Expected distinct EP ranks a token's ``topk`` experts live on: the experts are distinct, drawn uniformly from
    ``num_experts`` spread evenly over ``ep_size`` ranks (num_experts / ep_size each), so a rank is missed with
    probability C(E - E/ep, k) / C(E, k). DeepEP's normal mode sends a token once to each such rank."""
    from math import lgamma

    def log_comb(n, r):
        return lgamma(n + 1) - lgamma(r + 1) - lgamma(n - r + 1)

    def one(e, k, ep):
        per_rank = e / ep
        if k > e - per_rank:          # every rank holds one of the token's experts
            return float(ep)
        return ep * (1.0 - np.exp(log_comb(e - per_rank, k) - log_comb(e, k)))

    e, k, ep = (np.asarray(v, dtype=float) for v in (num_experts, topk, ep_size))
    keys = pd.DataFrame({"e": e, "k": k, "ep": ep})
    codes, uniq = pd.factorize(pd.MultiIndex.from_frame(keys))
    return np.array([one(*u) for u in uniq], dtype=float)[codes]


def moe_a2a(df: pd.DataFrame, gpu: GPUSpec):
    """DeepEP dispatch / combine: the bytes each rank sends to its peers over the link.

    Copies per token: the normal mode (``deepep_normal``, NVLink buffers) sends a token once to each rank holding one
    of its experts (:func:`expected_ranks`; DeepEP's ``Buffer.get_dispatch_layout`` returns ``is_token_in_rank``, one
    flag per token and rank); the low-latency mode (``deepep_ll``) sends it once per expert (``low_latency_dispatch``
    receives into per-local-expert buffers, ``packed_recv_x[num_local_experts, ...]``). Of those copies,
    (ep - 1) / ep leave the GPU; combine returns the same copies. On the B200 TensorRT-LLM table the normal mode's
    top-6 / top-8 latency ratio at 65,536 tokens (0.84 combine, 0.85 dispatch) is the rank ratio 4.43 / 5.28, not
    the expert ratio 0.75."""
    t, hdim, k, e = _num(df, "num_tokens"), _num(df, "hidden_size"), _num(df, "topk"), _num(df, "num_experts")
    ep, nodes = _num(df, "ep_size"), _num(df, "num_nodes")
    low_latency = (df["backend"] == "deepep_ll").to_numpy()
    copies = np.where(low_latency, k, expected_ranks(e, k, ep)) * (ep - 1) / ep
    nbytes = t * copies * hdim * 2
    bw = np.where(nodes > 1, gpu.network_bandwidth, gpu.nvlink_bandwidth)
    t_bw = nbytes / bw * 1e3
    roof = t_bw + LAUNCH_FLOOR_MS   # plus the fixed cost measured from the table (FIXED_COST_FAMILIES)
    x = {
        "log_tokens": _log(t), "log_hidden": _log(hdim), "topk": k, "log_experts": _log(e), "ep_size": ep,
        "num_nodes": nodes, "low_latency": low_latency.astype(float),
        "combine": (df["phase"] == "combine").to_numpy(dtype=float), "log_t_bandwidth": _log(t_bw),
        "log_remote_copies": _log(t * copies),
    }
    return x, roof


#: families whose calls have a fixed cost far above LAUNCH_FLOOR_MS that no hardware figure gives: the model's
#: estimate is the roofline plus the fastest call of its training table (``OperatorModel.fixed_cost_ms_``), and it
#: learns log2(latency / estimate). Where the measured time is flat (few tokens, short contexts) the ratio is then
#: ~1 for every shape instead of following a roofline that scales with shape while the latency does not, which is
#: what lets a held-out shape group (a new hidden size, top-k or head count) land on the right ratio.
#: ``moe_a2a``: DeepEP's launch and cross-GPU handshakes, 0.01-0.15 ms in the public tables (the one-token calls);
#: ``msa_decode``: the MSA module's ~10 kernels under one CUDA graph, 0.02-0.16 ms (TensorRT-LLM's tables are flat
#: at 0.12-0.19 ms on B200 up to 8k-token contexts)
FIXED_COST_FAMILIES = frozenset({"moe_a2a", "msa_decode"})

FEATURES = {
    "gemm": gemm, "attention_prefill": attention_prefill, "attention_decode": attention_decode,
    "mla_prefill": mla_prefill, "mla_decode": mla_decode, "gdn_prefill": gdn_prefill, "gdn_decode": gdn_decode,
    # KDA has GDN's shape and the same per-token work (a dk x dv state update per value head, the q/k/v conv); its
    # per-channel decay gate changes the constant, which the model learns
    "kda_prefill": gdn_prefill, "kda_decode": gdn_decode,
    "mamba2_conv_prefill": mamba2_conv_prefill, "mamba2_conv_decode": mamba2_conv_decode,
    "mla_bmm": mla_bmm,
    "mhc": mhc,
    "msa_prefill": msa_prefill, "msa_decode": msa_decode,
    "dsa_prefill": dsa_prefill, "dsa_decode": dsa_decode, "moe": moe, "moe_deepep": moe_deepep,
    "collective": collective, "moe_a2a": moe_a2a,
}


def featurize(family: str, df: pd.DataFrame, gpu: GPUSpec):
    """(feature frame, roofline milliseconds) for rows of ``family``."""
    x, roof = FEATURES[family](df, gpu)
    return pd.DataFrame(x), roof


def feature_matrix(family: str, df: pd.DataFrame, gpu: GPUSpec):
    """(feature names, float32 matrix, roofline ms): :func:`featurize` without the DataFrame round trip,
    for prediction (the matrix is what XGBoost reads)."""
    x, roof = FEATURES[family](df, gpu)
    names = list(x)
    out = np.empty((len(roof), len(names)), dtype=np.float32, order="F")  # column-major: cheap to fill
    for j, name in enumerate(names):
        out[:, j] = x[name]
    return names, out, roof
