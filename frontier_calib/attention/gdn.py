"""Gated-DeltaNet linear attention (Qwen3.5, Qwen3-Next): a recurrent state per sequence, no growing KV cache.

Each linear-attention layer runs a causal depthwise convolution and the gated delta rule: chunked over the new
tokens in prefill (``gdn_prefill``), one recurrent step per sequence in decode (``gdn_decode``). The state carries
the whole context, so neither cost depends on the cached prefix or the KV length; a layer keeps, per running
sequence and GPU, ``num_v_heads / tp`` fp32 ``head_k_dim x head_v_dim`` matrices plus the convolution's last
``conv_kernel - 1`` inputs (bf16), and nothing per token. Heads are split by tensor parallelism, as in vLLM's and
SGLang's GatedDeltaNet layers (column-parallel ``in_proj_qkvz``, row-parallel ``out_proj``).

The ``gdn_prefill`` / ``gdn_decode`` tables time the convolution and the delta rule (``causal_conv1d_*`` +
``chunk_gated_delta_rule`` / ``fused_recurrent_gated_delta_rule_packed_decode``). The layer's other small kernels
are added by :func:`untimed_ms` (SGLang ``models/qwen3_next.py: Qwen3GatedDeltaNet.forward``): the split of the
``in_proj_qkvz`` / ``in_proj_ba`` outputs into q, k, v, z, b, a (one fused kernel in a decode CUDA graph; split,
copies and a concatenation when eager), the gating of prefill (``fused_gdn_gating``; decode's packed kernel fuses
it) and the gated RMSNorm on the output (``RMSNormGated``).

SGLang's chunked prefill path L2-normalises q and k with FLA's ``l2norm_fwd_kernel``, which SGLang's copy
(``layers/attention/fla/l2norm.py``) specialises on the row count (``T: tl.constexpr``, rows = new tokens x key
heads per GPU) until sgl-project/sglang PR #31558 (merged 2026-07-17): a prefill step with a token count the server
has not run before first compiles that kernel (:data:`PREFILL_RECOMPILES`; the compile time is the engine record's
``jit_compile_s``, sources in ``frontier_calib/engines/sglang.py``). Decode runs the fused recurrent kernel (its
own in-kernel norm) from a CUDA graph and compiles nothing. vLLM's copy (``model_executor/layers/fla/ops/
l2norm.py``) runs ``l2norm_fwd_kernel2`` by default, the row count a runtime argument: no recompile there.

The tables, the GEMM list and :data:`UNTIMED_KERNELS` describe the fused layer SGLang runs from release 0.5.10 on
(the tables were profiled on 0.5.14). Earlier SGLang releases (:data:`FUSED_SINCE`; the InferenceX H200 and B200
Qwen3.5 rows ran 0.5.9) run it unfused, the ``"unfused"`` :func:`release_path`:

* Qwen3.5's four input projections run as four GEMMs, ``in_proj_qkv`` (q, k, v), ``in_proj_z``, ``in_proj_b`` and
  ``in_proj_a``, not the merged ``in_proj_qkvz`` / ``in_proj_ba`` (sgl-project/sglang PR #20074, 2026-03-07:
  "Merges 4 separate linear projections ... reducing CUDA kernel launches from 4 to 1 per DeltaNet layer during
  decode"; the merged weights and their fused split kernel came with PR #21019, merged 2026-03-23), so no split
  kernel runs;
* decode (PR #20627, "[GDN] Support GDN packed decode", 2026-03-15, describing the path it replaced): after
  ``causal_conv1d_update``, ``torch.split`` views of q, k and v are copied contiguous ("Overhead 2: memory copy"),
  and the gating runs as two kernels of its own before the recurrent update, ``g = -exp(A_log) softplus(a +
  dt_bias)`` and ``beta = sigmoid(b)`` ("Overhead 3", "Overhead 4"): three copies and two gating kernels more
  than the packed kernel the ``gdn_decode`` table times, which reads q, k, v from the packed layout and gates in
  registers.

Release 0.5.9 predates both PRs: InferenceX launched ``lmsysorg/sglang:v0.5.9`` images by 2026-03-01
(SemiAnalysisAI/InferenceX issue #841). A worker that names no release (``WorkerSpec.engine_version`` None), an
unnumbered one (a nightly image) and other engines get the fused path.
"""

from __future__ import annotations

import numpy as np
from ..lazy import pandas as pd

from ..engines import engine_version
from ..hardware import get_gpu
from ..model_spec import GemmShape
from .base import AttentionKind, register

#: kernels one GDN layer launches per call that its tables do not time (module docstring): prefill (eager) the
#: q/k/v split and concatenation, the gating and the gated RMSNorm; decode (CUDA graph) the fused split and the
#: gated RMSNorm; decode on the unfused release path the contiguous copies of q, k and v, the two gating kernels
#: and the gated RMSNorm
UNTIMED_KERNELS = {"prefill": 3, "decode": 2, "unfused_decode": 6}

#: engine -> its first release whose GDN layer runs the fused path the tables describe; earlier releases run the
#: ``"unfused"`` path (module docstring: SGLang PRs #20074, #20627, #21019, all after 0.5.9)
FUSED_SINCE = {"sglang": "0.5.10"}


def release_path(worker) -> str:
    """``"unfused"`` when the worker's engine release predates :data:`FUSED_SINCE` of its engine, else ``""``
    (the fused path; also for a worker that names no numbered release)."""
    since, v = FUSED_SINCE.get(worker.engine), engine_version(getattr(worker, "engine_version", None))
    return "unfused" if since is not None and v is not None and v < engine_version(since) else ""


def projection_gemms(model, tp: int, path: str = "") -> list:
    """One GDN layer's projection GEMMs on one GPU: the merged ``in_proj_qkvz`` / ``in_proj_ba`` and ``out_proj``
    (:meth:`~frontier_calib.model_spec.ModelSpec.attention_gemms`); on the ``"unfused"`` path the four input
    projections of Qwen3.5's checkpoint as four GEMMs (module docstring)."""
    fused = model.attention_gemms(tp, "gdn")
    if path != "unfused":
        return fused
    la, h = model.linear_attention, model.hidden_size
    kd, vd, nv = la.key_dim // tp, la.value_dim // tp, max(1, la.num_v_heads // tp)
    return [GemmShape("in_proj_qkv", 2 * kd + vd, h), GemmShape("in_proj_z", vd, h), GemmShape("in_proj_b", nv, h),
            GemmShape("in_proj_a", nv, h), *[g for g in fused if g.name == "out_proj"]]

#: engines whose GDN prefill compiles ``l2norm_fwd_kernel`` again for each new step token count (module docstring)
PREFILL_RECOMPILES = ("sglang",)


def linear_heads(ctx) -> dict:
    """The per-GPU head columns of a gated-delta-rule layer's tables (GDN, and KDA which shares its shape): heads
    split by tensor parallelism."""
    la, tp = ctx.worker.model.linear_attention, ctx.worker.tp
    return {"num_k_heads": max(1, la.num_k_heads // tp), "num_v_heads": max(1, la.num_v_heads // tp),
            "head_k_dim": la.head_k_dim, "head_v_dim": la.head_v_dim, "conv_kernel": la.conv_kernel}


def _prefill(ctx, q, kv):
    return "gdn_prefill", pd.DataFrame({"batch_size": 1, "q_len": q, **linear_heads(ctx)})


def _decode(ctx, b, kv):
    return "gdn_decode", pd.DataFrame({"batch_size": b, **linear_heads(ctx)})


def untimed_ms(ctx, phase: str, sizes, kv) -> np.ndarray:
    """Milliseconds per layer of the GDN kernels the tables lack, for ``sizes`` tokens (prefill: one sequence's
    q_len; decode: the batch, one token each): each kernel's launch floor (the operator models'
    ``LAUNCH_FLOOR_MS``) plus its HBM traffic (bf16): the split reads and writes the projections' outputs
    (q, k, v, z per token and b, a per value head), the gated norm reads the output and z and writes the output,
    the gating reads a, b and writes the decay and beta (fp32). Decode on the ``"unfused"`` release path
    (:func:`release_path`): no split; the copies read and write q, k and v, then the gating and the gated norm."""
    from ..opmodel.features import LAUNCH_FLOOR_MS   # here: the replay of cached tables does not import opmodel

    la, tp = ctx.worker.model.linear_attention, ctx.worker.tp
    kd, vd, nv = la.key_dim // tp, la.value_dim // tp, max(1, la.num_v_heads // tp)
    gating, norm = 2 * nv * 2 + 2 * nv * 4, 3 * vd * 2
    kernels = phase
    if phase == "decode" and release_path(ctx.worker) == "unfused":
        kernels, per_token = "unfused_decode", 2 * (2 * kd + vd) * 2 + gating + norm
    else:
        per_token = 2 * (2 * kd + 2 * vd + 2 * nv) * 2 + norm + (gating if phase == "prefill" else 0)
    tokens = np.asarray(sizes, dtype=float)
    return UNTIMED_KERNELS[kernels] * LAUNCH_FLOOR_MS + tokens * per_token / get_gpu(ctx.worker.gpu).hbm_bandwidth * 1e3


def state_bytes(model, tp):
    """Recurrent state + convolution state of one gated-delta-rule layer (GDN, KDA) for one sequence on one GPU
    (bytes)."""
    la = model.linear_attention
    nv = max(1, la.num_v_heads // tp)
    return nv * la.head_k_dim * la.head_v_dim * la.state_bytes + (la.conv_kernel - 1) * la.conv_dim // tp * 2


GDN = register(AttentionKind(
    name="gdn", doc=__doc__.strip().splitlines()[0], families=("gdn_prefill", "gdn_decode"),
    prefill_query=_prefill, decode_query=_decode, kv_bytes_per_token=lambda model, b, tp: 0.0,
    state_bytes_per_sequence=state_bytes, untimed_ms=untimed_ms, prefill_recompiles=PREFILL_RECOMPILES,
    gemms=projection_gemms, release_path=release_path))
