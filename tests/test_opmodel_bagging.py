"""Bagged boosting (XGBoost's num_parallel_tree with row and per-split column subsampling) and early stopping on the
validation rows' median absolute error (eval_metric 'median_ae'): what FAMILY_PARAMS gives msa_decode, whose flat
corner is timed at 4-5 % jitter (docs/validation-results/fit-b200-trtllm-session11.md)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from frontier_calib.opmodel.dataset import random_split, training_rows
from frontier_calib.opmodel.model import DEFAULT_PARAMS, EVAL_METRICS, FAMILY_PARAMS, OperatorModel, \
    median_absolute_error
from frontier_calib.profiles import store

GPU = "h100_sxm"


@pytest.fixture(scope="module")
def gemm_rows():
    rows, _ = training_rows(store.load_family("gemm", GPU, "vllm"), "gemm")
    return rows[rows["dtype"] == "bf16"].sample(n=2000, random_state=0).reset_index(drop=True)


def test_median_absolute_error_by_hand():
    assert median_absolute_error(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.5, 1.0, 0.0, 3.25])) == 0.375
    assert EVAL_METRICS["median_ae"] is median_absolute_error


def test_msa_decode_takes_the_setting_and_no_other_family_does():
    m = OperatorModel("msa_decode", GPU)
    assert (m.num_parallel_tree, m.colsample_bynode, m.subsample, m.eval_metric, m.refit, m.early_stopping_rounds) \
        == (4, 0.8, 0.7, "median_ae", True, 100)
    for fam in ("gemm", "attention_decode", "moe", "dsa_decode", "msa_prefill", "mla_decode", "mla_prefill"):
        m = OperatorModel(fam, GPU)
        assert (m.num_parallel_tree, m.colsample_bynode) == (1, 1.0)
        assert m.eval_metric == FAMILY_PARAMS.get(fam, {}).get("eval_metric", DEFAULT_PARAMS["eval_metric"])
    assert OperatorModel("msa_decode", GPU, num_parallel_tree=1).num_parallel_tree == 1   # an argument still wins


def test_each_round_averages_num_parallel_tree_trees(gemm_rows):
    m = OperatorModel("gemm", GPU, n_estimators=30, num_parallel_tree=4, colsample_bynode=0.8, subsample=0.7,
                      validation_fraction=0.0).fit(gemm_rows)
    assert m.booster_.num_boosted_rounds() == 30 and len(m.booster_.get_dump()) == 4 * 30


def test_a_bagged_fit_is_deterministic_per_seed_and_round_trips_exactly(gemm_rows, tmp_path):
    kw = dict(n_estimators=60, num_parallel_tree=4, colsample_bynode=0.8, subsample=0.7, refit=True,
              eval_metric="median_ae")
    a = OperatorModel("gemm", GPU, seed=3, **kw).fit(gemm_rows)
    b = OperatorModel("gemm", GPU, seed=3, **kw).fit(gemm_rows)
    c = OperatorModel("gemm", GPU, seed=4, **kw).fit(gemm_rows)
    query = gemm_rows.sample(n=OperatorModel.CELL_MIN_ROWS * 2, replace=True, random_state=1).reset_index(drop=True)
    pa = a.predict(query)
    assert np.array_equal(pa, b.predict(query)) and not np.array_equal(pa, c.predict(query))
    a.save(tmp_path, "g")
    loaded = OperatorModel.load(tmp_path, "g")
    assert (loaded.num_parallel_tree, loaded.colsample_bynode, loaded.eval_metric) == (4, 0.8, "median_ae")
    assert np.array_equal(loaded.predict(query), pa)       # the per-cell path (large query) on the loaded trees
    assert np.array_equal(loaded.predict(query.iloc[:50]), pa[:50])


def flat_corner_table(seed: int) -> pd.DataFrame:
    """An MSA decode module table as B200 TensorRT-LLM's reads: flat at ~0.12 ms up to short contexts and small
    batches, then linear in the cached keys; the flat corner timed with 4.5 % jitter, the rest with 0.3 %. ``true_ms``
    is the latency without the jitter."""
    b, kv, h = 2 ** np.arange(0, 11), 2 ** np.arange(1, 18), [1, 2, 4, 8, 16]
    g = pd.DataFrame(list(itertools.product(b, kv, h, ["bf16", "fp8_block", "nvfp4"])),
                     columns=["batch_size", "kv_len", "num_heads", "dtype"])
    g = g.assign(num_kv_heads=1, head_dim=128, hidden_size=6144, index_n_heads=4, index_head_dim=128, block_size=128,
                 index_topk=2048, kv_dtype="bf16")
    true = 0.12 + 0.002 * g["batch_size"] ** 0.8 + 4.4e-7 * g["batch_size"] * g["kv_len"] * (
        1 + 0.02 * np.log2(g["num_heads"]))
    flat = (g["batch_size"] <= 32) & (g["kv_len"] <= 256)
    rng = np.random.default_rng(seed)
    jitter = np.where(flat, rng.normal(0.0, 0.045, len(g)), rng.normal(0.0, 0.003, len(g)))
    return g.assign(latency_ms=true * np.exp(jitter), true_ms=true)


def test_median_early_stopping_keeps_fitting_past_the_jittery_corner():
    """The jittery corner's squared error stops the boosting after ~60 rounds while the rest still gains; the median
    |error| (the report's own score) stops no earlier on any of split seeds 0-3 and later on most (with the session-12
    roofline, which reads one index key per cached token, seed 2 stops both at round 64), and the held-out error is
    lower (no bagging)."""
    iters, err = {"rmse": [], "median_ae": []}, {"rmse": [], "median_ae": []}
    for seed in range(4):
        df = flat_corner_table(seed)
        train, test = random_split(len(df), seed)
        held = df.iloc[test]
        for metric in iters:
            m = OperatorModel("msa_decode", "b200_sxm", seed=seed, eval_metric=metric, num_parallel_tree=1,
                              colsample_bynode=1.0, subsample=0.9).fit(df.iloc[train].drop(columns="true_ms"))
            iters[metric].append(m.best_iteration_)
            err[metric].append(np.median(np.abs(m.predict(held) / held["true_ms"].to_numpy() - 1)))
    assert all(a >= b for a, b in zip(iters["median_ae"], iters["rmse"])), iters
    assert sum(a > b for a, b in zip(iters["median_ae"], iters["rmse"])) >= 3, iters
    assert np.mean(err["median_ae"]) < np.mean(err["rmse"]), err
