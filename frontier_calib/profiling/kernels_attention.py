"""Attention benchmarks: prefill (causal, with cached prefix and sliding window), decode, MLA.

Fast path (CUDA, ``--backend auto``, package importable): FlashAttention-2 (``flash_attn``)
``flash_attn_func`` for prefill and ``flash_attn_with_kvcache`` for decode; kernel ``flash_attn_2``.

Torch references (kernel ``torch_sdpa`` unless noted):

* prefill with q_len == kv_len and no window: ``scaled_dot_product_attention(is_causal=True,
  enable_gqa=...)``;
* prefill over a cached prefix (q_len < kv_len) or with a window: SDPA with an **explicit boolean
  mask** aligned bottom-right (query i sits at position kv_len - q_len + i and sees keys
  ``<= that position`` and, with a window w, ``> position - w``). K/V are allocated at the full
  query-head count so the fused masked kernel is used rather than the score-materialising one;
* decode: SDPA of one query token against the cache (``enable_gqa``); a window reads only the
  last ``window`` keys;
* MLA prefill (kernel scope, DeepSeek-V3 dimensions): SDPA over 192-wide Q/K with V zero-padded
  from 128 to 192 as vLLM does for FlashAttention, causal or masked as above;
* MLA decode (kernel scope, absorbed form): multi-query attention of 576-wide queries against the
  576-wide latent cache (values = its first 512 columns) as two ``bmm`` and a softmax
  (kernel ``torch_bmm_mqa``).

KV-cache formats other than the activation format (fp8 KV) need a kernel that reads them and are
skipped by the references.
"""

from __future__ import annotations

from .kernels_common import Bench, KernelContext, Unsupported, optional_import, smoke
from .plan import MLA_TABLE_DIMS, Shape


def causal_mask(torch, q_len: int, kv_len: int, window: int, device: str):
    """Boolean [q_len, kv_len] mask (True = attend): bottom-right causal, optional sliding window."""
    pos = torch.arange(kv_len - q_len, kv_len, device=device).unsqueeze(1)   # absolute query positions
    keys = torch.arange(kv_len, device=device).unsqueeze(0)
    mask = keys <= pos
    if window:
        mask &= keys > pos - window
    return mask


def _check_kv(shape: Shape) -> None:
    if shape["kv_dtype"] != shape["dtype"]:
        raise Unsupported(f"kv_dtype {shape['kv_dtype']} with {shape['dtype']} activations needs an "
                          "attention kernel that reads that cache format (FlashAttention-3 / FlashInfer)")


def prepare_prefill(shape: Shape, ctx: KernelContext) -> Bench:
    _check_kv(shape)
    b, q, kv = shape["batch_size"], shape["q_len"], shape["kv_len"]
    h, hk, d, w = shape["num_heads"], shape["num_kv_heads"], shape["head_dim"], shape["window"]
    dt = ctx.float_dtype(shape["dtype"])
    if kv < q:
        raise Unsupported(f"kv_len {kv} < q_len {q}")
    if ctx.use_fast():
        fast = _flash_prefill(ctx, b, q, kv, h, hk, d, w, dt)
        if fast is not None:
            return fast
    torch = ctx.torch
    sdpa = torch.nn.functional.scaled_dot_product_attention
    qt = ctx.randn(b, h, q, d, dtype=dt, salt=1)
    if q == kv and not w:
        k = ctx.randn(b, hk, kv, d, dtype=dt, salt=2)
        v = ctx.randn(b, hk, kv, d, dtype=dt, salt=3)
        gqa = h != hk
        return Bench("torch_sdpa", lambda: sdpa(qt, k, v, is_causal=True, enable_gqa=gqa), keep=(qt, k, v))
    k = ctx.randn(b, h, kv, d, dtype=dt, salt=2)
    v = ctx.randn(b, h, kv, d, dtype=dt, salt=3)
    mask = causal_mask(torch, q, kv, w, ctx.device)
    return Bench("torch_sdpa", lambda: sdpa(qt, k, v, attn_mask=mask), keep=(qt, k, v, mask))


def prepare_decode(shape: Shape, ctx: KernelContext) -> Bench:
    _check_kv(shape)
    b, kv = shape["batch_size"], shape["kv_len"]
    h, hk, d, w = shape["num_heads"], shape["num_kv_heads"], shape["head_dim"], shape["window"]
    dt = ctx.float_dtype(shape["dtype"])
    if ctx.use_fast():
        fast = _flash_decode(ctx, b, kv, h, hk, d, w, dt)
        if fast is not None:
            return fast
    torch = ctx.torch
    sdpa = torch.nn.functional.scaled_dot_product_attention
    qt = ctx.randn(b, h, 1, d, dtype=dt, salt=1)
    k = ctx.randn(b, hk, kv, d, dtype=dt, salt=2)
    v = ctx.randn(b, hk, kv, d, dtype=dt, salt=3)
    if w and w < kv:           # the last token sees only the last `w` keys
        k, v = k[:, :, -w:], v[:, :, -w:]
    gqa = h != hk
    return Bench("torch_sdpa", lambda: sdpa(qt, k, v, enable_gqa=gqa), keep=(qt, k, v))


def prepare_mla_prefill(shape: Shape, ctx: KernelContext) -> Bench:
    if shape["scope"] != "kernel":
        raise Unsupported("only scope='kernel' MLA is profiled (module scope needs the engine's MLA layer)")
    _check_kv(shape)
    b, q, kv, h = shape["batch_size"], shape["q_len"], shape["kv_len"], shape["num_heads"]
    t = MLA_TABLE_DIMS
    qk = t.qk_nope_head_dim + t.qk_rope_head_dim
    dt = ctx.float_dtype(shape["dtype"])
    torch = ctx.torch
    sdpa = torch.nn.functional.scaled_dot_product_attention
    qt = ctx.randn(b, h, q, qk, dtype=dt, salt=1)
    k = ctx.randn(b, h, kv, qk, dtype=dt, salt=2)
    v = torch.zeros(b, h, kv, qk, dtype=dt, device=ctx.device)
    v[..., :t.v_head_dim] = ctx.randn(b, h, kv, t.v_head_dim, dtype=dt, salt=3)
    if q == kv:
        return Bench("torch_sdpa", lambda: sdpa(qt, k, v, is_causal=True)[..., :t.v_head_dim], keep=(qt, k, v))
    mask = causal_mask(torch, q, kv, 0, ctx.device)
    return Bench("torch_sdpa", lambda: sdpa(qt, k, v, attn_mask=mask)[..., :t.v_head_dim], keep=(qt, k, v, mask))


def prepare_mla_decode(shape: Shape, ctx: KernelContext) -> Bench:
    if shape["scope"] != "kernel":
        raise Unsupported("only scope='kernel' MLA is profiled (module scope needs the engine's MLA layer)")
    _check_kv(shape)
    b, kv, h = shape["batch_size"], shape["kv_len"], shape["num_heads"]
    t = MLA_TABLE_DIMS
    lat = t.kv_lora_rank + t.qk_rope_head_dim
    dt = ctx.float_dtype(shape["dtype"])
    torch = ctx.torch
    qt = ctx.randn(b, h, lat, dtype=dt, salt=1)
    cache = ctx.randn(b, kv, lat, dtype=dt, salt=2)
    keys_t = cache.transpose(1, 2)              # [b, lat, kv] view
    values = cache[:, :, :t.kv_lora_rank]       # [b, kv, 512] view
    scale = (t.qk_nope_head_dim + t.qk_rope_head_dim) ** -0.5

    def run():
        scores = torch.bmm(qt, keys_t).mul_(scale)
        return torch.bmm(torch.softmax(scores, dim=-1), values)

    return Bench("torch_bmm_mqa", run, keep=(qt, cache))


# ---- FlashAttention-2 fast paths ----------------------------------------------------------------

def _flash(ctx: KernelContext, d: int, dt):
    torch = ctx.torch
    if dt not in (torch.bfloat16, torch.float16) or d > 256:
        return None
    mod = optional_import("flash_attn")
    if mod is None or not hasattr(mod, "flash_attn_func"):
        return None
    return mod


def _window_arg(w: int):
    return (w - 1, 0) if w else (-1, -1)


def _flash_prefill(ctx, b, q, kv, h, hk, d, w, dt) -> Bench | None:
    mod = _flash(ctx, d, dt)
    if mod is None:
        return None
    qt = ctx.randn(b, q, h, d, dtype=dt, salt=1)
    k = ctx.randn(b, kv, hk, d, dtype=dt, salt=2)
    v = ctx.randn(b, kv, hk, d, dtype=dt, salt=3)
    win = _window_arg(w)
    try:   # flash-attn >= 2.1 aligns causal masks bottom-right, as a prefix-cached chunk needs
        return smoke(Bench("flash_attn_2", lambda: mod.flash_attn_func(qt, k, v, causal=True, window_size=win),
                           keep=(qt, k, v)))
    except Exception as exc:
        ctx.warn_once("flash_prefill", f"flash_attn prefill failed ({exc}); using the torch reference")
        return None


def _flash_decode(ctx, b, kv, h, hk, d, w, dt) -> Bench | None:
    mod = _flash(ctx, d, dt)
    if mod is None or not hasattr(mod, "flash_attn_with_kvcache"):
        return None
    torch = ctx.torch
    qt = ctx.randn(b, 1, h, d, dtype=dt, salt=1)
    k = ctx.randn(b, kv, hk, d, dtype=dt, salt=2)
    v = ctx.randn(b, kv, hk, d, dtype=dt, salt=3)
    lens = torch.full((b,), kv, dtype=torch.int32, device=ctx.device)
    win = _window_arg(w)
    try:
        return smoke(Bench("flash_attn_2", lambda: mod.flash_attn_with_kvcache(
            qt, k, v, cache_seqlens=lens, causal=True, window_size=win), keep=(qt, k, v, lens)))
    except Exception as exc:
        ctx.warn_once("flash_decode", f"flash_attn decode failed ({exc}); using the torch reference")
        return None
