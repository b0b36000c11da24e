"""TensorRT-LLM's NVLinkOneSided dispatch/combine inside one NVLink domain (cost/nvlink_a2a.py): the measured
tables of tech blog 18, the equal-bytes rule for other formats and shapes, and where the cost model uses it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from frontier_calib.cost.nvlink_a2a import MEASURED_US, one_sided_ms
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.model_spec import load_model

from stub_models import StubModels, stub_cost

DSV3 = dict(hidden=7168, topk=8)   # the measured shape (DeepSeek-V3)


@pytest.mark.parametrize("ep, n, dispatch_us, combine_us", [(8, 1, 18.9, 31.0), (32, 8, 19.4, 32.2),
                                                            (16, 256, 54.8, 57.0), (64, 2048, 399.2, 372.1)])
def test_the_measured_bf16_rows_come_back(ep, n, dispatch_us, combine_us):
    """BF16, DeepSeek-V3's shape: exactly the blog's dispatch + combine at its measured points."""
    got = float(one_sided_ms(n, ep, moe_dtype="bf16", **DSV3)[()])
    assert got == pytest.approx((dispatch_us + combine_us) / 1e3, rel=1e-9)


def test_equal_bytes_reproduces_the_blogs_post_quant_dispatch():
    """The blog's own post-quant measurement (EP 8, 2,048 tokens per rank): NVFP4 dispatch 101.7 us, MXFP8 172.2
    us; the BF16 table at the same bytes on the wire (576 and 1,056 tokens) gives them within 1 %."""
    combine = MEASURED_US[8][1][-1] / 1e3
    nvfp4 = float(one_sided_ms(2048, 8, moe_dtype="nvfp4", **DSV3)[()]) - combine
    fp8 = float(one_sided_ms(2048, 8, moe_dtype="fp8_block", **DSV3)[()]) - combine
    assert nvfp4 * 1e3 == pytest.approx(101.7, rel=0.01)
    assert fp8 * 1e3 == pytest.approx(172.2, rel=0.01)


def test_small_batches_sit_at_the_synchronisation_floor_and_large_ones_scale_with_bytes():
    floor = (19.4 + 32.2) / 1e3
    # a quarter of the bytes of one measured token, or a narrower model: still the 1-token floor, never less
    assert float(one_sided_ms(1, 32, moe_dtype="nvfp4", **DSV3)[()]) == pytest.approx((19.8 + 31.4) / 1e3)
    assert float(one_sided_ms(8, 32, hidden=2048, topk=8, moe_dtype="bf16")[()]) < floor
    # beyond 2,048 tokens: proportional to the bytes (the last measured rate)
    big = float(one_sided_ms(8192, 8, moe_dtype="bf16", **DSV3)[()])
    assert big == pytest.approx(4 * (311.8 + 322.6) / 1e3)
    # fewer copies per token when top-k < the measured 8 (at most one per target rank)
    assert float(one_sided_ms(2048, 8, hidden=7168, topk=4, moe_dtype="bf16")[()]) < \
        float(one_sided_ms(2048, 8, moe_dtype="bf16", **DSV3)[()])


def test_ep_sizes_between_and_beyond_the_measured_ones():
    at = {ep: float(one_sided_ms(512, ep, moe_dtype="bf16", **DSV3)[()]) for ep in (4, 8, 16, 24, 32, 64, 72)}
    assert at[4] == at[8] and at[72] == at[64]                      # clamped to the measured 8..64
    assert at[16] < at[24] < at[32]                                  # interpolated in log2(ep)


# --------------------------------------------------------------------------------------------- on the cost model

QWEN = "Qwen/Qwen3-30B-A3B"   # 48 MoE layers, hidden 2048, 128 experts, top-8


class _NCCL:
    categories_ = {"op": ["all_gather", "reduce_scatter", "all_reduce"], "implementation": ["nccl"]}


class _Tables(StubModels):
    """Every family 0.01 ms, DeepEP's all-to-all 1 ms a phase: a use of the DeepEP tables shows at once; NCCL
    all-gather and reduce-scatter measured (0.01 ms each)."""
    def __init__(self):
        super().__init__(lambda fam, df: np.full(len(df), 1.0 if fam == "moe_a2a" else 0.01))
        self.models = {("collective", "nccl"): _NCCL()}

    def groups(self, family):
        return ["nccl"] if family == "collective" else []

    def has(self, family, group=None):
        return family != "moe_deepep"


GPT_OSS = "openai/gpt-oss-120b"   # 128 experts, top-4


def _cm(gpu, engine, ep=8, model=QWEN, **kw):
    w = WorkerSpec(model=load_model(model), gpu=gpu, engine=engine, tp=1, attention_dp=ep, ep=ep, moe_tp=1,
                   routing="balanced", **kw)
    return stub_cost(w, _Tables(), max_tokens=64, max_seqs=8)


def test_trtllm_inside_one_nvlink5_domain_prices_the_one_sided_kernels():
    n = np.array([1, 64])
    for gpu, ep, model in (("gb200", 32, QWEN), ("gb300", 16, QWEN), ("b200_sxm", 8, GPT_OSS)):
        m = load_model(model)
        got = _cm(gpu, "trtllm", ep=ep, model=model)._a2a_ms(n)
        assert got == pytest.approx(one_sided_ms(n, ep, m.expert_hidden_size, m.topk, "bf16"))


def test_trtllm_with_ep_not_above_top_k_all_gathers_instead():
    """TensorRT-LLM enables all-to-all only when moe_ep_size > top_k (select_alltoall_method_type); at EP 8 with
    top-8 routing the layer all-gathers and reduce-scatters: neither the one-sided kernels nor DeepEP's tables."""
    cm = _cm("b200_sxm", "trtllm", ep=8)          # Qwen3-30B-A3B: top-8
    assert not cm._nvlink_one_sided() and not cm._deepep_a2a()
    assert cm._a2a_ms(np.array([8]))[0] == pytest.approx(0.02)   # NCCL all-gather + reduce-scatter


def test_hopper_trtllm_all_gathers_other_engines_and_explicit_backends_keep_deepep():
    """TensorRT-LLM never picks DeepEP by default (select_alltoall_method_type needs TRTLLM_CAN_USE_DEEP_EP):
    on Hopper, without its NVLink-5 kernels, it all-gathers and reduce-scatters; SGLang runs DeepEP, and a pool
    that names a DeepEP mode keeps it."""
    n = np.array([8])
    assert _cm("gb200", "sglang", ep=32)._a2a_ms(n)[0] == pytest.approx(2.0)     # SGLang: DeepEP
    hopper = _cm("h200_sxm", "trtllm", ep=8, model=GPT_OSS)                     # EP 8 > top-4, NVLink 4
    assert not hopper._nvlink_one_sided() and hopper._a2a_ms(n)[0] == pytest.approx(0.02)
    pinned = _cm("gb200", "trtllm", ep=32)
    pinned = stub_cost(dataclasses.replace(pinned.worker, a2a_backend="deepep_ll"), _Tables(), max_tokens=64,
                       max_seqs=8)
    assert pinned._a2a_ms(n)[0] == pytest.approx(2.0)                           # a pool that says DeepEP


def test_an_ep_group_wider_than_the_nvlink_domain_is_not_one_sided():
    """16 B200s span two 8-GPU boards: the kernels need one NVLink domain, so TensorRT-LLM all-gathers."""
    cm = _cm("b200_sxm", "trtllm", ep=16)
    assert not cm._nvlink_one_sided() and cm._a2a_ms(np.array([8]))[0] == pytest.approx(0.02)
