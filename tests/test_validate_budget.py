"""Error budget: the predicted time split into kernels / overhead / front end / queueing, and rows that disagree with
their twins (the same deployment at another output length) counted, per GPU x engine."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from frontier_calib.cost.iteration import CostBreakdown
from frontier_calib.validate import budget as B


def _frame():
    # config a: three osl twins at the same isl/concurrency; the osl=512 one measured 3x slower (a data error)
    return pd.DataFrame({
        "id": ["a1", "a2", "a3", "b1", "c1"], "system": "b200_sxm", "backend": "trtllm", "status": "ok",
        "config_key": ["a", "a", "a", "b", "a"], "isl": [1024, 1024, 1024, 1024, 8192],
        "osl": [128, 512, 1024, 128, 128], "concurrency": [8, 8, 8, 8, 8],
        "silicon_ttft_ms": [100.0, 300.0, 110.0, 50.0, 900.0], "kv_load": 0.1,
        "pred_ttft_ms": [100.0, 100.0, 100.0, 50.0, 800.0], "pred_tpot_ms": [10.0, 10.0, 10.0, 5.0, 12.0],
        "ttft_ape": [0.0, 2 / 3, 0.09, 0.0, 0.11], "tpot_ape": [0.1, 0.1, 0.1, 0.2, 0.3],
        "budget_decode_kernels_ms": [8.0, 8.0, 8.0, 4.0, 9.0], "budget_decode_overhead_ms": [1.0, 1.0, 1.0, 0.5, 1.0],
        "budget_prefill_kernels_ms": [40.0, 40.0, 40.0, 20.0, 400.0],
        "budget_prefill_overhead_ms": [0.0, 0.0, 0.0, 0.0, 0.0], "budget_frontend_ms": [5.0] * 5,
    })


def test_twins_are_the_same_deployment_at_another_osl():
    t = B.twin_disagreement(_frame())
    assert list(t[:3]) == [False, True, False]       # 300 ms vs the twins' mean 105 ms: 2.9x
    assert t.isna()[3] and t.isna()[4]               # another deployment / another isl: no twin
    high = _frame().assign(kv_load=[0.1, 0.9, 0.1, 0.1, 0.1])   # a KV-bound twin is not compared
    assert B.twin_disagreement(high).isna()[1]


def test_budget_table_shares_and_mape_without_disagreeing_rows():
    b = B.budget_table(_frame()).iloc[0]
    assert (b["rows"], b["rows_with_twins"], b["twins_disagree"]) == (5, 3, 1)
    assert b["ttft_mape"] == pytest.approx(np.mean([0.0, 2 / 3, 0.09, 0.0, 0.11]))
    assert b["ttft_mape_without"] == pytest.approx(np.mean([0.0, 0.09, 0.0, 0.11]))
    # TPOT: kernels 8/10, 8/10, 8/10, 4/5, 9/12; overhead and the rest (interference) add up to the prediction
    assert b["tpot_kernels"] == pytest.approx(np.mean([0.8, 0.8, 0.8, 0.8, 0.75]))
    assert b["tpot_kernels"] + b["tpot_overhead"] + b["tpot_interference"] == pytest.approx(1.0)
    # TTFT: prefill 40 of 100 ms, front end 5, queueing the rest (55)
    assert b["ttft_queueing"] == pytest.approx(np.mean([0.55, 0.55, 0.55, 0.5, 395 / 800]))


def test_row_budget_from_the_cost_model():
    """Decode: clients per decoding rank (capped by the running cap) at the mean context; prefill: the prompt in
    budget-sized chunks, each chunk attending to everything before it."""
    calls = []

    class Cost:
        max_tokens = 1000

        def breakdown(self, q, kv, nd, kvsum):
            calls.append((list(q), list(kv), nd, kvsum))
            return CostBreakdown(1.0, 0.0, 0.5 * len(q), 0.25 * (nd > 0), 0.125)

    sched = SimpleNamespace(max_num_seqs=16)
    reps = [SimpleNamespace(role="prefill", cost=Cost(), scheduler=sched)] + \
        [SimpleNamespace(role="decode", cost=Cost(), scheduler=sched) for _ in range(2)]
    out = B.row_budget(reps, isl=2500, osl=100, concurrency=64, frontend_s_of=lambda n: 0.004 + 1e-6 * n)
    assert calls[0] == ([], [], 16, 16 * 2550)        # 64 clients / 2 ranks = 32, capped at 16
    assert calls[1:] == [([1000], [1000], 0, 0), ([1000], [2000], 0, 0), ([500], [2500], 0, 0)]
    assert out["budget_decode_kernels_ms"] == 1.25 and out["budget_decode_overhead_ms"] == 0.125
    assert out["budget_prefill_kernels_ms"] == 3 * 1.5 and out["budget_prefill_overhead_ms"] == 3 * 0.125
    assert out["budget_frontend_ms"] == pytest.approx(6.5)
    assert all(math.isnan(v) for v in B.row_budget([SimpleNamespace(role="both", cost=object(), scheduler=sched)],
                                                    10, 10, 1, lambda n: 0.0).values())


def test_in_flight_shortfall_is_littles_law_against_the_replay():
    """A closed loop of c clients keeps c x (osl-1) x TPOT / (TTFT + (osl-1) x TPOT) requests decoding. 512
    clients measured at TTFT 20 s, TPOT 5 ms, osl 1024 keep ~104 decoding (a 100-connection client cap, say);
    the replay keeps ~500 and the KV cache holds them: flagged. The same row with the measurement's queue in the
    replay too, or with a KV cache too small for the working set, or with most of the time decoding, is not."""
    f = pd.DataFrame({"osl": [1024, 1024, 1024, 1024, 1], "concurrency": 512,
                      "silicon_ttft_ms": [20000.0, 20000.0, 20000.0, 500.0, 100.0],
                      "silicon_tpot_ms": [5.0, 5.0, 5.0, 5.0, 0.0],
                      "pred_ttft_ms": [300.0, 20000.0, 300.0, 300.0, 100.0],
                      "pred_tpot_ms": [30.0, 5.0, 30.0, 30.0, 0.0],
                      "kv_load": [0.3, 0.3, 1.5, 0.3, 0.3]})
    share = B.decoding_share(f["silicon_ttft_ms"], f["silicon_tpot_ms"], f["osl"])
    assert share[0] * 512 == pytest.approx(512 * 1023 * 5 / (20000 + 1023 * 5))
    flag = B.in_flight_shortfall(f)
    assert list(flag[:4]) == [True, False, False, False] and flag.isna()[4]
    b = B.budget_table(_frame().assign(osl=[128, 512, 1024, 128, 128], silicon_tpot_ms=10.0,
                                       silicon_ttft_ms=[100.0, 300.0, 110.0, 50.0, 90000.0],
                                       pred_ttft_ms=[100.0, 100.0, 100.0, 50.0, 80.0])).iloc[0]
    # c1 (8 clients): 127 x 10 ms decoding against a 90 s TTFT, the replay 80 ms: short of clients
    assert b["short_in_flight"] == 1 and b["twins_disagree"] == 1
    assert b["tpot_mape_without"] == pytest.approx(np.mean([0.1, 0.1, 0.2]))
