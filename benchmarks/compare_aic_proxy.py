"""AIConfigurator 0.12's static estimate beside a ``validate silicon`` run, row by row (agg and disaggregated rows, each engine).

The reviewer compares against AIConfigurator's estimators, which live in the ``aiconfigurator`` package (not a
dependency). This is a proxy built from ``aiconfigurator-core``'s own engine.

Agg rows (``--mode agg``, the default): for each ``ok`` row, ``EngineHandle.compile`` with the row's engine, layout and
formats, then ``run_static`` at a batch of the row's clients per worker (attention-DP rank and replica): TPOT =
generation time / (osl - 1); TTFT = the context phase of that whole batch (an upper end of its TTFT).

Disaggregated rows (``--mode disagg``): AIConfigurator prices a P/D deployment in
``aiconfigurator/sdk/inference_session.py`` ``DisaggInferenceSession.run_disagg``: one ``run_static`` of the prefill
worker in ``static_ctx`` mode at the prefill batch, one of the decode worker in ``static_gen`` mode at the decode
batch (each scaled by its latency correction scale, ``set_latency_correction_scales``), MTP progress divided out of
the decode TPOT (``sdk/speculative.py`` ``SpeculativeDecodingProfile.project_summary``), then
``_get_disagg_summary_df`` multiplies the prefill TTFT by ``_AUTOSCALE_TTFT_CORRECTION_FACTOR`` (1.8, ``sdk/picking.py``:
queueing of concurrent prefills) and ``picking._build_disagg_summary_dict`` reports TTFT = that prefill TTFT and TPOT =
the decode TPOT (the worker counts only enter its rate matching, i.e. throughput, never the latencies). Its task
defaults (``sdk/task.py``, ``advanced_tuning_config``) are a prefill batch of 1 (``prefill_max_batch_size``), prefill
and decode correction scales 1.1 and 1.08. ``aic_disagg_latencies`` is that arithmetic; the worker times come from
``EngineHandle.run_static(mode="static_ctx" | "static_gen")``, the same compiled engine ``run_static`` of
``aiconfigurator_core.sdk.backends.base_backend`` calls. Each row's prefill and decode layouts come from its
``parallel`` string (``parse_pd_layout``); the decode batch is the row's clients per decode rank (attention-DP rank of
each decode worker), as AIConfigurator's ``bs`` is per rank.

Rows AIConfigurator cannot price (no table for the shape, a layout it refuses) are left out and counted by reason.

    python benchmarks/compare_aic_proxy.py OUT/rows.csv [--mode agg|disagg|all] [--gpu gb200] [--engine trtllm]
                                           [--save aic.csv]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import warnings
from collections import Counter

import pandas as pd

#: Hugging Face ids of the silicon rows that aiconfigurator-core's model list spells otherwise (offline use)
AIC_MODEL = {"nvidia/qwen3-32b-nvfp4": "Qwen/Qwen3-32B", "nvidia/deepseek-r1-nvfp4": "deepseek-ai/DeepSeek-R1",
             "meta-llama/llama-3.1-70b": "meta-llama/Meta-Llama-3.1-70B",
             "meta-llama/llama-3.1-70b-instruct": "meta-llama/Meta-Llama-3.1-70B",
             "nvidia/llama-3.1-70b-instruct-fp8": "meta-llama/Meta-Llama-3.1-70B"}
#: our dtype names -> aiconfigurator-core's quant modes (gpt-oss's experts: its W4A16 MXFP4 table)
AIC_QUANT = {"bf16": "bfloat16", "mxfp4_fp8": "w4a16_mxfp4", "mxfp4": "w4a16_mxfp4"}

#: AIConfigurator's disaggregated defaults (``aiconfigurator/sdk/task.py``, ``advanced_tuning_config``): the prefill
#: worker's batch (requests per attention-DP rank in one context step) and the two latency correction scales
AIC_PREFILL_BATCH = 1
AIC_PREFILL_LATENCY_CORRECTION = 1.1
AIC_DECODE_LATENCY_CORRECTION = 1.08
#: ``aiconfigurator/sdk/picking.py`` ``_AUTOSCALE_TTFT_CORRECTION_FACTOR``: the prefill TTFT multiplier for queueing
#: of concurrent prefills, applied in ``DisaggInferenceSession._get_disagg_summary_df``
AIC_TTFT_QUEUE_CORRECTION = 1.8

#: ``parallel`` keys of a row's layout that are not GPU counts (docs/deployments.md)
NOT_LAYOUT = ("ep_dispatch", "tbo", "comm_sms")

_WORKER = re.compile(r"^\s*([PD])\s+(\d+)x\((.*)\)\s*$")


def parse_layout(text: str) -> dict:
    """One worker's layout from ``tp=1 pp=1 attention_dp=4 ep=4 moe_tp=1`` (missing MoE sizes: 1). Keys of the
    ``parallel`` mapping that are not GPU counts (:data:`NOT_LAYOUT`, e.g. ``ep_dispatch=allgather``) are skipped:
    the proxy prices the layout as AIConfigurator models it.

    Returns ints under tp, pp, attention_dp, ep, moe_tp; ValueError names the bad token."""
    out = {"tp": 1, "pp": 1, "attention_dp": 1, "ep": 1, "moe_tp": 1}
    for kv in str(text).split():
        key, sep, value = kv.partition("=")
        if sep and key in NOT_LAYOUT:
            continue
        if not sep or key not in out or not value.isdigit() or int(value) < 1:
            raise ValueError(f"layout token {kv!r} in {text!r} (expected tp=, pp=, attention_dp=, ep=, moe_tp= "
                             "with positive integers)")
        out[key] = int(value)
    if "tp=" not in str(text):
        raise ValueError(f"layout {text!r} has no tp=")
    return out


def parse_pd_layout(parallel: str) -> tuple[tuple[int, dict], tuple[int, dict]]:
    """The prefill and decode workers of a disaggregated row's ``parallel`` string.

    ``P 7x(tp=1 pp=1 attention_dp=4 ep=4 moe_tp=1) / D 2x(tp=1 pp=1 attention_dp=8 ep=8 moe_tp=1)`` ->
    ``((7, prefill layout), (2, decode layout))`` (layouts as ``parse_layout``); ValueError when either side is missing
    or malformed."""
    parts = str(parallel).split("/")
    found = {}
    for part in parts:
        m = _WORKER.match(part)
        if not m or m.group(1) in found or int(m.group(2)) < 1:
            raise ValueError(f"disaggregated layout {parallel!r}: expected 'P Nx(tp=.. ...) / D Mx(tp=.. ...)'")
        found[m.group(1)] = (int(m.group(2)), parse_layout(m.group(3)))
    if set(found) != {"P", "D"}:
        raise ValueError(f"disaggregated layout {parallel!r}: expected one P and one D worker group")
    return found["P"], found["D"]


def mtp_from_notes(notes: str) -> tuple[int, float]:
    """(draft tokens, tokens per decode step) a row's notes give for MTP (``MTP with 3 draft token(s), 2.82 tokens per
    step``); (0, 1.0) without MTP."""
    m = re.search(r"MTP with (\d+) draft token\(s\), ([0-9.]+) tokens per step", notes or "")
    return (int(m.group(1)), float(m.group(2))) if m else (0, 1.0)


def aic_disagg_latencies(prefill_ctx_ms: float, decode_gen_ms: float, osl: int, tokens_per_step: float = 1.0,
                         prefill_scale: float = AIC_PREFILL_LATENCY_CORRECTION,
                         decode_scale: float = AIC_DECODE_LATENCY_CORRECTION,
                         ttft_factor: float = AIC_TTFT_QUEUE_CORRECTION) -> tuple[float, float]:
    """AIConfigurator's disaggregated (TTFT ms, TPOT ms) from its two static runs.

    prefill_ctx_ms: the prefill worker's ``static_ctx`` context time (ms) at the prefill batch; decode_gen_ms: the
    decode worker's ``static_gen`` generation time (ms) over osl - 1 steps at the decode batch; tokens_per_step: MTP
    progress per decode step (1 without MTP). TTFT = ctx x prefill_scale x ttft_factor
    (``run_static(latency_correction_scale)``, then ``DisaggInferenceSession._get_disagg_summary_df``); TPOT =
    gen / (osl - 1) x decode_scale / tokens_per_step (``SpeculativeDecodingProfile.project_summary``)."""
    tpot = 0.0 if osl <= 1 else decode_gen_ms / (osl - 1)
    return prefill_ctx_ms * prefill_scale * ttft_factor, tpot * decode_scale / tokens_per_step


def _replicas(notes: str) -> int:
    """Replicas of a row its notes name (``... over N replicas of the row``); 1 otherwise."""
    return int(notes.split(" replicas of the row")[0].split(" over ")[-1]) if "replicas of the row" in notes else 1


def _quant(r: dict) -> tuple[str, str, str, str]:
    """(gemm, moe, kv, gemm-as-given) quant names of a row in aiconfigurator-core's words."""
    gq = "fp8_block" if r["dtype"] == "fp8" and r["moe_dtype"] == "fp8_block" else r["dtype"]
    return AIC_QUANT.get(gq, gq), AIC_QUANT.get(r["moe_dtype"], r["moe_dtype"]), \
        AIC_QUANT.get(r["kv_dtype"], r["kv_dtype"]), gq


class _Engines:
    """Compiled aiconfigurator-core engines by (model, system, backend, layout, formats, nextn); None when it fails."""

    def __init__(self):
        self.handles: dict = {}

    def get(self, r: dict, tp: int, dp: int, mtp: int, mep: int, nextn: int = 0):
        from aiconfigurator_core.sdk.engine import EngineHandle
        gemm, moe, kv, gq = _quant(r)
        key = (r["model_path"], r["system"], r["backend"], tp, dp, mtp, mep, gq, r["moe_dtype"], r["kv_dtype"], nextn)
        if key not in self.handles:
            self.handles[key] = None
            extra = {"nextn": nextn} if nextn else {}
            self.handles[key] = EngineHandle.compile(
                AIC_MODEL.get(r["model_path"].lower(), r["model_path"]), r["system"], r["backend"], tp_size=tp,
                attention_dp_size=dp, moe_tp_size=mtp, moe_ep_size=mep, gemm_quant_mode=gemm, moe_quant_mode=moe,
                kvcache_quant_mode=kv, fmha_quant_mode="bfloat16", **extra)
        if self.handles[key] is None:
            raise RuntimeError("engine did not compile")
        return self.handles[key]


def _reason(exc: Exception) -> str:
    """A short, countable reason for a row the proxy cannot price."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def aic_estimates(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per ``ok`` agg row: id, aic_ttft_ms, aic_tpot_ms (NaN and aic_error when it fails)."""
    engines = _Engines()
    out = []
    for r in rows.to_dict("records"):
        par = dict(kv.split("=") for kv in str(r["parallel"]).split())
        tp, dp = int(par["tp"]), int(par["attention_dp"])
        mtp, mep = int(par.get("moe_tp", 1)), int(par.get("ep", 1))
        notes = r.get("notes") if isinstance(r.get("notes"), str) else ""
        bs = max(1, math.ceil(r["concurrency"] / (_replicas(notes) * dp)))
        try:
            handle = engines.get(r, tp, dp, mtp, mep)
            ctx, gen, _ = handle.run_static(batch_size=bs, isl=int(r["isl"]), osl=int(r["osl"]))
            out.append({"id": r["id"], "aic_ttft_ms": ctx, "aic_tpot_ms": gen / max(1, int(r["osl"]) - 1)})
        except Exception as exc:  # noqa: BLE001 - a row AIConfigurator cannot price is counted, not fatal
            out.append({"id": r["id"], "aic_ttft_ms": math.nan, "aic_tpot_ms": math.nan, "aic_error": str(exc)[:120]})
    return pd.DataFrame(out)


def aic_disagg_estimates(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per ``ok`` disaggregated row: id, aic_ttft_ms, aic_tpot_ms as AIConfigurator's ``run_disagg`` with its
    task defaults (module docstring), the raw worker times behind them (aic_prefill_ctx_ms at the prefill batch,
    aic_decode_tpot_raw_ms before the correction scale and MTP), aic_prefill_ctx_clients_ms (the prefill worker's
    context time at a batch of the row's clients per prefill rank, an upper end for comparison) and the decode batch;
    NaN and aic_error when it fails."""
    engines = _Engines()
    out = []
    for r in rows.to_dict("records"):
        notes = r.get("notes") if isinstance(r.get("notes"), str) else ""
        isl, osl = int(r["isl"]), int(r["osl"])
        try:
            (pn, p), (dn, d) = parse_pd_layout(r["parallel"])
        except ValueError as exc:
            out.append({"id": r["id"], "aic_ttft_ms": math.nan, "aic_tpot_ms": math.nan,
                        "aic_error": f"layout: {exc}"[:120]})
            continue
        reps = _replicas(notes)
        decode_bs = max(1, math.ceil(r["concurrency"] / (reps * dn * d["attention_dp"])))
        prefill_clients = max(1, math.ceil(r["concurrency"] / (reps * pn * p["attention_dp"])))
        nextn, per_step = mtp_from_notes(notes)
        rec = {"id": r["id"], "aic_decode_bs": decode_bs, "aic_prefill_bs": AIC_PREFILL_BATCH}
        try:
            ph = engines.get(r, p["tp"], p["attention_dp"], p["moe_tp"], p["ep"])
            ctx, _, _ = ph.run_static(batch_size=AIC_PREFILL_BATCH, isl=isl, osl=osl, mode="static_ctx")
            dh = engines.get(r, d["tp"], d["attention_dp"], d["moe_tp"], d["ep"], nextn=nextn)
            _, gen, _ = dh.run_static(batch_size=decode_bs, isl=isl, osl=osl, mode="static_gen")
        except Exception as exc:  # noqa: BLE001 - a row AIConfigurator cannot price is counted, not fatal
            out.append({**rec, "aic_ttft_ms": math.nan, "aic_tpot_ms": math.nan, "aic_error": _reason(exc)})
            continue
        ttft, tpot = aic_disagg_latencies(ctx, gen, osl, per_step)
        rec.update(aic_ttft_ms=ttft, aic_tpot_ms=tpot, aic_prefill_ctx_ms=ctx,
                   aic_decode_tpot_raw_ms=gen / max(1, osl - 1))
        try:
            rec["aic_prefill_ctx_clients_ms"] = ph.run_static(batch_size=prefill_clients, isl=isl, osl=osl,
                                                              mode="static_ctx")[0]
        except Exception:  # noqa: BLE001 - the comparison column only
            rec["aic_prefill_ctx_clients_ms"] = math.nan
        out.append(rec)
    return pd.DataFrame(out)


def mape(pred: pd.Series, measured: pd.Series) -> float:
    """Mean absolute percentage error, percent."""
    return 100 * (pred / measured - 1).abs().mean()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", help="rows.csv of a validate silicon run")
    ap.add_argument("--mode", choices=["agg", "disagg", "all"], default="agg",
                    help="which rows to price: agg (default), disaggregated, or both")
    ap.add_argument("--gpu", action="append", help="keep these GPUs (repeat)")
    ap.add_argument("--engine", action="append", help="keep these engines (repeat; default: every engine)")
    ap.add_argument("--save", help="write the per-row estimates here")
    a = ap.parse_args()
    try:
        rows = pd.read_csv(a.rows, dtype={"id": str, "backend_version": str})
    except (OSError, pd.errors.ParserError) as exc:
        sys.exit(f"error: {a.rows}: cannot read it ({exc}) (fix: give the rows.csv of a validate silicon run)")
    need = {"id", "status", "mode", "system", "backend", "parallel", "concurrency", "isl", "osl", "silicon_ttft_ms",
            "silicon_tpot_ms", "pred_ttft_ms", "pred_tpot_ms", "model_path", "dtype", "moe_dtype", "kv_dtype"}
    if need - set(rows.columns):
        sys.exit(f"error: {a.rows}: missing columns {sorted(need - set(rows.columns))} "
                 "(fix: give the rows.csv of a validate silicon run)")
    modes = ["agg", "disagg"] if a.mode == "all" else [a.mode]
    rows = rows[(rows.status == "ok") & rows["mode"].isin(modes)]
    if a.engine:
        rows = rows[rows.backend.isin(a.engine)]
    if a.gpu:
        rows = rows[rows.system.isin(a.gpu)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = pd.concat([f(rows[rows["mode"] == m]) for m, f in (("agg", aic_estimates),
                                                                   ("disagg", aic_disagg_estimates)) if m in modes],
                        ignore_index=True)
    for col in ("id", "aic_ttft_ms", "aic_tpot_ms", "aic_error"):
        if col not in est.columns:  # no rows, or every row priced
            est[col] = pd.Series(dtype=object if col in ("id", "aic_error") else float)
    if a.save:
        est.to_csv(a.save, index=False)
    d = rows.merge(est, on="id")
    print(f"{d.aic_ttft_ms.notna().sum()} of {len(d)} rows priced by the proxy")
    failed = d[d.aic_ttft_ms.isna()]
    d = d[d.aic_ttft_ms.notna()]

    for g, x in d.groupby(["system", "backend", "mode"]):
        print(f"{'/'.join(g)}: {len(x)} rows; TTFT MAPE ours {mape(x.pred_ttft_ms, x.silicon_ttft_ms):.1f} % "
              f"proxy {mape(x.aic_ttft_ms, x.silicon_ttft_ms):.1f} %; TPOT MAPE ours "
              f"{mape(x.pred_tpot_ms, x.silicon_tpot_ms):.1f} % proxy {mape(x.aic_tpot_ms, x.silicon_tpot_ms):.1f} %")
    if "disagg" in modes:
        dd = d[d["mode"] == "disagg"]
        if len(dd):
            print(f"disagg, all groups: {len(dd)} rows; TTFT MAPE ours {mape(dd.pred_ttft_ms, dd.silicon_ttft_ms):.1f}"
                  f" % proxy {mape(dd.aic_ttft_ms, dd.silicon_ttft_ms):.1f} %; TPOT MAPE ours "
                  f"{mape(dd.pred_tpot_ms, dd.silicon_tpot_ms):.1f} % proxy "
                  f"{mape(dd.aic_tpot_ms, dd.silicon_tpot_ms):.1f} %")
        for g, x in failed[failed["mode"] == "disagg"].groupby(["system", "backend", "mode"]):
            why = "; ".join(f"{n} x {k}" for k, n in Counter(x.aic_error.astype(str)).most_common())
            print(f"{'/'.join(g)}: {len(x)} rows not priced: {why}")


if __name__ == "__main__":
    main()
