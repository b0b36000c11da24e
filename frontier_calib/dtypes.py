"""Canonical data-type names and their storage sizes (the one place for these facts).

Profile tables, model specs and deployments all speak these names. Weight-only and
block-scaled formats keep their own names because kernels (and latencies) differ.
"""

from __future__ import annotations

from .errors import FrontierError

#: bytes per element of each canonical dtype (block scales ignored: < 1% of bytes).
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,        # per-tensor scaled fp8 (e4m3)
    "fp8_block": 1.0,  # 128x128 block-scaled fp8 (DeepSeek style)
    "int8": 1.0,       # int8 weights and activations (SmoothQuant w8a8)
    "int8_wo": 1.0,    # int8 weight-only (activations bf16)
    "int4_wo": 0.5,    # int4 weight-only (activations bf16)
    "mxfp4": 0.5,      # MX fp4 weights (gpt-oss), activations bf16 or fp8
    "nvfp4": 0.5,
}

#: the dtype whose tensor-core peak a kernel on that dtype runs at.
COMPUTE_DTYPE: dict[str, str] = {
    "fp32": "bf16", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "fp8_block": "fp8",
    "int8": "int8", "int8_wo": "bf16", "int4_wo": "bf16", "mxfp4": "bf16", "nvfp4": "fp4",
}

_ALIASES = {
    "bfloat16": "bf16", "bf16": "bf16", "half": "fp16", "float16": "fp16", "fp16": "fp16",
    "float32": "fp32", "fp32": "fp32", "float": "fp32",
    "fp8": "fp8", "float8": "fp8", "fp8_e4m3": "fp8", "fp8e4m3": "fp8", "e4m3": "fp8",
    "fp8_block": "fp8_block", "fp8_blockwise": "fp8_block", "fp8block": "fp8_block",
    "int8": "int8", "sq": "int8", "w8a8": "int8", "int8_wo": "int8_wo", "int4_wo": "int4_wo", "int4": "int4_wo", "w4a16": "int4_wo",
    "w4a16_mxfp4": "mxfp4", "mxfp4": "mxfp4", "w4a8_mxfp4_fp8": "mxfp4", "w4a8_mxfp4_mxfp8": "mxfp4",
    "nvfp4": "nvfp4", "fp4": "nvfp4",
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
