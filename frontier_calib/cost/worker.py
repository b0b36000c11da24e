"""What one worker (one model replica's GPUs) runs: model, GPU, engine, formats, parallelism, overheads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engines import get_engine, overhead_seconds
from ..engines.vllm import VLLM_OVERHEADS as _VLLM
from ..errors import FrontierError
from ..model_spec import ModelSpec
from .node_link import NodeLink

# Engine time outside kernels (seconds) before calibration. The defaults are per engine: the ``overheads`` of its
# record in ``frontier_calib/engines/`` (vLLM's in ``engines/vllm.py``, SGLang's in ``engines/sglang.py``,
# TensorRT-LLM's in ``engines/trtllm.py``); the terms and how they combine are in :mod:`.engine_time`. CPU per
# step / sequence / token: the scheduler, input preparation and sampling of V1-style engines (vLLM V1 reports
# ~1-2 ms of scheduler + input preparation per step at hundreds of sequences; SGLang and TensorRT-LLM keep less of
# it in Python). ``launch_s``: CPU per kernel launch when a step runs eager (a CUDA launch plus the framework's
# dispatch, a few microseconds). ``out_token_s``: the API server's detokenization and streaming per output token.
# ``frontend_s`` + ``frontend_per_token_s`` x prompt tokens: HTTP, request parsing and tokenization before the
# scheduler sees a request (fast tokenizers run at ~1 M tokens/s per core). ``prefill_step_s``: legacy extra per
# prefill step (0: eager launches now model it).

#: physical bounds of every field (seconds): what `calibrate` may fit. A Python scheduler step beyond 10 ms or 50 us
#: per kernel launch would be a broken host; CPU per running sequence is at most 20 us, twice the vLLM default: on
#: the public inference-perf runs of vLLM 0.11 on H100 (no async scheduling: every step pays it,
#: tests/fixtures/validate/inference_perf_kubecon) the measured 9.3 ms per output token at ~57 running sequences
#: leaves <= ~1.5 ms of serial CPU per step beside the tables' GPU time, i.e. <= ~15 us per sequence, where a fit on
#: closed-loop benchmark rows without this bound chose 48 us (docs/validation.md, session 11); the front-end's fixed part (HTTP, request
#: parsing, the hop to the engine process) is milliseconds, tokenization is the per-token term (fast tokenizers:
#: ~1 M tokens/s per core, so 1e-6 s/token; 20 us/token is 50x slower than that).
OVERHEAD_BOUNDS = {"step_s": (0.0, 0.01), "per_seq_s": (0.0, 2.0e-5), "per_token_s": (0.0, 5.0e-6),
                   "prefill_step_s": (0.0, 0.02), "launch_s": (0.0, 5.0e-5), "out_token_s": (0.0, 2.0e-4),
                   "frontend_s": (0.0, 0.03), "frontend_per_token_s": (0.0, 2.0e-5)}


@dataclass(frozen=True)
class Overheads:
    """Engine time that no kernel table shows (seconds); how the terms combine: :mod:`.engine_time`. The field
    defaults are vLLM's (``engines/vllm.py``); :meth:`for_engine` gives another engine's."""

    step_s: float = _VLLM["step_s"]                  #: scheduler CPU per step
    per_seq_s: float = _VLLM["per_seq_s"]            #: scheduler CPU per sequence in the step (input prep, sampling)
    per_token_s: float = _VLLM["per_token_s"]        #: scheduler CPU per scheduled token (positions, slot mapping)
    prefill_step_s: float = _VLLM["prefill_step_s"]  #: extra CPU when the step runs prefill (legacy; 0 by default)
    launch_s: float = _VLLM["launch_s"]              #: CPU per kernel launch in a step that runs eager (no CUDA graph)
    out_token_s: float = _VLLM["out_token_s"]        #: API server per output token (detokenize, stream)
    frontend_s: float = _VLLM["frontend_s"]          #: per request, client to scheduler (HTTP, API); TTFT/E2E only
    frontend_per_token_s: float = _VLLM["frontend_per_token_s"]  #: per prompt token on the way in (tokenization)

    def frontend_latency(self, prompt_tokens):
        """Seconds from a client sending a request of ``prompt_tokens`` tokens to the scheduler seeing it."""
        return self.frontend_s + self.frontend_per_token_s * prompt_tokens

    @classmethod
    def for_engine(cls, engine: str, **overrides) -> "Overheads":
        """``engine``'s default overheads (its record in ``frontier_calib/engines/``) with ``overrides``."""
        base = dict(get_engine(engine).overheads)
        unknown = set(overrides) - set(base)
        if unknown:
            raise FrontierError(f"unknown overhead field(s) {sorted(unknown)}; known: {sorted(base)}")
        for k, v in overrides.items():
            base[k] = overhead_seconds(k, v)
        return cls(**base)


#: ``WorkerSpec.a2a_backend`` of an EP worker with attention DP that runs no all-to-all kernels: before each MoE
#: layer the ranks all-gather their tokens' hidden states (every rank then routes and runs its own experts on the
#: tokens of all ranks) and after it reduce-scatter the expert outputs. SGLang does this wherever it is launched
#: without an all-to-all backend (``--moe-a2a-backend`` default ``none``): ``LayerScatterModes._compute_mlp_mode``
#: (``python/sglang/srt/layers/communicator.py``) puts a sparse layer in ``ScatterMode.FULL`` unless
#: ``get_moe_a2a_backend()`` is not ``none``, and a decode step's gather pads every rank to the largest rank's
#: tokens and runs ``all_gather_into_tensor`` / ``reduce_scatter_tensor`` (``DpPaddingMode.MAX_LEN``, the mode of
#: CUDA-graph steps, ``python/sglang/srt/layers/dp_attention.py``). vLLM's ``allgather_reducescatter`` backend is
#: the same exchange. Cost: ``IterationCostModel._allgather_reducescatter_ms`` plus the ``moe`` tables at the
#: gathered token count.
ALLGATHER = "allgather"


@dataclass(frozen=True)
class WorkerSpec:
    """One model instance on ``gpus`` GPUs.

    Conventions (as in the public serving benchmarks): ``tp`` is attention tensor parallelism inside
    one attention data-parallel rank; the replica has ``tp * attention_dp * pp`` GPUs; MoE layers are
    spread over ``moe_tp * ep == tp * attention_dp`` GPUs. A ``tp`` group larger than ``gpus_per_node``
    spans ``tp / gpus_per_node`` whole nodes (see :func:`tp_nodes`).
    """

    model: ModelSpec
    gpu: str
    engine: str
    dtype: str = "bf16"            #: GEMM format (bf16, fp8, fp8_block, ...)
    moe_dtype: str = "bf16"        #: routed-expert format
    kv_dtype: str = "bf16"         #: KV-cache format
    tp: int = 1
    pp: int = 1
    ep: int = 1
    attention_dp: int = 1
    moe_tp: int = 1
    routing: str = "power_law_1.01"  #: expert load: 'balanced', 'power_law_<alpha>' or 'histogram'
    a2a_backend: str = "auto"        #: 'auto' (low-latency for small batches), 'deepep_normal', 'deepep_ll', or
    #                                  'allgather' (no all-to-all kernels: the attention-DP ranks' tokens are
    #                                  all-gathered before the experts and reduce-scattered after them, SGLang's
    #                                  ``--moe-a2a-backend none``; deployment key ``parallel.ep_dispatch``)
    expert_histogram: tuple = ()     #: per-expert load when routing == 'histogram' (see cost/moe_routing.py)
    tbo: bool = False                #: two-micro-batch overlap of EP dispatch/combine with the layer's compute
    comm_sms: int | None = None      #: SMs the all-to-all's normal kernels hold under tbo; None: DeepEP's
    #                                  default (cost/overlap.py)
    gpus_per_node: int | None = None  #: GPUs that share NVLink (the deployment's cluster); None: the GPU spec's
    node_link: NodeLink | None = None  #: the GPU-to-GPU path inside a node when it is not the profiled one
    #                                    (``cluster.link``; cost/node_link.py): collectives priced over it
    overheads: Overheads = field(default_factory=Overheads)
    cuda_graph: bool = True          #: the engine captures CUDA graphs (False: --enforce-eager / --disable-cuda-graph)
    custom_all_reduce: bool = True   #: TP all-reduces use the engine's custom kernel where profiled (False: NCCL)
    overlap: bool | None = None      #: CPU scheduling overlaps the GPU step; None: the engine's default
    #                                  (cost/engine_time.py: vLLM async scheduling, SGLang/TRT-LLM overlap scheduler)
    engine_version: str | None = None  #: the engine release the worker runs (``engine_options.version``, e.g.
    #                                    '0.5.9'); None: the release the kernel tables were profiled on. An attention
    #                                    kind whose code path changed between releases prices the one this release
    #                                    runs (``AttentionKind.release_path``, e.g. SGLang's unfused GDN before 0.5.10)

    def __post_init__(self):
        get_engine(self.engine)   # a registered engine (frontier_calib/engines/), else the error listing them

    @property
    def gpus(self) -> int:
        return self.tp * self.attention_dp * self.pp

    @property
    def moe_gpus(self) -> int:
        return self.tp * self.attention_dp


def tp_nodes(tp: int, gpus_per_node: int) -> int:
    """Nodes one tensor-parallel group of ``tp`` GPUs spans when nodes hold ``gpus_per_node`` GPUs each: 1 when
    the group fits in one node, else ``tp / gpus_per_node`` (its all-reduce is then costed as a hierarchical
    NCCL all-reduce, :func:`frontier_calib.cost.iteration.hierarchical_allreduce_ms`).

    Raises :class:`FrontierError` when ``tp`` spans nodes but is not a whole number of full nodes: the
    hierarchical all-reduce needs the same number of the group's GPUs in every node it spans.
    """
    if tp <= gpus_per_node:
        return 1
    if tp % gpus_per_node:
        raise FrontierError(f"tp={tp} spans more than one node ({gpus_per_node} GPUs per node) but is not a "
                            f"multiple of {gpus_per_node}: tensor parallelism across nodes must use whole nodes")
    return tp // gpus_per_node
