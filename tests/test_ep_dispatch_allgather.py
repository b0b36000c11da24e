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
from frontier_calib.validate.disagg_decode import DECODE_DISPATCH, decode_dispatch

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
    {"isl": 1024, "precision": "fp4"},                                   # 1k1k recipe not read: the default
    {"system": "gb200"},                                                 # another GPU's recipes
    {"silicon_data_source": "source_file=/x/aic-auto-gap-analysis/data/b200_sxm/sglang/a.csv"},  # not InferenceX
])
def test_other_rows_keep_the_default(change):
    s = S.scenario_for_row({**ROW, **change})
    assert s.status == "ok", s.status
    assert "ep_dispatch" not in s.deployment["decode"]["parallel"]


def test_every_entry_names_its_recipe():
    for d in DECODE_DISPATCH:
        assert d.ep_dispatch == ALLGATHER and "srt-slurm-recipes" in d.source and d.family in (
            f"{d.gpu} {d.engine} {d.precision} isl {d.isl}",)
    assert decode_dispatch({**ROW, "precision": "fp4"}) is not None
    assert decode_dispatch(dataclasses.asdict(DECODE_DISPATCH[0])) is None   # not a row
