"""DeepEP's copies per token (features.expected_ranks, moe_a2a) and the measured fixed cost of the
FIXED_COST_FAMILIES (OperatorModel.fixed_cost_ms_), each against a hand-computed case."""

from __future__ import annotations

from math import comb

import numpy as np
import pandas as pd
import pytest

from frontier_calib.hardware import get_gpu
from frontier_calib.opmodel import model as model_module
from frontier_calib.opmodel.features import FIXED_COST_FAMILIES, expected_ranks, featurize
from frontier_calib.opmodel.model import OperatorModel

GPU = "b200_sxm"


def test_expected_ranks_by_hand():
    # DeepSeek-V3 on EP 8: 256 experts, 32 per rank, 8 per token; a rank is missed with C(224, 8) / C(256, 8)
    assert expected_ranks([256], [8], [8])[0] == pytest.approx(8 * (1 - comb(224, 8) / comb(256, 8)), rel=1e-12)
    assert expected_ranks([256], [8], [8])[0] == pytest.approx(5.29, abs=0.01)
    assert expected_ranks([384], [6], [8])[0] == pytest.approx(8 * (1 - comb(336, 6) / comb(384, 6)), rel=1e-12)
    assert expected_ranks([16, 8, 64], [1, 8, 8], [8, 8, 1]).tolist() == pytest.approx([1.0, 8.0, 1.0])


def a2a_rows(backend, hidden, tokens=(1, 4, 16, 64, 256), topk=8, experts=256):
    t, h = np.meshgrid(tokens, hidden, indexing="ij")
    return pd.DataFrame({"backend": backend, "phase": "dispatch", "ep_size": 8, "num_nodes": 1,
                         "num_tokens": t.ravel(), "hidden_size": h.ravel(), "topk": topk, "num_experts": experts})


def test_moe_a2a_link_time_counts_deepep_copies():
    spec = get_gpu(GPU)
    df = pd.concat([a2a_rows("deepep_normal", [7168], tokens=[100]), a2a_rows("deepep_ll", [7168], tokens=[100])])
    x, roof = featurize("moe_a2a", df.reset_index(drop=True), spec)
    ranks = 8 * (1 - comb(224, 8) / comb(256, 8))
    copies = np.array([ranks * 7 / 8, 8 * 7 / 8])      # normal: once per rank holding an expert; LL: once per expert
    t_bw = 100 * copies * 7168 * 2 / spec.nvlink_bandwidth * 1e3
    assert np.exp2(x["log_t_bandwidth"].to_numpy()) == pytest.approx(t_bw, rel=1e-5)
    assert np.exp2(x["log_remote_copies"].to_numpy()) == pytest.approx(100 * copies, rel=1e-5)


def flat_a2a_table(hidden):
    """DeepEP low-latency dispatch as the public tables read it: ~0.07 ms whatever the tokens and hidden size."""
    df = a2a_rows("deepep_ll", hidden)
    df["latency_ms"] = 0.07 * (1 + 0.002 * np.log2(df["num_tokens"]))
    return df


def test_fixed_cost_is_the_fastest_training_row_and_is_saved(tmp_path):
    train = flat_a2a_table([2048, 8192])
    m = OperatorModel("moe_a2a", GPU, n_estimators=50).fit(train)
    assert "moe_a2a" in FIXED_COST_FAMILIES and m.fixed_cost_ms_ == train["latency_ms"].min()
    m.save(tmp_path, "a2a")
    loaded = OperatorModel.load(tmp_path, "a2a")
    assert loaded.fixed_cost_ms_ == m.fixed_cost_ms_
    q = flat_a2a_table([4096])
    assert np.array_equal(loaded.predict(q), m.predict(q))
    bmm = pd.DataFrame({"op": "pre", "num_tokens": [1, 2, 4] * 10, "num_heads": 8, "dtype": "bf16",
                        "latency_ms": 0.01 * np.arange(1, 31)})
    assert OperatorModel("mla_bmm", GPU, n_estimators=5).fit(bmm).fixed_cost_ms_ == 0.0


@pytest.mark.parametrize("with_fixed_cost", [True, False])
def test_a_hidden_size_never_seen_lands_on_the_flat_latency(monkeypatch, with_fixed_cost):
    """Trained on hidden 2,048 and 8,192, asked for 4,096: with the fixed cost the estimate is ~0.07 ms for every
    shape and the ratio to learn is ~1; with the roofline alone (a link time that scales with hidden x tokens) the
    unseen hidden size takes a neighbour's ratio and misses the flat 0.07 ms by tens of percent from 16 tokens on
    (measured: 0.1 / 0.1 / 0.7 / 2.7 / 10 % at 1-256 tokens with it, 1 / 4 / 15 / 40 / 73 % without)."""
    if not with_fixed_cost:
        monkeypatch.setattr(model_module, "FIXED_COST_FAMILIES", frozenset())
    m = OperatorModel("moe_a2a", GPU, n_estimators=200).fit(flat_a2a_table([2048, 8192]))
    q = flat_a2a_table([4096])
    ape = np.abs(m.predict(q) / q["latency_ms"].to_numpy() - 1)
    if with_fixed_cost:
        assert ape[:3].max() < 0.01 and ape.max() < 0.15
    else:
        assert ape[2] > 0.1 and ape.max() > 0.5
