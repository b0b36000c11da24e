"""The agg-labelled GB200 multinode series of silicon_sample.csv (2026-04-06.csv): InferenceX's dynamo + TensorRT-LLM
disaggregated runs whose tp_size is the run's GPU count (validate/harness.py, MULTINODE_SERIES)."""

import math

import pandas as pd
import pytest

from frontier_calib.validate import silicon as S
from frontier_calib.validate.harness import GB200_DYNAMO_TRT_FP4, multinode_series

#: a row of the series as the CSV spells it (``..._8192x1024_c2150_tp32_ep1_121``: 5.76 s TTFT, 43.9 ms TPOT)
ROW = {"id": "2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_8192x1024_c2150_tp32_ep1_121", "backend": "trtllm",
       "system": "gb200", "model_path": "deepseek-ai/DeepSeek-R1", "mode": "agg", "precision": "fp4",
       "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "isl": 8192, "osl": 1024, "batch_size": 2150,
       "tp_size": 32, "pp_size": 1, "attention_dp_size": 1, "moe_tp_size": 32, "moe_ep_size": 1,
       "silicon_ttft_ms": 5755.25, "silicon_tpot_ms": 43.88,
       "silicon_data_source": "source_file=2026-04-06.csv; model=DeepSeek-R1; silicon_concurrency=2150; "
                              "measured=2025-11-17T00:00:00.000Z; wip=False"}


def _row(**kw):
    r = {**ROW, **kw}
    if "concurrency" in kw:
        r["silicon_data_source"] = ROW["silicon_data_source"].replace("silicon_concurrency=2150",
                                                                      f"silicon_concurrency={kw['concurrency']}")
    return r


def test_series_row_replays_as_its_recipe_pd_deployment():
    """tp_size 32 at 8,192/1,024 and 2,150 clients is the recipe's 6 prefill workers (DEP4, one tray each) + 1
    decode worker DEP8 with MTP 1: a PD deployment of 32 GPUs with the recipe's engine limits, reported as disagg
    (before: a TP32 agg worker, 804 s TTFT predicted)."""
    s = S.scenario_for_row(ROW)
    assert s.status == "ok" and s.mode == "disagg"
    d = s.deployment
    assert d["mode"] == "pd"
    assert d["prefill"]["workers"] == 6
    assert d["prefill"]["parallel"] == {"tp": 1, "pp": 1, "attention_dp": 4, "ep": 4, "moe_tp": 1}
    assert d["decode"]["workers"] == 1
    assert d["decode"]["parallel"] == {"tp": 1, "pp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1}
    assert d["decode"]["speculative"] == {"method": "mtp", "num_draft_tokens": 1,
                                          "acceptance": {"accept_length": 1.92}}
    assert "speculative" not in d["prefill"] and "speculative" not in d
    pre, dec = d["prefill"]["scheduler"], d["decode"]["scheduler"]
    assert (pre["max_batch_size"], pre["max_num_tokens"]) == (1, 8448)          # PREFILL_MAX_BATCH_SIZE / _NUM_TOKENS
    assert (dec["max_batch_size"], dec["gpu_memory_utilization"]) == (256, 0.8)  # DECODE_MAX_BATCH_SIZE / _MEM_FRACTION
    assert any("6 x DEP4 prefill + 1 x DEP8 decode, MTP 1" in n for n in s.notes)
    built = S.build_deployment(s)
    assert built.mode == "pd" and built.total_gpus == 32
    assert built.decode.scheduler.max_running == 256


@pytest.mark.parametrize("conc, isl, gpus, want", [
    (538, 8192, 64, ((8, 4, True), (1, 32, True), 3)),     # 8 x DEP4 + DEP32, MTP 3 (before: TP64 agg, 181 s TTFT)
    (1075, 8192, 48, ((8, 4, True), (1, 16, True), 2)),    # MTP 2: 2.58 tokens per step
    (2150, 8192, 28, ((5, 4, True), (1, 8, True), 0)),
    (32, 1024, 36, ((1, 4, False), (4, 8, False), 0)),     # TEP: prefill TP4 EP4, 4 decode workers TP8 EP8
    (2252, 1024, 12, ((1, 4, True), (1, 8, True), 1)),
])
def test_series_layouts(conc, isl, gpus, want):
    s = S.scenario_for_row(_row(concurrency=conc, isl=isl, tp_size=gpus, moe_tp_size=gpus))
    assert s.status == "ok" and s.mode == "disagg"
    (pw, ptp, pdp), (dw, dtp, ddp), mtp = want
    for side, workers, tp, dp_attn in (("prefill", pw, ptp, pdp), ("decode", dw, dtp, ddp)):
        par = s.deployment[side]["parallel"]
        assert s.deployment[side]["workers"] == workers
        assert (par["tp"], par["attention_dp"], par["ep"]) == ((1, tp, tp) if dp_attn else (tp, 1, tp))
    spec = s.deployment["decode"].get("speculative")
    assert (spec["num_draft_tokens"] if spec else 0) == mtp
    if mtp == 2:
        assert spec["acceptance"]["accept_length"] == 2.58
    assert S.build_deployment(s).total_gpus == gpus


def test_series_rows_without_one_recipe_entry_are_skipped_with_the_layout_reason():
    # 4 clients on 36 GPUs: the MTP and the non-MTP TEP entries both run it; the row does not say which
    amb = S.scenario_for_row(_row(concurrency=4, isl=1024, tp_size=36, moe_tp_size=36))
    assert amb.status.startswith("skipped:layout not in the data: ") and amb.deployment is None
    assert "tp_size (36) is the run's total GPU count" in amb.status
    assert "2 entries of the recipe run 4 clients on 36 GPUs" in amb.status
    # 144 clients on 36 GPUs: in no entry of the recipe read (another version of the config ran it)
    miss = S.scenario_for_row(_row(concurrency=144, isl=1024, tp_size=36, moe_tp_size=36))
    assert miss.status.startswith("skipped:layout not in the data: ")
    assert "no entry of the recipe read runs 144 clients on 36 GPUs at 1024/1024" in miss.status
    # the SGLang tp72 rows of the same file: their per-worker layouts are not in the public recipe
    sg = S.scenario_for_row(_row(backend="sglang", precision="fp8", gemm_quant_mode="fp8", moe_quant_mode="fp8_block",
                                 concurrency=4096, isl=1024, tp_size=72, moe_tp_size=72))
    assert sg.status.startswith("skipped:layout not in the data: the 2026-04-06 GB200 SGLang series")
    assert "not in the public recipe" in sg.status


def test_other_rows_are_not_the_series():
    """Only agg rows of that file, GPU, engine, model and format; a disagg row or another file keeps its path."""
    assert multinode_series(ROW) is not None
    for other in ({"mode": "disagg"}, {"system": "b200_sxm"}, {"silicon_data_source": "source_file=2026-03-25.csv"},
                  {"precision": "fp8"}, {"model_path": "openai/gpt-oss-120b"}):
        assert multinode_series({**ROW, **other}) is None, other
    # the same columns from another file replay as written: a TP32 agg worker
    s = S.scenario_for_row({**ROW, "silicon_data_source": "source_file=2026-03-25.csv; silicon_concurrency=2150"})
    assert s.status == "ok" and s.mode == "agg" and s.deployment["parallel"]["tp"] == 32


def test_recipe_table_gpu_counts():
    """Every entry's GPU count is prefill workers x 4 (one tray each) + decode workers x the decode tp, the sum the
    launch script writes into its result file names (``results_concurrency_<c>_gpus_<g>.json``)."""
    assert len(GB200_DYNAMO_TRT_FP4) == 20
    for r in GB200_DYNAMO_TRT_FP4:
        assert r.prefill.tp == 4 and r.gpus == 4 * r.prefill.workers + r.decode.workers * r.decode.tp
        assert r.mtp in (0, 1, 2, 3)


def test_rows_frame_reports_the_series_row_as_disagg():
    df = pd.DataFrame([{**ROW, "concurrency": 2150}])
    scn = S.scenario_for_row(ROW)
    res = {c: math.nan for c in S.RESULT_COLUMNS}
    res["status"] = scn.status
    from frontier_calib.validate.runner import rows_frame
    out = rows_frame(df, [scn], [res])
    assert out.loc[0, "mode"] == "disagg"
    assert out.loc[0, "parallel"].startswith("P 6x(tp=1 pp=1 attention_dp=4 ep=4 moe_tp=1) / D 1x(")


def test_mode_selection_follows_the_replayed_mode():
    """``--mode disagg`` selects the series rows (they replay as disagg), ``--mode agg`` leaves them out; the same
    columns from another file stay agg."""
    from frontier_calib.validate.commands import _select, effective_modes

    other = {**ROW, "id": "other", "silicon_data_source": "source_file=2026-03-25.csv"}
    disagg = {**ROW, "id": "pd", "mode": "disagg"}
    df = pd.DataFrame([ROW, other, disagg])
    assert effective_modes(df).tolist() == ["disagg", "agg", "disagg"]
    sel, text = _select(df, None, None, "disagg", None, None)
    assert sel["id"].tolist() == [ROW["id"], "pd"] and text == "mode disagg"
    sel, _ = _select(df, None, None, "agg", None, None)
    assert sel["id"].tolist() == ["other"]
    assert effective_modes(df.iloc[:0]).tolist() == []
