"""What one worker (one model replica's GPUs) runs: model, GPU, engine, formats, parallelism, overheads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import FrontierError
from ..model_spec import ModelSpec

#: engine overheads (seconds) before calibration: per iteration (CPU scheduling, input preparation, kernel launches
#: outside CUDA graphs, sampling) and per request (``frontend_s``: the API server's path to the scheduler, 0 until
#: calibrated). `frontier-calib calibrate` replaces these.
DEFAULT_OVERHEADS = {
    "vllm": {"step_s": 0.0020, "per_seq_s": 5e-6, "prefill_step_s": 0.0010, "frontend_s": 0.0},
    "sglang": {"step_s": 0.0015, "per_seq_s": 4e-6, "prefill_step_s": 0.0010, "frontend_s": 0.0},
    "trtllm": {"step_s": 0.0010, "per_seq_s": 3e-6, "prefill_step_s": 0.0005, "frontend_s": 0.0},
}


@dataclass(frozen=True)
class Overheads:
    """Engine time that no kernel table shows (seconds): three per-iteration costs and one per-request latency."""

    step_s: float = 0.0020         #: fixed cost of every iteration (scheduler, launch, sync)
    per_seq_s: float = 5e-6        #: per sequence in the batch (input prep, sampling, detokenize)
    prefill_step_s: float = 0.0010  #: extra when the step runs prefill (no CUDA graph for mixed batches)
    frontend_s: float = 0.0        #: per request, from the client sending it to the scheduler seeing it (HTTP, API
    #                                server, tokenization); counted in TTFT and E2E, never in an iteration

    @classmethod
    def for_engine(cls, engine: str, **overrides) -> "Overheads":
        base = dict(DEFAULT_OVERHEADS.get(engine, DEFAULT_OVERHEADS["vllm"]))
        unknown = set(overrides) - set(base)
        if unknown:
            raise FrontierError(f"unknown overhead field(s) {sorted(unknown)}; known: {sorted(base)}")
        for k, v in overrides.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise FrontierError(f"overhead {k} must be a number of seconds >= 0, got {v!r}")
            base[k] = float(v)
        return cls(**base)


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
    a2a_backend: str = "auto"        #: 'auto' (low-latency for small batches), 'deepep_normal', 'deepep_ll'
    expert_histogram: tuple = ()     #: per-expert load when routing == 'histogram' (see cost/moe_routing.py)
    tbo: bool = False                #: two-batch overlap of EP dispatch/combine with expert compute
    gpus_per_node: int | None = None  #: GPUs that share NVLink (the deployment's cluster); None: the GPU spec's
    overheads: Overheads = field(default_factory=Overheads)

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
