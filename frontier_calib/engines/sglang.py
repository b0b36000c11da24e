"""SGLang: separate prefill (extend) and decode batches, prefill sized by ``chunked_prefill_size`` and
``max_prefill_tokens``, a radix-tree prefix cache, CUDA graphs for decode batches only, the overlap scheduler.

Sources of the defaults (read from the engine's code and docs, 2025-2026):

* CUDA graphs (``python/sglang/srt/server_args.py``): capture sizes ``[1, 2, 4, 8, 12] + range(16, 257, 8) +
  range(272, 512, 16) + range(512, max + 1, 32)`` with ``cuda_graph_max_bs`` 256 on 80-141 GB GPUs; decode
  batches only (extend/prefill batches run eager), padded up to the next size.
* The overlap scheduler is on by default, except for models with recurrent-state layers (gated DeltaNet, Mamba:
  Qwen3.5, Qwen3-Next, Nemotron-H): with the default ``--mamba-scheduler-strategy no_buffer`` and the radix cache
  on, ``ServerArgs._handle_mamba_radix_cache`` sets ``disable_overlap_schedule`` ("mamba no_buffer is not
  compatible with overlap schedule"), so every step pays its CPU scheduling time before the GPU work. A server
  launched with ``--disable-radix-cache`` or ``--mamba-scheduler-strategy extra_buffer`` keeps the overlap: say so
  with ``engine_options: {overlap: true}``.
* Triton JIT compiles on the engine loop: SGLang's copy of FLA's ``l2norm_fwd_kernel``
  (``python/sglang/srt/layers/attention/fla/l2norm.py``, the q/k L2 norm of every gated-DeltaNet and KDA prefill)
  declares the row count ``T`` (the step's new tokens x key heads per GPU) ``tl.constexpr``, so each prefill step
  with a token count the server has not run before compiles the kernel again, inline, before the layer's kernels
  launch (sgl-project/sglang PR #23448: "~90 ms each on L20Y"; PR #30403, a Qwen3.5-MoE-style GDN model under
  steady load: 48 compile bursts in 30 s, "the longest ~110 ms"; fixed by PR #31558, merged 2026-07-17, which
  measures mean TTFT 131 -> 79 ms on H200). ``jit_compile_s`` = 0.1 s, the order of both figures; which layers
  pay it: ``AttentionKind.prefill_recompiles`` (``frontier_calib/attention/gdn.py``, ``kda.py``).
* Code paths by release: before 0.5.10 SGLang runs Qwen3.5's gated-DeltaNet layer unfused (four input-projection
  GEMMs; in decode contiguous q/k/v copies and two gating kernels around the recurrent update: PRs #20074, #20627,
  #21019). The fact and its sources live with the attention kind (``frontier_calib/attention/gdn.py``,
  ``FUSED_SINCE``); a deployment names its release with ``engine_options.version``.
* CPU overheads: SGLang keeps less of the step in Python than vLLM V1 (lower ``step_s`` / ``per_seq_s``).
* Decode steps have no token budget; ``mem_fraction_static`` is a share of the whole GPU.
* MoE routing (:func:`sglang_routing_kernels`): the grouped top-k of DeepSeek-style (``noaux_tc``) routers runs
  sgl-kernel's one fused ``moe_fused_gate`` only where the experts per group fit its ``MAX_VPT`` (32, and a
  power-of-two expert count: ``biased_grouped_topk_gpu`` in ``python/sglang/srt/layers/moe/topk.py``; DeepSeek-V3's
  256 experts in 8 groups: 32), or Kimi-K2's 384 experts in one group (``kimi_k2_moe_fused_gate``, PR #13287,
  2025-11-14). Other grouped routers fall back to the ``@torch.compile``'d ``biased_grouped_topk_impl``: sigmoid and
  bias, a top-2 per group and their sum, the group top-k, the group mask and its fill, the expert top-k, the gather
  and renormalisation; sgl-project/sglang PR #13049 counts "8 kernels" for it on MiniMax-M2's router (256 experts,
  one group, top-8, sigmoid + correction bias, GLM-5's shape) against 1 for a fused kernel, and PR #22488
  (2026-04-10) states that GLM-5 (256 experts, ``n_group`` 1) still took it then. Later releases fuse one-group
  routing in some configurations (a Kimi-style gate for 256 experts, PR #26303; a JIT ``grouped_topk`` for
  ``num_expert_group == 1`` only without a fused shared expert): not modelled, every release pays the fallback.
  On data-centre Blackwell with FP8/FP4 experts the MoE runs FlashInfer's trtllm-gen kernels
  (``--moe-runner-backend flashinfer_trtllm``: InferenceX ``glm5_fp8_b200.sh``; ``ServerArgs`` selects it on sm_100
  for ``DeepseekV3ForCausalLM`` with FP8/FP4 weights and no all-to-all backend), whose ``TopK`` returns its input
  untouched (``TopKOutputFormat.BYPASSED``) and routes inside the MoE kernel: no top-k kernels there.
"""

from __future__ import annotations

from .base import EngineRecord, register_engine


def sglang_capture_sizes(cuda_graph_max_bs: int = 256) -> tuple[int, ...]:
    """SGLang's default ``cuda_graph_bs`` (decode batch sizes) up to ``cuda_graph_max_bs``."""
    top = int(cuda_graph_max_bs)
    sizes = [1, 2, 4, 8, 12] + list(range(16, 257, 8)) + list(range(272, 512, 16)) + list(range(512, top + 1, 32))
    return tuple(s for s in sizes if s <= top)


#: ``cuda_graph_max_bs`` on 80-141 GB GPUs (the capture list does not follow max_num_seqs)
CUDA_GRAPH_MAX_BS = 256

#: engine time outside kernels (seconds) before calibration; meaning: :class:`frontier_calib.cost.worker.Overheads`
SGLANG_OVERHEADS = {"step_s": 0.0008, "per_seq_s": 8.0e-6, "per_token_s": 2.0e-7, "prefill_step_s": 0.0,
                    "launch_s": 5.0e-6, "out_token_s": 1.5e-5, "frontend_s": 0.004, "frontend_per_token_s": 1.0e-6}


def _capture_sizes(max_num_seqs: int) -> tuple[int, ...]:
    return sglang_capture_sizes(CUDA_GRAPH_MAX_BS)


#: experts per group up to which sgl-kernel's ``moe_fused_gate`` runs (its ``MAX_VPT``; module docstring)
FUSED_GATE_MAX_GROUP_EXPERTS = 32
#: one-group expert counts with a fused gate of their own (Kimi-K2's 384: ``kimi_k2_moe_fused_gate``)
ONE_GROUP_FUSED_EXPERTS = (384,)
#: kernels of the compiled ``biased_grouped_topk_impl`` fallback (sgl-project/sglang PR #13049: "8 kernels")
FALLBACK_GATE_KERNELS = 8


def sglang_routing_kernels(model, worker, gpu) -> int:
    """Top-k kernels one MoE layer's routing launches beyond the one fused kernel (module docstring): the
    fallback's ``FALLBACK_GATE_KERNELS - 1`` for a grouped router (``ModelSpec.expert_groups``) whose experts per
    group exceed ``FUSED_GATE_MAX_GROUP_EXPERTS`` (or whose expert count is not a power of two), unless a fused
    one-group gate covers it or the MoE runs trtllm-gen kernels that route inside (data-centre Blackwell, FP8/FP4
    experts); 0 otherwise. Follows from the model's config, not its name."""
    from ..dtypes import COMPUTE_DTYPE, normalize_dtype

    experts, groups = int(model.num_experts), int(model.expert_groups)
    if not experts or not groups:
        return 0
    per_group = experts // groups
    if per_group <= FUSED_GATE_MAX_GROUP_EXPERTS and (experts & (experts - 1)) == 0:
        return 0   # moe_fused_gate
    if groups == 1 and experts in ONE_GROUP_FUSED_EXPERTS:
        return 0
    if gpu.has_trtllm_gen_kernels and COMPUTE_DTYPE[normalize_dtype(worker.moe_dtype)] in ("fp8", "fp4"):
        return 0   # flashinfer_trtllm: routing inside the MoE kernel
    return FALLBACK_GATE_KERNELS - 1


SGLANG = register_engine(EngineRecord(
    name="sglang",
    description="SGLang: prefill batches (chunked_prefill_size, max_prefill_tokens) then decode batches, radix cache",
    scheduler="frontier_calib.sim.schedulers.sglang:SGLangScheduler",
    cache="radix",
    overheads=SGLANG_OVERHEADS,
    capture_sizes=_capture_sizes,
    graph_mixed=False,
    graph_pad=True,
    overlap=True,
    overlap_recurrent_state=False,
    overlap_since="0.4.0",   # overlap scheduler on by default (sgl-project/sglang PR #2105, Nov 2024)
    mxfp4_moe_on_fp4="mxfp4_fp8",   # flashinfer_mxfp4 runner, default precision: activations to MXFP8
    jit_compile_s=0.1,   # one Triton compile of l2norm_fwd_kernel per new prefill token count (docstring)
    time_source="SGLang server_args: cuda_graph_bs, cuda_graph_max_bs 256, overlap scheduler on (off for "
                "recurrent-state models with the default mamba no_buffer strategy and radix cache)",
    step_budget_binds=False,
    budget_fields=("chunked_prefill_size", "max_prefill_tokens"),
    public_tables=True,
    routing_kernels=sglang_routing_kernels,   # grouped top-k past moe_fused_gate: the compiled fallback
    window_kv_ratio=0.8,   # server_args swa_full_tokens_ratio: the SWA pool holds 0.8 x the full pool's tokens
    source="python/sglang/srt/managers/schedule_policy.py, python/sglang/srt/server_args.py"))
