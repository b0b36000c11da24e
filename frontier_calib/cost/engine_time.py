"""Engine time that no kernel table shows: CUDA-graph padding, eager kernel launches, CPU/GPU overlap, the
front-end's output path. One :class:`EngineTime` per engine (:func:`engine_time`, from the engine's record in
``frontier_calib/engines/``), one function to turn a step's kernel time into wall time (:func:`step_seconds`, for
single steps and arrays of steps alike).

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

Overlap has a second effect, on admission rather than on step time: the batch of step n+1 is fixed when step n
starts, so a request that reaches the scheduler during step n first runs in step n+2 (the replay:
``ReplicaSpec.schedules_ahead``, from :attr:`IterationCostModel.schedules_ahead`). Which versions overlap by
default: the engine record's ``overlap_since`` (:func:`frontier_calib.engines.default_overlap`).

The per-engine facts (CUDA-graph capture sizes, whether mixed steps replay graphs, padding, overlap, and the
sources they are read from) live in each engine's record: ``frontier_calib/engines/vllm.py``, ``sglang.py``,
``trtllm.py`` (:class:`~frontier_calib.engines.EngineRecord`).

The CPU figures (``step_s``, ``per_seq_s``, ``per_token_s``, ``launch_s``, ``out_token_s``, front-end) are the
:class:`~frontier_calib.cost.worker.Overheads` of the worker: defaults in the engine records, fitted within
physical bounds by ``frontier-calib calibrate``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from ..engines import default_overlap, get_engine


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


def engine_time(engine: str, *, max_num_seqs: int = 256, cuda_graph: bool = True,
                overlap: bool | None = None, recurrent_state: bool = False, version: str | None = None) -> EngineTime:
    """The :class:`EngineTime` of ``engine`` (a registered engine, ``frontier_calib/engines/``) for a replica that
    runs at most ``max_num_seqs`` sequences. ``cuda_graph=False`` models eager mode (``--enforce-eager``,
    ``--disable-cuda-graph``); ``overlap`` overrides the engine's default CPU/GPU overlap, which is that of the
    engine's ``version`` when given (``EngineRecord.overlap_since``: vLLM before 0.14 schedules after each step);
    ``recurrent_state``: the model's layers keep a recurrent state per sequence (the engine's default overlap may
    differ for them: ``EngineRecord.overlap_recurrent_state``)."""
    rec = get_engine(engine)
    sizes = tuple(rec.capture_sizes(max_num_seqs)) if cuda_graph else ()
    if overlap is None:
        overlap = default_overlap(engine, version) and (rec.overlap_recurrent_state or not recurrent_state)
    return EngineTime(rec.name, sizes, rec.graph_mixed, rec.graph_pad, bool(overlap), rec.time_source)
