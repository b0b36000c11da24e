"""The deployment's own GPU-to-GPU link (``cluster.link``, cost/node_link.py): ring costs by hand, parsing, the
collectives it replaces in the cost model, and the run-folder cluster description `validate run` reads."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from frontier_calib.cost.cache import needed_families
from frontier_calib.cost.iteration import IterationCostModel
from frontier_calib.cost.node_link import NodeLink, parse_node_link, ring_allgather_ms, ring_allreduce_ms
from frontier_calib.deployment import deployment_from_dict
from frontier_calib.errors import InputError
from frontier_calib.validate.run_folder import deployment_for_run, read_cluster

PCIE = NodeLink(bandwidth=16e9, latency_s=20e-6)


def test_ring_costs_by_hand():
    # 2 GPUs, 1 MB per GPU: all-reduce = 2(1)/2 x 1e6 / 16e9 s + 2 x 20 us = 62.5 + 40 us
    assert ring_allreduce_ms(1e6, 2, PCIE.bandwidth, PCIE.latency_s) == pytest.approx(0.1025)
    # all-gather of a 1 MB buffer over 2 GPUs: 1/2 x 1e6 / 16e9 s + 20 us = 31.25 + 20 us
    assert ring_allgather_ms(1e6, 2, PCIE.bandwidth, PCIE.latency_s) == pytest.approx(0.05125)
    # 4 GPUs: 2 x 3/4 x 4e6 / 16e9 = 375 us + 6 x 20 us
    assert ring_allreduce_ms(4e6, 4, PCIE.bandwidth, PCIE.latency_s) == pytest.approx(0.495)
    assert np.all(ring_allreduce_ms(np.array([1.0, 1e9]), 1, 1e9, 1e-3) == 0)   # one GPU: nothing to exchange


def test_parse_node_link():
    assert parse_node_link({}, "d.yaml") is None
    assert parse_node_link({"link": {"bandwidth_GBps": 16, "latency_us": 20}}, "d.yaml") == PCIE
    for bad, field in (({"bandwidth_GBps": 16}, "cluster.link.latency_us"),
                       ({"bandwidth_GBps": 0, "latency_us": 20}, "cluster.link.bandwidth_GBps"),
                       ({"bandwidth_GBps": 16, "latency_us": -1}, "cluster.link.latency_us"),
                       ({"bandwidth_GBps": 16, "latency_us": 20, "lanes": 16}, "cluster.link.lanes"),
                       ("pcie", "cluster.link")):
        with pytest.raises(InputError) as exc:
            parse_node_link({"link": bad}, "d.yaml")
        assert exc.value.field == field and "d.yaml" in str(exc.value)


def test_deployment_carries_the_link_to_the_worker():
    raw = {"model": "meta-llama/Llama-2-7b-hf", "gpu": "h100_sxm", "parallel": {"tp": 2},
           "cluster": {"link": {"bandwidth_GBps": 16, "latency_us": 20}}}
    assert deployment_from_dict(raw).worker.node_link == PCIE
    assert deployment_from_dict({**raw, "cluster": {}}).worker.node_link is None


@pytest.fixture(scope="module")
def tp2_costs(frontier_cache, worker):
    from frontier_calib.opmodel.registry import cached_model_set

    w = replace(worker, tp=2)
    models = cached_model_set(w.gpu, w.engine, families=needed_families(w))
    kw = dict(max_tokens=64, max_seqs=4, max_model_len=256)
    return (w, IterationCostModel(w, models, **kw),
            IterationCostModel(replace(w, node_link=PCIE), models, **kw))


def test_link_replaces_the_profiled_allreduce(tp2_costs):
    w, profiled, linked = tp2_costs
    n = np.array([1, 16, 64])
    want = ring_allreduce_ms(n * w.model.hidden_size * 2, 2, PCIE.bandwidth, PCIE.latency_s)
    assert np.array_equal(linked._tp_allreduce_ms(n), want)
    # two all-reduces per layer and the input embedding's one: the token-proportional time grows by their difference
    extra = (2 * w.model.num_layers + 1) * (want - profiled._tp_allreduce_ms(n))
    assert np.all(extra > 0)
    got = np.array([linked.token_ms(int(x)) - profiled.token_ms(int(x)) for x in n])
    assert got == pytest.approx(extra, rel=0.002)


def test_tp_lm_head_gathers_the_logits(tp2_costs):
    """A vocab-parallel LM head all-gathers n x vocab x 2 bytes of logits over the TP group before sampling."""
    w, profiled, linked = tp2_costs
    for n in (1, 4, 64):
        gemm = float(linked._gemm_ms(w.model.lm_head_gemm(2), np.array([n]), "bf16")[0])
        # by hand for n = 64, Llama-2 (vocab 32,000): 4.096 MB, half of it over 16 GB/s (128 us) + 20 us
        gather = float(ring_allgather_ms(n * w.model.vocab_size * 2, 2, PCIE.bandwidth, PCIE.latency_s))
        assert linked.lm_head_ms(n) == pytest.approx(gemm + gather, rel=1e-9)
        assert profiled.lm_head_ms(n) > gemm   # NVLink: the profiled NCCL all-gather, smaller but not zero
    assert float(ring_allgather_ms(64 * 32000 * 2, 2, PCIE.bandwidth, PCIE.latency_s)) == pytest.approx(0.148)


def _folder(tmp_path, tp=2, cluster=None, other=None):
    d = tmp_path / "run"
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"engine_kwargs": {"model": "meta-llama/Llama-2-7b-hf",
                                                               "tensor_parallel_size": tp}}))
    if cluster is not None:
        (d / "cluster.json").write_text(json.dumps(cluster))
    if other is not None:
        (d / "llmservingsim_config.json").write_text(json.dumps(other))
    return d


def test_run_folder_cluster_description(tmp_path):
    other = {"num_nodes": 1, "link_bw": 16, "link_latency": 20000, "nodes": []}
    d = _folder(tmp_path / "a", other=other)
    assert read_cluster(d) == {"link": {"bandwidth_GBps": 16.0, "latency_us": 20.0}}
    assert deployment_for_run(d, "h100_sxm")["cluster"] == {"link": {"bandwidth_GBps": 16.0, "latency_us": 20.0}}
    # one GPU: no collectives, no cluster section
    assert "cluster" not in deployment_for_run(_folder(tmp_path / "b", tp=1, other=other), "h100_sxm")
    # the folder's own cluster.json wins
    own = {"link": {"bandwidth_GBps": 50, "latency_us": 5}}
    assert read_cluster(_folder(tmp_path / "c", cluster=own, other=other)) == own
    assert read_cluster(_folder(tmp_path / "d")) is None
    bad = _folder(tmp_path / "e")
    (bad / "cluster.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_cluster(bad)
