"""Two-micro-batch overlap of the EP all-to-all with the layer's compute (cost/overlap.py), the SMs the normal
all-to-all kernels take from that compute (``comm_sms``), and DeepEP's measured low-latency RDMA rate as a floor
under the cross-node all-to-all (cost/deepep_rdma.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from pathlib import Path

import numpy as np
import pytest

from frontier_calib.cost.deepep_rdma import ll_bytes, ll_floor_ms, ll_rate
from frontier_calib.cost.overlap import DEEPEP_NORMAL_SMS, comm_sm_share, layer_overlap_ms
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.deployment import deployment_from_dict
from frontier_calib.errors import InputError
from frontier_calib.model_spec import load_model

from stub_models import StubModels, stub_cost

QWEN = "Qwen/Qwen3-30B-A3B"   # 48 MoE layers, hidden 2048, 128 experts, top-8, no shared expert


# --------------------------------------------------------------------------------------------- formula (pure)

def test_layer_overlap_by_hand():
    # compute-bound: 2w = 2, 2x = 2.4, the comm holds 0.2 of the SMs for its 2.4: 2 + 0.48
    assert float(layer_overlap_ms(1.0, 1.2, 1.8, 2.2, 0.2)) == pytest.approx(2.48)
    assert float(layer_overlap_ms(1.0, 1.2, 1.8, 2.2, 0.0)) == pytest.approx(2.4)   # comm-bound without the SMs
    # comm-bound: all compute (1 + 0.4 with the SM loss) fits under the 2 of communication
    assert float(layer_overlap_ms(0.5, 1.0, 0.9, 1.9, 0.2)) == pytest.approx(2.0)
    # halves cost as much as the whole (small batches): not split
    assert float(layer_overlap_ms(1.0, 0.1, 1.05, 0.1, 0.2)) == pytest.approx(1.15)


def test_comm_sm_share():
    assert comm_sm_share(None, 132, [True])[0] == pytest.approx(DEEPEP_NORMAL_SMS / 132) == pytest.approx(20 / 132)
    assert comm_sm_share(24, 132, [True, False]).tolist() == pytest.approx([24 / 132, 0.0])   # LL kernels: none


@pytest.mark.parametrize("ep, dispatch_us, combine_us", [(8, 77, 114), (16, 118, 195), (32, 155, 273),
                                                         (64, 173, 314), (128, 192, 369), (256, 194, 360)])
def test_ll_floor_reproduces_deepeps_measured_latencies(ep, dispatch_us, combine_us):
    """The byte count behind DeepEP's low-latency rates (128 tokens, hidden 7168, top-8, FP8 + scales / BF16) over
    the measured rates gives back the measured latencies (DeepEP docs/legacy.md) within 3 %."""
    d = float(ll_floor_ms("dispatch", 128, 8, 7168, ep, 50e9)) * 1e3
    c = float(ll_floor_ms("combine", 128, 8, 7168, ep, 50e9)) * 1e3
    assert d == pytest.approx(dispatch_us, rel=0.03) and c == pytest.approx(combine_us, rel=0.03)


def test_ll_rate_interpolates_and_scales_with_the_nic():
    assert ll_rate("dispatch", 144) == pytest.approx(39e9)
    assert ll_rate("combine", 4) == pytest.approx(127e9)            # below the table: its first row
    assert float(ll_bytes("dispatch", 1, 1, 128)) == 132            # 128 FP8 values + one fp32 scale
    fast = float(ll_floor_ms("combine", 88, 8, 7168, 144, 100e9))
    assert fast == pytest.approx(float(ll_floor_ms("combine", 88, 8, 7168, 144, 50e9)) / 2)


# --------------------------------------------------------------------------------------------- on the cost model

A2A_PER_TOKEN_MS = 0.002   # per phase and token: dispatch + combine of n tokens = 0.004 n ms
GEMM_PER_ROW_MS = 0.003    # per GEMM and token (m): the layer's projections and router scale with the tokens


def _stub(fam, df):
    if fam == "moe_a2a":
        return A2A_PER_TOKEN_MS * df["num_tokens"].to_numpy(dtype=float)
    if fam == "gemm":
        return GEMM_PER_ROW_MS * df["m"].to_numpy(dtype=float)
    if fam == "moe":
        return np.zeros(len(df))   # routed experts free: only the rest of the layer can hide the all-to-all
    return np.full(len(df), 0.01)


class _NoDeepEPExperts(StubModels):
    def has(self, family, group=None):
        return family != "moe_deepep"


def _cost(fn=_stub, **kw):
    model = load_model(QWEN)
    w = WorkerSpec(model=model, gpu="h800_sxm", engine="sglang", tp=1, attention_dp=16, ep=16, moe_tp=1,
                   routing="balanced", **kw)
    return stub_cost(w, _NoDeepEPExperts(fn), max_tokens=1024, max_seqs=16), model


def test_the_all_to_all_hides_under_the_layers_compute_not_only_the_experts():
    """Routed experts cost nothing here, so an experts-only overlap would hide nothing; the layer's projections
    (QKV, output and router GEMMs at 0.003 ms per token each, more than the 0.004 ms of dispatch + combine) hide all of it."""
    n = 1024
    plain, model = _cost(tbo=False)
    tbo, _ = _cost(tbo=True, comm_sms=0)
    layers = sum(k for moe, _, k in model.layer_groups() if moe)
    comm = 2 * A2A_PER_TOKEN_MS * n
    saved = plain.token_ms(n) - tbo.token_ms(n)
    # the comm is gone; what the split costs is the halves' fixed parts (elementwise launches, 8 us per half)
    assert saved == pytest.approx(layers * (comm - 0.008), rel=1e-6)


def test_the_normal_kernels_take_their_sms_from_the_compute_they_hide_under():
    n = 1024                      # > 128 tokens per rank: DeepEP normal kernels
    free, model = _cost(tbo=True, comm_sms=0)
    layers = sum(k for moe, _, k in model.layer_groups() if moe)
    x2 = 2 * 2 * A2A_PER_TOKEN_MS * (n // 2)      # both micro-batches' dispatch + combine
    for sms, share in ((24, 24 / 132), (None, DEEPEP_NORMAL_SMS / 132)):
        held, _ = _cost(tbo=True, comm_sms=sms)
        assert held.token_ms(n) - free.token_ms(n) == pytest.approx(layers * share * x2, rel=1e-6)
    # low-latency kernels (decode batches, <= 128 tokens per rank) hold no SMs
    held, _ = _cost(tbo=True, comm_sms=24)
    assert held.token_ms(64) == pytest.approx(free.token_ms(64), rel=1e-12)


def _fast_a2a(fam, df):
    if fam == "moe_a2a":   # 1 us per token and phase: faster than DeepEP's measured RDMA rate
        return 1e-6 * df["num_tokens"].to_numpy(dtype=float)
    return _stub(fam, df)


def test_cross_node_low_latency_all_to_all_is_floored_at_deepeps_rate():
    cm, model = _cost(_fast_a2a, tbo=False)             # 16 GPUs over two nodes of 8
    n = np.array([88, 1024])
    got = cm._a2a_ms(n)
    floor = sum(float(ll_floor_ms(p, 88, model.topk, model.expert_hidden_size, 16, 50e9))
                for p in ("dispatch", "combine"))
    assert floor > 2 * 1e-6 * 88                             # the stub's own prediction is faster
    assert got[0] == pytest.approx(floor)                    # low-latency (88 tokens): the measured rate
    assert got[1] == pytest.approx(2 * 1e-6 * 1024)          # normal kernels: no floor
    one_node = dataclasses.replace(cm.worker, attention_dp=8, ep=8)
    assert stub_cost(one_node, _NoDeepEPExperts(_fast_a2a), max_tokens=16, max_seqs=4)._a2a_ms(n[:1])[0] == \
        pytest.approx(2 * 1e-6 * 88)                         # inside one node: no floor


# --------------------------------------------------------------------------------------------- deployment field

BASE = {"model": QWEN, "gpu": "h800_sxm", "engine": "sglang", "scheduler": {"max_model_len": 4096}}


def test_comm_sms_field():
    dep = deployment_from_dict({**BASE, "parallel": {"attention_dp": 2, "ep": 2, "tbo": True, "comm_sms": 24}})
    assert dep.worker.comm_sms == 24
    assert deployment_from_dict({**BASE, "parallel": {"attention_dp": 2, "ep": 2, "tbo": True}}).worker.comm_sms \
        is None


@pytest.mark.parametrize("par, words", [({"tbo": True, "comm_sms": 132}, "0 to 131"),
                                        ({"tbo": True, "comm_sms": True}, "whole number"),
                                        ({"tbo": True, "comm_sms": -1}, "whole number"),
                                        ({"tbo": True, "comm_sms": "24"}, "whole number"),
                                        ({"comm_sms": 24}, "needs tbo")])
def test_comm_sms_errors(par, words):
    with pytest.raises(InputError, match=words) as exc:
        deployment_from_dict({**BASE, "parallel": {"attention_dp": 2, "ep": 2, **par}})
    assert exc.value.field == "parallel.comm_sms"


def test_sglang_pd_pools_run_the_deepep_mode_of_their_phase():
    """SGLang's --deepep-mode auto: normal kernels for batches with prefill, low-latency for decode and verify
    batches; a PD pool runs one kind, so its mode does not depend on its tokens per rank."""
    from frontier_calib.deployment import load_deployment

    dep = load_deployment(Path(__file__).resolve().parents[1] / "deployments" /
                          "deepseek-v3-h800-sglang-pd-ep32-ep144.yaml")
    assert (dep.prefill.worker.a2a_backend, dep.decode.worker.a2a_backend) == ("deepep_normal", "deepep_ll")
    assert dep.prefill.worker.comm_sms == 24 and dep.decode.worker.comm_sms is None
    raw = {"mode": "pd", "model": QWEN, "gpu": "h100_sxm", "engine": "vllm",
           "prefill": {"parallel": {"attention_dp": 2, "ep": 2}}, "decode": {"parallel": {"attention_dp": 2, "ep": 2}}}
    vllm = deployment_from_dict(raw)
    assert (vllm.prefill.worker.a2a_backend, vllm.decode.worker.a2a_backend) == ("auto", "auto")
