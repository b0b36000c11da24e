"""MoE expert-computation benchmarks on one GPU: the experts this GPU owns, for routed tokens.

Operands: ``num_tokens`` activations [T, hidden]; the GPU's ``num_experts / moe_ep`` experts with
gate+up [2 * inter / moe_tp, hidden] and down [hidden, inter / moe_tp] weights; routing from
:mod:`.routing` (seeded; busiest EP rank). One call = for every local expert with tokens: gather
its tokens, gate_up GEMM, SiLU-and-multiply, down GEMM, weighted scatter-add into the output
(the permute/unpermute steps a fused MoE kernel does internally). The router GEMM itself is in
the ``gemm`` table (``router``).

Fast path (CUDA, ``--backend auto``, vLLM importable): vLLM's ``fused_experts`` Triton kernel with
an expert map for EP (kernel ``vllm_fused_moe``). Reference: the loop above with ``torch.mm``
(kernel ``torch_grouped_loop``); fp8 experts use per-expert ``torch._scaled_mm`` with the
activations quantized inside the call.
"""

from __future__ import annotations

import numpy as np

from .kernels_common import Bench, KernelContext, Unsupported, optional_import, require_fp8, smoke
from .plan import Shape
from .routing import busiest_rank, route


def prepare(shape: Shape, ctx: KernelContext) -> Bench:
    s = shape.as_dict()
    t, hidden, inter, topk, e = s["num_tokens"], s["hidden_size"], s["inter_size"], s["topk"], s["num_experts"]
    moe_tp, ep, dtype = s["moe_tp"], s["moe_ep"], s["dtype"]
    if e % ep or inter % moe_tp:
        raise Unsupported(f"moe_ep={ep} / moe_tp={moe_tp} do not divide {e} experts / {inter} intermediate")
    if dtype not in ("bf16", "fp16", "fp32", "fp8"):
        raise Unsupported(f"MoE dtype {dtype} needs an engine kernel (vLLM/SGLang fused MoE)")
    if dtype == "fp8":
        require_fp8(ctx)
        if hidden % 16 or (inter // moe_tp) % 16:
            raise Unsupported("fp8 experts need hidden and inter/moe_tp multiples of 16")
    ids = route(t, e, topk, s["distribution"], seed=ctx.seed)
    lo, hi = busiest_rank(ids, e, ep)
    rng = np.random.default_rng(ctx.seed + 7)
    weights = rng.dirichlet(np.ones(topk), size=t).astype(np.float32)     # combine weights per token
    inter_l = inter // moe_tp
    e_local = hi - lo
    if ctx.use_fast() and dtype in ("bf16", "fp16"):
        fast = _vllm_fused(ctx, ids, weights, lo, hi, e, t, hidden, inter_l, dtype)
        if fast is not None:
            return fast
    return _reference(ctx, ids, weights, lo, e_local, t, hidden, inter_l, dtype)


def _reference(ctx: KernelContext, ids, weights, lo, e_local, t, hidden, inter_l, dtype) -> Bench:
    torch = ctx.torch
    F = torch.nn.functional
    act_dt = torch.bfloat16 if dtype == "fp8" else ctx.float_dtype(dtype)
    x = ctx.randn(t, hidden, dtype=act_dt, salt=1)
    w13 = ctx.randn(e_local, 2 * inter_l, hidden, dtype=act_dt, scale=hidden ** -0.5, salt=2)
    w2 = ctx.randn(e_local, hidden, inter_l, dtype=act_dt, scale=inter_l ** -0.5, salt=3)
    groups = []
    for j in range(e_local):
        tok, slot = np.nonzero(ids == lo + j)
        if len(tok):
            idx = torch.as_tensor(tok, dtype=torch.int64, device=ctx.device)
            wts = torch.as_tensor(weights[tok, slot], device=ctx.device).to(act_dt).unsqueeze(1)
            groups.append((j, idx, wts))
    out = torch.zeros(t, hidden, dtype=act_dt, device=ctx.device)

    if dtype == "fp8":
        f8 = torch.float8_e4m3fn
        one = torch.ones((), device=ctx.device)
        w13_t = [w.to(f8).t() for w in w13]
        w2_t = [w.to(f8).t() for w in w2]

        def mm(a, j, which):
            wt = w13_t[j] if which == 0 else w2_t[j]
            return torch._scaled_mm(a.to(f8), wt, scale_a=one, scale_b=one, out_dtype=act_dt)
        keep = (x, out, w13_t, w2_t, groups)
    else:
        w13_t = [w.t() for w in w13]
        w2_t = [w.t() for w in w2]

        def mm(a, j, which):
            return torch.mm(a, w13_t[j] if which == 0 else w2_t[j])
        keep = (x, out, w13, w2, groups)

    def run():
        out.zero_()
        for j, idx, wts in groups:
            h = mm(x.index_select(0, idx), j, 0)
            a = F.silu(h[:, :inter_l]) * h[:, inter_l:]
            out.index_add_(0, idx, mm(a, j, 1) * wts)
        return out

    return Bench("torch_grouped_loop", run, keep=keep)


def _vllm_fused(ctx: KernelContext, ids, weights, lo, hi, e, t, hidden, inter_l, dtype) -> Bench | None:
    mod = optional_import("vllm.model_executor.layers.fused_moe")
    fused = getattr(mod, "fused_experts", None) if mod else None
    if fused is None:
        return None
    torch = ctx.torch
    dt = ctx.float_dtype(dtype)
    e_local = hi - lo
    x = ctx.randn(t, hidden, dtype=dt, salt=1)
    w13 = ctx.randn(e_local, 2 * inter_l, hidden, dtype=dt, scale=hidden ** -0.5, salt=2)
    w2 = ctx.randn(e_local, hidden, inter_l, dtype=dt, scale=inter_l ** -0.5, salt=3)
    topk_ids = torch.as_tensor(ids, dtype=torch.int32, device="cuda")
    topk_w = torch.as_tensor(weights, device="cuda")
    expert_map = torch.full((e,), -1, dtype=torch.int32, device="cuda")
    expert_map[lo:hi] = torch.arange(e_local, dtype=torch.int32, device="cuda")
    kwargs = {} if e_local == e else {"global_num_experts": e, "expert_map": expert_map}
    try:
        return smoke(Bench("vllm_fused_moe", lambda: fused(x, w13, w2, topk_w, topk_ids, **kwargs),
                           keep=(x, w13, w2, topk_ids, topk_w, expert_map)))
    except Exception as exc:   # API drift across vLLM versions
        ctx.warn_once("vllm_moe", f"vLLM fused_experts failed ({str(exc).splitlines()[0][:120]}); "
                                  "using the torch reference")
        return None
