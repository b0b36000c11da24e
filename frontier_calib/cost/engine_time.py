"""Engine time that no kernel table shows: CUDA-graph padding, eager kernel launches, CPU/GPU overlap, the
front-end's output path. One record per engine (:data:`ENGINE_TIME`), one function to turn a step's kernel time
into wall time (:func:`step_seconds`, for single steps and arrays of steps alike).

A step's wall time is composed from four physical quantities (all seconds):

* ``gpu``: the kernel time of the step from the operator models, with the token-proportional operators evaluated
  at the **padded** size when the step replays a captured CUDA graph (:meth:`EngineTime.graph_tokens`);
* ``launch``: CPU time to launch the step's kernels one by one when it runs **eager** (no captured graph fits):
  ``kernels x launch_s``. Kernels run as soon as they are launched, so an eager step's device time is
  ``max(gpu, launch)``;
* ``cpu``: the scheduler's own CPU time for the step: ``step_s + per_seq_s x sequences + per_token_s x tokens``
  (+ ``prefill_step_s`` when the step carries prefill);
* ``out``: the front-end's time to detokenize and stream one output token per running sequence,
  ``out_token_s x sequences``; it runs in the API-server process beside the engine loop, so it only bounds the
  delivered step rate from below.

With ``overlap`` (vLLM V1 async scheduling, SGLang's overlap scheduler, TensorRT-LLM's overlap scheduler) the
scheduler prepares step n+1 while step n runs on the GPU::

    step = max(max(gpu, launch), cpu + launch_cpu_share, out)      launch_cpu_share = launch  (same CPU thread)

without it the CPU work and the GPU work follow each other::

    step = max(cpu + max(gpu, launch), out)

Sources of the defaults (read from the engines' code and docs, 2025-2026):

* vLLM V1 (``vllm/config/compilation.py``, ``docs/design/cuda_graphs.md``): capture sizes
  ``[1, 2, 4] + range(8, 256, 8) + range(256, max + 1, 16)`` with ``max = min(2 x max_num_seqs, 512)``; the
  default ``FULL_AND_PIECEWISE`` mode replays full graphs for uniform decode batches and piecewise graphs (attention
  outside) for mixed prefill/decode batches, both padded up to the next capture size in **tokens**; above the
  largest size the step runs eager. Async scheduling is on by default since v0.14 (PR #27614 / #31998).
* SGLang (``python/sglang/srt/server_args.py``): capture sizes ``[1, 2, 4, 8, 12] + range(16, 257, 8) +
  range(272, 512, 16) + range(512, max + 1, 32)`` with ``cuda_graph_max_bs`` 256 on 80-141 GB GPUs; decode
  batches only (extend/prefill batches run eager); the overlap scheduler is on by default.
* TensorRT-LLM PyTorch backend (``tensorrt_llm/llmapi/llm_args.py: CudaGraphConfig``): graphs for batch sizes
  ``1..31, 32, 64, 128`` (``max_batch_size`` 128, ``enable_padding`` False: a decode batch of another size runs
  eager); context (prefill) steps run eager; the overlap scheduler is on by default.

The CPU figures (``step_s``, ``per_seq_s``, ``per_token_s``, ``launch_s``, ``out_token_s``, front-end) are the
:class:`~frontier_calib.cost.worker.Overheads` of the worker: defaults in ``cost/worker.py``, fitted within
physical bounds by ``frontier-calib calibrate``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ..errors import FrontierError


def vllm_capture_sizes(max_num_seqs: int) -> tuple[int, ...]:
    """vLLM V1's default ``cudagraph_capture_sizes`` (tokens) for ``max_num_seqs``."""
    top = min(2 * int(max_num_seqs), 512)
    sizes = [1, 2, 4] + list(range(8, 256, 8)) + list(range(256, top + 1, 16))
    return tuple(s for s in sizes if s <= top)


def sglang_capture_sizes(cuda_graph_max_bs: int = 256) -> tuple[int, ...]:
    """SGLang's default ``cuda_graph_bs`` (decode batch sizes) up to ``cuda_graph_max_bs``."""
    top = int(cuda_graph_max_bs)
    sizes = [1, 2, 4, 8, 12] + list(range(16, 257, 8)) + list(range(272, 512, 16)) + list(range(512, top + 1, 32))
    return tuple(s for s in sizes if s <= top)


def trtllm_capture_sizes(max_batch_size: int = 128) -> tuple[int, ...]:
    """TensorRT-LLM's default ``cuda_graph_config.batch_sizes`` (no padding) up to ``max_batch_size``."""
    top = int(max_batch_size)
    sizes = set(range(1, 32)) | {32, 64, 128}
    p = 256
    while p < top:
        sizes.add(p)
        p *= 2
    sizes = sorted(s for s in sizes if s <= top)
    if sizes[-1] != top:
        sizes.append(top)
    return tuple(sizes)


@dataclass(frozen=True)
class EngineTime:
    """How one engine turns kernel time into step time (see the module docstring). Sizes are tokens for
    ``graph_unit == 'tokens'`` (vLLM) and sequences for ``'batch'`` (SGLang, TensorRT-LLM decode batches)."""

    name: str
    capture_sizes: tuple[int, ...]   #: captured CUDA-graph sizes, ascending; () = no CUDA graphs
    graph_mixed: bool                #: mixed prefill/decode steps also replay (piecewise) graphs (vLLM V1)
    pad: bool                        #: a batch between two sizes is padded up (False: only exact sizes are graphed)
    overlap: bool                    #: CPU scheduling of step n+1 overlaps step n on the GPU
    source: str = ""                 #: where the defaults come from

    def graph_size(self, tokens: int, sequences: int, has_prefill: bool) -> int:
        """The captured size this step replays (tokens of the token-proportional operators), or 0 when it runs
        eager."""
        sizes = self.capture_sizes
        if not sizes or (has_prefill and not self.graph_mixed):
            return 0
        n = int(tokens)
        if n > sizes[-1]:
            return 0
        i = bisect.bisect_left(sizes, n)
        if sizes[i] == n:
            return n
        return sizes[i] if self.pad else 0

    def padded_tokens(self, tokens: int, sequences: int, has_prefill: bool) -> tuple[int, bool]:
        """(tokens the token-proportional operators run on, whether the step replays a CUDA graph)."""
        g = self.graph_size(tokens, sequences, has_prefill)
        return (g, True) if g else (int(tokens), False)


def step_seconds(gpu_s, *, graphed: bool, kernels: int, sequences: int, tokens, has_prefill: bool,
                 overheads, overlap: bool):
    """Wall seconds of engine steps from their kernel time ``gpu_s`` (seconds: a float, or an array of steps that
    share ``sequences`` and ``tokens``) and the worker's :class:`~frontier_calib.cost.worker.Overheads` (the
    formula: module docstring). ``graphed``: the step replays a CUDA graph (no launches); ``kernels``: kernels it
    launches when eager. The one place the terms are composed: co-located steps, fast-forwarded decode stretches
    and AF pipelines all call it."""
    ov = overheads
    launch = 0.0 if graphed else kernels * ov.launch_s
    cpu = ov.step_s + ov.per_seq_s * sequences + ov.per_token_s * tokens
    if has_prefill:
        cpu += ov.prefill_step_s
    out = ov.out_token_s * sequences
    if isinstance(gpu_s, float):   # the per-step hot path: no numpy
        t = max(gpu_s, launch, cpu + launch) if overlap else cpu + max(gpu_s, launch)
        return t if t >= out else out
    import numpy as np

    if overlap:
        t = np.maximum(np.maximum(gpu_s, launch), cpu + launch)
    else:
        t = cpu + np.maximum(gpu_s, launch)
    return np.maximum(t, out)


def kernels_per_step(model, tp: int) -> int:
    """Kernels one forward pass launches when it runs eager (no CUDA graph): per dense layer norm, QKV, rotary,
    attention, output projection, residual + norm, gate/up, activation, down (9), +6 per MoE layer (router,
    top-k, permute, two grouped GEMMs, combine), +2 all-reduces per layer with tensor parallelism; plus embedding,
    final norm, LM head and sampling (4)."""
    per_dense = 9 + (2 if tp > 1 else 0)
    per_moe = per_dense + 6
    return int(model.num_dense_layers * per_dense + model.num_moe_layers * per_moe + 4)


#: the engines' behaviour at their defaults; a deployment's scheduler limits pick the capture list
def engine_time(engine: str, *, max_num_seqs: int = 256, cuda_graph: bool = True,
                overlap: bool | None = None) -> EngineTime:
    """The :class:`EngineTime` of ``engine`` ('vllm', 'sglang', 'trtllm') for a replica that runs at most
    ``max_num_seqs`` sequences. ``cuda_graph=False`` models eager mode (``--enforce-eager``,
    ``--disable-cuda-graph``); ``overlap`` overrides the engine's default CPU/GPU overlap."""
    if engine not in ENGINE_DEFAULTS:
        raise FrontierError(f"unknown engine {engine!r}; known: {', '.join(sorted(ENGINE_DEFAULTS))}")
    sizes_fn, graph_mixed, pad, default_overlap, source = ENGINE_DEFAULTS[engine]
    sizes = sizes_fn(max_num_seqs) if cuda_graph else ()
    return EngineTime(engine, sizes, graph_mixed, pad, default_overlap if overlap is None else bool(overlap),
                      source)


#: engine -> (capture sizes for max_num_seqs, graph_mixed, pad, overlap, source)
ENGINE_DEFAULTS = {
    "vllm": (vllm_capture_sizes, True, True, True,
             "vLLM V1 compilation config (FULL_AND_PIECEWISE), async scheduling default since v0.14"),
    "sglang": (lambda max_num_seqs: sglang_capture_sizes(256), False, True, True,
               "SGLang server_args: cuda_graph_bs, cuda_graph_max_bs 256, overlap scheduler on"),
    "trtllm": (lambda max_num_seqs: trtllm_capture_sizes(128), False, False, True,
               "TensorRT-LLM CudaGraphConfig defaults (max_batch_size 128, no padding), overlap scheduler on"),
}
