"""Decode attention never beats streaming its KV from HBM (cost/hbm_floor.py): the rate and the floor by hand, and
the cost model's decode grid lifted where a table row is faster than that (warm-L2 benchmark rows)."""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.cost.hbm_floor import COLD_L2_MULTIPLE, floored_decode_ms, streaming_rate


def test_streaming_rate_by_hand():
    l2 = 10e6
    assert COLD_L2_MULTIPLE == 4.0
    # entries of 1 MB (in L2), 1 GB in 1 ms (1e12 B/s) and 2 GB in 1.6 ms (1.25e12 B/s): the best cold rate
    assert streaming_rate([1e6, 1e9, 2e9], [1e-4, 1.0, 1.6], l2, 2e12) == pytest.approx(1.25e12)
    # never above the memory bandwidth
    assert streaming_rate([1e9], [0.1], l2, 2e12) == pytest.approx(2e12)
    # no entry of at least 4 x L2 (39 MB < 40 MB): the memory bandwidth
    assert streaming_rate([1e6, 39e6], [1e-4, 1e-3], l2, 2e12) == pytest.approx(2e12)


def test_floor_by_hand():
    # 1 MB at 1.25e12 B/s = 0.8 us: lifts a 0.1 us row, leaves a 2 ms row
    assert np.allclose(floored_decode_ms([1e-4, 2.0], [1e6, 1e6], 1.25e12), [8e-4, 2.0])


class _ConstantDecode:
    """Fitted models whose decode-attention rows all take 1 us, whatever the batch and KV (every row "warm"),
    except rows of at least ``cold_bytes`` of KV, which stream at 1e12 B/s."""

    def __init__(self, models, cold_bytes: float):
        self.inner, self.cold_bytes = models, cold_bytes

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, family, df):
        if family != "attention_decode":
            return self.inner.predict(family, df)
        nbytes = (df["batch_size"] * df["kv_len"] * 2 * df["num_kv_heads"] * df["head_dim"] * 2).to_numpy(float)
        return np.where(nbytes >= self.cold_bytes, nbytes / 1e12 * 1e3, 1e-3)


def test_decode_grid_streams_kv_from_hbm(frontier_cache, worker):
    from frontier_calib.cost.cache import needed_families
    from frontier_calib.cost.iteration import IterationCostModel
    from frontier_calib.opmodel.registry import cached_model_set

    models = cached_model_set(worker.gpu, worker.engine, families=needed_families(worker))
    cm = IterationCostModel(worker, models, max_tokens=64, max_seqs=8, max_model_len=4096)
    m, spec = worker.model, cm.spec
    cold = COLD_L2_MULTIPLE * spec.l2_bytes
    cm.models = _ConstantDecode(models, cold)
    cm._kv_stream_rate.clear()
    bs = np.array([1, 8])
    got = np.exp2(cm._decode_grid_ms(bs))                            # all layers, ms: [batch, kv grid]
    b, kv = np.meshgrid(bs, cm._kv_grid, indexing="ij")
    per_layer_bytes = b * kv * 2 * m.num_kv_heads * m.head_dim * 2   # K and V, bf16, tp 1
    # the table's cold rows stream at 1e12 B/s, so every row takes at least bytes / 1e12 (and 1 us)
    want = m.num_layers * np.where(per_layer_bytes >= cold, per_layer_bytes / 1e12 * 1e3,
                                   np.maximum(1e-3, per_layer_bytes / 1e12 * 1e3))
    assert np.allclose(got, want, rtol=1e-6)
    assert cm._kv_stream_rate[("gqa", 0)] == pytest.approx(1e12)
    # by hand: 8 sequences of 4,096 tokens of Llama-2-7b (32 KV heads x 128 x 2 x 2 bytes = 16 KiB per token and
    # layer) = 537 MB per layer, 0.537 ms at 1e12 B/s, x 32 layers = 17.2 ms; the table alone says 32 x 1 us
    assert m.num_layers == 32 and m.num_kv_heads == 32 and m.head_dim == 128
    assert cm._kv_grid[-1] == 4096
    assert got[1, -1] == pytest.approx(32 * 8 * 4096 * 16384 / 1e12 * 1e3, rel=1e-6)
    # a warm row well below the cold size: lifted from 1 us to its bytes at the cold rate (1 x 2,048 tokens:
    # 33.6 MB = 0.0336 ms per layer)
    j = int(np.searchsorted(cm._kv_grid, 2048))
    assert cm._kv_grid[j] * 16384 < cold
    assert got[0, j] == pytest.approx(32 * cm._kv_grid[j] * 16384 / 1e12 * 1e3, rel=1e-6)
