"""Tables on first use: a GPU whose tables are not bundled is imported from the public-data extra into the user
data folder the first time it is asked for (here from a tiny fake aiconfigurator ``systems`` folder in tmp_path;
no optional package, no network). Also the Blackwell formats (NVFP4, MXFP4 w4a8) that those tables carry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.deployment import deployment_from_dict
from frontier_calib.dtypes import DTYPE_BYTES, activation_bytes, normalize_dtype
from frontier_calib.errors import CoverageError, FrontierError, InputError
from frontier_calib.hardware import get_gpu
from frontier_calib.opmodel import registry
from frontier_calib.profiles import first_use, store
from frontier_calib.profiles.importers import aiconfigurator as aic

GPU = "b200_sxm"


def _gemm(version: str, scale: float = 1.0) -> pd.DataFrame:
    dts = ["bfloat16", "fp8", "nvfp4", "nvfp4"]
    n = len(dts)
    return pd.DataFrame({"framework": ["VLLM"] * n, "version": [version] * n, "device": ["NVIDIA B200"] * n,
                         "op_name": ["gemm"] * n, "kernel_source": ["cutlass"] * n, "gemm_dtype": dts,
                         "m": [1, 16, 128, 4096], "n": [4096] * n, "k": [4096] * n,
                         "latency": np.array([0.01, 0.008, 0.006, 0.09]) * scale})


def _moe(version: str) -> pd.DataFrame:
    dts = ["bfloat16", "nvfp4", "w4a8_mxfp4_mxfp8", "w4a16_mxfp4"]
    n = len(dts)
    return pd.DataFrame({"framework": ["VLLM"] * n, "version": [version] * n, "device": ["NVIDIA B200"] * n,
                         "op_name": ["moe"] * n, "kernel_source": ["cutlass_moe"] * n, "moe_dtype": dts,
                         "num_tokens": [64] * n, "hidden_size": [2880] * n, "inter_size": [2880] * n,
                         "topk": [4] * n, "num_experts": [128] * n, "moe_tp_size": [1] * n, "moe_ep_size": [1] * n,
                         "distribution": ["balanced"] * n, "latency": [0.5, 0.2, 0.25, 0.3]})


def _write(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)


@pytest.fixture()
def systems(tmp_path) -> Path:
    """A fake aiconfigurator 'systems' folder holding b200_sxm GEMM and MoE tables for vLLM."""
    root = tmp_path / "systems"
    _write(root / "data" / GPU / "gemm" / "vllm" / "0.24.0" / "gemm_perf.parquet", _gemm("0.24.0"))
    _write(root / "data" / GPU / "moe" / "vllm" / "0.24.0" / "moe_perf.parquet", _moe("0.24.0"))
    return root


@pytest.fixture()
def folders(tmp_path, monkeypatch, systems):
    """An empty bundle, an empty user data folder, and the fake source as the 'installed' package."""
    bundle, data = tmp_path / "bundle", tmp_path / "data"
    bundle.mkdir()
    monkeypatch.setenv("FRONTIER_CALIB_PROFILES", str(bundle))
    monkeypatch.setenv("FRONTIER_CALIB_DATA", str(data))
    monkeypatch.setattr(aic, "find_systems_dir", lambda source=None: systems)
    return bundle, data


def test_first_use_imports_into_the_user_data_folder(folders):
    bundle, data = folders
    assert not store.has_engine_tables(GPU, "vllm")
    tables = registry.load_profiles(GPU, "vllm")
    assert set(tables) == {"gemm", "moe"}
    assert (data / GPU / "vllm" / "gemm.parquet").is_file() and (data / GPU / "vllm" / "moe.parquet").is_file()
    assert not any(bundle.iterdir())                      # the bundle is left alone
    man = json.loads((data / "manifest.json").read_text())
    assert {(t["gpu"], t["engine"], t["family"]) for t in man["tables"]} == {(GPU, "vllm", "gemm"),
                                                                             (GPU, "vllm", "moe")}
    assert (data / "NOTICE").is_file()
    # the second use reads the imported files: no second import
    assert first_use.ensure_tables(GPU, "vllm") == []


def test_second_use_does_not_import_again(folders, monkeypatch):
    registry.load_profiles(GPU, "vllm")

    def boom(*a, **k):
        raise AssertionError("imported twice")

    monkeypatch.setattr(aic, "import_gpu", boom)
    assert len(registry.load_profiles(GPU, "vllm")["gemm"]) == 4


def test_progress_bar_and_summary_on_stderr(folders, capsys):
    first_use.ensure_tables(GPU, "vllm")
    err = capsys.readouterr().err
    assert f"first use of {GPU}/vllm" in err and "imported 2 tables" in err


def test_missing_extra_is_one_line_naming_it(folders, monkeypatch):
    def not_installed(source=None):
        raise FrontierError("aiconfigurator-core is not installed")

    monkeypatch.setattr(aic, "find_systems_dir", not_installed)
    with pytest.raises(FrontierError) as exc:
        registry.load_profiles(GPU, "vllm")
    msg = str(exc.value)
    assert "\n" not in msg and "public-data" in msg and GPU in msg


def test_gpu_the_source_lacks_is_a_coverage_error(folders):
    with pytest.raises(CoverageError, match="no profile tables for gpu=l40s"):
        registry.load_profiles("l40s", "vllm")
    with pytest.raises(CoverageError):   # the source has b200 vLLM tables only
        registry.load_profiles(GPU, "trtllm")


def test_bundled_table_wins_and_list_says_where(folders):
    bundle, data = folders
    first_use.ensure_tables(GPU, "vllm", progress=False)
    own = bundle / GPU / "vllm" / "gemm.parquet"
    own.parent.mkdir(parents=True)
    (data / GPU / "vllm" / "gemm.parquet").rename(own)
    first_use.ensure_tables(GPU, "vllm", progress=False)  # moe is still in user data: nothing to import
    assert not (data / GPU / "vllm" / "gemm.parquet").exists()
    assert store.find_table(GPU, "vllm", "gemm") == own
    assert store.find_table(GPU, "vllm", "moe") == data / GPU / "vllm" / "moe.parquet"
    avail = store.available()
    assert dict(zip(avail["family"], avail["root"])) == {"gemm": str(bundle), "moe": str(data)}
    out = CliRunner().invoke(main, ["profiles", "list"])
    assert out.exit_code == 0, out.output
    rows = {line.split()[2]: line.split()[-2:] for line in out.output.splitlines() if line.startswith(GPU)}
    assert rows["gemm"][-1] == "bundled" and rows["moe"] == ["user", "data"]


def test_list_names_gpus_imported_on_first_use(folders):
    bundle, _ = folders
    h100 = bundle / "h100_sxm" / "vllm"
    h100.mkdir(parents=True)
    pd.DataFrame({"gpu": ["h100_sxm"], "engine": ["vllm"], "engine_version": ["0.24.0"], "kernel": ["k"],
                  "dtype": ["bf16"], "m": [1], "n": [8], "k": [8], "latency_ms": [0.01]}).to_csv(h100 / "gemm.csv",
                                                                                               index=False)
    out = CliRunner().invoke(main, ["profiles", "list"])
    assert out.exit_code == 0, out.output
    assert f"imported on first use (from aiconfigurator-core): {GPU}" in out.output


def test_model_cache_key_follows_the_imported_tables(folders, tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_CALIB_CACHE", str(tmp_path / "cache"))
    _, data = folders
    before = registry.family_cache_dir(GPU, "vllm", "gemm")   # imports on first use
    assert before is not None and (data / GPU / "vllm" / "gemm.parquet").is_file()
    # a new source version (other latencies) re-imported: the key changes
    systems = aic.find_systems_dir()
    _write(systems / "data" / GPU / "gemm" / "vllm" / "0.25.0" / "gemm_perf.parquet", _gemm("0.25.0", 2.0))
    CliRunner().invoke(main, ["profiles", "import", "aiconfigurator", "--gpu", GPU, "--engine", "vllm",
                              "--source", str(systems), "--out", str(data)])
    after = registry.family_cache_dir(GPU, "vllm", "gemm")
    assert after is not None and after != before


# ----------------------------------------------------------------------------------------- Blackwell formats
def test_fp4_formats_stay_apart_in_imported_tables(folders):
    moe = registry.load_profiles(GPU, "vllm")["moe"]
    assert sorted(moe["dtype"]) == ["bf16", "mxfp4", "mxfp4_fp8", "nvfp4"]   # w4a16 and w4a8 MXFP4 differ
    assert sorted(registry.load_profiles(GPU, "vllm")["gemm"]["dtype"].unique()) == ["bf16", "fp8", "nvfp4"]


def test_fp4_dtype_facts():
    assert normalize_dtype("w4a8_mxfp4_mxfp8") == "mxfp4_fp8" and normalize_dtype("w4a16_mxfp4") == "mxfp4"
    assert normalize_dtype("fp4") == "nvfp4" and normalize_dtype("w4afp8") == "int4_fp8"
    assert DTYPE_BYTES["nvfp4"] == pytest.approx(0.5625)     # + one fp8 scale per 16 values
    assert DTYPE_BYTES["mxfp4"] == pytest.approx(0.53125)    # + one e8m0 scale per 32 values
    assert activation_bytes("nvfp4") < activation_bytes("mxfp4_fp8") < activation_bytes("mxfp4")
    b200, h100 = get_gpu("b200"), get_gpu("h100")
    assert b200.flops("nvfp4") == 2 * b200.flops("fp8") and b200.flops("mxfp4_fp8") == b200.flops("fp8")
    assert b200.check_dtype("fp4") == "nvfp4"
    with pytest.raises(FrontierError) as exc:
        h100.check_dtype("nvfp4")
    assert "\n" not in str(exc.value) and "FP4 tensor cores" in str(exc.value) and "b200_sxm" in str(exc.value)
    assert h100.check_dtype("mxfp4") == "mxfp4"   # weight-only MXFP4 runs anywhere


def test_fp4_deployment_on_hopper_is_an_input_error():
    with pytest.raises(InputError) as exc:
        deployment_from_dict({"model": "Llama-2-7b", "gpu": "h100_sxm", "dtype": "nvfp4"})
    assert exc.value.field == "dtype" and "FP4 tensor cores" in str(exc.value)
