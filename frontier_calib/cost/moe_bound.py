"""A routed-expert (MoE) layer is never slower than two other ways of computing the same layer from the same weights.

The ``moe`` operator model predicts the engine's default grouped-GEMM kernel (the table's primary kernel:
CUTLASS for NVFP4 and per-tensor FP8 on TensorRT-LLM, DeepGEMM for block-scaled FP8). At small token counts some
of those rows are far slower than the layer needs to be: on B200 the ``fp8_block`` (DeepGEMM) rows of
DeepSeek-V3's experts under ``moe_tp`` 8 take 0.26 ms at 32 tokens, 1.4x the time to read every local expert's
weights once at HBM bandwidth (1.41 GB at 7.7 TB/s), and the NVFP4 CUTLASS rows run 2-3x their own table's
min-latency kernel at the same shape. Two upper bounds, in milliseconds per layer for ``n`` tokens:

1. **Dense path** (:func:`dense_path_ms`). With ``E`` local experts of intermediate size ``I`` (per GPU, after
   ``moe_tp``) and hidden size ``H``, computing *every* local expert for *every* token and weighting the outputs
   by the router's gates (zero for the experts a token did not pick) gives the same result as the routed layer.
   It is two dense GEMMs the engine's own GEMM tables price in the experts' format (applied when that format is one of
   the worker's GEMM groups: the dense layers' format or bf16). ``n x H`` times
   ``H x (E * 2I)`` (gate and up of all experts side by side) and ``n x (E * I)`` times ``(E * I) x H`` (the gated
   activations, scaled by the gates, times the stacked down projections: the sum over experts is the GEMM's
   reduction). The SwiGLU between them reads and writes ``n x E x 2I`` activations once. The GEMMs are priced
   as ``parts`` equal column (or reduction) slices no wider than :data:`MAX_GEMM_SPAN` (the widest side the
   GEMM tables measure), whose times add.
2. **Low-latency kernel** (:func:`low_latency_ms`): TensorRT-LLM's CUTLASS fused MoE has a min-latency mode for
   gated NVFP4 experts at small token counts; aiconfigurator-core measures it for the same shapes, parallelism and
   routing as its default kernel (``kernel_source`` ``moe_torch_flow_min_latency``) and its estimator takes it for
   gated NVFP4 queries of at most :data:`LOW_LATENCY_MAX_TOKENS` tokens. Where the table holds the query's exact
   shape, parallelism and routing, its rows (interpolated in log-log over the token count, never extrapolated)
   bound the layer.

Both are bounds, not replacements: the primary kernel's prediction stands wherever it is faster. Nothing here is
fitted. The cost model applies them to every ``moe`` query (:meth:`frontier_calib.cost.iteration.
IterationCostModel._moe_compute_ms`); the DeepEP expert tables (SGLang WideEP) are left as measured.
"""

from __future__ import annotations

import functools

import numpy as np
from ..lazy import pandas as pd

#: the ``kernel`` label of TensorRT-LLM's min-latency CUTLASS MoE rows in the imported tables
LOW_LATENCY_KERNEL = "moe_torch_flow_min_latency"
#: the most tokens (after attention-DP gathering) for which the low-latency kernel is considered
LOW_LATENCY_MAX_TOKENS = 128
#: expert formats the low-latency kernel serves
LOW_LATENCY_DTYPES = ("nvfp4",)
#: the widest GEMM side (n or k) priced in one piece by the dense path (the GEMM tables' measured range)
MAX_GEMM_SPAN = 65536
#: bytes per activation element of the dense path's SwiGLU pass (bf16 read of gate and up, bf16 write)
ACTIVATION_BYTES = 2.0
#: the columns that identify one MoE call in the tables, besides ``num_tokens``
SHAPE_COLUMNS = ("dtype", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp", "moe_ep", "distribution")


def _slices(width: int) -> int:
    """How many equal slices no wider than :data:`MAX_GEMM_SPAN` split ``width`` (a divisor of ``width``)."""
    parts = max(1, -(-int(width) // MAX_GEMM_SPAN))
    while width % parts:
        parts += 1
    return parts


def dense_path_ms(gemm_ms, n, *, hidden: int, inter: int, experts: int, gated: bool, hbm_bandwidth: float):
    """Milliseconds of the dense path for ``n`` tokens (array): ``gemm_ms(m, n_cols, k)`` prices one GEMM
    (arrays of m; the experts' format) and is called with slices of at most :data:`MAX_GEMM_SPAN`; ``inter`` is
    the per-GPU intermediate size of one expert, ``experts`` the experts on this GPU."""
    n = np.asarray(n, dtype=float)
    up = (2 if gated else 1) * inter * experts
    down_k = inter * experts
    p_up, p_down = _slices(up), _slices(down_k)
    t = p_up * np.asarray(gemm_ms(n, up // p_up, hidden), dtype=float)
    t = t + p_down * np.asarray(gemm_ms(n, hidden, down_k // p_down), dtype=float)
    act = n * (up + down_k) * ACTIVATION_BYTES      # read gate and up, write the gated activation
    return t + act / hbm_bandwidth * 1e3


def _loglog(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Interpolation of log y over log x inside [xs[0], xs[-1]]; NaN outside (no extrapolation)."""
    out = np.exp(np.interp(np.log(x), np.log(xs), np.log(ys)))
    return np.where((x >= xs[0]) & (x <= xs[-1]), out, np.nan)


def low_latency_ms(rows: pd.DataFrame, query: pd.DataFrame) -> np.ndarray:
    """Milliseconds of the low-latency kernel for each row of ``query`` (the ``moe`` query: :data:`SHAPE_COLUMNS`
    and ``num_tokens``) from the measured ``rows`` of that kernel (the same columns and ``latency_ms``); NaN where
    the kernel does not apply (format, more than :data:`LOW_LATENCY_MAX_TOKENS` tokens) or the table does not
    hold the query's exact shape, parallelism and routing within its token range."""
    out = np.full(len(query), np.nan)
    if rows is None or rows.empty or query.empty:
        return out
    tokens = query["num_tokens"].to_numpy(dtype=float)
    ok = query["dtype"].isin(LOW_LATENCY_DTYPES).to_numpy() & (tokens <= LOW_LATENCY_MAX_TOKENS)
    if not ok.any():
        return out
    keys = [c for c in SHAPE_COLUMNS]
    sub = query.loc[ok, keys].drop_duplicates()
    for key in sub.itertuples(index=False):
        mask = np.ones(len(rows), dtype=bool)
        for c, v in zip(keys, key):
            mask &= (rows[c] == v).to_numpy()
        curve = rows.loc[mask].groupby("num_tokens")["latency_ms"].median()
        if len(curve) < 2:
            continue
        sel = ok & np.all([(query[c] == v).to_numpy() for c, v in zip(keys, key)], axis=0)
        out[sel] = _loglog(tokens[sel], curve.index.to_numpy(dtype=float), curve.to_numpy(dtype=float))
    return out


@functools.lru_cache(maxsize=16)
def low_latency_rows(gpu: str, engine: str) -> pd.DataFrame:
    """The measured low-latency-kernel rows of (gpu, engine)'s ``moe`` table (empty when there are none)."""
    from ..errors import CoverageError
    from ..profiles.store import load_family

    try:
        df = load_family("moe", gpu, engine)
    except CoverageError:
        return pd.DataFrame()
    df = df[df["kernel"].astype(str) == LOW_LATENCY_KERNEL]
    return df[list(SHAPE_COLUMNS) + ["num_tokens", "latency_ms"]].reset_index(drop=True)


def bounded_moe_ms(table_ms, *bounds) -> np.ndarray:
    """``table_ms`` capped by each bound (arrays; NaN in a bound means no bound there), elementwise."""
    out = np.asarray(table_ms, dtype=float).copy()
    for b in bounds:
        b = np.asarray(b, dtype=float)
        out = np.where(np.isfinite(b), np.minimum(out, b), out)
    return out
