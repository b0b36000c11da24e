"""The time of one engine iteration on one worker, as the sum of the operator calls it issues.

An iteration runs prefill chunks (q new tokens each, attending to kv keys: cached prefix + q) and
decode sequences (one token each, attending to their KV). Its time is

    token-proportional ops (GEMMs, MoE, TP all-reduce, EP dispatch/combine, norms, PP hand-off)
  + lm_head over the sequences that sample
  + prefill attention per chunk + decode attention for the decode batch
  then turned into wall time by the engine's behaviour (:mod:`.engine_time`): CUDA-graph padding of the
  token-proportional ops, eager kernel launches, CPU scheduling (overlapped or not) and the front-end's output path

Every operator latency comes from the fitted operator models (:mod:`frontier_calib.opmodel`).
Because replay asks for millions of iterations, the model is evaluated once on grids: exact token
counts 1..max_tokens for the token-proportional part, exact decode batch sizes x a log grid of KV
lengths for decode attention, and a log grid of (q, kv) for prefill attention; queries interpolate
in log space. Times returned to the simulator are seconds.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
from ..lazy import pandas as pd

from ..attention import (QueryContext, attention_layers, get_kind, prefill_recompiles, state_bytes_per_sequence,
                         table_format)
from ..dtypes import DTYPE_BYTES, normalize_dtype
from ..engines import get_engine
from ..errors import CoverageError
from ..hardware import GPUSpec, get_gpu
from ..opmodel.registry import ModelSet
from .engine_time import engine_time, kernels_per_step, step_seconds
from .head_fold import fold_decode_query, trained_max_kv_heads
from . import moe_bound
from .hbm_floor import floored_decode_ms, streaming_rate
from .kv_format import WIDER_FORMAT, bounded_decode_ms
from .lookup import BilinearLog2
from .moe_gate import routing_kernels, routing_topk_ms
from .moe_routing import moe_query, tbo_ms
from .deepep_rdma import ll_floor_ms
from .overlap import comm_sm_share, layer_overlap_ms
from .node_link import ring_allgather_ms, ring_allreduce_ms  # noqa: F401 (ring_allreduce_ms: public here too)
from .nvlink_a2a import MEASURED_NVLINK_BANDWIDTH, one_sided_ms
from .worker import ALLGATHER, WorkerSpec, tp_nodes

_log2, _exp2 = np.log2, np.exp2   # NumPy's own (not math's): decode_time_one returns what decode_times does

_fmt = table_format   # the kernel-table format of a dtype (fp16 -> bf16)

#: batch sizes (sequences) of the batched prefill-attention tables; batch 1 is the ``prefill_ms`` table
PREFILL_BATCHES = (1, 2, 4, 8, 16, 32, 64)


def _monotone(a: np.ndarray, axis: int) -> np.ndarray:
    """``a`` made non-decreasing along ``axis``: the mean of its running maximum and its running minimum
    from the far end. Both are order-preserving, so applying this along one axis and then another keeps
    the first axis non-decreasing too. Removes the small dips that tree-ensemble predictions show between
    neighbouring shapes (more tokens, sequences or KV must never be cheaper) without biasing the curve up
    the way a plain running maximum would."""
    a = np.asarray(a, dtype=float)
    up = np.maximum.accumulate(a, axis=axis)
    down = np.flip(np.minimum.accumulate(np.flip(a, axis=axis), axis=axis), axis=axis)
    return 0.5 * (up + down)


def _log_grid(lo: int, hi: int, points: int) -> np.ndarray:
    """Integer grid from lo to hi, log-spaced, both ends included."""
    hi = max(hi, lo)
    g = np.unique(np.round(np.exp(np.linspace(math.log(lo), math.log(hi), points))).astype(np.int64))
    return g


def nvlink_collective_ms(op: str, nbytes, gpus: int, spec: GPUSpec) -> np.ndarray:
    """Milliseconds of an intra-node ``reduce_scatter`` or ``all_gather`` of a buffer of ``nbytes`` bytes (the
    whole buffer, as in the ``collective`` tables) over ``gpus`` GPUs, from the NVLink figures of the GPU spec
    when no profiled table covers it: a ring of gpus - 1 steps, each moving nbytes / gpus bytes per GPU::

        (gpus - 1) / gpus x nbytes / nvlink_bandwidth  +  (gpus - 1) x nvlink_latency_s
    """
    if op not in ("reduce_scatter", "all_gather"):
        raise ValueError(f"not an intra-node stage of the hierarchical all-reduce: {op!r}")
    return ring_allgather_ms(nbytes, gpus, spec.nvlink_bandwidth, spec.nvlink_latency_s)


def hierarchical_allreduce_ms(nbytes, nodes: int, gpus_per_node: int, spec: GPUSpec, intra_ms=None) -> np.ndarray:
    """Milliseconds of an all-reduce of a buffer of ``nbytes`` bytes (what each GPU holds) over a group of
    ``nodes x gpus_per_node`` GPUs, ``gpus_per_node`` of them in each of ``nodes`` nodes, as NCCL's hierarchical
    all-reduce runs it:

    1. intra-node reduce-scatter over the g = ``gpus_per_node`` GPUs of each node (NVLink): each GPU ends
       with its node's partial sum of one nbytes / g shard;
    2. inter-node ring all-reduce of that shard among the N = ``nodes`` GPUs that hold it (one per node, each
       over its own NIC): :func:`ring_allreduce_ms` of nbytes / g bytes at the spec's ``network_bandwidth``
       (bytes/s per GPU) and ``network_latency_s`` (seconds per step), i.e.
       2 (N - 1) / N x (nbytes / g) / network_bandwidth + 2 (N - 1) x network_latency_s;
    3. intra-node all-gather of the g reduced shards (NVLink).

    ``intra_ms(op, nbytes, g)``: milliseconds of one intra-node stage (op ``'reduce_scatter'`` or
    ``'all_gather'``, ``nbytes`` the whole buffer); default :func:`nvlink_collective_ms`. With one node the
    inter-node term is zero and the result is the two intra-node stages; with one GPU per node only the
    inter-node ring remains.
    """
    nbytes = np.asarray(nbytes, dtype=float)
    if nodes < 1 or gpus_per_node < 1:
        raise ValueError(f"need nodes >= 1 and gpus_per_node >= 1, got {nodes} and {gpus_per_node}")
    if intra_ms is None:
        def intra_ms(op, b, g):
            return nvlink_collective_ms(op, b, g, spec)
    g = int(gpus_per_node)
    inter = ring_allreduce_ms(nbytes / g, int(nodes), spec.network_bandwidth, spec.network_latency_s)
    if g == 1:
        return inter
    return intra_ms("reduce_scatter", nbytes, g) + inter + intra_ms("all_gather", nbytes, g)


@dataclass(frozen=True)
class TokenOps:
    """The token-proportional ops of all layers (:meth:`IterationCostModel._token_ops`), in milliseconds, one array
    entry per token count asked for: ``total_ms``, every op as an eager step runs them; ``ffn_ms``, its FFN/MoE share
    (what an AF deployment runs on its FFN pool, cost/af.py); ``graph_saving_ms``, what a step that replays a CUDA
    graph saves off ``total_ms`` (:meth:`IterationCostModel._shared_experts_beside`); ``parts``, op name -> that op
    over all layers (:meth:`IterationCostModel.token_op_parts`)."""

    total_ms: np.ndarray
    ffn_ms: np.ndarray
    graph_saving_ms: np.ndarray
    parts: dict


@dataclass
class CostBreakdown:
    """Milliseconds per component for one batch (what `breakdown()` returns)."""

    token_ops_ms: float
    lm_head_ms: float
    prefill_attention_ms: float
    decode_attention_ms: float
    overhead_ms: float

    @property
    def total_ms(self) -> float:
        return (self.token_ops_ms + self.lm_head_ms + self.prefill_attention_ms + self.decode_attention_ms
                + self.overhead_ms)


class _DecodeRows:
    """What :meth:`IterationCostModel.decode_stretches` reads per batch size ``n``, indexed by ``n`` (filled for
    n <= ``filled``): ``batch`` (n as a float), ``base`` (token + LM-head ms), ``floor`` (the step floor with
    overlap, s; 0 without), ``graphed``; the flat decode table (``slopes``, ``fp``: log2 ms) with ``xp_flat``,
    the log2 KV grid ``xp`` repeated per row, and ``offsets[n]``, the flat index of (row n - 1, column 0) minus one
    (so that ``searchsorted + offsets`` is the flat index of the grid point at or below each query); ``steps``:
    (batches, k) -> step indices 0 .. k - 1 repeated per batch (float; at most 128 arrays of 2,048); ``one``, ``kv_max``, ``thousand``: the
    constants as 0-d arrays (an operation with a Python float converts it each time)."""

    __slots__ = ("batch", "base", "floor", "graphed", "filled", "slopes", "fp", "xp", "xp_flat", "offsets", "steps",
                 "one", "kv_max", "thousand")

    def __init__(self, flat: tuple, max_seqs: int, kv_max: float):
        self.slopes, self.fp, self.xp = flat
        width = len(self.xp)
        self.batch = np.zeros(max_seqs + 1)
        self.base = np.zeros(max_seqs + 1)
        self.floor = np.zeros(max_seqs + 1)
        self.graphed = np.zeros(max_seqs + 1, dtype=bool)
        self.filled = 0
        self.xp_flat = np.tile(self.xp, max_seqs)
        self.offsets = np.arange(-1, max_seqs, dtype=np.intp) * width - 1
        self.steps: dict = {}
        self.one, self.kv_max, self.thousand = np.array(1.0), np.array(float(kv_max)), np.array(1e3)


class IterationCostModel:
    """Implements the simulator's ``IterationCost`` protocol for one worker.

    ``max_tokens``: the largest tokens per iteration the scheduler can issue (token budget);
    ``max_seqs``: the largest decode batch; ``max_model_len``: the longest KV (tokens).
    """

    def __init__(self, worker: WorkerSpec, models: ModelSet | None, *, max_tokens: int, max_seqs: int,
                 max_model_len: int, kv_grid_points: int = 48, q_grid_points: int = 40, tables: dict | None = None):
        self.worker = worker
        self.models = models
        self.spec = get_gpu(worker.gpu)
        self.max_tokens = int(max(max_tokens, max_seqs, 1))
        self.max_seqs = int(max(max_seqs, 1))
        self.max_model_len = int(max(max_model_len, 2))
        self._attention_layers = attention_layers(worker.model)   # [(attention kind, window, layers)]
        self._kv_stream_rate: dict = {}   # (kind, window) -> bytes/s its decode KV streams at (_hbm_floored)
        if tables is None:
            if models is None:
                raise ValueError("IterationCostModel needs fitted models or precomputed tables")
            tables = self._build_tables(kv_grid_points, q_grid_points)
        self.tables = tables
        self._token_ms = tables["token_ms"]
        #: the token-proportional ops of a step that replays a CUDA graph (:meth:`_shared_experts_beside`); tables
        #: built without it (another worker's) price graphed steps like eager ones
        self._token_graph_ms = tables.get("token_graph_ms", tables["token_ms"])
        self._lm_head_ms = tables["lm_head_ms"]
        self._kv_grid = tables["kv_grid"]
        self._decode_ms = tables["decode_ms"]            # [b, kv_grid], log2 ms
        self._q_grid = tables["q_grid"]
        self._prefill_ms = tables["prefill_ms"]          # [q_grid, kv_grid], log2 ms
        self._log_q_grid = np.log2(self._q_grid)
        self._log_kv_grid = np.log2(self._kv_grid)
        self._log_kv_list = self._log_kv_grid.tolist()
        self._kv_grid_max = float(self._kv_grid[-1])
        self._prefill_memo: dict = {}
        self._prefill_lookup = BilinearLog2(self._log_q_grid, self._log_kv_grid, self._prefill_ms,
                                            float(self._q_grid[-1]), self._kv_grid_max)
        self._prefill_batch_lookup = [BilinearLog2(self._log_q_grid, self._log_kv_grid, z, float(self._q_grid[-1]),
                                                   self._kv_grid_max) for z in tables["prefill_batch_ms"]]
        self._mixed_terms: dict = {}       # (tokens, sequences) of a step with prefill -> (ms, graphed)
        self._decode_rows = self._decode_ms.tolist()   # Python floats for the scalar path (same values)
        self._decode_finite = bool(np.isfinite(self._decode_ms).all())   # decode_time_one's formula needs it
        self._decode_terms: dict = {}      # batch size -> (token + LM-head ms, graphed)
        self._decode_rows_table = None     # decode_stretches: a _DecodeRows (False: unusable)
        self._decode_floor: dict = {}      # decode_stretches with overlap: batch size -> step time floor (s)
        self.overheads = worker.overheads
        self.engine_time = engine_time(worker.engine, max_num_seqs=self.max_seqs, cuda_graph=worker.cuda_graph,
                                       overlap=worker.overlap, version=worker.engine_version,
                                       recurrent_state=state_bytes_per_sequence(worker.model, tp=worker.tp) > 0)
        self.kernels = kernels_per_step(worker.model, worker.tp)
        # a kernel JIT-compiled again for every new prefill token count (attention kind's prefill_recompiles):
        # the engine loop stalls jit_compile_s the first time this server (this cost model) runs a count
        self.jit_compile_s = get_engine(worker.engine).jit_compile_s \
            if prefill_recompiles(worker.model, worker.engine) else 0.0
        self._jit_seen: set = set()   # prefill token counts already compiled for

    def _build_tables(self, kv_grid_points: int, q_grid_points: int) -> dict:
        n = np.arange(1, self.max_tokens + 1)
        # every table is made non-decreasing in each of its axes (see _monotone)
        ops = self._token_ops(n)
        t = {"token_ms": np.concatenate([[0.0], _monotone(ops.total_ms, 0)]),
             "token_graph_ms": np.concatenate([[0.0], _monotone(ops.total_ms - ops.graph_saving_ms, 0)]),
             "ffn_ms": np.concatenate([[0.0], _monotone(ops.ffn_ms, 0)]),
             "lm_head_ms": np.concatenate([[0.0], _monotone(self._lm_head_ms_of(n), 0)])}
        self._kv_grid = t["kv_grid"] = _log_grid(1, self.max_model_len, kv_grid_points)
        t["decode_ms"] = _monotone(_monotone(self._decode_grid_ms(np.arange(1, self.max_seqs + 1)), 0), 1)
        self._q_grid = t["q_grid"] = _log_grid(1, self.max_tokens, q_grid_points)
        t["prefill_ms"] = _monotone(_monotone(self._prefill_table(), 0), 1)
        t["prefill_batch_ms"] = self._prefill_batch_tables()
        return t

    @property
    def gpus_per_node(self) -> int:
        """GPUs that share NVLink: the deployment's ``cluster.gpus_per_node``, else the GPU spec's."""
        return int(self.worker.gpus_per_node or self.spec.gpus_per_node)

    # ------------------------------------------------------------------ protocol
    def iteration_time(self, prefill_q, prefill_kv, num_decode: int, decode_kv_sum: int) -> float:
        t = self._step_time(prefill_q, prefill_kv, num_decode, decode_kv_sum)
        if self.jit_compile_s and len(prefill_q):
            t += self._jit_stall(int(sum(prefill_q)))
        return t

    def _step_time(self, prefill_q, prefill_kv, num_decode: int, decode_kv_sum: int) -> float:
        """Seconds of one step from the tables and the engine terms, without the JIT stall (which depends on the
        steps run before: :meth:`_jit_stall`)."""
        qs = prefill_q if type(prefill_q) is list else (   # read only: a list is used as it is
            prefill_q.tolist() if hasattr(prefill_q, "tolist") else list(prefill_q))
        if not qs:  # decode-only: identical to decode_times (the fast-forward contract)
            return self.decode_time_one(num_decode, decode_kv_sum) if num_decode else 0.0
        kvs = prefill_kv if type(prefill_kv) is list else (
            prefill_kv.tolist() if hasattr(prefill_kv, "tolist") else list(prefill_kv))
        n_tok = sum(qs) + int(num_decode)
        n_seq = len(qs) + int(num_decode)
        key = (n_tok, n_seq)
        terms = self._mixed_terms.get(key)
        if terms is None:   # token-proportional + LM-head ms and whether a graph runs: fixed per (tokens, sequences)
            run_tok, graphed = self.engine_time.padded_tokens(n_tok, n_seq, True)
            terms = self._mixed_terms[key] = (self._token_lookup(run_tok, graphed) + self._lm_head_lookup(n_seq),
                                              graphed)
        ms, graphed = terms
        ms += self._prefill_step_ms(qs, kvs)
        if num_decode:
            ms += self._decode_attention_one(int(num_decode), float(decode_kv_sum))
        return step_seconds(ms / 1e3, graphed=graphed, kernels=self.kernels, sequences=n_seq, tokens=n_tok,
                            has_prefill=True, overheads=self.overheads, overlap=self.engine_time.overlap)

    def _jit_stall(self, prefill_tokens: int) -> float:
        """Seconds the engine loop stands still compiling before a prefill step of ``prefill_tokens`` new tokens:
        ``jit_compile_s`` the first time this cost model (one server's process) sees the count, else 0. The
        compile runs on the host before the step's kernels launch, so it adds to the step."""
        if prefill_tokens in self._jit_seen:
            return 0.0
        self._jit_seen.add(prefill_tokens)
        return self.jit_compile_s

    def _prefill_step_ms(self, qs: list, kvs: list) -> float:
        """Milliseconds of attention for one step's prefill chunks (``qs`` new tokens attending ``kvs`` keys each).

        One chunk: the table. Several: the engines run them as one variable-length call, so its fixed costs are
        paid once and the GPU is filled by all of them: the batched table at ``n`` sequences of the mean chunk
        ``q = sum(q) / n`` attending ``kv = sum(q x kv) / sum(q)`` keys (the same attention work), interpolated in
        log2 of the batch between ``PREFILL_BATCHES``; never more than the chunks as separate calls, never less
        than the largest chunk alone. Measured on the profiled tables' own batched rows: docs/cost-model.md."""
        memo = self._prefill_memo
        total = top = 0.0
        for key in zip(qs, kvs):
            v = memo.get(key)
            if v is None:
                v = memo[key] = self._prefill_lookup.one(*key)
            total += v
            top = v if v > top else top
        n = len(qs)
        if n < 2:
            return total
        q_sum = sum(qs)
        kv_eff = sum(q * k for q, k in zip(qs, kvs)) / q_sum if q_sum else 1.0
        return min(total, max(self._prefill_batched_one(n, q_sum / n, kv_eff), top))

    def _prefill_batched_one(self, n: int, q: float, kv: float) -> float:
        """Milliseconds of one batched prefill call of ``n`` sequences of ``q`` tokens attending ``kv`` keys."""
        look, grid = self._prefill_batch_lookup, PREFILL_BATCHES
        if n >= grid[-1]:   # past the largest tabulated batch: the largest batch's time per sequence
            return look[-1].one(q, kv) * n / grid[-1]
        i = bisect.bisect_right(grid, n) - 1
        lo = look[i].one(q, kv)
        if grid[i] == n:
            return lo
        hi = look[i + 1].one(q, kv)
        t = (math.log2(n) - math.log2(grid[i])) / (math.log2(grid[i + 1]) - math.log2(grid[i]))
        return float(np.exp2((1 - t) * math.log2(lo) + t * math.log2(hi)))

    def decode_times(self, num_decode: int, decode_kv_sums) -> np.ndarray:
        n = int(num_decode)
        terms = self._decode_terms.get(n)
        if terms is None:   # token-proportional + LM-head ms and whether a graph runs: fixed per batch size
            run_tok, graphed = self.engine_time.padded_tokens(n, n, False)
            terms = self._decode_terms[n] = (self._token_lookup(run_tok, graphed) + self._lm_head_lookup(n), graphed)
        base, graphed = terms
        if 0 < n <= self.max_seqs:   # _decode_attention_ms in place, on a fresh array (same operations)
            gpu = np.true_divide(decode_kv_sums, n, dtype=float)
            np.maximum(gpu, 1.0, out=gpu)
            np.minimum(gpu, self._kv_grid_max, out=gpu)
            np.log2(gpu, out=gpu)
            gpu = np.interp(gpu, self._log_kv_grid, self._decode_ms[n - 1])
            np.exp2(gpu, out=gpu)
            gpu += base
            gpu /= 1e3
        else:
            gpu = (base + self._decode_attention_ms(n, np.asarray(decode_kv_sums, dtype=float))) / 1e3
        return step_seconds(gpu, graphed=graphed, kernels=self.kernels, sequences=n, tokens=n, has_prefill=False,
                            overheads=self.overheads, overlap=self.engine_time.overlap)

    def decode_time_one(self, num_decode: int, decode_kv_sum) -> float:
        """``decode_times(num_decode, [decode_kv_sum])[0]`` without arrays, bit for bit: the same operations on
        Python floats, NumPy's own ``log2`` / ``exp2`` for the transcendental steps and ``np.interp``'s formula
        (``slope * (x - xp[j]) + fp[j]``, ``fp[j]`` on a grid point). A replay prices a third of its decode
        stretches one step at a time (an arrival or completion is due after the step), where the arrays cost
        more than the arithmetic (``tests/test_speed_paths.py`` checks the equality)."""
        n = int(num_decode)
        if not 0 < n <= self.max_seqs or not self._decode_finite:
            return float(self.decode_times(n, np.array([decode_kv_sum], dtype=float))[0])
        terms = self._decode_terms.get(n)
        if terms is None:
            run_tok, graphed = self.engine_time.padded_tokens(n, n, False)
            terms = self._decode_terms[n] = (self._token_lookup(run_tok, graphed) + self._lm_head_lookup(n), graphed)
        base, graphed = terms
        x = float(decode_kv_sum) / n
        x = self._kv_grid_max if x > self._kv_grid_max else (x if x > 1.0 else 1.0)
        x = float(_log2(x))
        g, row = self._log_kv_list, self._decode_rows[n - 1]
        j = bisect.bisect_right(g, x) - 1   # np.interp: the last grid point <= x
        if j < 0:   # below the grid (a grid not starting at 1): np.interp's left value
            v = row[0]
        elif j == len(g) - 1 or g[j] == x:
            v = row[j]
        else:
            v = (row[j + 1] - row[j]) / (g[j + 1] - g[j]) * (x - g[j]) + row[j]
        gpu = (float(_exp2(v)) + base) / 1e3
        return step_seconds(gpu, graphed=graphed, kernels=self.kernels, sequences=n, tokens=n, has_prefill=False,
                            overheads=self.overheads, overlap=self.engine_time.overlap)

    def decode_stretches(self, num_decode, first_kv_sums, k: int):
        """Seconds of ``k`` decode-only steps of several decode batches at once (the attention-DP ranks of one
        worker in lockstep, :mod:`frontier_calib.sim.lockstep`): an array of shape (batches, ``k``) whose row i
        equals ``decode_times(num_decode[i], first_kv_sums[i] + num_decode[i] * arange(k))`` bit for bit (the
        same operations element by element; ``np.interp`` is written out with its own formula,
        ``slope * (x - xp[j]) + fp[j]`` with ``xp[j] <= x < xp[j + 1]``, because each row reads its own table
        row). None when a batch size lies outside the decode table (the caller then prices batch by batch)."""
        top = max(num_decode)
        if min(num_decode) < 1 or top > self.max_seqs:
            return None
        table = self._decode_rows_table
        if table is None:
            flat = self._decode_flat_tables()
            if flat is False:
                return None
            table = self._decode_rows_table = _DecodeRows(flat, self.max_seqs, self._kv_grid_max)
        elif table is False:
            return None
        if top > table.filled:
            self._fill_decode_rows(table, top)
        idx = np.array(num_decode, dtype=np.intp)
        # Every array below is flat, batch after batch (k steps each), so that no operation broadcasts (broadcasting
        # costs more than these few elements). Batch sizes and KV sums are float64 (exact: integers far below
        # 2**53), so that every operation is a float64 one: the same values as decode_times' integer arithmetic
        # and casts.
        each = idx.repeat(k)                       # the batch size of every element
        col = table.batch.take(each)               # n, as a float
        steps = table.steps.get((len(idx), k))
        if steps is None:                          # 0, 1, .., k - 1 for every batch (kept when small, 128 at most)
            steps = np.tile(np.arange(k, dtype=float), len(idx))
            if len(steps) <= 2048 and len(table.steps) < 128:
                table.steps[(len(idx), k)] = steps
        x = steps * col                            # KV sum of step i: first + n x i
        x += np.array(first_kv_sums, dtype=float).repeat(k)
        x /= col                                   # decode_times' operations, on every batch at once
        np.maximum(x, table.one, out=x)
        np.minimum(x, table.kv_max, out=x)
        np.log2(x, out=x)
        j = table.xp.searchsorted(x, side="right")   # xp[j - 1] <= x (x >= log2(1) >= xp[0]); j - 1 = last at the end
        j += table.offsets.take(each)              # the flat index of (row n - 1, j - 1)
        x -= table.xp_flat.take(j)
        x *= table.slopes.take(j)                  # the last column's slope is 0: fp[last] at the grid's end
        x += table.fp.take(j)
        np.exp2(x, out=x)
        x += table.base.take(each)
        x /= table.thousand
        if self.engine_time.overlap:   # kernel times are > 0: the same maximum as step_seconds takes element by element
            np.maximum(x, table.floor.take(each), out=x)
            return x.reshape(len(idx), k)
        x = x.reshape(len(idx), k)
        col = col.reshape(len(idx), k)[:, :1]
        graphed = table.graphed.take(idx)
        kw = dict(kernels=self.kernels, has_prefill=False, overheads=self.overheads, overlap=False)
        if graphed.all() or not graphed.any():
            return step_seconds(x, graphed=bool(graphed[0]), sequences=col, tokens=col, **kw)
        out = np.empty_like(x)
        for flag in (True, False):
            sel = graphed == flag
            out[sel] = step_seconds(x[sel], graphed=flag, sequences=col[sel], tokens=col[sel], **kw)
        return out

    def _fill_decode_rows(self, table, upto: int) -> None:
        """Fill :class:`_DecodeRows` for batch sizes up to ``upto``: the token + LM-head milliseconds and graph flag
        of ``decode_times`` (the same memo) and, with overlap, the step floor: with overlap a step lasts
        max(its kernel time, floor), step_seconds' maximum with the terms that do not depend on the kernel time
        taken first (a step with none)."""
        terms = self._decode_terms
        overlap = self.engine_time.overlap
        for n in range(table.filled + 1, upto + 1):
            t = terms.get(n)
            if t is None:
                run_tok, g = self.engine_time.padded_tokens(n, n, False)
                t = terms[n] = (self._token_lookup(run_tok, g) + self._lm_head_lookup(n), g)
            floor = 0.0
            if overlap:
                floor = self._decode_floor.get(n)
                if floor is None:
                    floor = self._decode_floor[n] = step_seconds(
                        0.0, graphed=t[1], kernels=self.kernels, sequences=n, tokens=n, has_prefill=False,
                        overheads=self.overheads, overlap=True)
            table.batch[n] = n
            table.base[n] = t[0]
            table.floor[n] = floor
            table.graphed[n] = t[1]
        table.filled = upto

    def _decode_flat_tables(self):
        """(slopes, log2 ms, log2 KV grid) for :meth:`decode_stretches`: the decode table and its per-row slopes
        between grid points (as ``np.interp`` computes them), flattened, with a zero slope after each row's last
        point; False when they cannot reproduce ``np.interp`` (a non-finite slope, a grid not starting at 1)."""
        fp, xp = self._decode_ms, self._log_kv_grid
        with np.errstate(all="ignore"):
            slopes = (fp[:, 1:] - fp[:, :-1]) / (xp[1:] - xp[:-1])
        if not (np.isfinite(slopes).all() and np.isfinite(fp).all() and xp[0] <= 0.0):
            return False
        slopes = np.concatenate([slopes, np.zeros((len(fp), 1))], axis=1)
        return slopes.ravel(), np.ascontiguousarray(fp, dtype=float).ravel(), xp

    def decode_kernel_ms(self, num_decode: int, decode_kv_sums) -> tuple:
        """Kernel milliseconds of a decode-only step of ``num_decode`` sequences, unpadded and before engine time:
        (token-proportional ops, LM head, decode attention per KV-length sum (array)). Used to price parts of a
        forward pass (a speculative drafter's layers, cost/speculative.py)."""
        n = int(num_decode)
        kv = np.asarray(decode_kv_sums, dtype=float)
        return self._token_lookup(n), self._lm_head_lookup(n), self._decode_attention_ms(n, kv)

    @property
    def schedules_ahead(self) -> bool:
        """The engine plans step n+1 while step n runs (its CPU/GPU overlap; :mod:`frontier_calib.sim.replica`)."""
        return self.engine_time.overlap

    def breakdown(self, prefill_q, prefill_kv, num_decode: int, decode_kv_sum: int) -> CostBreakdown:
        """Milliseconds per component of one step; ``overhead_ms`` is what the engine adds to the kernels'
        sum (:mod:`.engine_time`: padding, eager launches, CPU not hidden by overlap, the output path); not the JIT
        stall of a first-seen prefill token count (it depends on the steps run before, :meth:`_jit_stall`), and
        asking leaves the counts seen unchanged."""
        q = np.asarray(prefill_q, dtype=np.int64)
        n_tok, n_seq = int(q.sum()) + num_decode, len(q) + num_decode
        pre = self.prefill_step_attention_ms(q, prefill_kv) if len(q) else 0.0
        dec = float(self._decode_attention_ms(num_decode, np.array([decode_kv_sum], float))[0]) if num_decode else 0.0
        run_tok, graphed = self.engine_time.padded_tokens(n_tok, n_seq, len(q) > 0)
        # the kernels the step runs unpadded; a graphed step's padding shows in overhead_ms
        tok, head = self._token_lookup(n_tok, graphed), self._lm_head_lookup(n_seq)
        total = self._step_time(q, np.asarray(prefill_kv, dtype=np.int64), num_decode, decode_kv_sum) * 1e3
        return CostBreakdown(tok, head, pre, dec, total - (tok + head + pre + dec))

    # ------------------------------------------------------------------ public lookups (cost/af.py and others)
    def token_ms(self, n: int) -> float:
        """Milliseconds of every token-proportional op (GEMMs, MoE, collectives, norms) for ``n`` tokens."""
        return self._token_lookup(int(n))

    def ffn_ms(self, n: int) -> float:
        """The FFN/MoE share of :meth:`token_ms` (what an AF deployment runs on its FFN pool), milliseconds."""
        t = self.tables["ffn_ms"]
        return float(t[n]) if n < len(t) else float(t[-1]) * n / (len(t) - 1)

    def token_op_parts(self, n: int) -> dict:
        """Milliseconds of each token-proportional op over all layers for ``n`` tokens per rank, by op name: the
        GEMMs outside the attention kinds' own tables (``q_a_proj``, ``router``, ``shared_expert_gate_up``, ...),
        ``routed_experts`` (with their EP dispatch/combine), ``all_reduce`` (the layers' TP all-reduces),
        ``elementwise``, ``embedding_all_reduce``, ``pp_hand_off`` (``overlapped_moe_layer`` for MoE layers under
        two-micro-batch overlap). They sum to what an eager step runs (:meth:`token_ms` before its tables are made
        monotone); ``graph_saving`` is what a step that replays a CUDA graph saves on top
        (:meth:`_shared_experts_beside`). Needs the fitted models (not precomputed tables)."""
        if self.models is None:
            raise ValueError("token_op_parts needs the fitted models, not precomputed tables")
        ops = self._token_ops(np.array([int(n)]))
        out = {name: float(ms[0]) for name, ms in ops.parts.items()}
        out["graph_saving"] = float(ops.graph_saving_ms[0])
        return out

    def lm_head_ms(self, n: int) -> float:
        """Milliseconds of the vocab projection for ``n`` sampling sequences."""
        return self._lm_head_lookup(int(n))

    def prefill_attention_ms(self, q, kv) -> np.ndarray:
        """Milliseconds of attention (all layers) per prefill chunk of ``q`` new tokens attending to ``kv`` keys."""
        return self._prefill_attention_ms(np.asarray(q), np.asarray(kv))

    def prefill_step_attention_ms(self, q, kv) -> float:
        """Milliseconds of attention (all layers) for one step's prefill chunks run as one batched call
        (:meth:`_prefill_step_ms`)."""
        return self._prefill_step_ms([int(x) for x in np.asarray(q).ravel()], [int(x) for x in np.asarray(kv).ravel()])

    def decode_attention_ms(self, b: int, kv_sums) -> np.ndarray:
        """Milliseconds of attention (all layers) of a decode batch of ``b`` sequences, per total KV in ``kv_sums``."""
        return self._decode_attention_ms(int(b), np.asarray(kv_sums, float))

    # ------------------------------------------------------------------ lookups
    def _token_lookup(self, n: int, graphed: bool = False) -> float:
        """Milliseconds of the token-proportional ops for ``n`` tokens, in a step that replays a CUDA graph
        (``graphed``: the engine's multi-stream overlaps, :meth:`_shared_experts_beside`) or runs eager."""
        table = self._token_graph_ms if graphed else self._token_ms
        if n <= self.max_tokens:
            return float(table[n])
        # beyond the precomputed budget (rare): evaluate directly, or scale the last entry per token
        if self.models is not None:
            ops = self._token_ops(np.array([n]))
            ms = ops.total_ms - ops.graph_saving_ms if graphed else ops.total_ms
            return max(float(ms[0]), float(table[-1]))
        return float(table[-1] * n / self.max_tokens)

    def _lm_head_lookup(self, n: int) -> float:
        if n <= self.max_tokens:
            return float(self._lm_head_ms[n])
        if self.models is not None:
            return max(float(self._lm_head_ms_of(np.array([n]))[0]), float(self._lm_head_ms[-1]))
        return float(self._lm_head_ms[-1] * n / self.max_tokens)

    def _lm_head_ms_of(self, n: np.ndarray) -> np.ndarray:
        """Milliseconds of the vocab projection for ``n`` sampling sequences on one GPU and, with ``tp`` > 1, of
        the all-gather of their logits (``n`` x vocab x 2 bytes) over the ``tp`` group: the head is
        vocab-parallel and every engine gathers the full logits before sampling (vLLM
        ``LogitsProcessor._gather_logits``, all-gather in the V1 engine; SGLang's ``LogitsProcessor``;
        TensorRT-LLM's LM head with ``gather_output``)."""
        w, m = self.worker, self.worker.model
        n = np.asarray(n)
        ms = self._gemm_ms(m.lm_head_gemm(w.tp), n, "bf16")
        if w.tp > 1:
            ms = ms + self._tp_allgather_ms(n.astype(float) * m.vocab_size * 2)
        return ms

    def _tp_allgather_ms(self, nbytes: np.ndarray) -> np.ndarray:
        """Milliseconds of an all-gather of a buffer of ``nbytes`` bytes (the whole gathered buffer) over the
        ``tp`` GPUs: the ring over the deployment's ``cluster.link`` when it names one; else the profiled NCCL
        all-gather inside one node; else half the all-reduce of the same buffer (an all-reduce is a
        reduce-scatter followed by an all-gather)."""
        w = self.worker
        nbytes = np.asarray(nbytes, dtype=float)
        inside = w.tp <= self.gpus_per_node
        if w.node_link is not None and inside:
            return ring_allgather_ms(nbytes, w.tp, w.node_link.bandwidth, w.node_link.latency_s)
        if inside and self.models.has("collective") and "all_gather" in self._collective_categories("op"):
            return self._collective_ms("all_gather", nbytes, w.tp)
        if not inside and w.tp % self.gpus_per_node == 0:
            return 0.5 * self._cross_node_allreduce_ms(nbytes, tp_nodes(w.tp, self.gpus_per_node))
        return 0.5 * self._collective_ms("all_reduce", nbytes, w.tp)

    def _decode_attention_one(self, b: int, kv_sum: float) -> float:
        """Scalar form of :meth:`_decode_attention_ms` (the per-step hot path)."""
        mean_kv = min(max(kv_sum / b, 1.0), self._kv_grid_max)
        row = self._decode_rows[b - 1] if b <= self.max_seqs else self._decode_row(b)
        x = math.log2(mean_kv)
        g = self._log_kv_list
        j = min(max(bisect.bisect_right(g, x) - 1, 0), len(g) - 2)
        t = (x - g[j]) / (g[j + 1] - g[j])
        return 2.0 ** (row[j] + t * (row[j + 1] - row[j]))

    def _decode_attention_ms(self, b: int, kv_sums: np.ndarray) -> np.ndarray:
        if b <= 0:
            return np.zeros(len(kv_sums))
        mean_kv = np.minimum(np.maximum(kv_sums / b, 1), self._kv_grid_max)   # np.clip, without its overhead
        if b <= self.max_seqs:
            row = self._decode_ms[b - 1]
        else:
            row = self._decode_row(b)
        return np.exp2(np.interp(np.log2(mean_kv), self._log_kv_grid, row))

    def _prefill_attention_ms(self, q: np.ndarray, kv: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of log2(ms) over (log2 q, log2 kv)."""
        lq = np.log2(np.clip(q, 1, self._q_grid[-1]))
        lk = np.log2(np.clip(np.maximum(kv, q), 1, self._kv_grid[-1]))
        gq, gk = self._log_q_grid, self._log_kv_grid
        i = np.clip(np.searchsorted(gq, lq) - 1, 0, len(gq) - 2)
        j = np.clip(np.searchsorted(gk, lk) - 1, 0, len(gk) - 2)
        tq = np.clip((lq - gq[i]) / (gq[i + 1] - gq[i]), 0, 1)
        tk = np.clip((lk - gk[j]) / (gk[j + 1] - gk[j]), 0, 1)
        z = self._prefill_ms
        v = ((1 - tq) * (1 - tk) * z[i, j] + tq * (1 - tk) * z[i + 1, j]
             + (1 - tq) * tk * z[i, j + 1] + tq * tk * z[i + 1, j + 1])
        return np.exp2(v)

    # ------------------------------------------------------------------ building the tables
    def _gemm_ms(self, g, m_tokens: np.ndarray, dtype: str) -> np.ndarray:
        df = pd.DataFrame({"dtype": _fmt(dtype), "m": m_tokens * g.count, "n": g.n, "k": g.k})
        return self.models.predict("gemm", df)

    def _token_ops(self, n: np.ndarray) -> TokenOps:
        """Milliseconds of every token-proportional op of all layers for ``n`` tokens per rank (an array of token
        counts), with their FFN/MoE share, what a CUDA-graph step saves and each op's milliseconds
        (:class:`TokenOps`)."""
        w, m = self.worker, self.worker.model
        n = np.asarray(n, dtype=np.int64)
        total = np.zeros(len(n))
        totals: dict = {}   # op name -> ms over all layers
        ffn_total = np.zeros(len(n))
        saving = np.zeros(len(n))   # what CUDA-graph steps save by running the shared experts beside the routed ones
        beside = self._shared_experts_beside()
        whole_gpu = self._gemms_hold_every_sm()
        overlapped = self._overlapped()
        for moe_layer, kind_name, layers in m.layer_groups():
            # blocks models (Nemotron-H): a block holds a mixer (kind) or an MLP/MoE (moe_layer not None), not both
            kind = get_kind(kind_name) if kind_name else None
            allreduce = self._tp_allreduce_ms(n)   # one after attention, one after the MLP/MoE
            if moe_layer and overlapped:   # two micro-batches: the all-to-all under the layer's compute
                per_layer, ffn = self._overlapped_layer_ms(n, kind, moe_layer)
                per_layer = per_layer + allreduce * ((kind is not None) + 1)
                ffn = ffn + allreduce
                parts = {"overlapped_moe_layer": per_layer}
            else:
                parts = {}
                per_layer, ffn = self._layer_compute_ms(n, kind, moe_layer, self._moe_ms, allreduce, parts)
                if moe_layer and beside:   # the layer lasts the longer path, not the sum: the shorter one is saved
                    saving += layers * np.minimum(*self._moe_paths(parts, whole_gpu))
            total += layers * per_layer
            ffn_total += layers * ffn
            for name, ms in parts.items():
                totals[name] = totals.get(name, 0.0) + layers * ms
        # the vocab-parallel input embedding: each GPU looks up its vocabulary shard, then one all-reduce of the
        # activations (vLLM/SGLang VocabParallelEmbedding, TensorRT-LLM's Embedding with tensor parallelism)
        embedding = self._tp_allreduce_ms(n)
        total += embedding
        hand_off = np.zeros(len(n))
        if w.pp > 1:
            act = n * m.hidden_size * 2
            hand_off = (w.pp - 1) * (self.spec.nvlink_latency_s + act / self.spec.nvlink_bandwidth) * 1e3
            total += hand_off
        totals.update(embedding_all_reduce=embedding, pp_hand_off=hand_off)
        return TokenOps(total, ffn_total, saving, totals)

    def _layer_compute_ms(self, n: np.ndarray, kind, moe_layer, moe_ms, allreduce=None, parts=None) -> tuple:
        """(milliseconds, its FFN/MoE share) of one layer's token-proportional ops for ``n`` tokens per rank:
        projections outside the kind's own tables, the FFN GEMMs (router, shared experts, dense MLP), the routed
        experts as ``moe_ms(n)`` prices them, the TP all-reduces when ``allreduce`` (ms of one) is given, and
        the elementwise passes. The projections are those of the code path the worker's engine release runs
        (``AttentionKind.release_path``). ``parts``: a dict that receives each of those ops' milliseconds under
        its name (the GEMMs' names, ``routed_experts``, ``all_reduce``, ``elementwise``)."""
        w, m = self.worker, self.worker.model
        timed = kind.module_gemms(QueryContext(w, 0, self.models)) if kind else ()  # in the kind's tables
        ops = {}
        for g in (kind.projection_gemms(m, w.tp, kind.release_path(w)) if kind else ()):   # the release's GEMMs
            if g.name not in timed:
                ops[g.name] = self._gemm_ms(g, n, w.dtype)
        ffn = np.zeros(len(n))   # the FFN/MoE share (what an AF deployment runs on its FFN pool)
        for g in m.ffn_gemms(w.tp, moe_layer=moe_layer):
            ops[g.name] = self._gemm_ms(g, n, "bf16" if g.name == "router" else w.dtype)
            ffn += ops[g.name]
        if moe_layer:
            ops["routed_experts"] = moe_ms(n)
            ffn += ops["routed_experts"]
            if routing_kernels(w):   # top-k kernels beyond the one the moe tables time (cost/moe_gate.py)
                ops["routing_topk"] = routing_topk_ms(w, n)
                ffn += ops["routing_topk"]
        if allreduce is not None:
            ops["all_reduce"] = allreduce * ((kind is not None) + (moe_layer is not None))
            if moe_layer is not None:
                ffn += allreduce
        ops["elementwise"] = self._elementwise_ms(n, moe_layer)
        if parts is not None:
            parts.update(ops)
        return sum(ops.values(), np.zeros(len(n))), ffn

    @staticmethod
    def _moe_paths(parts: dict, whole_gpu: bool = False) -> tuple:
        """(routed, shared) milliseconds of an MoE layer from its ``parts`` (:meth:`_layer_compute_ms`): the router
        GEMM (with the routing top-k kernels where they are priced apart) and the routed experts (their dispatch and
        combine included), and the shared experts' GEMMs. With ``whole_gpu`` (:meth:`_gemms_hold_every_sm`) the routed
        path is the router GEMM and top-k alone: the routed experts' GEMMs hold every SM, so the shared experts'
        kernels cannot run beside them (the routed experts' own routing and permutation kernels are inside their table
        value and not credited)."""
        zero = np.zeros_like(parts["elementwise"])
        routed = (parts.get("router", zero) + parts.get("routing_topk", zero)
                  + (zero if whole_gpu else parts.get("routed_experts", zero)))
        shared = sum((v for k, v in parts.items() if k.startswith("shared_expert")), zero)
        return routed, shared

    def _gemms_hold_every_sm(self) -> bool:
        """Whether the engine runs this worker's GEMMs (routed and shared experts) as kernels that each hold every SM
        (``EngineRecord.whole_gpu_gemms``: the GPU's ``sm_arch`` with the experts' format, e.g. TensorRT-LLM's
        DeepGEMM-derived FP8 block-scale kernels on Hopper, one persistent CTA per SM)."""
        w = self.worker
        fmt = normalize_dtype(w.moe_dtype, where="moe dtype")
        return (self.spec.sm_arch, fmt) in get_engine(w.engine).whole_gpu_gemms

    def _overlapped(self) -> bool:
        """Whether MoE layers run two micro-batches whose all-to-all overlaps compute (``tbo`` where the
        all-to-all is modelled: ``ep > 1`` with attention DP)."""
        w = self.worker
        return bool(w.tbo and w.ep > 1 and w.attention_dp > 1)

    def _shared_experts_beside(self) -> bool:
        """Whether the engine runs this model's shared experts on a second CUDA stream beside the router and the
        routed experts in steps that replay a CUDA graph (``EngineRecord.shared_experts_aux_stream``, e.g.
        TensorRT-LLM's ``Deepseekv3MoE``): such a step's MoE layer lasts the longer of the two paths (the graphed
        token table, ``token_graph_ms``); eager steps run them one after the other. Not with two-micro-batch
        overlap (whose layer time :meth:`_overlapped_layer_ms` prices)."""
        w, m = self.worker, self.worker.model
        return bool(m.num_shared_experts and m.architecture in get_engine(w.engine).shared_experts_aux_stream
                    and not self._overlapped())

    def _overlapped_layer_ms(self, n: np.ndarray, kind, moe_layer) -> tuple:
        """(milliseconds, FFN share) of one MoE layer under two-micro-batch overlap (:mod:`.overlap`): each
        micro-batch's dispatch and combine run under the other's token compute (projections, router, shared and
        routed experts, norms), which loses the SMs the all-to-all's normal kernels hold while they run. The time
        above the layer's compute (exposed communication and the SMs it took) counts as FFN time."""
        half = np.maximum((n + 1) // 2, 1)
        backend = self._a2a_backend(n)   # the step's DeepEP mode, both micro-batches (SGLang: per forward mode)
        def experts(m):
            return self._moe_compute_ms(m, backend)
        full, ffn = self._layer_compute_ms(n, kind, moe_layer, experts)
        part, _ = self._layer_compute_ms(half, kind, moe_layer, experts)
        holds = (backend != "deepep_ll") & self._deepep_a2a()   # normal kernels hold SMs; NCCL's: not modelled
        share = comm_sm_share(self.worker.comm_sms, self.spec.sm_count, holds)
        t = layer_overlap_ms(part, self._a2a_ms(half, backend), full, self._a2a_ms(n, backend), share)
        return t, ffn + (t - full)

    def _moe_ms(self, n: np.ndarray) -> np.ndarray:
        """Routed experts (routing model: cost/moe_routing.py) + EP dispatch/combine, not overlapped: with ``tbo``
        the token table prices MoE layers by :meth:`_overlapped_layer_ms` instead (this stays the experts-only
        two-batch formula of :func:`~.moe_routing.tbo_ms` for callers that price the MoE part alone)."""
        w = self.worker
        ms = self._moe_compute_ms(n)
        if w.ep > 1 and w.attention_dp > 1:
            comm = self._a2a_ms(n)
            if w.tbo:
                half = np.maximum((np.asarray(n) + 1) // 2, 1)
                return tbo_ms(self._moe_compute_ms(half), self._a2a_ms(half), ms, comm)
            ms = ms + comm
        return ms

    def _moe_compute_ms(self, n: np.ndarray, backend=None) -> np.ndarray:
        """Routed-expert milliseconds for ``n`` tokens per attention rank: the ``moe_deepep`` tables (SGLang's
        DeepEPMoE grouped GEMMs, decode/masked or prefill/contiguous as the all-to-all backend of the same step)
        where the worker runs DeepEP and the tables cover the model's expert shape, else the ``moe`` tables.
        ``backend``: the DeepEP mode per entry (default :meth:`_a2a_backend` of ``n``)."""
        w, m = self.worker, self.worker.model
        n = np.asarray(n)
        dist, tokens = moe_query(w.routing, w.expert_histogram, w.ep, n * w.attention_dp)
        df = pd.DataFrame({"dtype": _fmt(w.moe_dtype), "num_tokens": tokens, "hidden_size": m.expert_hidden_size,
                           "inter_size": m.moe_intermediate_size, "topk": m.topk, "num_experts": m.num_experts,
                           "moe_tp": w.moe_tp, "moe_ep": w.ep, "distribution": dist})
        if self._deepep_moe():
            backend = self._a2a_backend(n) if backend is None else backend
            df.insert(1, "phase", np.where(backend == "deepep_ll", "decode", "prefill"))
            return self.models.predict("moe_deepep", df)
        return self._moe_bounds(self.models.predict("moe", df), df)

    def _moe_bounds(self, ms: np.ndarray, df: pd.DataFrame) -> np.ndarray:
        """The ``moe`` prediction capped by the dense path (priced by the GEMM model of the experts' format when it
        is one of the worker's GEMM groups, :func:`~frontier_calib.cost.cache.needed_groups`: the same tables
        whatever else the cache holds) and by the table's low-latency kernel rows (:mod:`.moe_bound`)."""
        w, m = self.worker, self.worker.model
        fmt = _fmt(w.moe_dtype)
        bounds = [moe_bound.low_latency_ms(moe_bound.low_latency_rows(w.gpu, w.engine), df)] if m.mlp_gated else []
        if fmt in (_fmt(w.dtype), "bf16") and self.models.has("gemm", fmt):
            def gemm(rows, cols, k):
                return self.models.predict("gemm", pd.DataFrame({"dtype": fmt, "m": rows, "n": cols, "k": k}))
            bounds.append(moe_bound.dense_path_ms(
                gemm, df["num_tokens"].to_numpy(), hidden=m.expert_hidden_size,
                inter=m.moe_intermediate_size // max(1, w.moe_tp), experts=m.num_experts // max(1, w.ep),
                gated=m.mlp_gated, hbm_bandwidth=self.spec.hbm_bandwidth))
        return moe_bound.bounded_moe_ms(ms, *bounds)

    def _deepep_moe(self) -> bool:
        """Whether the routed experts run DeepEPMoE: the worker dispatches with DeepEP (``ep > 1`` with attention
        DP, the condition of :meth:`_moe_ms`), ``moe_deepep`` tables of the expert format exist, and their measured
        expert shapes (hidden size, intermediate size, top-k, moe_tp) cover the model's (SGLang's WideEP tables
        hold DeepSeek-V3's shape only; other models keep the ``moe`` tables)."""
        w, m = self.worker, self.worker.model
        key = ("moe_deepep", _fmt(w.moe_dtype))
        if not (w.ep > 1 and w.attention_dp > 1 and w.a2a_backend != ALLGATHER and self.models.has(*key)):
            return False
        ranges = self.models.models[key].ranges_
        return all(ranges[c][0] <= v <= ranges[c][1] for c, v in (
            ("hidden_size", m.expert_hidden_size), ("inter_size", m.moe_intermediate_size), ("topk", m.topk),
            ("moe_tp", w.moe_tp)))

    def _a2a_backend(self, n: np.ndarray) -> np.ndarray:
        """DeepEP mode per entry of ``n`` (tokens per rank): ``auto`` takes the low-latency kernels up to 128
        tokens (SGLang's ``--deepep-mode auto``: low-latency for decode batches, normal for prefill)."""
        w = self.worker
        if w.a2a_backend == "auto":
            return np.where(np.asarray(n) <= 128, "deepep_ll", "deepep_normal")
        return np.full(len(n), w.a2a_backend)

    def _deepep_a2a(self) -> bool:
        """Whether dispatch/combine run DeepEP's all-to-all (``moe_a2a`` tables), not NCCL's all-gather /
        reduce-scatter (the worker's ``a2a_backend`` is ``'allgather'``, no tables, or a deployment link inside one
        node) nor the engine's own NVLink kernels (:meth:`_nvlink_one_sided`)."""
        w = self.worker
        if self._engine_picks_ep_comm() or w.a2a_backend == ALLGATHER:
            return False
        return bool(self.models.has("moe_a2a") and not (w.node_link is not None and w.moe_gpus <= self.gpus_per_node))

    def _engine_picks_ep_comm(self) -> bool:
        """Whether the engine's own rule picks the EP dispatch/combine (TensorRT-LLM, ``EngineRecord.nvlink_a2a``):
        the worker leaves the backend to the engine and no deployment link replaces NVLink. TensorRT-LLM's
        ``select_alltoall_method_type`` never picks DeepEP by default (only with ``TRTLLM_CAN_USE_DEEP_EP``): its
        NVLink all-to-all where it can (:meth:`_nvlink_one_sided`), all-gather + reduce-scatter otherwise."""
        w = self.worker
        return bool(get_engine(w.engine).nvlink_a2a == "nvlink_one_sided" and w.a2a_backend == "auto"
                    and w.node_link is None)

    def _nvlink_one_sided(self) -> bool:
        """Whether dispatch/combine run the engine's NVLinkOneSided all-to-all (:mod:`.nvlink_a2a`): the engine
        picks (:meth:`_engine_picks_ep_comm`), the EP group fits one NVLink domain of GPUs whose NVLink is at least
        as fast as the measured GB200's, and the EP size exceeds the top-k (``select_alltoall_method_type``:
        ``moe_ep_size <= top_k`` -> not enabled, the layer all-gathers and reduce-scatters instead; a token reaches
        at most top-k ranks, so all-to-all only saves bytes above it)."""
        w = self.worker
        return bool(self._engine_picks_ep_comm() and self.spec.nvlink_bandwidth >= MEASURED_NVLINK_BANDWIDTH
                    and w.moe_gpus <= self.spec.nvlink_domain and w.ep > w.model.topk)

    def _a2a_ms(self, n: np.ndarray, backend=None) -> np.ndarray:
        """Milliseconds of one MoE layer's dispatch + combine for ``n`` tokens per rank (``backend``: the DeepEP
        mode per entry, default :meth:`_a2a_backend` of ``n``)."""
        w, m = self.worker, self.worker.model
        if self._nvlink_one_sided():
            return one_sided_ms(n, w.ep, m.expert_hidden_size, m.topk, _fmt(w.moe_dtype))
        if not self._deepep_a2a():   # also TensorRT-LLM wherever its NVLink all-to-all does not run
            return self._allgather_reducescatter_ms(n)
        nodes = max(1, math.ceil(w.moe_gpus / self.gpus_per_node))
        backend = self._a2a_backend(n) if backend is None else np.asarray(backend)
        out = np.zeros(len(n))
        for phase in ("dispatch", "combine"):
            df = pd.DataFrame({"backend": backend, "phase": phase, "ep_size": w.ep, "num_nodes": nodes,
                               "num_tokens": n, "hidden_size": m.expert_hidden_size, "topk": m.topk,
                               "num_experts": m.num_experts})
            ms = self.models.predict("moe_a2a", df)
            if nodes > 1:   # low-latency kernels across nodes: never faster than DeepEP's measured RDMA rate
                floor = ll_floor_ms(phase, n, m.topk, m.expert_hidden_size, w.ep, self.spec.network_bandwidth)
                ms = np.where(backend == "deepep_ll", np.maximum(ms, floor), ms)
            out += ms
        return out

    def _allgather_reducescatter_ms(self, n: np.ndarray) -> np.ndarray:
        """EP dispatch and combine without all-to-all kernels (vLLM's ``allgather_reducescatter`` backend, the
        default where DeepEP does not run, e.g. GPUs without NVLink): every rank all-gathers the hidden states of
        the ``n`` tokens of each of the ``attention_dp`` ranks before the experts and reduce-scatters the expert
        outputs after them, both over the whole buffer (attention_dp x n x hidden x 2 bytes) with NCCL."""
        w, m = self.worker, self.worker.model
        nbytes = np.asarray(n, dtype=float) * w.attention_dp * m.hidden_size * 2
        if w.node_link is not None and w.moe_gpus <= self.gpus_per_node:   # the deployment's own link
            link = w.node_link
            return 2 * ring_allgather_ms(nbytes, w.moe_gpus, link.bandwidth, link.latency_s)
        ops = self._collective_categories("op") if self.models.has("collective") else set()
        if not {"all_gather", "reduce_scatter"} <= ops:
            raise CoverageError(f"ep={w.ep} with attention_dp={w.attention_dp} needs all-to-all (moe_a2a) tables "
                                f"or NCCL all_gather/reduce_scatter (collective) tables for gpu={w.gpu} "
                                f"engine={w.engine}")
        out = np.zeros(len(nbytes))
        for op in ("all_gather", "reduce_scatter"):
            out += self._collective_ms(op, nbytes, w.moe_gpus)
        return out

    def _collective_categories(self, column: str) -> set:
        """The values of ``column`` (op, implementation) the fitted ``collective`` models were trained on."""
        seen = set()
        for g in self.models.groups("collective"):
            seen |= set(self.models.models[("collective", g)].categories_.get(column, []))
        return seen

    def _tp_allreduce_ms(self, n: np.ndarray) -> np.ndarray:
        """Milliseconds of one all-reduce of the activations of ``n`` tokens (n x hidden x 2 bytes) over the
        ``tp`` GPUs. Inside one node: the profiled all-reduce (custom kernel when measured, else NCCL). Across
        whole nodes (``tp`` a multiple of the GPUs per node): :meth:`_cross_node_allreduce_ms`. A ``tp`` above
        the node size that is not a multiple of it (deployment files reject it, :func:`tp_nodes`; an AF FFN
        pool's GPUs can be) keeps the profiled NCCL all-reduce over ``tp`` GPUs."""
        w, m = self.worker, self.worker.model
        if w.tp <= 1:
            return np.zeros(len(n))
        nbytes = n * m.hidden_size * 2
        if w.tp > self.gpus_per_node and w.tp % self.gpus_per_node == 0:
            return self._cross_node_allreduce_ms(nbytes, tp_nodes(w.tp, self.gpus_per_node))
        return self._intra_node_allreduce_ms(nbytes, w.tp)

    def _intra_node_allreduce_ms(self, nbytes: np.ndarray, gpus: int) -> np.ndarray:
        """The profiled all-reduce of ``nbytes`` bytes over ``gpus`` GPUs of one node (milliseconds): the custom
        kernel when measured (only up to the GPU spec's node size), else NCCL; the ring over the deployment's
        ``cluster.link`` when it names one (:mod:`.node_link`)."""
        if self.worker.node_link is not None:
            link = self.worker.node_link
            return ring_allreduce_ms(nbytes, gpus, link.bandwidth, link.latency_s)
        custom = (self.worker.custom_all_reduce and "custom" in self._collective_categories("implementation")
                  and gpus <= self.spec.gpus_per_node)
        impl = "custom" if custom else "nccl"
        return self._collective_ms("all_reduce", nbytes, gpus, impl)

    def _collective_ms(self, op: str, nbytes, gpus: int, implementation: str = "nccl") -> np.ndarray:
        """Milliseconds of one profiled ``op`` (all_reduce, all_gather, reduce_scatter) of ``nbytes`` bytes (the
        whole buffer, as in the ``collective`` tables) over ``gpus`` GPUs, from the fitted ``collective`` model."""
        return self.models.predict("collective", pd.DataFrame({
            "op": op, "implementation": implementation, "dtype": "bf16", "num_gpus": gpus, "message_bytes": nbytes}))

    def _cross_node_allreduce_ms(self, nbytes: np.ndarray, nodes: int) -> np.ndarray:
        """Milliseconds of an all-reduce of ``nbytes`` bytes per GPU over ``nodes`` whole nodes: the hierarchical
        NCCL all-reduce of :func:`hierarchical_allreduce_ms`, its intra-node reduce-scatter and all-gather from
        the profiled NCCL tables when the ``collective`` models know those ops (else the NVLink model), its
        inter-node ring from the GPU spec's network figures. Never below the all-reduce of the same bytes inside
        one node (a group that spans nodes still has to reduce inside each of them)."""
        g = self.gpus_per_node
        ops, impls = self._collective_categories("op"), self._collective_categories("implementation")
        have = {"reduce_scatter", "all_gather"} <= ops and "nccl" in impls
        ms = hierarchical_allreduce_ms(nbytes, nodes, g, self.spec, self._collective_ms if have else None)
        if g > 1:
            ms = np.maximum(ms, self._intra_node_allreduce_ms(nbytes, g))
        return ms

    def _elementwise_ms(self, n: np.ndarray, moe_layer: bool) -> np.ndarray:
        """Norms, residual adds, activation, rotary: memory-bound passes over the activations, four small kernels
        (the two residual add + RMSNorm of a layer, each reading the activations and the residual and writing both:
        four passes; the activation; rotary). A gated shared expert (``ModelSpec.shared_expert_gate``) adds its
        gate's GEMV (hidden x 1: reads the activations) and the sigmoid scaling of the shared expert's output: two
        small kernels more. A norm the engine runs inside the TP all-reduce (:meth:`_norms_in_allreduce`) has no
        kernel and no pass of its own."""
        w, m = self.worker, self.worker.model
        inter = (m.moe_intermediate_size * m.topk / max(w.ep, 1) if moe_layer
                 else 0 if moe_layer is None else m.intermediate_size / w.tp)
        gated = bool(moe_layer and m.shared_expert_gate and m.num_shared_experts)
        fused = self._norms_in_allreduce(n, moe_layer)
        nbytes = n * (m.hidden_size * 2 * (8 - 4 * fused + 3 * gated) + inter * 2 * 3)
        return nbytes / self.spec.hbm_bandwidth * 1e3 + 0.002 * (4 - fused + 2 * gated)  # small kernels, 2 us each

    def _norms_in_allreduce(self, n: np.ndarray, moe_layer) -> np.ndarray:
        """How many of a layer's two residual add + RMSNorm run inside its TP all-reduces, per entry of ``n`` (tokens
        per rank): those the engine fuses for this architecture (``EngineRecord.allreduce_norm_fusion``, TensorRT-LLM's
        ``DeepseekV3DecoderLayer``: both in an MoE layer; in a dense layer the next layer's norm, and with NVFP4 the
        post-attention one too), with tensor parallelism inside one node and no attention DP, while the all-reduce's
        message (n x hidden x 2 bytes) fits the fused kernels' workspace (``allreduce_fusion_max_bytes``); 0 else."""
        w, m = self.worker, self.worker.model
        rec = get_engine(w.engine)
        n = np.asarray(n)
        if (moe_layer is None or m.architecture not in rec.allreduce_norm_fusion or w.tp <= 1 or w.attention_dp > 1
                or w.tp > self.gpus_per_node or w.node_link is not None):
            return np.zeros(len(n), dtype=int)
        per_layer = 2 if moe_layer or normalize_dtype(w.dtype, where="dtype") == "nvfp4" else 1
        return np.where(n * m.hidden_size * 2 <= rec.allreduce_fusion_max_bytes, per_layer, 0)

    def _decode_row(self, b: int) -> np.ndarray:
        if self.models is not None:  # never below the largest tabulated batch
            return np.maximum(_monotone(self._decode_grid_ms(np.array([b]))[0], 0), self._decode_ms[-1])
        return self._decode_ms[-1] + math.log2(b / self.max_seqs)  # past the largest batch: scale with b

    def _decode_grid_ms(self, bs: np.ndarray) -> np.ndarray:
        kvg = self._kv_grid
        bb, kk = np.meshgrid(bs, kvg, indexing="ij")
        total = np.zeros(bb.shape)
        for kind, window, layers in self._attention_layers:
            ctx = QueryContext(self.worker, window, self.models)
            fam, df = kind.decode_query(ctx, bb.ravel(), kk.ravel())
            if fam == "attention_decode":   # more KV heads than the tables hold (MHA): see head_fold.py
                df = fold_decode_query(df, trained_max_kv_heads(self.models))
            ms = self.models.predict(fam, df)
            wide = WIDER_FORMAT.get(str(df["kv_dtype"].iloc[0])) if "kv_dtype" in df else None
            if wide is not None and self.models.has(fam, wide):   # never slower than widening: kv_format.py
                elements = bb.ravel() * kk.ravel() * kind.kv_bytes_per_token(self.worker.model, 1, self.worker.tp)
                ms = bounded_decode_ms(ms, self.models.predict(fam, df.assign(kv_dtype=wide)), elements,
                                       self.spec.hbm_bandwidth)
            ms = self._hbm_floored(ms, kind, window, bb.ravel(), kk.ravel())   # warm-L2 rows: hbm_floor.py
            ms = ms + kind.untimed_ms(ctx, "decode", bb.ravel(), kk.ravel())   # kernels its tables lack
            total += layers * ms.reshape(bb.shape)
        return np.log2(total)

    def _hbm_floored(self, ms: np.ndarray, kind, window: int, b: np.ndarray, kv: np.ndarray) -> np.ndarray:
        """Decode-attention milliseconds per layer of ``b`` sequences of ``kv`` cached tokens, never below reading
        their KV (``window`` tokens at most) from HBM at the table's own streaming rate (:mod:`.hbm_floor`; the
        rate is read once per kind and window, from the first grid priced). Kinds without a KV cache: unchanged."""
        w = self.worker
        per_token = kind.kv_bytes_per_token(w.model, DTYPE_BYTES[normalize_dtype(w.kv_dtype, where="kv dtype")], w.tp)
        if per_token <= 0:
            return ms
        nbytes = np.asarray(b, dtype=float) * (np.minimum(kv, window) if window else np.asarray(kv)) * per_token
        key = (kind.name, window)
        if key not in self._kv_stream_rate:
            self._kv_stream_rate[key] = streaming_rate(nbytes, ms, self.spec.l2_bytes, self.spec.hbm_bandwidth)
        return floored_decode_ms(ms, nbytes, self._kv_stream_rate[key])

    def _prefill_table(self, batch: int = 1) -> np.ndarray:
        """log2 ms of one prefill attention call (all layers) over (q_grid, kv_grid) for ``batch`` sequences of
        that shape. Kinds whose tables have no batch axis are ``batch`` calls of one sequence."""
        qq, kk = np.meshgrid(self._q_grid, self._kv_grid, indexing="ij")
        kv = np.maximum(kk, qq).ravel()
        q = qq.ravel()
        total = np.zeros(qq.shape)
        for kind, window, layers in self._attention_layers:
            ctx = QueryContext(self.worker, window, self.models)
            fam, df = kind.prefill_query(ctx, q, kv)
            calls = 1
            if batch > 1:
                if "batch_size" in df.columns:
                    df = df.assign(batch_size=batch)
                else:
                    calls = batch
            # kernels the kind's tables lack (e.g. the Mamba2 SSD scan): priced per sequence, batch sequences
            untimed = batch * np.asarray(kind.untimed_ms(ctx, "prefill", q, kv), dtype=float)
            total += layers * (calls * self.models.predict(fam, df) + untimed).reshape(qq.shape)
        return np.log2(total)

    def _prefill_batch_tables(self) -> np.ndarray:
        """[len(PREFILL_BATCHES), q_grid, kv_grid] log2 ms of one batched prefill call (one variable-length call
        for all of a step's chunks, as the engines issue it)."""
        return np.stack([_monotone(_monotone(self._prefill_table(b), 0), 1) for b in PREFILL_BATCHES])
