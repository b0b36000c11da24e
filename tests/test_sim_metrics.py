"""Per-request ITL statistics and the vLLM bench-serve summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from frontier_calib.sim import summary_from_requests
from frontier_calib.sim.metrics import itl_stats

KEYS = ["completed", "failed", "duration", "total_input_tokens", "total_output_tokens", "request_throughput",
        "output_throughput", "total_token_throughput"]


def test_itl_stats_match_numpy_per_request():
    rng = np.random.default_rng(0)
    lens = np.array([0, 1, 2, 7, 30, 0, 5])
    valid = np.array([True, True, True, True, True, True, False])
    off = np.concatenate(([0], np.cumsum(lens)))
    itl = rng.exponential(0.02, off[-1]).astype(np.float32)
    mean, p50, p99, vmax, flat = itl_stats(itl, off, valid)
    for i in range(len(lens)):
        seg = itl[off[i]:off[i + 1]].astype(np.float64)
        if not valid[i] or lens[i] == 0:
            assert np.isnan(mean[i]) and np.isnan(p99[i])
            continue
        assert np.isclose(mean[i], seg.mean())
        assert np.isclose(p50[i], np.percentile(seg, 50))
        assert np.isclose(p99[i], np.percentile(seg, 99))
        assert vmax[i] == seg.max()
    assert len(flat) == lens[valid].sum()


def test_summary_keys_and_units():
    df = pd.DataFrame({
        "status": ["ok", "ok", "rejected:max_model_len"],
        "arrival_s": [0.0, 1.0, 2.0],
        "completion_s": [2.0, 4.0, np.nan],
        "input_tokens": [100, 200, 50],
        "output_tokens": [11, 1, 5],
        "ttft_s": [0.5, 1.0, np.nan],
        "e2e_s": [2.0, 3.0, np.nan],
    })
    s = summary_from_requests(df, np.array([0.1, 0.2, 0.3]))
    for k in KEYS:
        assert k in s
    for m in ("ttft", "tpot", "itl", "e2el"):
        for stat in ("mean", "median", "std", "p90", "p99"):
            assert f"{stat}_{m}_ms" in s
    assert s["completed"] == 2 and s["failed"] == 1
    assert s["duration"] == 4.0
    assert s["total_input_tokens"] == 300 and s["total_output_tokens"] == 12
    assert s["request_throughput"] == 0.5 and s["output_throughput"] == 3.0
    assert s["mean_ttft_ms"] == 750.0
    assert s["mean_tpot_ms"] == 150.0            # only the 11-token request: (2.0 - 0.5) / 10 s
    assert np.isclose(s["mean_itl_ms"], 200.0) and np.isclose(s["median_itl_ms"], 200.0)
    assert s["mean_e2el_ms"] == 2500.0


def test_summary_accepts_per_request_itl_lists_and_no_itls():
    df = pd.DataFrame({"input_tokens": [1, 2], "output_tokens": [3, 3], "ttft_s": [0.1, 0.2], "e2e_s": [0.5, 0.6]})
    s = summary_from_requests(df, [[0.1, 0.3], [0.2, 0.2]], duration=2.0)
    assert np.isclose(s["mean_itl_ms"], 200.0) and s["request_throughput"] == 1.0
    s2 = summary_from_requests(df)
    assert np.isnan(s2["mean_itl_ms"]) and np.isnan(s2["duration"])


def test_percentiles_match_numpy_on_large_float32():
    from frontier_calib.sim.metrics import _percentiles
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.exponential(0.01, 300_000), np.full(1000, 0.5), [0.0]]).astype(np.float32)
    got = _percentiles(v, (0, 50, 90, 99, 100))
    want = np.percentile(v.astype(np.float64), (0, 50, 90, 99, 100))
    np.testing.assert_allclose(got, want, rtol=0, atol=0)
    small = rng.normal(size=101)
    np.testing.assert_allclose(_percentiles(small, (50, 99)), np.percentile(small, (50, 99)))
