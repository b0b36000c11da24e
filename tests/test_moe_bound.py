"""A routed-expert layer is never slower than the dense path over all local experts, nor than the table's
low-latency NVFP4 kernel (cost/moe_bound.py): the bounds by hand, and in the cost model's MoE queries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from frontier_calib.cost import moe_bound
from frontier_calib.cost.moe_bound import (ACTIVATION_BYTES, LOW_LATENCY_MAX_TOKENS, MAX_GEMM_SPAN, bounded_moe_ms,
                                           dense_path_ms, low_latency_ms)


def test_dense_path_by_hand():
    calls = []

    def gemm(m, n, k):
        calls.append((n, k))
        return np.full(len(m), 0.01)

    # DeepSeek-V3 experts under moe_tp 8: 256 experts x (2 x 256) = 131,072 gate/up columns -> 2 slices;
    # the down GEMM reduces over 256 x 256 = 65,536 -> 1 slice
    t = dense_path_ms(gemm, [8, 64], hidden=7168, inter=256, experts=256, gated=True, hbm_bandwidth=8e12)
    assert calls == [(65536, 7168), (7168, 65536)]
    act = np.array([8, 64]) * (131072 + 65536) * ACTIVATION_BYTES / 8e12 * 1e3
    assert np.allclose(t, 2 * 0.01 + 0.01 + act)
    assert all(max(n, k) <= MAX_GEMM_SPAN for n, k in calls)


def _rows(latency_of_tokens):
    tokens = [1, 8, 32, 128, 256]
    return pd.DataFrame({"dtype": "nvfp4", "hidden_size": 7168, "inter_size": 2048, "topk": 8, "num_experts": 256,
                         "moe_tp": 4, "moe_ep": 1, "distribution": "power_law_1.01", "num_tokens": tokens,
                         "latency_ms": [latency_of_tokens(t) for t in tokens]})


def _query(tokens, **kw):
    base = {"dtype": "nvfp4", "num_tokens": tokens, "hidden_size": 7168, "inter_size": 2048, "topk": 8,
            "num_experts": 256, "moe_tp": 4, "moe_ep": 1, "distribution": "power_law_1.01"}
    return pd.DataFrame({**base, **kw})


def test_low_latency_rows_interpolate_and_never_extrapolate():
    rows = _rows(lambda t: 0.01 * t)
    got = low_latency_ms(rows, _query([1, 16, 128, 200]))
    assert got[:3] == pytest.approx([0.01, 0.16, 1.28])   # log-log between measured token counts
    assert np.isnan(got[3])                              # above LOW_LATENCY_MAX_TOKENS: the kernel does not apply
    assert LOW_LATENCY_MAX_TOKENS == 128
    assert np.isnan(low_latency_ms(rows, _query([8], moe_tp=8))).all()       # another parallelism: no row, no bound
    assert np.isnan(low_latency_ms(rows, _query([8], dtype="fp8_block"))).all()   # NVFP4 only
    assert np.isnan(low_latency_ms(rows[rows.num_tokens >= 8], _query([2]))).all()   # below the measured range


def test_bounds_cap_and_nan_means_no_bound():
    out = bounded_moe_ms([1.0, 1.0, 1.0], [0.5, np.nan, 2.0], [np.nan, 0.7, np.nan])
    assert np.allclose(out, [0.5, 0.7, 1.0])


def _moe_worker(**kw):
    from frontier_calib.cost.worker import WorkerSpec
    from frontier_calib.model_spec import load_model

    kw = {"dtype": "nvfp4", "moe_dtype": "nvfp4", **kw}
    return WorkerSpec(model=load_model("DeepSeek-V3"), gpu="b200_sxm", engine="trtllm", tp=4, ep=1, moe_tp=4,
                      kv_dtype="fp8", **kw)


def test_cost_model_caps_a_slow_moe_table(monkeypatch):
    from stub_models import StubModels, stub_cost

    slow = {"moe": 50.0, "gemm": 0.02}
    models = StubModels(lambda fam, df: np.full(len(df), slow.get(fam, 0.01)))
    low = _rows(lambda t: 0.001 * t)
    monkeypatch.setattr(moe_bound, "low_latency_rows", lambda gpu, engine: low)
    cm = stub_cost(_moe_worker(), models)
    n = np.array([4, 64, 200])
    got = cm._moe_compute_ms(n)
    dense = dense_path_ms(lambda m, c, k: np.full(len(m), 0.02), n, hidden=7168, inter=512, experts=256, gated=True,
                          hbm_bandwidth=cm.spec.hbm_bandwidth)
    assert got[0] == pytest.approx(0.004)     # the low-latency kernel's row (4 tokens)
    assert got[1] == pytest.approx(0.064)
    assert got[2] == pytest.approx(dense[2])  # above 128 tokens only the dense path bounds the 50 ms table
    assert np.all(got < 50.0)


def test_cost_model_keeps_a_fast_moe_table(monkeypatch):
    from stub_models import StubModels, stub_cost

    models = StubModels(lambda fam, df: np.full(len(df), 1e-4 if fam == "moe" else 0.02))
    monkeypatch.setattr(moe_bound, "low_latency_rows", lambda gpu, engine: _rows(lambda t: 0.001 * t))
    cm = stub_cost(_moe_worker(), models)
    assert np.allclose(cm._moe_compute_ms(np.array([4, 64, 200])), 1e-4)


def test_dense_path_only_in_the_workers_gemm_groups(monkeypatch):
    """Block-scaled FP8 experts beside per-tensor FP8 dense layers (DeepSeek's fp8 rows): the fp8_block GEMM model is
    not one of the worker's groups, so whether the cache happens to hold it must not change the tables."""
    from stub_models import StubModels, stub_cost

    models = StubModels(lambda fam, df: np.full(len(df), 50.0 if fam == "moe" else 0.02))   # has() says yes to all
    monkeypatch.setattr(moe_bound, "low_latency_rows", lambda gpu, engine: pd.DataFrame())
    cm = stub_cost(_moe_worker(dtype="fp8", moe_dtype="fp8_block"), models)
    assert np.allclose(cm._moe_compute_ms(np.array([4, 64, 200])), 50.0)
    assert not any(fam == "gemm" and (df["dtype"] == "fp8_block").any() for fam, df in models.calls)
