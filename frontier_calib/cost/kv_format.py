"""A KV cache in a narrower format never makes decode attention slower than dequantizing it and running the
16-bit kernel.

An engine that serves an FP8 KV cache can always widen the blocks it reads to BF16 (one pass: read 1 byte, write
2 bytes per element) and run its BF16 decode kernel on them, so that sum bounds the FP8 decode time from above::

    t_fp8  <=  t_bf16  +  3 x (KV elements read) / HBM bandwidth

The profiled tables mostly agree (FP8/BF16 median 0.6-1.1 for vLLM and TensorRT-LLM, GQA and MLA, H100/H200). One
table does not: SGLang 0.5.14's ``mla_decode`` rows with an FP8 KV cache run 4.7x (H100) and 5.9x (H200) slower
than its BF16 rows at the same shape (median over rows above 50 us), ~6 % of HBM bandwidth, a path the measured
SGLang DeepSeek-V3/R1 serving rows do not show (docs/validation.md). The cost model applies the bound to every
decode-attention query whose KV format is narrower than 16 bits when the 16-bit table of the same family exists
(:meth:`frontier_calib.cost.iteration.IterationCostModel`).
"""

from __future__ import annotations

import numpy as np

#: bytes moved per KV element to widen an 8-bit cache to 16 bits: read 1, write 2
WIDEN_BYTES_PER_ELEMENT = 3.0
#: KV formats narrower than 16 bits, and the 16-bit format whose kernel bounds them
WIDER_FORMAT = {"fp8": "bf16", "fp8_block": "bf16", "int8": "bf16"}


def widened_decode_ms(wide_ms, kv_elements, hbm_bandwidth: float) -> np.ndarray:
    """Milliseconds of decoding from a narrow KV cache by widening it first: the 16-bit kernel's ``wide_ms`` plus
    one pass over ``kv_elements`` elements (``WIDEN_BYTES_PER_ELEMENT`` bytes each) at ``hbm_bandwidth`` bytes/s."""
    return np.asarray(wide_ms, dtype=float) + WIDEN_BYTES_PER_ELEMENT * np.asarray(kv_elements, dtype=float) \
        / hbm_bandwidth * 1e3


def bounded_decode_ms(narrow_ms, wide_ms, kv_elements, hbm_bandwidth: float) -> np.ndarray:
    """``narrow_ms`` capped by :func:`widened_decode_ms` (milliseconds, elementwise)."""
    return np.minimum(np.asarray(narrow_ms, dtype=float), widened_decode_ms(wide_ms, kv_elements, hbm_bandwidth))
