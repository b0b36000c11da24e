"""Two-micro-batch overlap of an MoE layer's expert-parallel all-to-all with the layer's compute (``tbo: true``).

What the engines run
--------------------
A step's batch is split into two micro-batches that alternate on the GPU: while one micro-batch's tokens are
dispatched to (or combined back from) the GPUs holding their experts, the other micro-batch computes. The
compute that hides the communication is the whole layer of the other micro-batch, not only its routed experts:

* DeepSeek's prefill (Day 6 inference-system overview, its prefill figure; open-infra-index,
  202502OpenSourceWeek): the compute lane runs ATTN (MLA and the routing gate), SHARED (the shared expert) and MLP
  (routed experts) of the two micro-batches in turn while the communication lane runs their DISPATCH and COMBINE.
  Their profile of that layout (github.com/deepseek-ai/profile-data, ``prefill.json``: EP32, 4K prompts, 16K
  tokens per GPU) keeps the communication kernels busy through most of the forward.
* SGLang's TBO prefill strategy (``python/sglang/srt/two_batch_overlap.py``, ``_compute_moe_deepseek_blog_prefill``):
  attention, gate and ``dispatch_a`` of one micro-batch, a yield, ``dispatch_b``, the experts and ``combine_a``, a
  yield, the shared experts and ``combine_b``: every dispatch and combine has a compute stage of the other
  micro-batch (attention, experts or shared experts) between its two halves.

The communication kernels are not free for the compute that hides them
----------------------------------------------------------------------
DeepEP's normal (high-throughput, prefill) kernels run on the GPU's SMs: ``Buffer.num_sms``, 20 by default
(``deep_ep/buffer.py``; the V1 README's example sets 24), and DeepSeek's prefill figure splits the H800's 132
SMs into 108 for computation and 24 for communication. SGLang gives DeepGEMM ``total SMs - DeepEPConfig.num_sms``
while the micro-batches overlap (``deep_gemm_num_sms`` above; ``DeepEPConfig.num_sms`` is ``--deepep-config``'s
``num_sms``, else DeepEP's default). So for the time ``X`` the communication runs, the compute has
``(S - s) / S`` of the GPU (``S`` SMs, ``s`` held by communication) and loses ``share = s / S`` of it. The
low-latency (decode) kernels hold none: their receive hook lets the RDMA traffic run in the background "without
costing any GPU SMs" (DeepEP V1 README, ``docs/legacy.md``; profile-data README: in decoding "the all-to-all
communication ... does not occupy GPU SMs").

The formula
-----------
Per MoE layer, with ``W``, ``X`` the layer's token compute (attention projections, router, shared experts,
routed experts, norms: everything priced per token, ``W(n)``) and its dispatch + combine for the whole batch of
``n`` tokens, and ``w``, ``x`` those of one micro-batch (``ceil(n/2)`` tokens)::

    split = max(2x,  2w + share * 2x)
    t     = min(W + X,  split)

``split`` is the steady state of the two alternating micro-batches over the model's layers: the communication
lane is the bottleneck (``2x``) or the compute lane is, running ``2w`` of work at full speed plus the SM time the
communication held while it ran (``share * 2x``; if ``2x`` exceeds the slowed compute, all compute fits under the
communication and the layer takes ``2x``). The pipeline's fill (the first micro-batch's first stage of the
forward) is paid once per step, not per layer, and is left out. ``min`` with the unsplit time: engines do not
split batches where halves cost as much as the whole (SGLang enables TBO above a token threshold). The attention
core is priced per step, not per token, and is not counted as cover (a lower bound on the hidden time when the
communication exceeds the token compute; at DeepSeek's prefill point the token compute alone covers it).
"""

from __future__ import annotations

import numpy as np

#: SMs DeepEP's normal kernels hold by default (``deep_ep.Buffer.num_sms``); SGLang uses it unless
#: ``--deepep-config`` sets ``num_sms`` (its ``DeepEPConfig``)
DEEPEP_NORMAL_SMS = 20


def comm_sm_share(comm_sms: int | None, sm_count: int, holds_sms) -> np.ndarray:
    """Fraction of the GPU's ``sm_count`` SMs the all-to-all holds while it runs: ``comm_sms`` (None: DeepEP's
    default, :data:`DEEPEP_NORMAL_SMS`) over ``sm_count`` where ``holds_sms`` is true (DeepEP normal kernels), 0
    where it is false (low-latency kernels with the receive hook)."""
    sms = DEEPEP_NORMAL_SMS if comm_sms is None else int(comm_sms)
    share = min(max(sms, 0), sm_count) / sm_count
    return np.where(np.asarray(holds_sms, dtype=bool), share, 0.0)


def layer_overlap_ms(compute_half, comm_half, compute_full, comm_full, sm_share=0.0) -> np.ndarray:
    """MoE-layer milliseconds with two-micro-batch overlap (module docstring); arrays of milliseconds, ``sm_share``
    the fraction of the SMs the communication holds while it runs."""
    w, x = 2 * np.asarray(compute_half, float), 2 * np.asarray(comm_half, float)
    split = np.maximum(x, w + np.asarray(sm_share, float) * x)
    return np.minimum(split, np.asarray(compute_full, float) + np.asarray(comm_full, float))
