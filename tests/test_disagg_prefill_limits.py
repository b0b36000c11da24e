"""The prefill workers of the InferenceX disaggregated rows run their recipe's batching limits, not
``prefill_batch_size`` (AIConfigurator's static context batch of 1): validate/disagg_prefill.py."""

import pytest

from frontier_calib.validate import silicon as S
from frontier_calib.validate.disagg_prefill import PREFILL_LIMITS, prefill_limits

#: dsr1_b200_trtllm_fp4_disagg_1024x1024_c4096_cfg309 as silicon_sample.csv spells it (5.16 s TTFT, 44.9 ms TPOT)
ROW = {"id": "dsr1_b200_trtllm_fp4_disagg_1024x1024_c4096_cfg309", "backend": "trtllm", "backend_version": "0.8.1.post1",
       "system": "b200_sxm", "model_path": "deepseek-ai/DeepSeek-V3", "mode": "disagg", "precision": "fp4",
       "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "isl": 1024, "osl": 1024,
       "prefill_batch_size": 1, "prefill_num_workers": 1, "prefill_tp_size": 1, "prefill_pp_size": 1,
       "prefill_attention_dp_size": 4, "prefill_moe_tp_size": 1, "prefill_moe_ep_size": 4,
       "decode_batch_size": 512, "decode_num_workers": 1, "decode_tp_size": 1, "decode_pp_size": 1,
       "decode_attention_dp_size": 8, "decode_moe_tp_size": 1, "decode_moe_ep_size": 8,
       "silicon_ttft_ms": 5163.55, "silicon_tpot_ms": 44.93,
       "silicon_data_source": "db-dump/2026-04-27; config_id=309; silicon_concurrency=4096; "
                              "measured=2026-01-29T00:00:00.000Z; workflow_run_id=247; "
                              "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:0.8.1.post1"}


def _prefill(row):
    s = S.scenario_for_row(row)
    assert s.status == "ok", s.status
    return s, s.deployment["prefill"]


def test_inferencex_trtllm_prefill_runs_the_recipe_batch():
    """ctx1_gen1_dep8_batch512_eplb0_mtp0.yaml: max_batch_size 8, max_num_tokens 10240 per attention-DP rank,
    overlap scheduler off (before: max_batch_size 1 from prefill_batch_size, one prompt per step)."""
    s, pre = _prefill(ROW)
    sch = pre["scheduler"]
    assert (sch["max_batch_size"], sch["max_num_seqs"]) == (8, 8)
    assert (sch["max_num_tokens"], sch["max_num_batched_tokens"]) == (10240, 10240)
    assert pre["engine_options"] == {"overlap": False}
    assert any("b200_sxm trtllm fp4 isl 1024" in n for n in s.notes)
    built = S.build_deployment(s)
    assert built.prefill.scheduler.max_running == 8
    assert built.prefill.scheduler.step_token_budget == 10240
    # the decode pool is untouched: its running cap follows the clients per rank
    assert built.decode.scheduler.max_running >= 512


def test_sglang_totals_are_split_over_the_dp_ranks():
    """SGLang divides --chunked-prefill-size and --max-running-requests by the DP size under DP attention
    (gb300 fp8 max.yaml: 131072 and 30000 over 8 ranks); --max-prefill-tokens is per rank."""
    row = {**ROW, "backend": "sglang", "system": "gb300", "precision": "fp8", "backend_version": "0.5.8.post1",
           "gemm_quant_mode": "fp8_block", "moe_quant_mode": "fp8_block",
           "prefill_attention_dp_size": 8, "prefill_moe_ep_size": 8}
    lim = prefill_limits(row)
    assert lim is not None and lim.engine == "sglang"
    assert lim.scheduler_for(8) == {"chunked_prefill_size": 16384, "max_prefill_tokens": 16384, "max_num_seqs": 3750}
    assert lim.scheduler_for(1)["chunked_prefill_size"] == 131072


def test_other_harnesses_keep_prefill_batch_size():
    """A disagg row of another harness (AIConfigurator's own gap-analysis runs) keeps prefill_batch_size as the cap."""
    row = {**ROW, "silicon_data_source": "source_file=/x/aic-auto-gap-analysis/data/b200_sxm/trtllm/a.csv; "
                                         "silicon_concurrency=4096", "prefill_batch_size": 2}
    s, pre = _prefill(row)
    assert (pre["scheduler"]["max_batch_size"], pre["scheduler"]["max_num_seqs"]) == (2, 2)
    assert "engine_options" not in pre
    assert prefill_limits(row) is not None   # the family is listed; the harness decides


def test_unlisted_inferencex_family_keeps_the_engine_defaults():
    """An InferenceX row of a family with no transcribed recipe: the engine's limits, not a batch of 1."""
    row = {**ROW, "backend": "sglang", "system": "b200_sxm", "precision": "fp8", "backend_version": "0.5.8.post1",
           "gemm_quant_mode": "fp8_block", "moe_quant_mode": "fp8_block", "isl": 8192}
    assert prefill_limits(row) is None
    s, pre = _prefill(row)
    assert pre["scheduler"]["max_num_seqs"] == S.ENGINE_SCHEDULER["sglang"]["max_num_seqs"]
    assert any(n == S.PREFILL_DEFAULTS_NOTE for n in s.notes)


def test_the_recipes_are_deepseeks():
    """The transcribed recipes are DeepSeek-R1's (dsr1/): a Kimi-K2.5 row of the same GPU/engine/format keeps the
    engine's defaults."""
    kimi = {**ROW, "id": "kimik2_5_b200_trtllm_fp4_disagg", "model_path": "moonshotai/Kimi-K2.5"}
    assert prefill_limits(kimi) is None
    assert prefill_limits(ROW) is not None


def test_image_specific_entries_win():
    """GB200 on the 0.5.1-rc0.pre3 image ran nvidia-master.yaml's PREFILL_MAX_BATCH_SIZE 4 / 4608 tokens at 1k."""
    row = {**ROW, "system": "gb200", "backend_version": "0.5.1-rc0.pre3"}
    assert prefill_limits(row).scheduler["max_batch_size"] == 4
    assert prefill_limits({**row, "backend_version": "0.8.1.post2"}).scheduler["max_batch_size"] == 16


@pytest.mark.parametrize("lim", PREFILL_LIMITS, ids=lambda p: p.family)
def test_every_entry_fits_its_prompts_and_names_a_recipe(lim):
    """Each family's token budget holds at least one whole prompt of its length (TensorRT-LLM without chunked
    prefill rejects a longer prompt) and names the recipe it was read from."""
    budget = lim.scheduler.get("max_num_tokens") or lim.scheduler.get("max_prefill_tokens")
    assert budget >= lim.isl
    assert ".yaml" in lim.source or "nvidia-master.yaml" in lim.source
