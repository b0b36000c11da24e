"""Report files: rows.csv, summary.json, report.md and PNGs that open; atomic on failure."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from frontier_calib.validate import report as R


def _rows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    meas_t = rng.uniform(30, 3000, n)
    meas_p = rng.uniform(5, 60, n)
    df = pd.DataFrame({
        "id": [f"row{i}" for i in range(n)], "system": rng.choice(["h100_sxm", "h200_sxm"], n),
        "backend": rng.choice(["vllm", "sglang", "trtllm"], n), "mode": "agg",
        "model_path": rng.choice(["meta-llama/Llama-3.1-70B", "Qwen/Qwen3-32B"], n),
        "isl": 1024, "osl": 1024, "concurrency": rng.choice([4, 16, 64], n),
        "silicon_ttft_ms": meas_t, "silicon_tpot_ms": meas_p,
        "pred_ttft_ms": meas_t * rng.lognormal(0, 0.2, n), "pred_tpot_ms": meas_p * rng.lognormal(0, 0.1, n),
        "status": "ok", "config_key": rng.choice(["a", "b", "c"], n), "preset": "Meta-Llama-3.1-70B",
        "dtype": "fp8", "moe_dtype": "fp8", "kv_dtype": "fp8", "parallel": "tp=2 pp=1 attention_dp=1",
        "kv_load": rng.uniform(0, 1.2, n), "pred_preemptions": 0, "notes": "",
        "profile_tables": "gemm=vllm/0.24.0", "backend_version": "0.12.0",
    })
    df.loc[[3, 7], "status"] = ["skipped:unknown model zhipuai/GLM-5", "skipped:disaggregated mode not supported yet"]
    df.loc[[3, 7], ["pred_ttft_ms", "pred_tpot_ms"]] = math.nan
    df["ttft_ratio"] = df["pred_ttft_ms"] / df["silicon_ttft_ms"]
    df["tpot_ratio"] = df["pred_tpot_ms"] / df["silicon_tpot_ms"]
    df["ttft_ape"] = (df["ttft_ratio"] - 1).abs()
    df["tpot_ape"] = (df["tpot_ratio"] - 1).abs()
    return df


def test_silicon_report_files(tmp_path):
    import matplotlib.image as mpimg

    rows = _rows()
    out = tmp_path / "rep"
    summary = R.write_silicon_report(rows, out, meta={"command": "frontier-calib validate silicon", "csv": "x.csv",
                                                      "run": {"total_s": 1.0, "jobs": 2, "prepare_s": 0.1,
                                                              "rows_s": 0.9, "sim_s_median": 0.01,
                                                              "sim_s_max": 0.1, "sim_s_sum": 0.4}})
    names = sorted(p.name for p in out.iterdir())
    assert names == ["error_cdf.png", "pred_vs_measured.png", "report.md", "rows.csv", "summary.json"]
    back = pd.read_csv(out / "rows.csv")
    for col in ("id", "system", "backend", "mode", "model_path", "isl", "osl", "concurrency", "silicon_ttft_ms",
                "silicon_tpot_ms", "pred_ttft_ms", "pred_tpot_ms", "status", "profile_tables"):
        assert col in back.columns
    js = json.loads((out / "summary.json").read_text())
    assert js["coverage"]["ok"] == 38 and js["coverage"]["skipped"]["unknown model zhipuai/GLM-5"] == 1
    assert js["overall"]["ttft"]["n"] == 38 and "groups" in js and js["targets"]["ttft_mape_target"] == 0.15
    assert summary["overall"]["tpot"]["mape"] == pytest.approx(js["overall"]["tpot"]["mape"])
    md = (out / "report.md").read_text()
    assert "## Coverage" in md and "The 10 worst rows by TTFT" in md and "**overall**" in md
    for png in ("pred_vs_measured.png", "error_cdf.png"):
        img = mpimg.imread(out / png)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(R, "plot_error_cdf", boom)
    out = tmp_path / "rep"
    with pytest.raises(RuntimeError):
        R.write_silicon_report(_rows(), out, meta={})
    assert not out.exists()
    # an existing report folder keeps its old files untouched
    out.mkdir()
    (out / "rows.csv").write_text("old\n")
    with pytest.raises(RuntimeError):
        R.write_silicon_report(_rows(), out, meta={})
    assert sorted(p.name for p in out.iterdir()) == ["rows.csv"]
    assert (out / "rows.csv").read_text() == "old\n"


def test_why_flags_kv_cliff_and_inconsistent_siblings():
    rows = _rows()
    rows.loc[0, ["config_key", "isl", "concurrency", "osl", "silicon_ttft_ms", "kv_load"]] = ["z", 1024, 4, 1024, 600.0,
                                                                                              0.1]
    rows.loc[1, ["config_key", "isl", "concurrency", "osl", "silicon_ttft_ms", "kv_load"]] = ["z", 1024, 4, 8192, 180.0,
                                                                                              0.3]
    note = R.why(rows.loc[0], rows, "ttft")
    assert "measured TTFT is 3.3x that of the same deployment at osl=8192" in note
    rows.loc[2, "kv_load"] = 0.95
    assert "KV capacity" in R.why(rows.loc[2], rows, "ttft")
