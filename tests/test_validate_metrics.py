"""Error metrics on hand-made numbers."""

import math

import pandas as pd
import pytest

from frontier_calib.validate.metrics import coverage, error_stats, format_stats_table, skip_category, summarize


def test_error_stats_hand_made():
    s = error_stats([110, 90, 200, 50], [100, 100, 100, 100])
    # APE: 0.1, 0.1, 1.0, 0.5; ratios 1.1, 0.9, 2.0, 0.5
    assert s["n"] == 4 and s["n_missing"] == 0
    assert s["mape"] == pytest.approx(0.425)
    assert s["median_ape"] == pytest.approx(0.3)
    assert s["bias"] == pytest.approx(0.0)          # median ratio (0.9 + 1.1) / 2 = 1.0
    assert s["within_10"] == pytest.approx(0.5)
    assert s["within_25"] == pytest.approx(0.5)


def test_error_stats_bias_sign_and_missing():
    s = error_stats([62, 60, 64, math.nan, 10], [100, 100, 100, 100, 0])
    assert s["n"] == 3 and s["n_missing"] == 2      # NaN prediction and a zero measurement are not scored
    assert s["bias"] == pytest.approx(-0.38)        # predicts 0.62x of measured
    assert s["mape"] == pytest.approx(0.38)


def test_error_stats_empty():
    s = error_stats([], [])
    assert s["n"] == 0 and math.isnan(s["mape"])


def _rows():
    return pd.DataFrame({
        "system": ["h100_sxm", "h100_sxm", "h200_sxm", "h200_sxm"],
        "backend": ["vllm", "vllm", "trtllm", "trtllm"], "mode": ["agg"] * 4,
        "status": ["ok", "ok", "ok", "skipped:unknown model x/y"],
        "pred_ttft_ms": [110.0, 90.0, 50.0, math.nan], "silicon_ttft_ms": [100.0, 100.0, 100.0, 100.0],
        "pred_tpot_ms": [10.0, 10.0, 12.0, math.nan], "silicon_tpot_ms": [10.0, 10.0, 10.0, 10.0],
    })


def test_summarize_groups_and_overall():
    s = summarize(_rows())
    assert s["overall"]["n_rows"] == 3
    assert s["overall"]["ttft"]["mape"] == pytest.approx((0.1 + 0.1 + 0.5) / 3)
    groups = {(g["system"], g["backend"], g["mode"]): g for g in s["groups"]}
    assert set(groups) == {("h100_sxm", "vllm", "agg"), ("h200_sxm", "trtllm", "agg")}
    assert groups[("h200_sxm", "trtllm", "agg")]["tpot"]["bias"] == pytest.approx(0.2)
    table = format_stats_table(s)
    assert "**overall**" in table and "h200_sxm" in table and "+20.0%" in table


def test_coverage_counts_reasons():
    c = coverage(_rows())
    assert c == {"total": 4, "ok": 3, "ok_share": 0.75, "skipped": {"unknown model x/y": 1}}
    assert skip_category("skipped:missing profile coverage: a; b") == "missing profile coverage: a"
