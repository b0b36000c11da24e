"""The DSA prefill roofline's sparse-MLA term (features.dsa_sparse_prefill_ms): hand-computed values, and a fit that
stays linear between the tables' prompt lengths because of it (docs/validation.md, "Session 12: GLM-5 TPOT")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from frontier_calib.hardware import get_gpu
from frontier_calib.opmodel.features import DSA_HEAD_BLOCK, dsa_sparse_prefill_ms, featurize
from frontier_calib.opmodel.model import OperatorModel

GPU = "h200_sxm"

#: GLM-5's DSA layer (config.json of zai-org/GLM-5) at TP8: 64 / 8 query heads per GPU
GLM5 = {"num_heads": 8, "hidden_size": 6144, "q_lora_rank": 2048, "kv_lora_rank": 512, "qk_nope_head_dim": 192,
        "qk_rope_head_dim": 64, "v_head_dim": 256, "index_n_heads": 32, "index_head_dim": 128, "index_topk": 2048,
        "dtype": "fp8", "kv_dtype": "bf16"}


def rows(q, kv, b=1, **over):
    q, kv = np.atleast_1d(q), np.atleast_1d(kv)
    return pd.DataFrame({"batch_size": b, "q_len": q, "kv_len": kv, **{**GLM5, **over}})


def test_sparse_stage_by_hand():
    spec = get_gpu(GPU)
    df = rows([8192, 4096, 8192, 1024], [8192, 4096, 2048, 1024])
    ms = dsa_sparse_prefill_ms(df, spec, df["q_len"].to_numpy(float), df["kv_len"].to_numpy(float))
    # 8,192 query tokens x 64 padded heads x 2,048 key slots x 2 x (576 QK + 512 V) FLOPs at the bf16 peak
    flops = 8192 * 64 * 2048 * 2 * (576 + 512)
    assert DSA_HEAD_BLOCK == 64
    assert ms[0] == pytest.approx(flops / spec.flops("bf16") * 1e3, rel=1e-12)
    assert ms[1] == pytest.approx(ms[0] / 2, rel=1e-12)          # linear in the query tokens
    assert ms[2] == 0.0 and ms[3] == 0.0                         # the context fits the top-k: dense attention
    # 65-128 heads take two blocks of 64, 1-64 one
    two = rows(4096, 4096, num_heads=65)
    one = rows(4096, 4096, num_heads=64)
    t2 = dsa_sparse_prefill_ms(two, spec, np.array([4096.0]), np.array([4096.0]))
    t1 = dsa_sparse_prefill_ms(one, spec, np.array([4096.0]), np.array([4096.0]))
    assert t2[0] == pytest.approx(2 * t1[0], rel=1e-12) and t1[0] == pytest.approx(ms[1], rel=1e-12)


def test_roofline_doubles_with_the_sparse_prompt():
    """The measured module doubles from 4,096 to 8,192 tokens (H200 SGLang GLM-5: 2.63 -> 5.16 ms); the roofline
    must grow about as much, or the fitted ratio jumps between the two and trees put the jump anywhere."""
    _, roof = featurize("dsa_prefill", rows([4096, 8192], [4096, 8192]), get_gpu(GPU))
    assert roof[1] / roof[0] > 1.6


def module_table():
    """A DSA prefill module table shaped like SGLang's H200 GLM-5 one: a flat 0.78 ms per call while the
    context fits the top-k (dense path, eager launches), then linear in the query tokens on the sparse path
    (0.35 + 0.0006 ms per token: 2.81 ms at 4,096, 5.27 at 8,192), measured at powers of two only."""
    out = []
    for b in (1, 2, 4):
        for q in 2 ** np.arange(2, 14):
            if b * q > 8192:
                continue
            for step in (0, 1, 512, 2048, 8192):
                kv = q + step
                sparse = kv > 2048
                lat = (0.35 + 0.0006 * b * q + 0.00002 * step) if sparse else 0.78
                out.append({"batch_size": b, "q_len": q, "kv_len": kv, **GLM5, "latency_ms": lat})
    return pd.DataFrame(out)


def test_fit_is_linear_between_measured_prompt_lengths():
    table = module_table()
    m = OperatorModel("dsa_prefill", GPU, n_estimators=300, seed=0).fit(table)
    q = np.array([5000, 6144, 7767])
    law = 0.35 + 0.0006 * q
    pred = m.predict(rows(q, q))
    assert pred == pytest.approx(law, rel=0.12)
