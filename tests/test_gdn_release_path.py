"""SGLang releases before 0.5.10 run Qwen3.5's gated-DeltaNet layer unfused (frontier_calib/attention/gdn.py): four
input-projection GEMMs instead of two, and in decode three contiguous copies of q, k, v, two gating kernels and the
gated norm around the packed recurrent kernel the tables time. The release reaches the cost model as
``engine_options.version`` (``WorkerSpec.engine_version``); the cost tables are keyed by the code path, not the
release number."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from frontier_calib.attention import QueryContext, get_kind
from frontier_calib.attention.gdn import release_path, untimed_ms
from frontier_calib.cost.cache import worker_fields
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.deployment import deployment_from_dict
from frontier_calib.errors import InputError
from frontier_calib.model_spec import load_model
from stub_models import StubModels, stub_cost

QWEN35 = "Qwen/Qwen3.5-397B-A17B"


def _worker(version=None, engine="sglang", model=QWEN35):
    return WorkerSpec(model=load_model(model), gpu="h200_sxm", engine=engine, tp=8, ep=8, engine_version=version)


def test_release_path_is_unfused_before_sglang_0_5_10_only():
    assert release_path(_worker("0.5.9")) == "unfused"
    assert release_path(_worker("0.5.8.post1")) == "unfused"
    for version in ("0.5.10", "0.5.10.post1", "0.5.14", None, "nightly-dev-20260216-d3bae71e"):
        assert release_path(_worker(version)) == "", version
    assert release_path(_worker("0.5.9", engine="vllm")) == ""   # vLLM's GDN layer is not SGLang's
    assert get_kind("gqa").release_path(_worker("0.5.9")) == ""  # other kinds have one path


def test_unfused_projections_are_qwen35s_four_gemms():
    """Qwen3.5-397B at TP8: key dim 16 x 128 / 8 = 256, value dim 64 x 128 / 8 = 1,024, 8 value heads per GPU,
    hidden 4,096."""
    m, gdn = load_model(QWEN35), get_kind("gdn")
    shapes = lambda path: [(g.name, g.n, g.k) for g in gdn.projection_gemms(m, 8, path)]   # noqa: E731
    assert shapes("") == [("in_proj_qkvz", 2560, 4096), ("in_proj_ba", 16, 4096), ("out_proj", 4096, 1024)]
    assert shapes("unfused") == [("in_proj_qkv", 1536, 4096), ("in_proj_z", 1024, 4096), ("in_proj_b", 8, 4096),
                                 ("in_proj_a", 8, 4096), ("out_proj", 4096, 1024)]


def test_unfused_decode_kernels_hand_computed():
    """Per layer, 64 sequences on H200 (4.8e12 B/s): 6 launches of 3 us plus per token the q, k, v copies read and
    written (2 x (2 x 256 + 1,024) x 2 B = 6,144 B), the gating (a, b in bf16 and g, beta out in fp32: 2 x 8 x 2 +
    2 x 8 x 4 = 96 B) and the gated norm (3 x 1,024 x 2 B = 6,144 B): 12,384 B per token. The fused path: 2 launches
    and the split (2 x (2 x 256 + 2 x 1,024 + 2 x 8) x 2 = 10,304 B) plus the norm (6,144 B): 16,448 B."""
    kv = np.array([100.0])
    unfused = untimed_ms(QueryContext(_worker("0.5.9"), 0, None), "decode", np.array([64]), kv)
    fused = untimed_ms(QueryContext(_worker(None), 0, None), "decode", np.array([64]), kv)
    assert unfused[0] == pytest.approx(6 * 0.003 + 64 * 12384 / 4.8e12 * 1e3, rel=1e-12)
    assert fused[0] == pytest.approx(2 * 0.003 + 64 * 16448 / 4.8e12 * 1e3, rel=1e-12)
    # prefill keeps its kernels on both paths (only decode changed between the releases)
    pre = [untimed_ms(QueryContext(_worker(v), 0, None), "prefill", np.array([1024]), kv)[0] for v in ("0.5.9", None)]
    assert pre[0] == pre[1]


def test_a_0_5_9_decode_step_pays_45_layers_of_the_unfused_path():
    """With every kernel at 0.01 ms, a decode step of 4 sequences on SGLang 0.5.9 costs, per GDN layer (45 of
    Qwen3.5's 60), two projection GEMMs more (0.02 ms) and the unfused decode kernels' difference over the fused
    ones: 45 x (0.02 + 4 x 0.003 ms + 4 x (12,384 - 16,448) B / 4.8e12 B/s)."""
    fn = lambda fam, df: np.full(len(df), 0.01)   # noqa: E731
    old, new = (stub_cost(_worker(v), StubModels(fn)) for v in ("0.5.9", "0.5.14"))
    tok_old, head_old, att_old = old.decode_kernel_ms(4, [4000.0])
    tok_new, head_new, att_new = new.decode_kernel_ms(4, [4000.0])
    per_layer_untimed = 4 * 0.003 + 4 * (12384 - 16448) / 4.8e12 * 1e3
    assert tok_old - tok_new == pytest.approx(45 * 0.02, rel=1e-6)
    assert head_old == head_new
    assert att_old[0] - att_new[0] == pytest.approx(45 * per_layer_untimed, rel=1e-3)


def test_tables_are_keyed_by_the_code_path_not_the_release():
    """Workers whose releases run the same code paths share their cost tables (every release, for a model without
    linear attention); Qwen3.5 on 0.5.9 and on 0.5.10 do not."""
    dense = "Qwen/Qwen3-235B-A22B"
    assert worker_fields(_worker("0.5.9", model=dense)) == worker_fields(_worker(None, model=dense))
    assert worker_fields(_worker("0.5.10")) == worker_fields(_worker("0.5.14")) == worker_fields(_worker(None))
    assert worker_fields(_worker("0.5.9")) != worker_fields(_worker("0.5.10"))


def _deployment(**options):
    return {"model": QWEN35, "gpu": "h200_sxm", "engine": "sglang", "dtype": "fp8", "moe_dtype": "fp8_block",
            "kv_dtype": "fp8", "parallel": {"tp": 8, "ep": 8},
            "scheduler": {"max_num_seqs": 64, "max_model_len": 16384}, "engine_options": options}


def test_engine_options_version_reaches_the_worker():
    dep = deployment_from_dict(_deployment(version="0.5.9"), source="d.yaml")
    assert dep.worker.engine_version == "0.5.9"
    assert deployment_from_dict(_deployment(), source="d.yaml").worker.engine_version is None
    for bad in (0.6, "nightly", True):
        with pytest.raises(InputError, match="engine_options.version") as err:
            deployment_from_dict(_deployment(version=bad), source="d.yaml")
        assert "d.yaml" in str(err.value)


def test_silicon_rows_carry_their_release():
    """A silicon row's backend_version becomes engine_options.version (a numbered release only), beside the
    overlap the version decides."""
    from frontier_calib.validate import silicon as S

    row = {"id": "r", "silicon_data_source": "source_file=2026-03-25.csv; silicon_concurrency=8", "mode": "agg",
           "isl": 1024, "osl": 1024, "pp_size": 1, "attention_dp_size": 1, "system": "h200_sxm",
           "backend": "sglang", "model_path": QWEN35, "tp_size": 8, "moe_tp_size": 1, "moe_ep_size": 8,
           "precision": "fp8", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8_block", "backend_version": "0.5.9"}
    scn = S.scenario_for_row(row)
    assert scn.status == "ok" and scn.deployment["engine_options"]["version"] == "0.5.9"
    assert S.build_deployment(scn).worker.engine_version == "0.5.9"
    nightly = S.scenario_for_row({**row, "backend_version": "nightly-dev-20260216-d3bae71e"})
    assert "version" not in nightly.deployment.get("engine_options", {})
    old_vllm = S.scenario_for_row({**row, "backend": "vllm", "backend_version": "0.10.1"})
    assert old_vllm.deployment["engine_options"] == {"version": "0.10.1", "overlap": False}


def test_worker_engine_version_defaults_to_none():
    w = WorkerSpec(model=load_model(QWEN35), gpu="h200_sxm", engine="sglang")
    assert w.engine_version is None and dataclasses.replace(w, engine_version="0.5.9").engine_version == "0.5.9"
