"""The aiconfigurator-core importer and the `profiles` commands, on a tiny fixture that mimics the
package's ``systems/data/<gpu>/<op>/<framework>/<version>/*.parquet`` layout (built per test in
tmp_path: no optional package needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.errors import CoverageError, FrontierError, InputError
from frontier_calib.profiles import store
from frontier_calib.profiles.importers import aiconfigurator as aic
from frontier_calib.profiles.schema import columns

GPU = "h100_sxm"
DEVICE = "NVIDIA H100 80GB HBM3"


def _meta(framework, version, op_name, kernel, n):
    return {"framework": [framework] * n, "version": [version] * n, "device": [DEVICE] * n,
            "op_name": [op_name] * n, "kernel_source": [kernel] * n}


def _write(systems: Path, rel: str, df: pd.DataFrame) -> Path:
    path = systems / "data" / GPU / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path


def gemm_source(version="0.24.0", latency_scale=1.0, dtype_bf16="bfloat16"):
    dts = [dtype_bf16, dtype_bf16, "fp8", "fp8", "int8"]
    m = [1, 4096, 16, 128, 64]
    return pd.DataFrame({**_meta("VLLM", version, "gemm", "torch.nn.functional.linear", 5),
                         "gemm_dtype": dts, "m": m, "n": [4096, 4096, 8192, 1024, 512],
                         "k": [4096, 4096, 1024, 1024, 512],
                         "latency": np.array([0.012, 0.35, 0.02, 0.015, 0.01]) * latency_scale})


def build_systems(root: Path) -> Path:
    """A miniature aiconfigurator 'systems' folder; returns its path."""
    systems = root / "systems"
    # GEMM: the newest version must win over an older one (older has 100x latencies to tell them apart)
    _write(systems, "gemm/vllm/0.24.0/gemm_perf.parquet", gemm_source())
    _write(systems, "gemm/vllm/0.14.0/gemm_perf.parquet", gemm_source("0.14.0", 100.0))
    _write(systems, "gemm/vllm/0.9.1/gemm_perf.parquet", gemm_source("0.9.1", 100.0))  # 0.9 < 0.24, not string order
    # a release beats its own release candidates
    _write(systems, "gemm/trtllm/1.3.0rc20/gemm_perf.parquet", gemm_source("1.3.0rc20", 100.0))
    _write(systems, "gemm/trtllm/1.3.0/gemm_perf.parquet", gemm_source("1.3.0"))
    # context attention, new style: step = cached prefix, window_size present
    _write(systems, "attention/vllm/0.24.0/context_attention_perf.parquet", pd.DataFrame({
        **_meta("VLLM", "0.24.0", "context_attention", "vllm_flash_attn_fa3", 3),
        "batch_size": [1, 2, 4], "isl": [1024, 2048, 512], "num_heads": [32, 32, 8],
        "num_key_value_heads": [8, 8, 8], "head_dim": [128, 128, 64], "beam_width": [1, 1, 1],
        "attn_dtype": ["bfloat16"] * 3, "kv_cache_dtype": ["bfloat16", "fp8", "bfloat16"],
        "step": [0, 512, 0], "window_size": [0, 0, 128], "latency": [0.1, 0.4, 0.05]}))
    # generation attention, old style: neither step nor window_size
    _write(systems, "attention/vllm/0.24.0/generation_attention_perf.parquet", pd.DataFrame({
        **_meta("VLLM", "0.24.0", "generation_attention", "vllm_flash_attn_fa3", 3),
        "batch_size": [1, 8, 64], "isl": [128, 4096, 1024], "num_heads": [32, 32, 64],
        "num_key_value_heads": [8, 8, 8], "head_dim": [128, 128, 128], "beam_width": [1, 1, 1],
        "attn_dtype": ["bfloat16"] * 3, "kv_cache_dtype": ["bfloat16", "bfloat16", "fp8"],
        "latency": [0.01, 0.05, 0.2]}))
    # MLA (module scope, vLLM)
    _write(systems, "mla/vllm/0.24.0/mla_context_module_perf.parquet", pd.DataFrame({
        **_meta("VLLM", "0.24.0", "mla_context_module", "FLASH_ATTN_MLA", 2),
        "model": ["deepseek-ai/DeepSeek-V3"] * 2, "architecture": ["DeepseekV3ForCausalLM"] * 2,
        "mla_dtype": ["bfloat16"] * 2, "kv_cache_dtype": ["bfloat16", "fp8"], "gemm_type": ["bfloat16", "fp8_block"],
        "num_heads": [128, 16], "batch_size": [1, 2], "isl": [256, 1024], "tp_size": [1, 8], "step": [0, 0],
        "latency": [0.34, 0.9]}))
    # MoE
    _write(systems, "moe/vllm/0.24.0/moe_perf.parquet", pd.DataFrame({
        **_meta("VLLM", "0.24.0", "moe", "vllm_fp8moe_triton", 3),
        "moe_dtype": ["fp8_block", "bfloat16", "bfloat16"], "num_tokens": [1, 64, 1024],
        "hidden_size": [7168, 4096, 4096], "inter_size": [2048, 1536, 1536], "topk": [8, 8, 8],
        "num_experts": [256, 128, 128], "moe_tp_size": [1, 1, 2], "moe_ep_size": [8, 1, 1],
        "distribution": ["balanced", "power_law_1.01", "balanced"], "latency": [0.08, 0.2, 0.9]}))
    # NCCL: an old table without a version column, and the newest one (message sizes are ELEMENT counts)
    _write(systems, "comm/nccl/2.23/nccl_perf.parquet", pd.DataFrame({
        "nccl_dtype": ["half"], "num_gpus": [2], "message_size": [1024], "kernel_source": ["NCCL"],
        "op_name": ["all_gather"], "latency": [9.9]}))
    _write(systems, "comm/nccl/2.29.2/nccl_perf.parquet", pd.DataFrame({
        **_meta("TRTLLM", "2.29.2", "x", "NCCL", 4),
        "op_name": ["all_reduce", "all_gather", "alltoall", "reduce_scatter"],
        "nccl_dtype": ["half", "half", "int8", "half"], "num_gpus": [2, 4, 8, 8],
        "message_size": [1024, 4096, 1000, 3], "latency": [0.006, 0.01, 0.02, 0.005]}))
    # engine custom all-reduce: graph and eager backends; an older version folder is ignored
    car = pd.DataFrame({
        **_meta("vLLM", "0.24.0", "all_reduce", "vLLM_custom_graph", 3),
        "allreduce_dtype": ["bfloat16"] * 3, "num_gpus": [2, 2, 8], "message_size": [128, 128, 65536],
        "latency": [0.0043, 0.0206, 0.02], "backend": ["vllm_graph", "vllm_eager", "vllm_graph"]})
    _write(systems, "comm/vllm/0.24.0/custom_allreduce_perf.parquet", car)
    _write(systems, "comm/vllm/0.19.0/custom_allreduce_perf.parquet", car.assign(latency=car["latency"] * 100))
    # MoE all-to-all (DeepEP) in MICROseconds, several SM settings per shape, one unsupported backend
    _write(systems, "comm/vllm/0.24.0/moe_a2a_perf.parquet", pd.DataFrame({
        **_meta("vLLM", "0.24.0", "moe_a2a", "deepep", 5),
        "comm_backend": ["deepep_ht", "deepep_ht", "deepep_ll", "deepep_ll", "pplx"],
        "phase": ["dispatch", "dispatch", "combine", "combine", "dispatch"], "comm_dtype": ["default"] * 5,
        "ep_size": [8] * 5, "node_num": [1] * 5, "hidden_size": [7168] * 5, "topk": [8] * 5,
        "num_experts": [256] * 5, "num_tokens": [128, 128, 16, 32, 128], "sms": [20, 24, 0, 0, 20],
        "transmit_us": [80.0, 60.0, 12.0, 14.0, 1.0], "notify_us": [0.0] * 5,
        "latency": [80.0, 60.0, 12.0, 14.0, 1.0]}))
    # SGLang wide-EP DeepEP tables: one row holds dispatch AND combine, in microseconds
    _write(systems, "comm/sglang/0.5.12/wideep_deepep_normal_perf.parquet", pd.DataFrame({
        **_meta("sglang", "0.5.12", "normal", "deepep", 3),
        "node_num": [1, 1, 2], "hidden_size": [7168] * 3, "num_token": [64, 64, 64], "num_topk": [8] * 3,
        "num_experts": [256] * 3, "dispatch_sms": [20, 24, 20], "dispatch_transmit_us": [40.0, 30.0, 90.0],
        "dispatch_notify_us": [5.0, 6.0, 10.0], "combine_sms": [20, 24, 20],
        "combine_transmit_us": [50.0, 45.0, 120.0], "combine_notify_us": [0.0, 0.0, 0.0]}))
    _write(systems, "comm/sglang/0.5.12/wideep_deepep_ll_perf.parquet", pd.DataFrame({
        **_meta("sglang", "0.5.12", "ll", "deepep", 2),
        "node_num": [1, 1], "hidden_size": [7168, 7168], "num_token": [1, 128], "num_topk": [8, 8],
        "num_experts": [256, 256], "combine_avg_t_us": [12.0, 40.0], "combine_bandwidth_gbps": [2.0, 9.0],
        "dispatch_avg_t_us": [16.0, 30.0], "dispatch_bandwidth_gbps": [1.0, 8.0]}))
    # a table the importer does not know must be ignored
    _write(systems, "encoder_attention/vllm/0.24.0/encoder_attention_perf.parquet", pd.DataFrame({"latency": [1.0]}))
    return systems


@pytest.fixture()
def systems(tmp_path):
    return build_systems(tmp_path)


def _by_key(tables):
    return {(t.engine, t.family): t for t in tables}


# ----------------------------------------------------------------------------- conversion

def test_fixture_is_small(systems):
    size = sum(p.stat().st_size for p in systems.rglob("*.parquet"))
    assert size < 200_000


def test_every_table_is_canonical_and_provenance_is_recorded(systems):
    tables = aic.import_gpu(GPU, source=systems)
    got = _by_key(tables)
    assert set(got) == {
        ("vllm", "gemm"), ("trtllm", "gemm"), ("vllm", "attention_prefill"), ("vllm", "attention_decode"),
        ("vllm", "mla_prefill"), ("vllm", "moe"), ("any", "collective"), ("vllm", "collective"),
        ("vllm", "moe_a2a"), ("sglang", "moe_a2a")}
    for t in tables:
        assert t.gpu == GPU
        assert list(t.frame.columns) == columns(t.family)
        # idempotent under the schema check
        pd.testing.assert_frame_equal(t.frame, aic.validate_table(t.frame, t.family))
        assert all(s.startswith(f"data/{GPU}/") and s.endswith(".parquet") for s in t.sources)


def test_gemm_newest_version_and_dtype_filter(systems):
    got = _by_key(aic.import_gpu(GPU, source=systems, dtypes={"bf16", "fp8"}))
    g = got[("vllm", "gemm")]
    assert g.sources == [f"data/{GPU}/gemm/vllm/0.24.0/gemm_perf.parquet"]
    assert set(g.frame["engine_version"]) == {"0.24.0"}
    assert g.frame["latency_ms"].max() < 1.0          # not the 100x older tables
    assert set(g.frame["dtype"]) == {"bf16", "fp8"}   # bfloat16 -> bf16; int8 dropped by the filter
    assert len(g.frame) == 4
    t = got[("trtllm", "gemm")]
    assert t.sources == [f"data/{GPU}/gemm/trtllm/1.3.0/gemm_perf.parquet"]  # release > its rc
    everything = _by_key(aic.import_gpu(GPU, source=systems, families={"gemm"}))
    assert set(everything[("vllm", "gemm")].frame["dtype"]) == {"bf16", "fp8", "int8"}  # no filter: all kept


def test_version_ordering():
    names = ["1.3.0", "0.5.6.post2", "1.3.0rc23", "0.5.10", "1.3.0rc5", "0.5.6", "2.29.2", "2.3", "1.3.0.post1"]
    assert sorted(names, key=aic._version_key) == [
        "0.5.6", "0.5.6.post2", "0.5.10", "1.3.0rc5", "1.3.0rc23", "1.3.0", "1.3.0.post1", "2.3", "2.29.2"]


def test_attention_new_and_old_style(systems):
    got = _by_key(aic.import_gpu(GPU, source=systems, families={"attention_prefill", "attention_decode"}))
    pre = got[("vllm", "attention_prefill")].frame
    assert list(pre["q_len"]) == [1024, 2048, 512]
    assert list(pre["kv_len"]) == [1024, 2560, 512]     # isl + step (cached prefix)
    assert list(pre["window"]) == [0, 0, 128]
    assert list(pre["kv_dtype"]) == ["bf16", "fp8", "bf16"] and set(pre["dtype"]) == {"bf16"}
    dec = got[("vllm", "attention_decode")].frame        # old table: no step, no window_size
    assert list(dec["kv_len"]) == [128, 4096, 1024]
    assert list(dec["window"]) == [0, 0, 0]
    assert list(dec["num_kv_heads"]) == [8, 8, 8]


def test_mla_module_table(systems):
    mla = _by_key(aic.import_gpu(GPU, source=systems, families={"mla_prefill"}))[("vllm", "mla_prefill")].frame
    assert set(mla["scope"]) == {"module"}
    assert list(mla["dtype"]) == ["bf16", "fp8_block"]  # the projections' GEMM format (gemm_type)
    assert list(mla["kv_len"]) == list(mla["q_len"]) == [256, 1024]


def test_moe(systems):
    moe = _by_key(aic.import_gpu(GPU, source=systems, families={"moe"}))[("vllm", "moe")].frame
    assert list(moe["dtype"]) == ["fp8_block", "bf16", "bf16"]
    assert list(moe["moe_tp"]) == [1, 1, 2] and list(moe["moe_ep"]) == [8, 1, 1]
    assert list(moe["distribution"]) == ["balanced", "power_law_1.01", "balanced"]


def _moe_source(version, dtypes, latency):
    n = len(dtypes)
    return pd.DataFrame({
        **_meta("TRTLLM", version, "moe", "moe_torch_flow", n), "moe_dtype": dtypes,
        "num_tokens": [1] * n, "hidden_size": [4096] * n, "inter_size": [1536] * n, "topk": [8] * n,
        "num_experts": [128] * n, "moe_tp_size": [1] * n, "moe_ep_size": [1] * n,
        "distribution": ["balanced"] * n, "latency": [latency] * n})


def test_moe_dtypes_missing_from_newest_version_are_filled_from_older(tmp_path):
    """TensorRT-LLM's newest MoE folder lacks fp8_block/mxfp4: those dtypes come from the newest older folder
    that has them; a dtype the newest folder has is never mixed with older rows."""
    systems = tmp_path / "systems"
    _write(systems, "moe/trtllm/1.3.0rc23/moe_perf.parquet", _moe_source("1.3.0rc23", ["bfloat16", "fp8"], 0.1))
    _write(systems, "moe/trtllm/1.3.0rc20/moe_perf.parquet",
           _moe_source("1.3.0rc20", ["bfloat16", "fp8", "fp8_block", "w4a16_mxfp4"], 0.2))
    _write(systems, "moe/trtllm/1.3.0rc10/moe_perf.parquet",
           _moe_source("1.3.0rc10", ["fp8_block", "w4a16_mxfp4", "int8"], 0.3))
    tables = aic.import_gpu(GPU, source=systems, families={"moe"}, dtypes={"bf16", "fp8", "fp8_block", "mxfp4"})
    t = _by_key(tables)[("trtllm", "moe")]
    f = t.frame
    assert sorted(f["dtype"]) == ["bf16", "fp8", "fp8_block", "mxfp4"]           # one row per dtype: no mixing
    ver = dict(zip(f["dtype"], f["engine_version"]))
    assert ver == {"bf16": "1.3.0rc23", "fp8": "1.3.0rc23", "fp8_block": "1.3.0rc20", "mxfp4": "1.3.0rc20"}
    assert t.sources == [f"data/{GPU}/moe/trtllm/1.3.0rc23/moe_perf.parquet",
                         f"data/{GPU}/moe/trtllm/1.3.0rc20/moe_perf.parquet"]   # rc10 adds nothing kept
    assert t.filled_dtypes == {"fp8_block": f"data/{GPU}/moe/trtllm/1.3.0rc20/moe_perf.parquet",
                               "mxfp4": f"data/{GPU}/moe/trtllm/1.3.0rc20/moe_perf.parquet"}
    # without the dtype filter, int8 exists only in rc10 and is filled from there
    t = _by_key(aic.import_gpu(GPU, source=systems, families={"moe"}))[("trtllm", "moe")]
    assert t.filled_dtypes["int8"].endswith("1.3.0rc10/moe_perf.parquet")
    # the manifest records the filled dtypes
    out = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["profiles", "import", "aiconfigurator", "--gpu", GPU, "--engine", "trtllm",
                                       "--source", str(systems), "--out", str(out)])
    assert result.exit_code == 0, result.output
    (e,) = [e for e in json.loads((out / "manifest.json").read_text())["tables"] if e["family"] == "moe"]
    assert set(e["filled_dtypes"]) == {"fp8_block", "mxfp4"} and len(e["source_files"]) == 2


def test_nccl_element_counts_become_bytes(systems):
    col = _by_key(aic.import_gpu(GPU, source=systems, families={"collective"}))
    nccl = col[("any", "collective")]
    assert nccl.sources == [f"data/{GPU}/comm/nccl/2.29.2/nccl_perf.parquet"]
    f = nccl.frame
    assert list(f["op"]) == ["all_reduce", "all_gather", "all_to_all", "reduce_scatter"]
    assert list(f["dtype"]) == ["fp16", "fp16", "int8", "fp16"]
    assert list(f["message_bytes"]) == [2048, 8192, 1000, 6]   # half: 2 bytes, int8: 1 byte per element
    assert set(f["implementation"]) == {"nccl"} and set(f["engine"]) == {"any"}
    assert f["latency_ms"].max() < 1.0


def test_custom_allreduce(systems):
    f = _by_key(aic.import_gpu(GPU, source=systems, families={"collective"}))[("vllm", "collective")].frame
    assert list(f["implementation"]) == ["custom", "custom_eager", "custom"]
    assert list(f["message_bytes"]) == [256, 256, 131072]
    assert set(f["op"]) == {"all_reduce"} and set(f["engine_version"]) == {"0.24.0"}
    assert f["latency_ms"].max() < 0.1   # the newest folder, not the 100x older one


def test_moe_a2a_microseconds_become_ms_and_best_sm_setting_is_kept(systems):
    f = _by_key(aic.import_gpu(GPU, source=systems, families={"moe_a2a"}))[("vllm", "moe_a2a")].frame
    f = f.sort_values(["backend", "num_tokens"]).reset_index(drop=True)
    assert list(f["backend"]) == ["deepep_ll", "deepep_ll", "deepep_normal"]   # 'pplx' is not imported
    assert list(f["phase"]) == ["combine", "combine", "dispatch"]
    np.testing.assert_allclose(f["latency_ms"], [0.012, 0.014, 0.060])        # min over SM settings, in ms
    assert list(f["num_nodes"]) == [1, 1, 1] and list(f["ep_size"]) == [8, 8, 8]


def test_sglang_deepep_wide_tables(systems):
    f = _by_key(aic.import_gpu(GPU, source=systems, families={"moe_a2a"}))[("sglang", "moe_a2a")].frame
    assert len(f) == 8  # normal: 2 shapes x 2 phases; ll: 2 shapes x 2 phases
    normal = f[f["backend"] == "deepep_normal"].set_index(["phase", "num_nodes"])["latency_ms"]
    # transmit + notify, fastest SM setting, microseconds -> ms
    assert normal[("dispatch", 1)] == pytest.approx(0.036)
    assert normal[("combine", 1)] == pytest.approx(0.045)
    assert normal[("dispatch", 2)] == pytest.approx(0.100)
    ll = f[f["backend"] == "deepep_ll"].set_index(["phase", "num_tokens"])["latency_ms"]
    assert ll[("dispatch", 1)] == pytest.approx(0.016) and ll[("combine", 128)] == pytest.approx(0.040)
    assert set(f.loc[f["num_nodes"] == 2, "ep_size"]) == {16}
    assert set(f["topk"]) == {8} and set(f["hidden_size"]) == {7168}


def test_engine_selection(systems):
    got = _by_key(aic.import_gpu(GPU, source=systems, engines=("trtllm",)))
    assert set(got) == {("trtllm", "gemm"), ("any", "collective")}  # NCCL is engine-independent


# ----------------------------------------------------------------------------- source problems

def test_unknown_dtype_in_source_names_the_file(systems):
    path = _write(systems, "gemm/vllm/0.24.0/gemm_perf.parquet", gemm_source(dtype_bf16="float7"))
    with pytest.raises(InputError) as info:
        aic.import_gpu(GPU, source=systems)
    msg = str(info.value)
    assert str(path) in msg and "float7" in msg and "'dtype'" in msg


def test_unknown_dtype_in_nccl_source_names_the_file(systems):
    path = systems / "data" / GPU / "comm/nccl/2.29.2/nccl_perf.parquet"
    df = pd.read_parquet(path)
    df.loc[0, "nccl_dtype"] = "float7"
    df.to_parquet(path, index=False)
    with pytest.raises(InputError) as info:
        aic.import_gpu(GPU, source=systems, families={"collective"})
    assert str(path) in str(info.value) and "float7" in str(info.value)


def test_source_lacking_a_column_names_the_file_and_column(systems):
    path = _write(systems, "moe/vllm/0.24.0/moe_perf.parquet",
                  pd.DataFrame({**_meta("VLLM", "0.24.0", "moe", "k", 1), "moe_dtype": ["bfloat16"],
                                "num_tokens": [1], "latency": [0.1]}))
    with pytest.raises(InputError, match="lacks column 'hidden_size'") as info:
        aic.import_gpu(GPU, source=systems, families={"moe"})
    assert str(path) in str(info.value)


def test_non_positive_latency_in_source_names_the_file(systems):
    path = _write(systems, "gemm/vllm/0.24.0/gemm_perf.parquet", gemm_source(latency_scale=-1.0))
    with pytest.raises(InputError) as info:
        aic.import_gpu(GPU, source=systems)
    assert str(path) in str(info.value) and "'latency_ms'" in str(info.value)


def test_unknown_gpu_and_bad_source_folder(systems, tmp_path):
    with pytest.raises(CoverageError, match="has: h100_sxm"):
        aic.import_gpu("b300_sxm", source=systems)
    with pytest.raises(InputError, match="not an aiconfigurator systems folder"):
        aic.import_gpu(GPU, source=tmp_path / "nowhere")
    assert aic.find_systems_dir(systems / "data") == systems  # the data/ folder itself is accepted


def test_without_the_optional_package_the_message_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)  # import now raises ImportError
    with pytest.raises(FrontierError, match=r"pip install -e \.\[public-data\]"):
        aic.find_systems_dir(None)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["profiles", "import", "aiconfigurator", "--gpu", GPU, "--out", str(out)])
    assert result.exit_code == 2 and "public-data" in result.output and "Traceback" not in result.output
    assert not out.exists()


# ----------------------------------------------------------------------------- commands

def test_import_command_writes_tables_manifest_and_notice(systems, tmp_path):
    out = tmp_path / "bundle"
    runner = CliRunner()
    result = runner.invoke(main, ["profiles", "import", "aiconfigurator", "--gpu", GPU,
                                  "--source", str(systems), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 10 tables" in result.output
    assert (out / "NOTICE").read_text().strip() == aic.LICENSE_NOTICE
    man = json.loads((out / "manifest.json").read_text())
    assert man["notice"] == aic.LICENSE_NOTICE
    assert len(man["tables"]) == 10
    for e in man["tables"]:
        path = out / e["path"]
        assert path == out / e["gpu"] / e["engine"] / f"{e['family']}.parquet"
        df = store.read_table(path, e["family"])
        assert e["rows"] == len(df) and e["sha256"] == store.file_sha256(path)
        assert e["source_package"] == "aiconfigurator-core" and e["source_files"]
    gemm = store.load_family("gemm", GPU, "vllm", out)
    assert set(gemm["dtype"]) == {"bf16", "fp8"}  # default --dtype list drops int8
    # engine-independent NCCL rows join the engine's own collective table
    coll = store.load_family("collective", GPU, "vllm", out)
    assert set(coll["implementation"]) == {"nccl", "custom", "custom_eager"}
    # leaves no temporary files behind
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]

    # re-import of one engine keeps the other manifest entries
    result = runner.invoke(main, ["profiles", "import", "aiconfigurator", "--gpu", GPU, "--engine", "trtllm",
                                  "--source", str(systems), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(json.loads((out / "manifest.json").read_text())["tables"]) == 10


def test_import_command_with_bad_source_exits_2_and_writes_nothing(systems, tmp_path):
    _write(systems, "gemm/vllm/0.24.0/gemm_perf.parquet", gemm_source(dtype_bf16="float7"))
    out = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["profiles", "import", "aiconfigurator", "--gpu", GPU,
                                       "--source", str(systems), "--out", str(out)])
    assert result.exit_code == 2
    assert "gemm_perf.parquet" in result.output and "float7" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # converted everything first, so nothing half-written


@pytest.fixture()
def imported(systems, tmp_path):
    out = tmp_path / "bundle"
    result = CliRunner().invoke(main, ["profiles", "import", "aiconfigurator", "--gpu", GPU,
                                       "--source", str(systems), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_profiles_list_prints_coverage(imported):
    result = CliRunner().invoke(main, ["profiles", "list", "--root", str(imported)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert str(imported) in lines[0]
    row = next(line.split() for line in lines if " gemm " in f" {line} " and "trtllm" not in line)
    assert row == [GPU, "vllm", "gemm", "bf16,fp8", "4"]
    pre = next(line.split() for line in lines if "attention_prefill" in line)
    assert pre == [GPU, "vllm", "attention_prefill", "bf16,fp8", "3"]  # grouped by kv_dtype
    assert any("moe_a2a" in line and "sglang" in line for line in lines)


def test_profiles_show_prints_shape_ranges_and_kernels(imported):
    result = CliRunner().invoke(main, ["profiles", "show", "--gpu", GPU, "--engine", "vllm",
                                       "--root", str(imported)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "== gemm (4 rows)" in out
    assert "[dtype=bf16] 2 rows; kernels: torch.nn.functional.linear (2)" in out
    assert "m: 1 .. 4096 (2 distinct)" in out
    assert "== collective (7 rows)" in out      # 4 NCCL + 3 custom
    assert "== moe_a2a" in out and "== mla_prefill" in out
    one = CliRunner().invoke(main, ["profiles", "show", "--gpu", GPU, "--engine", "vllm", "--family", "moe",
                                    "--root", str(imported)])
    assert one.exit_code == 0 and "== moe (3 rows)" in one.output and "== gemm" not in one.output


def test_profiles_list_and_show_on_empty_or_uncovered_root(tmp_path, imported):
    empty = CliRunner().invoke(main, ["profiles", "list", "--root", str(tmp_path / "none")])
    assert empty.exit_code != 0 and "no profile tables" in empty.output
    none = CliRunner().invoke(main, ["profiles", "show", "--gpu", "a100_sxm", "--engine", "vllm",
                                     "--root", str(imported)])
    assert none.exit_code == 2 and "unknown GPU 'a100_sxm' in the profile tables" in none.output
    assert f"known: {GPU}" in none.output
    missing = CliRunner().invoke(main, ["profiles", "show", "--gpu", GPU, "--engine", "sglang",
                                        "--family", "gemm", "--root", str(imported)])
    assert missing.exit_code == 2 and "no 'gemm' profile table" in missing.output
    assert "Traceback" not in missing.output


def test_profiles_list_names_a_malformed_file(imported):
    path = imported / GPU / "vllm" / "moe.parquet"
    pd.read_parquet(path).drop(columns="topk").to_parquet(path, index=False)
    result = CliRunner().invoke(main, ["profiles", "list", "--root", str(imported)])
    assert result.exit_code == 2
    assert str(path) in result.output and "'topk'" in result.output and "Traceback" not in result.output
