"""The GLM-5 GB200 TensorRT-LLM disagg rows of silicon_sample.csv (2026-03-25.csv) without worker counts: their
layouts come from NVIDIA/srt-slurm's GLM5 gb200_nvfp4 recipe sweep (validate/disagg_layouts.py)."""

import os

import pandas as pd
import pytest

from frontier_calib.validate import silicon as S
from frontier_calib.validate.disagg_layouts import (DISAGG_SERIES, GB200_GLM5_DYNAMO_TRT_FP4, DisaggSeries,
                                                    disagg_series)
from frontier_calib.validate.harness import MultinodeRecipe, PDPool

#: a row of the series as the CSV spells it (``..._1024x1024_c180_tp8_0_ep_152``: 5.74 s TTFT, 15.55 ms TPOT)
ROW = {"id": "2026_03_25_glm_5_gb200_trtllm_fp4_disagg_1024x1024_c180_tp8_0_ep_152", "backend": "trtllm",
       "system": "gb200", "model_path": "zhipuai/GLM-5", "mode": "disagg", "precision": "fp4",
       "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "isl": 1024, "osl": 1024,
       "prefill_tp_size": 4, "prefill_pp_size": 1, "prefill_attention_dp_size": 1, "prefill_moe_tp_size": 4,
       "prefill_moe_ep_size": 1, "decode_tp_size": 8, "decode_pp_size": 1, "decode_attention_dp_size": 1,
       "decode_moe_tp_size": 8, "decode_moe_ep_size": 1, "silicon_ttft_ms": 5742.38, "silicon_tpot_ms": 15.55,
       "silicon_data_source": "source_file=2026-03-25.csv; model=GLM-5; silicon_concurrency=180; "
                              "measured=2026-04-02T05:42:16Z; wip=True"}


def _row(conc, isl=1024, decode_tp=8, **kw):
    src = ROW["silicon_data_source"].replace("silicon_concurrency=180", f"silicon_concurrency={conc}")
    return {**ROW, "isl": isl, "decode_tp_size": decode_tp, "decode_moe_tp_size": decode_tp,
            "silicon_data_source": src, **kw}


def test_series_row_replays_as_its_recipe_pd_deployment():
    """1,024/1,024 at 180 clients on 8-GPU decode workers is ``ctx1dep4_gen4tep8`` with batch 32: 1 DEP4 prefill
    worker + 4 TEP8 decode workers of at most 32 requests (45 clients each: the queue behind the measured 5.7 s
    TTFT), the recipe's engine limits and a prefill worker without overlap scheduling."""
    s = S.scenario_for_row(ROW)
    assert s.status == "ok" and s.mode == "disagg"
    d = s.deployment
    assert d["mode"] == "pd"
    assert d["prefill"]["workers"] == 1
    assert d["prefill"]["parallel"] == {"tp": 1, "pp": 1, "attention_dp": 4, "ep": 4, "moe_tp": 1}
    assert d["decode"]["workers"] == 4
    assert d["decode"]["parallel"] == {"tp": 8, "pp": 1, "attention_dp": 1, "ep": 8, "moe_tp": 1}
    assert "speculative" not in d["decode"] and "speculative" not in d
    pre, dec = d["prefill"]["scheduler"], d["decode"]["scheduler"]
    assert (pre["max_batch_size"], pre["max_num_tokens"], pre["gpu_memory_utilization"]) == (16, 16384, 0.6)
    assert (dec["max_batch_size"], dec["max_num_seqs"], dec["gpu_memory_utilization"]) == (32, 32, 0.9)
    assert d["prefill"]["engine_options"]["overlap"] is False
    assert "engine_options" not in d["decode"] or "overlap" not in d["decode"]["engine_options"]
    assert any("1 x DEP4 prefill + 4 x TEP8 decode, no MTP" in n for n in s.notes)
    assert not any("assumed 1 prefill + 1 decode" in n for n in s.notes)
    built = S.build_deployment(s)
    assert built.mode == "pd" and built.total_gpus == 4 + 4 * 8
    assert built.decode.scheduler.max_running == 32


@pytest.mark.parametrize("conc, isl, decode_tp, want", [
    (5, 1024, 4, (1, 5, False, 1)),        # batch1(5) of the merged gen5tep4 recipe
    (15, 1024, 4, (1, 5, False, 2)),       # batch2(15)
    (50, 8192, 4, (1, 5, False, 8)),       # 8K: batch8(50)
    (10, 8192, 4, (1, 5, False, 2)),       # 8K: batch2(10)
    (117, 8192, 4, (1, 3, False, 32)),     # ctx1dep4_gen3tep4_batch32
    (616, 1024, 8, (1, 4, False, 128)),    # batch128(616) of the merged gen4tep8 recipe
    (2253, 1024, 32, (2, 1, True, 64)),    # ctx2dep4_gen1dep32_batch64
    (8192, 1024, 32, (4, 1, True, 256)),   # ctx4dep4_gen1dep32_batch256_eplb288
    (8192, 1024, 16, (2, 1, True, 512)),   # ctx2dep4_gen1dep16_batch512_eplb256
])
def test_series_layouts(conc, isl, decode_tp, want):
    s = S.scenario_for_row(_row(conc, isl, decode_tp))
    assert s.status == "ok", s.status
    prefill_workers, decode_workers, dp_attn, batch = want
    d = s.deployment
    assert d["prefill"]["workers"] == prefill_workers and d["decode"]["workers"] == decode_workers
    par = d["decode"]["parallel"]
    assert (par["tp"], par["attention_dp"], par["ep"]) == ((1, decode_tp, decode_tp) if dp_attn
                                                           else (decode_tp, 1, decode_tp))
    assert d["decode"]["scheduler"]["max_batch_size"] == batch
    assert d["prefill"]["scheduler"]["max_num_tokens"] == (16384 if isl == 1024 else 16640)
    assert S.build_deployment(s).total_gpus == 4 * prefill_workers + decode_workers * decode_tp


@pytest.mark.parametrize("conc, isl, decode_tp, workers", [
    (84, 8192, 8, "1 x DEP4 prefill + 2 x TEP8 decode, no MTP; 1 x DEP4 prefill + 4 x TEP8 decode, no MTP"),
    (615, 8192, 32, "4 x DEP4 prefill + 1 x DEP32 decode, no MTP; 5 x DEP4 prefill + 1 x DEP32 decode, no MTP"),
    (2253, 8192, 16, "10 x DEP4 prefill + 1 x DEP16 decode, no MTP; 11 x DEP4 prefill + 1 x DEP16 decode, no MTP"),
    (2253, 1024, 16, "2 x DEP4 prefill + 1 x DEP16 decode, no MTP; 2 x DEP4 prefill + 1 x DEP16 decode, MTP 1"),
])
def test_rows_with_several_entries_are_skipped_naming_them(conc, isl, decode_tp, workers):
    s = S.scenario_for_row(_row(conc, isl, decode_tp))
    assert s.status.startswith("skipped:disagg row without prefill/decode worker counts (the 2026-03-25 GLM-5")
    assert s.deployment is None
    assert f"{isl}/1024, {conc} clients, {decode_tp}-GPU decode workers): 2 recipe entries run this load" in s.status
    assert workers in s.status and "the row does not say which" in s.status


def test_a_load_in_no_entry_is_skipped():
    s = S.scenario_for_row(_row(7, 1024, 4))
    assert s.status.endswith("7 clients, 4-GPU decode workers): no recipe entry read runs this load "
                             "(validate/disagg_layouts.py)")
    # the same load on decode workers of another size than the entry's (TEP4 at 5 clients, not TEP8)
    assert "no recipe entry read runs this load" in S.scenario_for_row(_row(5, 1024, 8)).status


def test_a_single_mtp_entry_is_skipped_for_its_accept_length():
    """An MTP entry would need GLM-5's MTP accept length, which is not transcribed: skipped, not replayed with
    DeepSeek-R1's."""
    mtp = MultinodeRecipe(1024, 1024, (24,), PDPool(1, 4, 4, True, 16, 16384, 0.6),
                          PDPool(4, 8, 8, False, 32, 128, 0.9), 3)
    series = DisaggSeries(name="test", gpu="gb200", engine="trtllm", source_contains="source_file=2026-03-25.csv",
                          model_contains="glm-5", precision="fp4", recipes=(mtp,))
    recipe, reason = series.recipe(_row(24, 1024, 8), 24)
    assert recipe is None and "runs MTP 3, whose accept length for this model is not transcribed" in reason


def test_other_rows_are_not_the_series():
    """Only disagg rows of that file, GPU, engine, model and format without worker counts; others keep their path."""
    assert disagg_series(ROW) is DISAGG_SERIES[0]
    for other in ({"mode": "agg"}, {"system": "b200_sxm"}, {"backend": "sglang"}, {"precision": "fp8"},
                  {"silicon_data_source": "source_file=2026-04-06.csv; silicon_concurrency=180"},
                  {"model_path": "deepseek-ai/DeepSeek-R1"}, {"prefill_num_workers": 1, "decode_num_workers": 4}):
        assert disagg_series({**ROW, **other}) is None, other
    # a disagg row of another model without worker counts is still skipped as before
    s = S.scenario_for_row({**ROW, "model_path": "deepseek-ai/DeepSeek-R1"})
    assert s.status == f"skipped:{S.PD_LAYOUT_MISSING}"
    # with its worker counts the row replays as written (1 prefill + 1 decode worker here), not as the recipe
    s = S.scenario_for_row({**ROW, "prefill_num_workers": 1, "decode_num_workers": 1})
    assert s.status == "ok" and s.deployment["decode"]["workers"] == 1


def test_recipe_table():
    """Every prefill worker is one 4-GPU tray (TP4 EP4, attention DP) with the isl's limits; decode workers have
    EP = their GPUs and a step budget of batch x (1 + MTP); only the two MTP entries named in the docstring."""
    assert len(GB200_GLM5_DYNAMO_TRT_FP4) == 28
    for r in GB200_GLM5_DYNAMO_TRT_FP4:
        assert (r.prefill.tp, r.prefill.ep, r.prefill.dp_attn, r.prefill.memory_fraction) == (4, 4, True, 0.6)
        assert (r.prefill.max_batch_size, r.prefill.max_num_tokens) == ((16, 16384) if r.isl == 1024 else (2, 16640))
        assert r.decode.ep == r.decode.tp and r.decode.max_num_tokens == r.decode.max_batch_size * (1 + r.mtp)
        assert r.decode.dp_attn == (r.decode.workers == 1 and r.decode.tp >= 16)
    assert sorted((r.isl, r.concurrency, r.mtp) for r in GB200_GLM5_DYNAMO_TRT_FP4 if r.mtp) == [
        (1024, (1229,), 2), (1024, (2253,), 1)]


def test_the_csv_series():
    """The 22 rows of the installed aiconfigurator-core CSV: 16 replay, 6 have two recipe entries."""
    aic = pytest.importorskip("aiconfigurator_core")
    path = os.path.join(os.path.dirname(aic.__file__), "systems", "silicon_sample.csv")
    if not os.path.exists(path):
        pytest.skip("no silicon_sample.csv in this aiconfigurator-core")
    df = pd.read_csv(path)
    df = df[df["id"].astype(str).str.startswith("2026_03_25_glm_5_gb200_trtllm_fp4_disagg_")]
    assert len(df) == 22
    rows = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in df.to_dict("records")]
    assert all(disagg_series(r) is DISAGG_SERIES[0] for r in rows)
    status = [S.scenario_for_row(r).status for r in rows]
    assert sum(st == "ok" for st in status) == 16
    assert sum("2 recipe entries run this load" in st for st in status) == 6
