"""Prefill/decode disaggregation: KV bytes, KV transfers over links, backpressure, PD deployments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_calib.attention import kv_bytes_per_token
from frontier_calib.deployment import deployment_from_dict, load_deployment
from frontier_calib.modes.pd import (PDDeployment, build_pd_replicas, kv_transfer_bytes_per_token,
                                          pd_config)
from frontier_calib.errors import FrontierError, InputError
from frontier_calib.model_spec import load_model
from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.disagg import KVTransferSpec
from frontier_calib.sim.links import LinkSpec
from frontier_calib.sim.testing import make_trace, poisson_trace


def _pd(cfg_p, cfg_d, *, bytes_per_token=1000.0, bw=math.inf, lat=0.0, mode="whole", n_p=1, n_d=1, cost=None,
        shared_link=False):
    cost = cost or LinearCost()
    specs = []
    for i in range(n_p):
        link = LinkSpec("l0" if shared_link else f"l{i}", bw, lat)
        specs.append(ReplicaSpec(cfg_p, cost, role="prefill", name=f"p{i}",
                                 kv_transfer=KVTransferSpec(bytes_per_token, link, mode, num_layers=32)))
    specs += [ReplicaSpec(cfg_d, cost, role="decode", name=f"d{i}") for i in range(n_d)]
    return specs


# ---------------------------------------------------------------------------------------------- KV bytes

def test_kv_bytes_gqa_by_hand():
    m = load_model("Meta-Llama-3.1-8B")        # 32 layers, 8 KV heads, head_dim 128
    assert kv_transfer_bytes_per_token(m, "bf16") == 2 * 8 * 128 * 32 * 2 == 131_072
    assert kv_transfer_bytes_per_token(m, "fp8") == 65_536
    # what one TP rank holds x the TP ranks (tp <= KV heads)
    assert kv_bytes_per_token(m, "bf16", tp=4) * 4 == 131_072


def test_kv_bytes_mla_by_hand():
    m = load_model("DeepSeek-V3")              # (512 latent + 64 rope) x 61 layers x 2 bytes
    assert kv_transfer_bytes_per_token(m, "bf16") == (512 + 64) * 61 * 2 == 70_272


def test_transfer_time_is_latency_plus_bytes_over_bandwidth():
    cfg = SchedulerConfig(max_num_batched_tokens=512, max_num_seqs=8, num_kv_blocks=1000)
    trace = make_trace([0.0], [1000], [5])
    specs = _pd(cfg, cfg, bytes_per_token=131_072, bw=50e9, lat=10e-6)
    res = simulate(trace, specs, ttft="prefill")
    row = res.requests.iloc[0]
    assert row["kv_bytes"] == 1000 * 131_072
    assert row["kv_transfer_s"] == pytest.approx(10e-6 + 1000 * 131_072 / 50e9, rel=1e-9)
    assert row["kv_transfer_wait_s"] == 0
    link = res.stats["links"][0]
    assert link["bytes"] == 1000 * 131_072 and link["transfers"] == 1
    # layer-wise streaming hides all but the last layer's share (the prefill took longer than the transfer)
    lw = simulate(trace, _pd(cfg, cfg, bytes_per_token=131_072, bw=50e9, lat=10e-6, mode="layerwise"))
    assert lw.requests["kv_transfer_s"].iloc[0] == pytest.approx(10e-6 + 1000 * 131_072 / 50e9 / 32, rel=1e-9)


def test_shared_link_is_fifo():
    cfg = SchedulerConfig(max_num_batched_tokens=2048, max_num_seqs=8, num_kv_blocks=1000)
    trace = make_trace([0.0, 0.0], [1000, 1000], [5, 5])
    specs = _pd(cfg, cfg, bytes_per_token=1e6, bw=1e9, n_p=2, shared_link=True)
    res = simulate(trace, specs)
    assert len(res.stats["links"]) == 1
    starts = np.sort((res.requests["prefill_end_s"] + res.requests["kv_transfer_wait_s"]).to_numpy())
    assert starts[1] - starts[0] >= 1.0 - 1e-9            # the second waited for the first (1 GB at 1 GB/s)


# ---------------------------------------------------------------------------------------------- consistency

def test_pd_with_infinite_link_no_worse_than_colocated(llama_replicas):
    """No prefill interference: TTFT (first token from the prefill worker) and TPOT no worse than co-located."""
    specs, cost = llama_replicas
    cfg = specs[0].scheduler
    trace = poisson_trace(150, 2.0, 1500, 150, seed=3)
    colo = simulate(trace, [ReplicaSpec(cfg, cost)])
    pd_ = simulate(trace, _pd(cfg, cfg, cost=cost), ttft="prefill")
    assert (pd_.requests["status"] == "ok").all() and (colo.requests["status"] == "ok").all()
    assert pd_.summary["mean_ttft_ms"] <= colo.summary["mean_ttft_ms"]
    assert pd_.summary["median_ttft_ms"] <= colo.summary["median_ttft_ms"]
    assert pd_.summary["mean_tpot_ms"] <= colo.summary["mean_tpot_ms"]
    assert pd_.summary["p99_tpot_ms"] <= colo.summary["p99_tpot_ms"]


def test_ttft_definitions():
    cfg = SchedulerConfig(max_num_batched_tokens=512, max_num_seqs=8, num_kv_blocks=1000)
    trace = poisson_trace(40, 5.0, 600, 30, seed=2)
    specs = _pd(cfg, cfg, bytes_per_token=1e5, bw=1e9, lat=1e-3)
    at_p = simulate(trace, specs, ttft="prefill").requests
    at_d = simulate(trace, specs, ttft="decode").requests
    assert (at_d["ttft_s"] >= at_p["ttft_s"] + at_p["kv_transfer_s"] - 1e-12).all()
    np.testing.assert_allclose(at_d["e2e_s"], at_p["e2e_s"])
    np.testing.assert_allclose(at_p["first_token_s"], at_p["prefill_end_s"])


# ---------------------------------------------------------------------------------------------- properties

@st.composite
def pd_cases(draw):
    n = draw(st.integers(1, 30))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.001, 0.02, 0.3]), min_size=n, max_size=n))
    inp = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    out = draw(st.lists(st.integers(1, 60), min_size=n, max_size=n))
    conc = draw(st.sampled_from([None, None, 2]))
    trace = make_trace(np.cumsum(gaps), inp, out, concurrency=conc)
    policy = draw(st.sampled_from(["vllm", "sglang", "trtllm"]))
    bs = draw(st.sampled_from([4, 16]))
    seqs = draw(st.integers(1, 8))
    p = SchedulerConfig(policy=policy, block_size=bs, max_num_seqs=seqs, max_model_len=600,
                        max_num_batched_tokens=draw(st.integers(max(seqs, bs), 256)),
                        num_kv_blocks=draw(st.integers(30, 150)), enable_prefix_caching=False)
    d = SchedulerConfig(policy=policy, block_size=bs, max_num_seqs=draw(st.integers(1, 8)), max_model_len=600,
                        max_num_batched_tokens=256, num_kv_blocks=draw(st.integers(8, 80)))
    kw = dict(bytes_per_token=draw(st.sampled_from([0.0, 1e4, 1e6])), bw=draw(st.sampled_from([math.inf, 1e9])),
              lat=draw(st.sampled_from([0.0, 1e-3])), mode=draw(st.sampled_from(["whole", "layerwise"])),
              n_p=draw(st.integers(1, 2)), n_d=draw(st.integers(1, 2)), shared_link=draw(st.booleans()))
    router = {"prefill": draw(st.sampled_from(["round_robin", "least_outstanding"])),
              "decode": draw(st.sampled_from(["round_robin", "least_outstanding", "kv_aware"]))}
    return trace, _pd(p, d, **kw), router, draw(st.sampled_from(["prefill", "decode"]))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pd_cases())
def test_backpressure_never_exceeds_decode_kv_and_nothing_lost(case):
    trace, specs, router, ttft = case
    res = simulate(trace, specs, router=router, ttft=ttft, check=True)   # check: KV accounting after every step
    df = res.requests
    assert len(df) == len(trace.requests)
    assert df["request_id"].tolist() == trace.requests["request_id"].tolist()
    ok = df["status"] == "ok"
    assert all(s.startswith("rejected:") and len(s) > 9 for s in df.loc[~ok, "status"])
    for rep in res.stats["replicas"]:
        assert rep["kv_blocks_max_used"] <= rep["kv_blocks"]
    assert res.stats["pools"]["decode"]["kv_blocks_max_used"] <= res.stats["pools"]["decode"]["kv_blocks"]
    moved = ok & (df["output_tokens"] > 1)
    assert (df.loc[moved, "replica"].str.startswith("d")).all()
    assert (df.loc[moved, "kv_transfer_wait_s"] >= 0).all() and (df.loc[moved, "kv_transfer_s"] >= 0).all()
    assert (df.loc[ok, "first_token_s"] <= df.loc[ok, "completion_s"]).all()
    # every transfer moved exactly once
    assert sum(link["transfers"] for link in res.stats["links"]) == int(df["kv_bytes"].gt(0).sum()) or \
        all(s.kv_transfer.bytes_per_token == 0 for s in specs if s.role == "prefill")
    # same seed, same output
    again = simulate(trace, specs, router=router, ttft=ttft)
    pd.testing.assert_frame_equal(df, again.requests)


def test_backpressure_holds_transfers_back_and_reports_the_wait():
    p = SchedulerConfig(max_num_batched_tokens=2048, max_num_seqs=16, num_kv_blocks=2000)
    d = SchedulerConfig(max_num_batched_tokens=256, max_num_seqs=16, num_kv_blocks=80)   # 1280 tokens
    trace = make_trace([0.0] * 12, [500] * 12, [100] * 12)
    res = simulate(trace, _pd(p, d, bytes_per_token=1e4, bw=1e10), check=True)
    assert (res.requests["status"] == "ok").all()
    assert res.stats["disaggregation"]["kv_backpressure_s"]["max"] > 0
    assert res.stats["replicas"][1]["kv_blocks_max_used"] <= 80


# ---------------------------------------------------------------------------------------------- YAML

DS_PD = {"mode": "pd", "model": "DeepSeek-V3", "gpu": "h200_sxm", "engine": "sglang",
         "prefill": {"workers": 1, "parallel": {"tp": 8}},
         "decode": {"workers": 1, "parallel": {"tp": 1, "attention_dp": 8, "ep": 8},
                    "scheduler": {"max_num_batched_tokens": 256, "max_num_seqs": 128}}}


def test_pd_yaml_loads_with_defaults():
    dep = deployment_from_dict(DS_PD)
    assert isinstance(dep, PDDeployment)
    assert dep.total_gpus == 16 and dep.decode.worker.moe_tp == 1
    assert dep.link.kind == "rdma" and dep.link.bandwidth_bytes_s == 50e9     # 16 GPUs > one node
    assert dep.ttft == "decode" and dep.router == {"prefill": "round_robin", "decode": "round_robin"}
    small = deployment_from_dict({**DS_PD, "model": "Meta-Llama-3.1-8B", "engine": "vllm",
                                  "prefill": {"workers": 2}, "decode": {"workers": 2}})
    assert small.link.kind == "nvlink"                                         # 4 GPUs: one node


def test_pd_config_from_benchmark_row():
    raw = pd_config("DeepSeek-V3", "h200_sxm", engine="sglang",
                    prefill=dict(workers=2, tp=8, pp=1, attention_dp=1, moe_tp=8, moe_ep=1),
                    decode=dict(workers=1, tp=1, attention_dp=8, moe_tp=1, moe_ep=8,
                                scheduler={"max_num_batched_tokens": 256}))
    dep = deployment_from_dict(raw)
    assert dep.prefill.workers == 2 and dep.decode.worker.ep == 8 and dep.total_gpus == 24
    specs, _ = build_pd_replicas(dep, costs={"prefill": LinearCost(), "decode": LinearCost()})
    assert [s.name for s in specs][:3] == ["p0", "p1", "d0.dp0"] and len(specs) == 10
    assert specs[0].kv_transfer.bytes_per_token == 70_272
    assert specs[0].kv_transfer.link.bandwidth_bytes_s == 8 * 50e9


@pytest.mark.parametrize("patch, field", [
    ({"decode": {"workers": 1, "parallel": {"tp": 1, "attention_dp": 8, "ep": 3}}}, "decode.parallel"),
    ({"prefill": {"workers": 0}}, "prefill.workers"),
    ({"prefill": {"parallel": {"tp": 16}}, "cluster": {"gpus_per_node": 6}}, "prefill.parallel.tp"),  # part of a node
    ({"prefill": {"workers": 1, "bogus": 1}}, "prefill"),
    ({"link": {"transfer": "teleport"}}, "link.transfer"),
    ({"link": {"bandwidth_gbps": -1}}, "link.bandwidth_gbps"),
    ({"ttft": "first"}, "ttft"),
    ({"router": {"decode": "prefix_affinity"}}, "router.decode"),
    ({"parallel": {"tp": 8}}, "parallel"),
    ({"cluster": {"nodes": 1}}, "cluster.nodes"),
    ({"decode": {"kv_dtype": "fp8", "parallel": {"tp": 1, "attention_dp": 8, "ep": 8}}}, "decode.kv_dtype"),
])
def test_pd_yaml_errors_name_file_and_field(tmp_path, patch, field):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**DS_PD, **patch}))
    with pytest.raises(InputError) as exc:
        load_deployment(path)
    msg = str(exc.value)
    assert str(path) in msg and f"'{field}'" in msg, msg


def test_missing_pool_is_an_error(tmp_path):
    raw = {k: v for k, v in DS_PD.items() if k != "decode"}
    with pytest.raises(InputError, match="decode"):
        deployment_from_dict(raw, source="x.yaml")


def test_pd_engine_options_top_level_and_per_pool():
    """engine_options at the top level reach both pools; a pool's own keys win (here: an eager prefill pool)."""
    dep = deployment_from_dict({**DS_PD, "engine_options": {"overlap": False},
                                "prefill": {**DS_PD["prefill"], "engine_options": {"cuda_graph": False}}})
    assert dep.prefill.worker.overlap is False and dep.decode.worker.overlap is False
    assert dep.prefill.worker.cuda_graph is False and dep.decode.worker.cuda_graph is True
    plain = deployment_from_dict(DS_PD)
    assert plain.prefill.worker.overlap is None and plain.decode.worker.cuda_graph is True
    with pytest.raises(InputError, match="decode.engine_options.overlap"):
        deployment_from_dict({**DS_PD, "decode": {**DS_PD["decode"], "engine_options": {"overlap": "yes"}}},
                             source="x.yaml")


def test_linear_attention_state_moves_once_per_request():
    """A hybrid model's recurrent state (GDN layers) rides with the KV: bytes = prompt x per-token + the state."""
    from frontier_calib.attention import state_bytes_per_sequence

    m = load_model("Qwen/Qwen3.5-397B-A17B")
    state = state_bytes_per_sequence(m, tp=1)
    assert state > 0 and state_bytes_per_sequence(load_model("Meta-Llama-3.1-8B"), tp=1) == 0
    cfg = SchedulerConfig(max_num_batched_tokens=512, max_num_seqs=8, num_kv_blocks=1000)
    trace = make_trace([0.0], [1000], [5])
    specs = _pd(cfg, cfg, bytes_per_token=1000.0, bw=50e9)
    specs[0] = ReplicaSpec(cfg, LinearCost(), role="prefill", name="p0",
                           kv_transfer=KVTransferSpec(1000.0, LinkSpec("l0", 50e9, 0.0), bytes_per_request=state))
    row = simulate(trace, specs).requests.iloc[0]
    assert row["kv_bytes"] == 1000 * 1000.0 + state
    assert row["kv_transfer_s"] == pytest.approx((1000 * 1000.0 + state) / 50e9, rel=1e-9)
    with pytest.raises(FrontierError, match="bytes_per_request"):
        KVTransferSpec(1.0, LinkSpec("l", 1e9, 0.0), bytes_per_request=-1.0)
