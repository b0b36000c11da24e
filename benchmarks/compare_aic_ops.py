"""One decode step op by op: our cost model beside AIConfigurator's own estimate at the same shape.

For a DeepSeek-style MoE model served by one engine on one GPU, at a few decode batch sizes (sequences, one token
each, every sequence ``--kv`` tokens of context), prints:

* **ours**: :meth:`~frontier_calib.cost.iteration.IterationCostModel.token_op_parts` (each token-proportional op over
  all layers, eager), ``graph_saving`` (what a step that replays a CUDA graph saves: shared experts beside the
  routed ones, ``EngineRecord.shared_experts_aux_stream``; beside the router GEMM only where the GEMMs hold every SM,
  ``EngineRecord.whole_gpu_gemms``, e.g. ``--gpu h200_sxm --quant fp8``), the LM head, decode attention (the attention kind's
  tables: for MLA's module-scope tables the projections too), and the step's kernel time as the replay prices it
  (``breakdown``: graphed where the engine captures that batch size);
* **AIConfigurator**: ``aiconfigurator_core``'s generation op list for the same layout and formats, every op (the
  branches of its ``Overlap`` and ``Fallback`` ops listed one by one, prefixed ``A|``/``B|`` and ``primary|``/
  ``fallback|``) evaluated with ``EngineHandle.evaluate_ops_json`` at the step's shape, and ``run_static``'s one
  decode step (``static_gen``, isl = ``--kv``, osl 2): the sum it reports, before its decode correction (x 1.08)
  and MTP.

The formats follow the silicon rows (``validate/silicon.py`` ``row_dtypes``): ``fp8`` -> per-tensor FP8 GEMMs, the
checkpoint's block-scaled FP8 experts (``fp8_block``), FP8 KV cache (AIConfigurator: ``fp8_block`` GEMMs and experts,
as ``compare_aic_proxy.py`` asks it); ``nvfp4`` -> NVFP4 GEMMs and experts, FP8 KV cache.

    python benchmarks/compare_aic_ops.py [--gpu b200_sxm] [--engine trtllm] [--model DeepSeek-R1]
                                         [--quant fp8|nvfp4] [--tp 8] [--ep 1|8] [--batch 1,4,16,64] [--kv 8192]

Needs the fitted operator models of the GPU x engine (``frontier-calib fit`` or a first ``validate silicon`` run)
and the aiconfigurator-core package.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np

#: our model presets -> the Hugging Face ids aiconfigurator-core knows them by
AIC_MODEL = {"DeepSeek-R1": "deepseek-ai/DeepSeek-R1", "DeepSeek-V3": "deepseek-ai/DeepSeek-V3"}
#: our formats (dtype, moe_dtype, kv_dtype) and AIConfigurator's (gemm, moe, kv) for a row's quant label
FORMATS = {"fp8": (("fp8", "fp8_block", "fp8"), ("fp8_block", "fp8_block", "fp8")),
           "nvfp4": (("nvfp4", "nvfp4", "fp8"), ("nvfp4", "nvfp4", "fp8"))}


def ours(model: str, gpu: str, engine: str, quant: str, tp: int, ep: int, batches, kv: int) -> dict:
    """{row name: [ms per batch]} of our cost model (module docstring)."""
    from frontier_calib.cost.cache import needed_families, needed_groups
    from frontier_calib.cost.iteration import IterationCostModel
    from frontier_calib.cost.worker import Overheads, WorkerSpec
    from frontier_calib.model_spec import load_model
    from frontier_calib.opmodel.registry import cached_model_set

    dtype, moe_dtype, kv_dtype = FORMATS[quant][0]
    w = WorkerSpec(model=load_model(model), gpu=gpu, engine=engine, dtype=dtype, moe_dtype=moe_dtype,
                   kv_dtype=kv_dtype, tp=tp, ep=ep, moe_tp=tp // ep, overheads=Overheads.for_engine(engine))
    models = cached_model_set(gpu, engine, families=needed_families(w), groups=needed_groups(w))
    cm = IterationCostModel(w, models, max_tokens=max(batches), max_seqs=max(batches), max_model_len=kv + 2)
    rows: dict = {}
    for i, b in enumerate(batches):
        parts = cm.token_op_parts(b)
        parts["lm_head (+ logits all-gather)"] = cm.lm_head_ms(b)
        parts["decode attention (kind's tables)"] = float(cm.decode_attention_ms(b, [b * kv])[0])
        bd = cm.breakdown([], [], b, b * kv)
        parts["STEP kernels as replayed"] = bd.total_ms - bd.overhead_ms
        parts["STEP with engine time"] = bd.total_ms
        for name, ms in parts.items():
            rows.setdefault(name, [np.nan] * len(batches))[i] = ms
    return rows


def _leaves(ops: list, prefix: str = ""):
    """(label, one-op list) for every op of an AIConfigurator op list, the branches of Overlap/Fallback ops apart."""
    for op in ops:
        (kind, body), = op.items()
        if kind == "Overlap":
            yield from _leaves(body["group_a"], prefix + "A|")
            yield from _leaves(body["group_b"], prefix + "B|")
        elif kind == "Fallback":
            yield prefix + "primary|" + next(iter(body["primary"].values()))["name"], [body["primary"]]
            yield from _leaves(body["fallback"], prefix + "fallback|")
        else:
            yield prefix + body["name"], [op]


def aic(model: str, gpu: str, engine: str, quant: str, tp: int, ep: int, batches, kv: int) -> dict:
    """{row name: [ms per batch]} of AIConfigurator's generation ops (module docstring)."""
    from aiconfigurator_core.sdk.config_builders import apply_nextn, build_model_config
    from aiconfigurator_core.sdk.engine import EngineHandle, build_ops_json
    from aiconfigurator_core.sdk.models import get_model

    gemm, moe, kv_q = FORMATS[quant][1]
    layout = dict(tp_size=tp, pp_size=1, attention_dp_size=1, moe_tp_size=tp // ep, moe_ep_size=ep)
    quants = dict(gemm_quant_mode=gemm, moe_quant_mode=moe, kvcache_quant_mode=kv_q, fmha_quant_mode="bfloat16")
    handle = EngineHandle.compile(AIC_MODEL.get(model, model), gpu, engine, **layout, **quants)
    config = build_model_config(**layout, **quants)
    apply_nextn(config, 0)
    ops = json.loads(build_ops_json(get_model(AIC_MODEL.get(model, model), config, engine).generation_ops))
    rows: dict = {}
    for i, b in enumerate(batches):
        for label, op in _leaves(ops):
            (name, ms, *_), = handle.evaluate_ops_json(json.dumps(op), is_context=False, batch_size=b, s=kv + 1)
            rows.setdefault(label, [np.nan] * len(batches))[i] = ms
        _, gen, _ = handle.run_static(batch_size=b, isl=kv, osl=2, mode="static_gen")
        rows.setdefault("STEP run_static (static_gen, 1 step)", [np.nan] * len(batches))[i] = gen
    return rows


def show(title: str, rows: dict, batches) -> None:
    print(title)
    print(f"  {'op (ms per step, all layers)':50s}" + "".join(f"{b:>9d}" for b in batches))
    for name, values in rows.items():
        print(f"  {name[:50]:50s}" + "".join(f"{v:9.3f}" for v in values))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", default="b200_sxm")
    ap.add_argument("--engine", default="trtllm")
    ap.add_argument("--model", default="DeepSeek-R1", help="our model preset (a DeepSeek-V3-architecture model)")
    ap.add_argument("--quant", choices=sorted(FORMATS), default="fp8")
    ap.add_argument("--tp", type=int, default=8)
    ap.add_argument("--ep", type=int, default=1, help="expert parallelism (moe_tp = tp / ep); no attention DP")
    ap.add_argument("--batch", default="1,4,16,64", help="decode batch sizes, comma-separated")
    ap.add_argument("--kv", type=int, default=8192, help="context tokens of every sequence")
    a = ap.parse_args(argv)
    try:
        batches = [int(x) for x in a.batch.split(",")]
    except ValueError:
        sys.exit(f"error: --batch {a.batch!r}: expected comma-separated integers such as 1,4,16,64")
    if a.tp % a.ep or min(batches) < 1 or a.kv < 1:
        sys.exit("error: --ep must divide --tp, and batch sizes and --kv must be >= 1")
    args = (a.model, a.gpu, a.engine, a.quant, a.tp, a.ep, batches, a.kv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        show(f"ours: {a.model} {a.quant} on {a.gpu} {a.engine}, tp={a.tp} ep={a.ep} moe_tp={a.tp // a.ep}, "
             f"kv {a.kv}", ours(*args), batches)
        show("AIConfigurator (aiconfigurator-core):", aic(*args), batches)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
