"""The MoE routing top-k an engine runs as several kernels, which the ``moe`` tables do not time.

The ``moe`` tables time the routed experts behind one top-k selection (AIConfigurator's SGLang collector,
``collector/sglang/collect_moe.py``, times ``select_experts`` with a plain ``TopKConfig(top_k)``: one fused top-k
kernel, whatever the model's router); engines that run one fused top-k kernel per
MoE layer (vLLM's ``grouped_topk`` CUDA op, TensorRT-LLM's ``noaux_tc``, SGLang's ``moe_fused_gate``) are priced by
them as they are. Where an engine's routing launches more kernels for a model (``EngineRecord.routing_kernels``:
SGLang's compiled fallback for grouped routers its fused gate does not cover, ``frontier_calib/engines/sglang.py``),
each extra kernel costs what every small kernel costs here: the launch floor of the operator models
(``LAUNCH_FLOOR_MS``, 3 us, as the GDN layer's untimed kernels) plus its traffic over HBM. Those kernels read and
write the token's fp32 expert scores (``num_experts`` x 4 bytes) six times more than one fused kernel does
(:data:`EXTRA_SCORE_PASSES`: the scores and the biased scores written, the group top-2 and the expert top-k read
them, the group mask's fill reads and writes them). Inside a captured CUDA graph (decode) the launch floor is the
whole cost at a few dozen tokens: 7 kernels x 3 us = 21 us per MoE layer, below the 36 -> 8 us one in-serving H200
trace of DeepSeek-V3 measured when SGLang replaced the same compiled function by the fused gate (sgl-project/sglang
PR #5371).
"""

from __future__ import annotations

import numpy as np

from ..engines import get_engine
from ..hardware import get_gpu

#: passes over a token's fp32 expert scores the unfused routing makes beyond one fused kernel (module docstring)
EXTRA_SCORE_PASSES = 6


def routing_kernels(worker) -> int:
    """Kernels one MoE layer's routing launches beyond one fused top-k kernel on ``worker``'s engine, model and GPU
    (``EngineRecord.routing_kernels``; 0 where the engine names no rule)."""
    rule = get_engine(worker.engine).routing_kernels
    if rule is None or not worker.model.num_experts:
        return 0
    return int(rule(worker.model, worker, get_gpu(worker.gpu)))


def routing_topk_ms(worker, tokens) -> np.ndarray:
    """Milliseconds per MoE layer of those extra kernels for ``tokens`` tokens per rank (array): the launch floor of
    each plus the extra passes over the tokens' fp32 scores at the GPU's HBM bandwidth; zeros where the engine runs
    one fused kernel."""
    n = np.asarray(tokens, dtype=float)
    kernels = routing_kernels(worker)
    if not kernels:
        return np.zeros(n.shape)
    from ..opmodel.features import LAUNCH_FLOOR_MS   # here: the replay of cached tables does not import opmodel

    nbytes = n * worker.model.num_experts * 4 * EXTRA_SCORE_PASSES
    return kernels * LAUNCH_FLOOR_MS + nbytes / get_gpu(worker.gpu).hbm_bandwidth * 1e3
