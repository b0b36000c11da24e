"""TensorRT-LLM (PyTorch backend): in-flight batching with ``max_batch_size`` / ``max_num_tokens``, context chunks
in whole KV blocks, a capacity scheduler policy, CUDA graphs for exact decode batch sizes, the overlap scheduler.

Sources of the defaults (read from the engine's code and docs, 2025-2026):

* CUDA graphs (``tensorrt_llm/llmapi/llm_args.py: CudaGraphConfig``): graphs for batch sizes ``1..31, 32, 64,
  128`` (``max_batch_size`` 128, ``enable_padding`` False: a decode batch of another size runs eager); context
  (prefill) steps run eager.
* The overlap scheduler is on by default.
* Memory: ``KvCacheConfig.free_gpu_memory_fraction`` (default 0.9) is "90% of free GPU memory for KV cache"
  (TensorRT-LLM docs, "How to Change KV Cache Behavior"): a share of what the weights leave free.
* Chunked prefill is **off** by default (``BaseLlmArgs.enable_chunked_prefill = False``,
  ``tensorrt_llm/llmapi/llm_args.py``). Without it the micro-batch scheduler
  (``cpp/tensorrt_llm/batch_manager/microBatchScheduler.cpp``, ``MicroBatchScheduler::operator()``) walks the
  requests the capacity scheduler admitted, generation requests first (one token each, plus draft tokens), then
  context requests in arrival order, and takes a context only if its **whole prompt** fits the ``max_num_tokens``
  left in the step; the first one that does not fit ends the step's list (``break``: later contexts wait behind
  it), so a prompt waits until it fits next to the running generation tokens (the docs' "Tuning Max Batch Size
  and Max Num Tokens" walk-through: two 5-token prompts leave 2 of 12 tokens and the next prompt waits). The
  LLM API rejects a prompt longer than ``max_num_tokens`` when it arrives (``_check_arguments``, block reuse
  off) rather than refusing to start when ``max_seq_len`` is longer (``prompt_must_fit_step_budget``).
* Batch waiting is off by default (``batch_wait_timeout_iters`` 0, ``batch_wait_max_tokens_ratio`` 0.0;
  ``PyExecutor.enable_batch_waiting`` when either is > 0): without attention DP, a step that has generation requests
  holds its context requests until they (whole prompts) and the generation tokens reach ``ratio x max_num_tokens``
  or they have been held ``timeout_iters`` steps (``PyExecutor._waiting_requests``; the scheduler keys of the same
  names, ``sim/schedulers/trtllm.py``).
* Expert-parallel dispatch/combine inside one NVLink domain runs TensorRT-LLM's own NVLinkOneSided all-to-all,
  "the default communication strategy within a single NVLink domain" (tech blog 18; ``cost/nvlink_a2a.py``).
* Shared experts beside the routed ones (DeepSeek-V3/R1, Kimi-K2, DeepSeek-V3.2: ``DeepseekV3ForCausalLM`` and
  ``DeepseekV32ForCausalLM``, one class in ``tensorrt_llm/_torch/models/modeling_deepseekv3.py``):
  ``Deepseekv3MoE.forward`` runs ``_compute_routed_output`` (router GEMM + fused MoE, its dispatch/combine included)
  and ``_compute_shared_output`` through ``maybe_execute_in_parallel`` on the ``MoeShared`` auxiliary stream, and
  adds the two before the layer's all-reduce. ``modules/multi_stream_utils.py``: "Multi-stream is only enabled when
  cuda graph is turned on"; the CUDA-graph runner captures under ``with_multi_stream(True)``, eager steps run the two
  one after the other (``shared_experts_aux_stream``).
* On Hopper a block-scaled FP8 checkpoint's GEMMs each hold the whole GPU (``whole_gpu_gemms``). The CUTLASS MoE
  backend runs the routed experts' FP8 block-scale grouped GEMMs on SM90 (``fused_moe_cutlass.py``: "fp8 block scales
  (SM90 Hopper only)") through ``cpp/tensorrt_llm/kernels/cutlass_kernels/fp8_blockscale_gemm/
  fp8_blockscale_gemm_kernel.cuh`` (``fp8_grouped_gemm_run``), and the shared experts' ``Linear`` layers on SM90 call
  ``fp8_block_scaling_gemm`` (``modules/linear.py``, ``FP8BlockScalesLinearMethod.apply``), whose ``fp8_gemm_run``
  dispatches to the same DeepGEMM-derived kernels; ``cpp/include/tensorrt_llm/deep_gemm/fp8_gemm.cuh`` launches every
  one of them with ``gridDim = num_sms`` (one persistent CTA per SM) and the shared memory of the most pipeline stages
  that fit the SM's ``sm90_capacity`` (232,448 bytes, "Always pick the longest one"). Two such kernels cannot be
  resident at once, so the ``MoeShared`` stream overlaps the shared experts only with the router GEMM
  (``dsv3_router_gemm_op``), not with the routed experts' GEMMs.
* All-reduce + residual + RMSNorm fusion (the same DeepSeek-V3 class): ``DeepseekV3DecoderLayer`` sets
  ``PRE_MOE_FUSION`` / ``POST_MOE_FUSION`` (on by default, ``TRTLLM_DEEPSEEK_EAGER_FUSION_DISABLED`` unset; off with
  attention DP) so that both all-reduces of an MoE layer run ``AllReduceFusionOp.RESIDUAL_RMS_NORM``: the
  post-attention norm and the next layer's input norm, each with its residual add, happen inside the all-reduce
  kernel. A dense layer fuses the next layer's norm (``POST_MLP_FUSION``) and, with NVFP4, its post-attention norm
  too (``PRE_MLP_FUSION``, ``RESIDUAL_RMS_NORM_QUANT_NVFP4``). The fused kernels work in a workspace of 64 MiB
  (``cpp/tensorrt_llm/common/customAllReduceUtils.h`` ``getMaxRequiredWorkspaceSize``); a larger message falls back
  to NCCL and a norm kernel of its own.
* The first token is answered at once: ``_handle_responses`` responds at ``py_decoding_iter == 1`` whatever
  ``stream_interval`` is (later tokens every ``stream_interval`` iterations).
"""

from __future__ import annotations

from .base import EngineRecord, register_engine


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


#: ``CudaGraphConfig.max_batch_size`` default (the capture list does not follow max_num_seqs)
CUDA_GRAPH_MAX_BATCH_SIZE = 128

#: engine time outside kernels (seconds) before calibration; meaning: :class:`frontier_calib.cost.worker.Overheads`
TRTLLM_OVERHEADS = {"step_s": 0.0008, "per_seq_s": 8.0e-6, "per_token_s": 2.0e-7, "prefill_step_s": 0.0,
                    "launch_s": 5.0e-6, "out_token_s": 1.5e-5, "frontend_s": 0.004, "frontend_per_token_s": 1.0e-6}


#: the Hugging Face architectures of ``tensorrt_llm/_torch/models/modeling_deepseekv3.py``'s one model class
#: (DeepSeek-V3/R1, Kimi-K2, DeepSeek-V3.2)
DEEPSEEK_V3_CLASS = ("DeepseekV3ForCausalLM", "DeepseekV32ForCausalLM")

#: (sm_arch, expert format): on Hopper (sm_90) the GEMMs of a block-scaled FP8 checkpoint run DeepGEMM-derived kernels
#: that launch one CTA per SM with the SM's shared memory (module docstring)
HOPPER_FP8_BLOCK_GEMMS = ((90, "fp8_block"),)

#: bytes of the fused all-reduce kernels' workspace (``customAllReduceUtils.h``: 64 MiB unless
#: ``TRTLLM_ALLREDUCE_FUSION_WORKSPACE_SIZE`` says otherwise)
ALLREDUCE_FUSION_WORKSPACE_BYTES = 64 * 1024 * 1024


def _capture_sizes(max_num_seqs: int) -> tuple[int, ...]:
    return trtllm_capture_sizes(CUDA_GRAPH_MAX_BATCH_SIZE)


TRTLLM = register_engine(EngineRecord(
    name="trtllm",
    description="TensorRT-LLM PyTorch backend: max_batch_size / max_num_tokens per step, block-sized context chunks",
    scheduler="frontier_calib.sim.schedulers.trtllm:TRTLLMScheduler",
    cache="paged",
    overheads=TRTLLM_OVERHEADS,
    capture_sizes=_capture_sizes,
    graph_mixed=False,
    graph_pad=False,
    overlap=True,
    overlap_since="0.20.0",  # scheduling overlap on by default (NVIDIA/TensorRT-LLM PR #4174, May 2025)
    mxfp4_moe_on_fp4="mxfp4_fp8",   # TRTLLM MoE backend: activations to MXFP8 (w4a8)
    time_source="TensorRT-LLM CudaGraphConfig defaults (max_batch_size 128, no padding), overlap scheduler on",
    max_running_field="max_batch_size",
    step_budget_field="max_num_tokens",
    chunk_multiple_of_block=True,
    budget_fields=("max_num_tokens",),
    kv_fraction_of_free=True,
    chunked_prefill_default=False,       # BaseLlmArgs.enable_chunked_prefill (module docstring)
    prompt_must_fit_step_budget=True,    # microBatchScheduler.cpp; LLM._check_arguments
    nvlink_a2a="nvlink_one_sided",       # tech blog 18: the default inside one NVLink domain (cost/nvlink_a2a.py)
    shared_experts_aux_stream=DEEPSEEK_V3_CLASS,   # Deepseekv3MoE (module docstring)
    whole_gpu_gemms=HOPPER_FP8_BLOCK_GEMMS,        # SM90 FP8 block-scale GEMMs hold every SM (module docstring)
    allreduce_norm_fusion=DEEPSEEK_V3_CLASS,       # DeepseekV3DecoderLayer's fusion_config (module docstring)
    allreduce_fusion_max_bytes=ALLREDUCE_FUSION_WORKSPACE_BYTES,
    public_tables=True,
    source="tensorrt_llm/_torch/pyexecutor/scheduler.py, tensorrt_llm/llmapi/llm_args.py"))
