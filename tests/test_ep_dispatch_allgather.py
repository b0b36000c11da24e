"""EP workers with attention DP that run no all-to-all kernels (SGLang without --moe-a2a-backend): the MoE layer
all-gathers the ranks' tokens and reduce-scatters the outputs, and its experts run the ``moe`` tables at the gathered
token count (cost/worker.py ALLGATHER; parallel.ep_dispatch; validate/disagg_decode.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from frontier_calib.cost.worker import ALLGATHER, WorkerSpec
from frontier_calib.deployment import deployment_from_dict
from frontier_calib.errors import InputError
from frontier_calib.model_spec import load_model
from frontier_calib.validate import silicon as S
from frontier_calib.validate.disagg_decode import DECODE_DISPATCH, DEEPEP, decode_dispatch

from stub_models import StubModels, stub_cost


class _NCCL:
    categories_ = {"op": ["all_gather", "reduce_scatter", "all_reduce"], "implementation": ["nccl"]}


class _DeepEPMoE:
    """A fitted moe_deepep model whose training ranges cover DeepSeek-V3's expert shape."""
    ranges_ = {"hidden_size": [7168, 7168], "inter_size": [2048, 2048], "topk": [8, 8], "moe_tp": [1, 1]}


class _Tables(StubModels):
    """DeepEP's all-to-all 1 ms a phase, NCCL all-gather and reduce-scatter 0.01 ms each, the DeepEPMoE experts
    0.1 ms per layer, the rest 0.01 ms: each path shows in the totals."""
    MS = {"moe_a2a": 1.0, "moe_deepep": 0.1}

    def __init__(self):
        super().__init__(lambda fam, df: np.full(len(df), self.MS.get(fam, 0.01)))
        self.models = {("collective", "nccl"): _NCCL(), ("moe_deepep", "fp8"): _DeepEPMoE()}

    def groups(self, family):
        return ["nccl"] if family == "collective" else []


def _cm(**kw):
    w = WorkerSpec(model=load_model("DeepSeek-V3"), gpu="b200_sxm", engine="sglang", dtype="fp8",
                   moe_dtype="fp8", kv_dtype="fp8", tp=1, attention_dp=8, ep=8, moe_tp=1, routing="balanced", **kw)
    return stub_cost(w, _Tables(), max_tokens=64, max_seqs=8)


def test_allgather_prices_nccl_gather_and_the_moe_tables_at_the_gathered_tokens():
    n = np.array([16, 128])
    deepep = _cm(a2a_backend="deepep_ll")
    assert deepep._a2a_ms(n) == pytest.approx([2.0, 2.0])            # DeepEP dispatch + combine
    assert deepep._moe_compute_ms(n) == pytest.approx([0.1, 0.1])    # DeepEPMoE tables
    gather = _cm(a2a_backend=ALLGATHER)
    assert not gather._deepep_a2a() and not gather._deepep_moe()
    assert gather._a2a_ms(n) == pytest.approx([0.02, 0.02])          # NCCL all-gather + reduce-scatter
    models = gather.models
    models.calls.clear()
    gather._moe_compute_ms(n)
    (fam, df), = [c for c in models.calls if c[0].startswith("moe")]   # the moe tables (then their bounds)
    assert fam == "moe" and list(df["num_tokens"]) == [16 * 8, 128 * 8]   # every rank's tokens
    # the all-gather's bytes: the padded tokens of all 8 ranks, bf16 hidden states
    models.calls.clear()
    gather._a2a_ms(np.array([128]))
    sizes = {float(df["message_bytes"].iloc[0]) for fam, df in models.calls if fam == "collective"}
    assert sizes == {128 * 8 * 7168 * 2.0}


def _pd(decode_parallel: dict) -> dict:
    return {"mode": "pd", "model": "DeepSeek-V3", "gpu": "b200_sxm", "engine": "sglang", "dtype": "fp8",
            "moe_dtype": "fp8_block", "kv_dtype": "fp8",
            "prefill": {"workers": 1, "parallel": {"tp": 8, "attention_dp": 1, "ep": 1, "moe_tp": 8}},
            "decode": {"workers": 1, "parallel": decode_parallel}}


def test_a_pd_decode_pool_takes_ep_dispatch_and_keeps_deepep_without_it():
    dep8 = {"tp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1}
    assert deployment_from_dict(_pd(dep8)).decode.worker.a2a_backend == "deepep_ll"   # modes/pd.py default
    built = deployment_from_dict(_pd({**dep8, "ep_dispatch": "allgather"}))
    assert built.decode.worker.a2a_backend == ALLGATHER
    assert built.prefill.worker.a2a_backend == "deepep_normal"


@pytest.mark.parametrize("par, field", [
    ({"tp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1, "ep_dispatch": "nccl"}, "decode.parallel.ep_dispatch"),
    ({"tp": 8, "attention_dp": 1, "ep": 8, "moe_tp": 1, "ep_dispatch": "allgather"}, "decode.parallel.ep_dispatch"),
    ({"tp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1, "tbo": True, "ep_dispatch": "allgather"},
     "decode.parallel.ep_dispatch"),
])
def test_bad_ep_dispatch_is_a_one_line_input_error(par, field):
    with pytest.raises(InputError) as exc:
        deployment_from_dict(_pd(par))
    assert field in str(exc.value)


#: dsr1_b200_sglang_fp8_disagg_8192x1024_c1024_cfg655 as silicon_sample.csv spells it (53.6 ms TPOT)
ROW = {"id": "dsr1_b200_sglang_fp8_disagg_8192x1024_c1024_cfg655", "backend": "sglang",
       "backend_version": "0.5.8.post1", "system": "b200_sxm", "model_path": "deepseek-ai/DeepSeek-V3",
       "mode": "disagg", "precision": "fp8", "gemm_quant_mode": "fp8_block", "moe_quant_mode": "fp8_block",
       "isl": 8192, "osl": 1024, "concurrency": 1024,
       "prefill_batch_size": 1, "prefill_num_workers": 3, "prefill_tp_size": 1, "prefill_pp_size": 1,
       "prefill_attention_dp_size": 8, "prefill_moe_tp_size": 1, "prefill_moe_ep_size": 8,
       "decode_batch_size": 128, "decode_num_workers": 1, "decode_tp_size": 1, "decode_pp_size": 1,
       "decode_attention_dp_size": 8, "decode_moe_tp_size": 1, "decode_moe_ep_size": 8,
       "silicon_ttft_ms": 11297.1, "silicon_tpot_ms": 53.58,
       "silicon_data_source": "db-dump/2026-04-27; config_id=655; silicon_concurrency=1024"}


def test_the_b200_sglang_dep8_decoders_of_the_recipes_all_gather():
    """disagg-3p1d-p-tp8-dp8-d-tp8-ep8-dp8-b1024-c1024-stp.yaml: decode with flashinfer_trtllm, no
    moe-a2a-backend."""
    s = S.scenario_for_row(ROW)
    assert s.status == "ok", s.status
    assert s.deployment["decode"]["parallel"]["ep_dispatch"] == "allgather"
    assert "ep_dispatch" not in s.deployment["prefill"]["parallel"]
    assert any("decode workers ep_dispatch allgather" in n for n in s.notes)
    assert S.build_deployment(s).decode.worker.a2a_backend == ALLGATHER


@pytest.mark.parametrize("change", [
    {"decode_tp_size": 8, "decode_attention_dp_size": 1},               # TEP8: no dispatch between DP ranks
    {"isl": 1024, "osl": 1024},                                          # B200 fp8 1k1k: no DEP recipe read
    {"system": "h200_sxm"},                                              # another GPU's recipes, not read
    {"silicon_data_source": "source_file=/x/aic-auto-gap-analysis/data/b200_sxm/sglang/a.csv"},  # not InferenceX
])
def test_other_rows_keep_the_default(change):
    s = S.scenario_for_row({**ROW, **change})
    assert s.status == "ok", s.status
    assert "ep_dispatch" not in s.deployment["decode"]["parallel"]


#: dsr1_b200_sglang_fp4_disagg_1024x1024_c512_cfg527 as silicon_sample.csv spells it (24.5 ms TPOT): one DEP4
#: prefill worker, one DEP8 decode worker (cfg532: two)
ROW_FP4_1K = {**ROW, "id": "dsr1_b200_sglang_fp4_disagg_1024x1024_c512_cfg527", "precision": "fp4",
              "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "isl": 1024, "osl": 1024, "concurrency": 512,
              "prefill_num_workers": 1, "prefill_attention_dp_size": 4, "prefill_moe_ep_size": 4,
              "decode_batch_size": 64, "silicon_ttft_ms": 7816.5, "silicon_tpot_ms": 24.49,
              "silicon_data_source": "db-dump/2026-04-27; config_id=527; silicon_concurrency=512"}


@pytest.mark.parametrize("workers", [1, 2])
def test_the_b200_fp4_1k1k_dep8_decoders_all_gather(workers):
    """NVIDIA/srt-slurm recipes/b200-fp4/1k1k.yaml zip_override_stp_maxtpt (dep4-1p-dep8-{1d,2d}): the override
    adds data-parallel-size 8 and enable-dp-attention to a decode section with flashinfer_trtllm and no
    moe-a2a-backend."""
    s = S.scenario_for_row({**ROW_FP4_1K, "decode_num_workers": workers})
    assert s.status == "ok", s.status
    assert s.deployment["decode"]["parallel"]["ep_dispatch"] == "allgather"
    assert any("decode workers ep_dispatch allgather" in n and "fp4 isl 1024" in n for n in s.notes)
    assert S.build_deployment(s).decode.worker.a2a_backend == ALLGATHER
    tep = S.scenario_for_row({**ROW_FP4_1K, "decode_tp_size": 8, "decode_attention_dp_size": 1,
                              "decode_moe_ep_size": 4, "decode_moe_tp_size": 2})   # the TEP8 rows: untouched
    assert tep.status == "ok", tep.status
    assert "ep_dispatch" not in tep.deployment["decode"]["parallel"]


def _gb_row(system, precision, isl, decode_dp, prefill_dp, config_id):
    fp4 = precision == "fp4"
    return {**ROW, "id": f"dsr1_{system}_sglang_{precision}_disagg_{isl}x1024_cfg{config_id}", "system": system,
            "backend_version": "0.5.8" if system == "gb200" and fp4 else "0.5.8.post1", "precision": precision,
            "gemm_quant_mode": "nvfp4" if fp4 else "fp8_block", "moe_quant_mode": "nvfp4" if fp4 else "fp8_block",
            "isl": isl, "concurrency": 2048, "prefill_num_workers": 2,
            "prefill_tp_size": 1 if prefill_dp > 1 else 4, "prefill_attention_dp_size": prefill_dp,
            "prefill_moe_ep_size": prefill_dp, "prefill_moe_tp_size": 1 if prefill_dp > 1 else 4,
            "decode_attention_dp_size": decode_dp, "decode_moe_ep_size": decode_dp,
            "silicon_data_source": f"db-dump/2026-04-27; config_id={config_id}; silicon_concurrency=2048"}


@pytest.mark.parametrize("system, precision, isl, decode_dp, prefill_dp, config_id, recipe", [
    ("gb200", "fp8", 1024, 8, 8, 508, "gb200-fp8/1k1k/disagg/stp/{ultra-tpt,max-tpt,mid-curve}.yaml"),
    ("gb200", "fp4", 1024, 32, 4, 483, "gb200-fp4/1k1k/disagg/stp/{mid-curve,max-tpt}.yaml"),
    ("gb200", "fp8", 8192, 32, 8, 533, "gb200-fp8/8k1k/disagg-5p1d-p-tp8-ep8-dp8-d-tp32-ep32-dp32"),
    ("gb200", "fp4", 8192, 32, 1, 489, "gb200-fp4/8k1k/disagg-10p1d-p-tp4-d-tp32-ep32-dp32-b16384-c2048-stp.yaml"),
    ("gb300", "fp8", 1024, 8, 8, 526, "gb300-fp8/1k1k/disagg/stp/{max,mid}.yaml"),
    ("gb300", "fp4", 1024, 32, 4, 576, "gb300-fp4/1k1k/disagg/stp/{mid_curve,max_tpt}.yaml"),
    ("gb300", "fp8", 8192, 32, 8, 505, "gb300-fp8/8k1k/disagg-5p1d-p-tp8-ep8-dp8-d-tp32-ep32-dp32"),
    ("gb300", "fp4", 8192, 32, 1, 575, "gb300-fp4/8k1k/disagg/stp/max_tpt.yaml"),
])
def test_the_gb200_gb300_dep_decoders_of_the_recipes_run_deepep(system, precision, isl, decode_dp, prefill_dp,
                                                                config_id, recipe):
    """Every GB200 / GB300 decode section with attention DP read sets moe-a2a-backend deepep, deepep-mode
    low_latency: the row keeps the PD pool's DeepEP low-latency pricing, with the recipe named in a note."""
    row = _gb_row(system, precision, isl, decode_dp, prefill_dp, config_id)
    d = decode_dispatch(row)
    assert d is not None and d.ep_dispatch == DEEPEP and recipe in d.source and "deepep-mode low_latency" in d.source
    s = S.scenario_for_row(row)
    assert s.status == "ok", s.status
    assert "ep_dispatch" not in s.deployment["decode"]["parallel"]
    assert any("decode workers DeepEP low-latency" in n and d.family in n for n in s.notes)
    assert not any("ep_dispatch allgather" in n for n in s.notes)
    assert S.build_deployment(s).decode.worker.a2a_backend == "deepep_ll"


def test_every_entry_names_its_recipe():
    for d in DECODE_DISPATCH:
        assert d.ep_dispatch in (ALLGATHER, DEEPEP) and "srt-slurm" in d.source and d.family in (
            f"{d.gpu} {d.engine} {d.precision} isl {d.isl}",)
        assert ("no moe-a2a-backend" in d.source) == (d.ep_dispatch == ALLGATHER)
    assert len({(d.gpu, d.engine, d.precision, d.isl) for d in DECODE_DISPATCH}) == len(DECODE_DISPATCH)
    assert decode_dispatch({**ROW, "precision": "fp4"}) is not None
    assert decode_dispatch(dataclasses.asdict(DECODE_DISPATCH[0])) is None   # not a row
