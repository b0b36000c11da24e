"""The decode rooflines of mla_decode (trtllm-gen's MLA generation kernel launch, FP8-KV attention at the FP8 rate)
and msa_decode (one index key read per cached token), each against a hand-computed case
(docs/validation-results/fit-b200-trtllm-session12.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from frontier_calib.hardware import get_gpu
from frontier_calib.opmodel.features import LAUNCH_FLOOR_MS, featurize, mla_generation_kernel

B200 = get_gpu("b200_sxm")   # 148 SMs, 7.7 TB/s, 2.25 PF bf16, 4.5 PF fp8


def test_mla_generation_kernel_launch_by_hand():
    # (batch, heads, keys): launch as fmhaKernels.h picks it on 148 SMs
    b, h, kv = [1, 64, 8, 16, 128, 1], [128, 32, 128, 64, 128, 4], [131072, 4096, 1024, 2048, 4096, 100]
    k = mla_generation_kernel(b, h, kv, 148)
    # 1 x 128: 1 x 8 x 2 = 16 <= 148 -> low latency, tiles of 16 -> 8 head tiles; 148 // 8 = 18 key splits
    # 64 x 32: heads <= 32 -> low latency, 2 tiles of 16; 148 // 128 = 1 split
    # 8 x 128: 8 x 8 x 2 = 128 <= 148 -> low latency, 8 tiles, 148 // 64 = 2 splits
    # 16 x 64: 16 x 4 x 2 = 128 <= 148 -> low latency, 4 tiles, 148 // 64 = 2 splits
    # 128 x 128: 128 x 8 x 2 > 148 -> high throughput: 64-head tiles, 2 of them, no key split
    # 1 x 4: tile of 8 (heads <= 8), 1 tile; min(ceil(100 / 128) = 1, 148) = 1 split
    assert k["low_latency"].tolist() == [1, 1, 1, 1, 0, 1]
    assert k["head_tile"].tolist() == [16, 16, 16, 16, 64, 8]
    assert k["head_tiles"].tolist() == [8, 2, 8, 4, 2, 1]
    assert k["kv_splits"].tolist() == [18, 1, 2, 2, 1, 1]
    # grids: 144; 128; 128; 128; 256; 1 -> the last fills <= a quarter of the SMs: value columns split over 4 CTAs
    assert k["ctas"].tolist() == [144, 128, 128, 128, 256, 4]
    # batch 16 x 2 head tiles = 32 CTAs fill <= a quarter of the SMs: x 4; 80 CTAs (batch 40) fill more than half: x 1;
    # 60 CTAs (batch 30) fill at most half: x 2
    assert mla_generation_kernel([16], [32], [64], 148)["ctas"].tolist() == [16 * 2 * 1 * 4]
    assert mla_generation_kernel([40], [32], [64], 148)["ctas"].tolist() == [40 * 2 * 1 * 1]
    assert mla_generation_kernel([30], [32], [64], 148)["ctas"].tolist() == [30 * 2 * 1 * 2]


def _mla_row(b, h, kv, dtype, kv_dtype, scope="kernel"):
    return pd.DataFrame({"batch_size": [b], "kv_len": [kv], "num_heads": [h], "scope": [scope], "dtype": [dtype],
                         "kv_dtype": [kv_dtype]})


def test_mla_decode_roofline_fp8_kv_attention_runs_at_fp8_rate_on_padded_heads():
    # kernel scope, batch 128, 128 heads, 131,072 keys, FP8 KV: high-throughput kernel, 2 tiles of 64 heads
    x, roof = featurize("mla_decode", _mla_row(128, 128, 131072, "bf16", "fp8"), B200)
    flops = 128 * 128 * 131072 * 2 * (576 + 512)
    t_c = flops / 4500e12 * 1e3                                # 1.04 ms at the FP8 rate (2.08 ms at BF16)
    t_m = 128 * 131072 * 576 * 1 / 7.7e12 * 1e3                # 1.25 ms of latent rows
    assert roof[0] == pytest.approx(max(t_c, t_m) + LAUNCH_FLOOR_MS, rel=1e-12)
    assert 2 ** x["log_t_compute"][0] == pytest.approx(t_c, rel=1e-6)
    assert x["low_latency_kernel"][0] == 0 and x["head_tiles"][0] == 2
    # BF16 KV: same FLOPs at the BF16 rate, twice the bytes
    x, roof = featurize("mla_decode", _mla_row(128, 128, 131072, "bf16", "bf16"), B200)
    assert 2 ** x["log_t_compute"][0] == pytest.approx(flops / 2250e12 * 1e3, rel=1e-6)
    assert roof[0] == pytest.approx(max(flops / 2250e12, 2 * t_m / 1e3) * 1e3 + LAUNCH_FLOOR_MS, rel=1e-12)


def test_mla_decode_heads_within_one_tile_cost_the_same_attention():
    # 1-8 heads fill one tile of 8, 9-16 one tile of 16: the attention's FLOPs do not change within a tile
    rows = pd.concat([_mla_row(4, h, 65536, "bf16", "fp8") for h in (1, 2, 4, 8, 16)], ignore_index=True)
    x, roof = featurize("mla_decode", rows, B200)
    t_c = 2 ** x["log_t_compute"].to_numpy(dtype=float)
    assert t_c[:4] == pytest.approx([t_c[0]] * 4, rel=1e-6)
    assert t_c[4] == pytest.approx(2 * t_c[0], rel=1e-6)
    assert t_c[0] == pytest.approx(4 * 8 * 65536 * 2 * 1088 / 4500e12 * 1e3, rel=1e-6)
    assert x["log_t_kv_per_tile"].tolist() == pytest.approx(
        np.log2(4 * 65536 * 576 / 7.7e12 * 1e3 * np.ones(5)).tolist(), rel=1e-6)   # one head tile each


def test_mla_decode_module_projections_keep_the_weight_rate():
    # module scope with NVFP4 weights and a BF16 KV cache: projections at the FP4 rate, attention at BF16
    x, _ = featurize("mla_decode", _mla_row(512, 128, 8192, "nvfp4", "bf16", scope="module"), B200)
    per_tok = (7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * (192 - 64 + 128) + 128 * 128 * 7168)
    proj = 2 * 512 * per_tok / 9000e12
    attn = 512 * 128 * 8192 * 2 * 1088 / 2250e12
    assert 2 ** x["log_t_compute"][0] == pytest.approx((proj + attn) * 1e3, rel=1e-6)


def test_msa_decode_roofline_reads_one_index_key_per_cached_token():
    row = pd.DataFrame({"batch_size": [256, 256], "kv_len": [131072, 1024], "num_heads": [32, 32],
                        "num_kv_heads": [2, 2], "head_dim": [128, 128], "hidden_size": [6144, 6144],
                        "index_n_heads": [4, 4], "index_head_dim": [128, 128], "block_size": [128, 128],
                        "index_topk": [2048, 2048], "dtype": ["bf16", "bf16"], "kv_dtype": ["bf16", "bf16"]})
    x, roof = featurize("msa_decode", row, B200)
    per_tok = 6144 * (32 + 4) * 128 + 32 * 128 * 6144 + 6144 * (4 * 128 + 128 + 4)
    sel = np.array([2048, 1024])
    kv = np.array([131072, 1024])
    nbytes = 256 * sel * 2 * 2 * 128 * 2 + 256 * kv * 128 * 2 + per_tok * 2
    flops = 256 * 32 * sel * 4 * 128 + 256 * kv / 128 * 512 * 2 + 2 * 256 * per_tok
    expect = flops / 2250e12 * 1e3 + nbytes / 7.7e12 * 1e3 + 8 * LAUNCH_FLOOR_MS
    assert roof == pytest.approx(expect, rel=1e-12)
    # past index_topk the selected keys stop growing; the index keys (8.6 GB here: 1.1 ms) keep the roofline growing
    assert 256 * 131072 * 128 * 2 / 7.7e12 * 1e3 == pytest.approx(1.116, abs=1e-3)
    assert roof[0] > 1.1


def test_mla_decode_keeps_the_plain_roofline_where_trtllm_gen_does_not_run():
    h100 = get_gpu("h100_sxm")
    assert not h100.has_trtllm_gen_kernels and B200.has_trtllm_gen_kernels
    x, roof = featurize("mla_decode", _mla_row(4, 4, 65536, "bf16", "fp8"), h100)
    flops = 4 * 4 * 65536 * 2 * 1088                      # the heads themselves, at the BF16 rate
    t_c, t_m = flops / h100.flops("bf16") * 1e3, 4 * 65536 * 576 / h100.hbm_bandwidth * 1e3
    assert roof[0] == pytest.approx(max(t_c, t_m) + LAUNCH_FLOOR_MS, rel=1e-12)
    assert "low_latency_kernel" not in x
