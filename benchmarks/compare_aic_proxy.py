"""AIConfigurator 0.12's static estimate beside a ``validate silicon`` run, row by row (agg rows, each engine).

The reviewer compares against AIConfigurator's agg estimator, which lives in the ``aiconfigurator`` package (not a
dependency). This is a proxy built from ``aiconfigurator-core``'s own engine: for each ``ok`` row,
``EngineHandle.compile`` with the row's engine, layout and formats, then ``run_static`` at a batch of the row's clients per
worker (attention-DP rank and replica): TPOT = generation time / (osl - 1); TTFT = the context phase of that whole
batch (an upper end of its TTFT). Rows AIConfigurator cannot price (no table for the shape) are left out and counted.

    python benchmarks/compare_aic_proxy.py OUT/rows.csv [--gpu b200_sxm --gpu gb200] [--engine trtllm] [--save aic.csv]
"""

from __future__ import annotations

import argparse
import math
import warnings

import pandas as pd

#: Hugging Face ids of the silicon rows that aiconfigurator-core's model list spells otherwise (offline use)
AIC_MODEL = {"nvidia/qwen3-32b-nvfp4": "Qwen/Qwen3-32B", "nvidia/deepseek-r1-nvfp4": "deepseek-ai/DeepSeek-R1",
             "meta-llama/llama-3.1-70b": "meta-llama/Meta-Llama-3.1-70B",
             "meta-llama/llama-3.1-70b-instruct": "meta-llama/Meta-Llama-3.1-70B",
             "nvidia/llama-3.1-70b-instruct-fp8": "meta-llama/Meta-Llama-3.1-70B"}
#: our dtype names -> aiconfigurator-core's quant modes (gpt-oss's experts: its W4A16 MXFP4 table)
AIC_QUANT = {"bf16": "bfloat16", "mxfp4_fp8": "w4a16_mxfp4", "mxfp4": "w4a16_mxfp4"}


def aic_estimates(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per ``ok`` agg row: id, aic_ttft_ms, aic_tpot_ms (NaN and aic_error when it fails)."""
    from aiconfigurator_core.sdk.engine import EngineHandle

    handles: dict = {}
    out = []
    for r in rows.to_dict("records"):
        par = dict(kv.split("=") for kv in str(r["parallel"]).split())
        tp, dp = int(par["tp"]), int(par["attention_dp"])
        mtp, mep = int(par.get("moe_tp", 1)), int(par.get("ep", 1))
        notes = r.get("notes") if isinstance(r.get("notes"), str) else ""
        reps = int(notes.split(" replicas of the row")[0].split(" over ")[-1]) if "replicas of the row" in notes else 1
        bs = max(1, math.ceil(r["concurrency"] / (reps * dp)))
        gq = "fp8_block" if r["dtype"] == "fp8" and r["moe_dtype"] == "fp8_block" else r["dtype"]
        key = (r["model_path"], r["system"], r["backend"], tp, dp, mtp, mep, gq, r["moe_dtype"], r["kv_dtype"])
        try:
            if key not in handles:
                handles[key] = None
                handles[key] = EngineHandle.compile(
                    AIC_MODEL.get(r["model_path"].lower(), r["model_path"]), r["system"], r["backend"], tp_size=tp,
                    attention_dp_size=dp, moe_tp_size=mtp, moe_ep_size=mep, gemm_quant_mode=AIC_QUANT.get(gq, gq),
                    moe_quant_mode=AIC_QUANT.get(r["moe_dtype"], r["moe_dtype"]),
                    kvcache_quant_mode=AIC_QUANT.get(r["kv_dtype"], r["kv_dtype"]), fmha_quant_mode="bfloat16")
            if handles[key] is None:
                raise RuntimeError("engine did not compile")
            ctx, gen, _ = handles[key].run_static(batch_size=bs, isl=int(r["isl"]), osl=int(r["osl"]))
            out.append({"id": r["id"], "aic_ttft_ms": ctx, "aic_tpot_ms": gen / max(1, int(r["osl"]) - 1)})
        except Exception as exc:  # noqa: BLE001 - a row AIConfigurator cannot price is counted, not fatal
            out.append({"id": r["id"], "aic_ttft_ms": math.nan, "aic_tpot_ms": math.nan, "aic_error": str(exc)[:120]})
    return pd.DataFrame(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", help="rows.csv of a validate silicon run")
    ap.add_argument("--gpu", action="append", help="keep these GPUs (repeat)")
    ap.add_argument("--engine", action="append", help="keep these engines (repeat; default: every engine)")
    ap.add_argument("--save", help="write the per-row estimates here")
    a = ap.parse_args()
    rows = pd.read_csv(a.rows, dtype={"id": str, "backend_version": str})
    rows = rows[(rows.status == "ok") & (rows["mode"] == "agg")]
    if a.engine:
        rows = rows[rows.backend.isin(a.engine)]
    if a.gpu:
        rows = rows[rows.system.isin(a.gpu)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = aic_estimates(rows)
    if a.save:
        est.to_csv(a.save, index=False)
    d = rows.merge(est, on="id")
    print(f"{d.aic_ttft_ms.notna().sum()} of {len(d)} rows priced by the proxy")
    d = d[d.aic_ttft_ms.notna()]

    def mape(p, m):
        return 100 * (p / m - 1).abs().mean()
    for g, x in d.groupby(["system", "backend", "mode"]):
        print(f"{'/'.join(g)}: {len(x)} rows; TTFT MAPE ours {mape(x.pred_ttft_ms, x.silicon_ttft_ms):.1f} % "
              f"proxy {mape(x.aic_ttft_ms, x.silicon_ttft_ms):.1f} %; TPOT MAPE ours "
              f"{mape(x.pred_tpot_ms, x.silicon_tpot_ms):.1f} % proxy {mape(x.aic_tpot_ms, x.silicon_tpot_ms):.1f} %")


if __name__ == "__main__":
    main()
