"""An 8-bit KV cache never makes decode attention slower than widening it and running the 16-bit kernel
(cost/kv_format.py): the bound by hand, and in the cost model's decode grid."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from frontier_calib.cost.kv_format import WIDEN_BYTES_PER_ELEMENT, bounded_decode_ms, widened_decode_ms


def test_widening_bound_by_hand():
    # 1e9 elements at 3 bytes each over 3e12 B/s = 1 ms on top of the 16-bit kernel's 0.5 ms
    assert WIDEN_BYTES_PER_ELEMENT == 3.0
    assert widened_decode_ms(0.5, 1e9, 3e12) == pytest.approx(1.5)
    assert np.allclose(bounded_decode_ms([4.0, 0.2], [0.5, 0.5], [1e9, 1e9], 3e12), [1.5, 0.2])


class _SlowNarrowKV:
    """Fitted models whose 8-bit-KV decode rows cost 10x the 16-bit ones (as SGLang's MLA fp8 table does)."""

    def __init__(self, models):
        self.inner = models

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def has(self, family, group=None):
        if family == "attention_decode" and group in ("fp8", "bf16"):
            return True
        return self.inner.has(family, group)

    def predict(self, family, df):
        if family == "attention_decode" and "kv_dtype" in df and (df["kv_dtype"] == "fp8").any():
            return 10 * self.inner.predict(family, df.assign(kv_dtype="bf16"))
        return self.inner.predict(family, df)


def test_decode_grid_is_capped_by_widening(frontier_cache, worker):
    from frontier_calib.cost.cache import needed_families
    from frontier_calib.cost.iteration import IterationCostModel
    from frontier_calib.opmodel.registry import cached_model_set

    models = cached_model_set(worker.gpu, worker.engine, families=needed_families(worker))
    wide = IterationCostModel(worker, models, max_tokens=64, max_seqs=8, max_model_len=4096)
    narrow = IterationCostModel(worker, models, max_tokens=64, max_seqs=8, max_model_len=4096)
    narrow.worker = replace(worker, kv_dtype="fp8")
    narrow.models = _SlowNarrowKV(models)
    bs = np.array([1, 4, 8])
    t_wide, t_narrow = np.exp2(wide._decode_grid_ms(bs)), np.exp2(narrow._decode_grid_ms(bs))
    kv = np.meshgrid(bs, wide._kv_grid, indexing="ij")
    m = worker.model
    elements = kv[0] * kv[1] * 2 * m.num_kv_heads * m.head_dim * m.num_layers   # K and V of every layer (tp 1)
    want = t_wide + WIDEN_BYTES_PER_ELEMENT * elements / wide.spec.hbm_bandwidth * 1e3
    assert np.allclose(t_narrow, want, rtol=1e-6)
    assert np.all(t_narrow < 10 * t_wide)   # without the bound: the slow 8-bit rows as they are
