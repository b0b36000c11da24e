"""GPU memory of a worker: weights, reserved memory, and the KV blocks that are left (bytes, tokens)."""

from __future__ import annotations

from dataclasses import dataclass

from ..attention import attention_layers, state_bytes_per_sequence
from ..dtypes import DTYPE_BYTES, normalize_dtype
from ..engines import get_engine
from ..errors import FrontierError
from ..hardware import get_gpu
from .worker import WorkerSpec

#: memory neither weights nor KV may use: activations, CUDA graphs, allocator slack (bytes per GPU).
#: The same order as the public serving configurator's "other_mem" (3.5 GiB) plus NCCL buffers.
RESERVED_BYTES = 3.5 * 2**30
NCCL_BYTES = {1: 0.0, 2: 342 * 2**20}
NCCL_BYTES_MANY = 392 * 2**20



@dataclass(frozen=True)
class MemoryPlan:
    gpu_bytes: float            #: HBM per GPU
    usable_bytes: float         #: gpu_bytes x gpu_memory_utilization (TensorRT-LLM: gpu_bytes, see kv_tokens)
    weight_bytes: float         #: weights on the most loaded GPU
    reserved_bytes: float       #: activations, graphs, NCCL
    kv_bytes_per_token: float   #: KV bytes one token takes on one GPU (all layers of its stage)
    kv_tokens: int              #: tokens of KV that fit (per attention-DP rank)
    kv_blocks: int              #: kv_tokens // block_size
    state_bytes_per_sequence: float = 0.0  #: what one running sequence holds whatever its length: recurrent state
    #: (linear-attention layers) and the window of sliding-window layers (:func:`kv_bytes_split`)
    state_sequences: int = 0    #: sequence slots whose state is reserved before the KV blocks (max_num_seqs)


def plan_memory(worker: WorkerSpec, *, gpu_memory_utilization: float = 0.9, block_size: int = 16,
                max_seqs: int = 0) -> MemoryPlan:
    """Raise FrontierError when the model does not fit; else the KV capacity in blocks.

    Models with linear-attention layers keep a fixed-size recurrent state per running sequence: the state of
    ``max_seqs`` sequences (the scheduler's max_num_seqs) is set aside before the KV blocks, as SGLang's mamba
    pool and vLLM's hybrid KV manager allocate one state slot per running request."""
    if not 0 < gpu_memory_utilization <= 1:
        raise FrontierError(f"gpu_memory_utilization={gpu_memory_utilization} must be in (0, 1]")
    spec = get_gpu(worker.gpu)
    m = worker.model
    # attention (and dense MLPs) are sharded by tp and replicated across attention-DP ranks;
    # routed experts are split by ep and moe_tp
    weights = m.weight_bytes_per_gpu(_weight_override(worker), tp=worker.tp, pp=worker.pp, ep=worker.ep,
                                     moe_tp=worker.moe_tp, expert_dtype=_expert_override(worker))
    nccl = NCCL_BYTES.get(worker.moe_gpus, NCCL_BYTES_MANY)
    reserved = RESERVED_BYTES + nccl
    per_token, window_seq = kv_bytes_split(worker, block_size)
    state = state_bytes_per_sequence(m, tp=worker.tp) / worker.pp + window_seq
    if get_engine(worker.engine).kv_fraction_of_free:   # TensorRT-LLM's free_gpu_memory_fraction (engines/trtllm.py)
        # the fraction applies to what is free once the weights, activations and per-sequence state are in place
        usable = spec.memory_bytes
        kv_free = (usable - weights - reserved - state * max_seqs) * gpu_memory_utilization
    else:
        usable = spec.memory_bytes * gpu_memory_utilization
        kv_free = usable - weights - reserved - state * max_seqs
    if kv_free <= per_token * block_size:
        raise FrontierError(
            f"{m.name} does not fit on {worker.gpu} with tp={worker.tp} pp={worker.pp} ep={worker.ep} "
            f"dtype={worker.dtype}: weights {weights / 2**30:.1f} GiB + reserved {reserved / 2**30:.1f} GiB "
            f"exceed {usable / 2**30:.1f} GiB usable ("
            + (f"{gpu_memory_utilization:.0%} of {spec.memory_bytes / 2**30:.0f} GiB" if usable < spec.memory_bytes
               else "the whole GPU") + "); use more GPUs, a smaller dtype or a higher utilisation")
    tokens = int(kv_free // per_token)
    return MemoryPlan(spec.memory_bytes, usable, weights, reserved, per_token, tokens, tokens // block_size,
                      state, max_seqs)


def kv_bytes_split(worker: WorkerSpec, block_size: int) -> tuple[float, float]:
    """(KV bytes per cached token, KV bytes per running sequence) on one GPU of ``worker``.

    Full-attention layers grow with the sequence: their bytes are per token. Sliding-window layers (gpt-oss:
    every other layer, 128 tokens) attend to their last ``window`` tokens only. TensorRT-LLM keeps no more: it
    sizes one KV pool per window size by window x layers (tensorrt_llm/_torch/pyexecutor/resource_manager.py,
    "Variable Sliding Window Attention"), so their KV is a fixed amount per running sequence, ``window +
    block_size`` tokens (a window straddles one more block), reserved per sequence slot like a recurrent state.
    An engine with ``window_kv_ratio`` r sizes the window layers by r x the full layers' tokens instead: r x their
    bytes are added per token (SGLang: ``swa_full_tokens_ratio`` 0.8; vLLM: 1.0, every layer per token, see
    engines/vllm.py). A model whose every layer is windowed keeps the per-token charge (nothing else would bound
    its cache)."""
    m = worker.model
    b = DTYPE_BYTES[normalize_dtype(worker.kv_dtype, where="kv dtype")]
    full = window_token = window_seq = 0.0
    for kind, window, layers in attention_layers(m):
        per_layer = kind.kv_bytes_per_token(m, b, worker.tp) * layers / worker.pp
        if window:
            window_token += per_layer
            window_seq += per_layer * (window + block_size)
        else:
            full += per_layer
    ratio = get_engine(worker.engine).window_kv_ratio
    if not window_token or not full:
        return full + window_token, 0.0
    if ratio is not None:
        return full + ratio * window_token, 0.0
    return full, window_seq


def _weight_override(worker: WorkerSpec):
    """The deployment's dtype overrides the checkpoint's only when it differs from it."""
    m = worker.model
    return None if worker.dtype == (m.dense_weight_dtype or m.weight_dtype) else worker.dtype


def _expert_override(worker: WorkerSpec):
    """The routed experts' format when the deployment sets one that the dense override would not give them
    (``moe_dtype`` different from the checkpoint's experts, or any explicit dtype override): e.g. int4 experts with
    bf16 attention. None keeps what ``_weight_override`` implies."""
    m = worker.model
    if not m.is_moe:
        return None
    if worker.moe_dtype == m.weight_dtype and _weight_override(worker) is None:
        return None
    return worker.moe_dtype

