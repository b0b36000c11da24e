"""Canonical data-type names and their storage sizes (the one place for these facts).

Profile tables, model specs and deployments all speak these names. Weight-only and
block-scaled formats keep their own names because kernels (and latencies) differ.
"""

from __future__ import annotations

from .errors import FrontierError

#: bytes per element of each canonical dtype, block scales included where they matter (the FP4 formats:
#: NVFP4 one fp8 scale per 16 elements, MXFP4 one e8m0 scale per 32; fp8_block's 128x128 scales and
#: int4_wo's group scales stay below 2% and are left out).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,        # per-tensor scaled fp8 (e4m3)
    "fp8_block": 1.0,  # 128x128 block-scaled fp8 (DeepSeek style)
    "int8": 1.0,       # int8 weights and activations (SmoothQuant w8a8)
    "int8_wo": 1.0,    # int8 weight-only (activations bf16)
    "int4_wo": 0.5,    # int4 weight-only (activations bf16)
    "int4_fp8": 0.5,   # int4 weights x fp8 activations (TensorRT-LLM W4A8 AWQ)
    "mxfp4": 0.5 + 1 / 32,      # MX fp4 weights (gpt-oss), activations bf16 (w4a16: any GPU, weight-only kernels)
    "mxfp4_fp8": 0.5 + 1 / 32,  # MX fp4 weights x fp8/mxfp8 activations (w4a8 on FP4 tensor cores: Blackwell)
    "nvfp4": 0.5 + 1 / 16,      # NVIDIA fp4 weights and activations (w4a4 on FP4 tensor cores: Blackwell)
}

#: the dtype whose tensor-core peak a kernel on that dtype runs at (fp4 operands mixed with fp8 ones run at
#: the fp8 rate on Blackwell; both-fp4 at the fp4 rate).
COMPUTE_DTYPE: dict[str, str] = {
    "fp32": "bf16", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8_block": "fp8",
    "int8": "int8", "int8_wo": "bf16", "int4_wo": "bf16", "int4_fp8": "fp8", "mxfp4": "bf16", "mxfp4_fp8": "fp8",
    "nvfp4": "fp4",
}

#: the dtype activations are read in (what a GEMM's input bytes are counted in): weight-only formats keep bf16.
ACTIVATION_DTYPE: dict[str, str] = {
    "fp32": "bf16", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "int8": "int8",
    "int8_wo": "bf16", "int4_wo": "bf16", "int4_fp8": "fp8", "mxfp4": "bf16", "mxfp4_fp8": "fp8", "nvfp4": "nvfp4",
}

#: formats that need FP4 tensor cores (Blackwell); on other GPUs there are neither kernels nor tables for them.
FP4_TENSOR_CORE_DTYPES = ("mxfp4_fp8", "nvfp4")

_ALIASES = {
    "bfloat16": "bf16", "bf16": "bf16", "half": "fp16", "float16": "fp16", "fp16": "fp16",
    "float32": "fp32", "fp32": "fp32", "float": "fp32",
    "fp8": "fp8", "float8": "fp8", "fp8_e4m3": "fp8", "fp8e4m3": "fp8", "e4m3": "fp8",
    "fp8_block": "fp8_block", "fp8_blockwise": "fp8_block", "fp8block": "fp8_block",
    "int8": "int8", "sq": "int8", "w8a8": "int8", "int8_wo": "int8_wo", "int4_wo": "int4_wo", "int4": "int4_wo", "w4a16": "int4_wo",
    "int4_fp8": "int4_fp8", "w4afp8": "int4_fp8", "w4a8_awq": "int4_fp8",
    "w4a16_mxfp4": "mxfp4", "mxfp4": "mxfp4",
    "mxfp4_fp8": "mxfp4_fp8", "mxfp4_mxfp8": "mxfp4_fp8", "w4a8_mxfp4": "mxfp4_fp8", "w4a8_mxfp4_fp8": "mxfp4_fp8",
    "w4a8_mxfp4_mxfp8": "mxfp4_fp8",
    "nvfp4": "nvfp4", "fp4": "nvfp4", "w4a4_nvfp4": "nvfp4",
}


def normalize_dtype(name: str, *, where: str = "dtype") -> str:
    """Map a dtype spelling from any source (``bfloat16``, ``half``, ``fp8_block``...) to its canonical name."""
    key = str(name).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise FrontierError(
        f"unknown dtype '{name}' in {where}; known: {', '.join(sorted(DTYPE_BYTES))}"
    )


def dtype_bytes(name: str) -> float:
    """Bytes per element of a canonical dtype name."""
    return DTYPE_BYTES[normalize_dtype(name)]


def activation_bytes(name: str) -> float:
    """Bytes per activation element that a kernel on ``name`` reads (fp8/int8/nvfp4 quantise activations)."""
    return DTYPE_BYTES[ACTIVATION_DTYPE[normalize_dtype(name)]]
