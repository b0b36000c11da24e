"""GEMM benchmarks: C[m, n] = A[m, k] @ W[n, k]^T, weights stored like nn.Linear.

bf16/fp16/fp32: ``torch.mm`` into a pre-allocated output (cuBLAS/cuBLASLt on CUDA; kernel name
``torch_mm``). fp8 (per-tensor scales): ``torch._scaled_mm`` (``torch_scaled_mm``). fp8_block
(128x128 block scales, DeepSeek style): vLLM's ``w8a8_block_fp8_matmul`` when vLLM is importable
(``vllm_w8a8_block_fp8``), else skipped. Activation quantization is a separate kernel in engines
and is not part of the timed call.
"""

from __future__ import annotations

from .kernels_common import Bench, KernelContext, Unsupported, optional_import, require_fp8, smoke
from .plan import Shape


def prepare(shape: Shape, ctx: KernelContext) -> Bench:
    m, n, k, dtype = shape["m"], shape["n"], shape["k"], shape["dtype"]
    if dtype == "fp8":
        return _fp8(m, n, k, ctx)
    if dtype == "fp8_block":
        return _fp8_block(m, n, k, ctx)
    torch = ctx.torch
    dt = ctx.float_dtype(dtype)
    a = ctx.randn(m, k, dtype=dt, salt=1)
    w = ctx.randn(n, k, dtype=dt, scale=k ** -0.5, salt=2)
    out = torch.empty(m, n, dtype=dt, device=ctx.device)
    wt = w.t()
    return Bench("torch_mm", lambda: torch.mm(a, wt, out=out), keep=(a, w, out))


def _fp8(m, n, k, ctx: KernelContext) -> Bench:
    require_fp8(ctx)
    if n % 16 or k % 16:
        raise Unsupported(f"fp8 GEMM needs n and k multiples of 16 (n={n}, k={k}); engines keep such "
                          "layers (e.g. the router) in bf16")
    torch = ctx.torch
    f8 = torch.float8_e4m3fn
    a = ctx.randn(m, k, dtype=torch.float32, salt=1).to(f8)
    w = ctx.randn(n, k, dtype=torch.float32, salt=2).to(f8)
    sa = torch.ones((), device=ctx.device)
    sb = torch.ones((), device=ctx.device)
    wt = w.t()   # column-major view, the layout _scaled_mm wants for the second operand
    return Bench("torch_scaled_mm",
                 lambda: torch._scaled_mm(a, wt, scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16),
                 keep=(a, w, sa, sb))


def _fp8_block(m, n, k, ctx: KernelContext) -> Bench:
    if ctx.device != "cuda" or ctx.backend != "auto":
        raise Unsupported("block-scaled fp8 GEMM needs a CUDA kernel (vLLM or DeepGEMM)")
    mod = optional_import("vllm.model_executor.layers.quantization.utils.fp8_utils")
    fn = getattr(mod, "w8a8_block_fp8_matmul", None) if mod else None
    if fn is None:
        raise Unsupported("no block-scaled fp8 GEMM importable (install vLLM)")
    if n % 128 or k % 128:
        raise Unsupported(f"block fp8 needs n and k multiples of 128 (n={n}, k={k})")
    torch = ctx.torch
    f8 = torch.float8_e4m3fn
    a = ctx.randn(m, k, dtype=torch.float32, salt=1).to(f8)
    w = ctx.randn(n, k, dtype=torch.float32, salt=2).to(f8)
    a_s = torch.ones(m, k // 128, device="cuda")
    w_s = torch.ones(n // 128, k // 128, device="cuda")
    try:
        return smoke(Bench("vllm_w8a8_block_fp8",
                           lambda: fn(a, w, a_s, w_s, [128, 128], output_dtype=torch.bfloat16),
                           keep=(a, w, a_s, w_s)))
    except Exception as exc:   # API drift across vLLM versions
        raise Unsupported(f"vLLM block fp8 GEMM failed: {str(exc).splitlines()[0][:120]}") from None
