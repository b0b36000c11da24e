"""MoE routing model (balanced / power-law / per-expert histogram), two-batch overlap, and attention/FFN (AF)
disaggregation: the pipeline formula, the AF cost wrapper against the co-located cost model, AF deployments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from frontier_calib.cost.worker import Overheads
from frontier_calib.engines import OVERHEAD_FIELDS
import yaml
from hypothesis import given
from hypothesis import strategies as st

from frontier_calib.cost.af import AFCost, pipeline_ms
from frontier_calib.cost.iteration import IterationCostModel
from frontier_calib.cost.moe_routing import max_rank_share, moe_query, tbo_ms, validate_histogram
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.deployment import build_replicas, deployment_from_dict, load_deployment
from frontier_calib.modes.af import AFDeployment, build_af_replicas
from frontier_calib.errors import FrontierError, InputError
from frontier_calib.model_spec import load_model

REPO = Path(__file__).resolve().parents[1]
QWEN = "Qwen/Qwen3-30B-A3B"   # hidden 2048, 128 experts, top-8, expert inter 768: a shape in the h100 moe tables


# --------------------------------------------------------------------------------------------- routing (pure)

def test_max_rank_share_uniform_and_skewed():
    assert max_rank_share([1.0] * 128, 8) == pytest.approx(1 / 8)
    h = [1.0] * 128
    h[0] = 17.0                               # rank 0 gets 16 + 16 = 32 of 144
    assert max_rank_share(h, 8) == pytest.approx(32 / 144)
    assert max_rank_share(h, 1) == 1.0


def test_histogram_query_uses_balanced_at_the_busiest_ranks_token_count():
    n = np.array([64, 1024])
    assert moe_query("power_law_1.2", (), 8, n)[0] == "power_law_1.2"
    dist, tok = moe_query("histogram", tuple([3.0] * 128), 8, n)
    assert dist == "balanced" and (tok == n).all()
    h = [1.0] * 128
    h[0] = 17.0
    dist, tok = moe_query("histogram", tuple(h), 8, n)
    assert dist == "balanced" and (tok == np.rint(n * 8 * 32 / 144)).all()


@pytest.mark.parametrize("bad, words", [([1.0] * 7, "8 experts"), ([1, 2, 3, -1, 0, 0, 0, 0], ">= 0"),
                                        ([0] * 8, "all zeros"), ("flat", "list")])
def test_histogram_validation(bad, words):
    with pytest.raises(FrontierError, match=words):
        validate_histogram(bad, 8)


def test_histogram_in_yaml_is_validated_and_stored_as_a_tuple(tmp_path):
    base = {"model": "mistralai/Mixtral-8x7B-v0.1", "gpu": "h100_sxm", "parallel": {"tp": 2, "ep": 2},
            "scheduler": {"max_model_len": 4096}}
    dep = deployment_from_dict({**base, "routing": {"histogram": [8, 1, 1, 1, 1, 1, 1, 1]}})
    assert dep.worker.routing == "histogram" and dep.worker.expert_histogram == (8.0,) + (1.0,) * 7
    hash(dep.worker)                                               # frozen and hashable
    (tmp_path / "h.json").write_text("[1, 1, 1, 1, 1, 1, 1, 2]")
    dep = deployment_from_dict({**base, "routing": {"histogram_file": "h.json"}}, base_dir=tmp_path)
    assert dep.worker.expert_histogram[-1] == 2.0
    for routing, words in (({"histogram": [1, 2]}, "8 experts"), ({"histogram": [1] * 7 + [-1]}, ">= 0"),
                           ({"histogram_file": "nope.json"}, "not found"), ("zipf", "unknown routing"),
                           ({"hist": [1]}, "expected")):
        with pytest.raises(InputError, match=words) as exc:
            deployment_from_dict({**base, "routing": routing}, base_dir=tmp_path)
        assert exc.value.field == "routing"


# --------------------------------------------------------------------------------------------- routing (tables)

@pytest.fixture(scope="module")
def moe_models(frontier_cache):
    from frontier_calib.opmodel.registry import cached_model_set

    return cached_model_set("h100_sxm", "vllm", families=["moe", "moe_a2a"], groups={"moe": {"bf16"}})


def _moe_part(worker, models) -> IterationCostModel:
    """An IterationCostModel shell for calling its MoE pieces without building every table."""
    cm = IterationCostModel.__new__(IterationCostModel)
    cm.worker, cm.models = worker, models
    from frontier_calib.hardware import get_gpu

    cm.spec = get_gpu(worker.gpu)
    return cm


def _worker(**kw) -> WorkerSpec:
    return WorkerSpec(model=load_model(QWEN), gpu="h100_sxm", engine="vllm", **kw)


@pytest.mark.parametrize("ep", [1, 8])
def test_power_law_slowdown_matches_the_profile_tables(moe_models, ep):
    from frontier_calib.profiles import store

    df = store.load_family("moe", "h100_sxm", "vllm")
    shape = df[(df.hidden_size == 2048) & (df.inter_size == 768) & (df.num_experts == 128) & (df.topk == 8)
               & (df.dtype == "bf16") & (df.moe_tp == 1) & (df.moe_ep == ep)]
    piv = shape.pivot_table(index="num_tokens", columns="distribution", values="latency_ms", aggfunc="median")
    piv = piv[piv.index >= 256].dropna()
    assert len(piv) >= 4
    tokens = piv.index.to_numpy()
    kw = dict(tp=ep, ep=ep, moe_tp=1)
    skew = _moe_part(_worker(routing="power_law_1.2", **kw), moe_models)._moe_compute_ms(tokens)
    flat = _moe_part(_worker(routing="balanced", **kw), moe_models)._moe_compute_ms(tokens)
    measured = (piv["power_law_1.2"] / piv["balanced"]).to_numpy()
    np.testing.assert_allclose(skew / flat, measured, rtol=0.15)
    if ep > 1:
        assert (measured > 1).mean() > 0.5 and (skew / flat).mean() > 1


def test_histogram_skew_is_slower_and_uniform_equals_balanced(moe_models):
    n = np.array([64, 512, 4096])
    kw = dict(tp=8, ep=8, moe_tp=1)
    flat = _moe_part(_worker(routing="balanced", **kw), moe_models)._moe_compute_ms(n)
    uni = _moe_part(_worker(routing="histogram", expert_histogram=(5.0,) * 128, **kw), moe_models)
    np.testing.assert_array_equal(uni._moe_compute_ms(n), flat)
    skewed = tuple(float(x) for x in 1.0 / np.arange(1, 129) ** 1.2)   # Zipf: rank 0 carries most experts' load
    slow = _moe_part(_worker(routing="histogram", expert_histogram=skewed, **kw), moe_models)._moe_compute_ms(n)
    assert (slow > flat).all()


# --------------------------------------------------------------------------------------------- two-batch overlap

@given(c=st.floats(0.001, 10), x=st.floats(0.001, 10), cf=st.floats(0.001, 20), xf=st.floats(0.001, 20))
def test_tbo_formula_is_never_below_all_compute_or_all_comm(c, x, cf, xf):
    t = float(tbo_ms(c, x, cf, xf))
    assert max(cf, xf) <= t <= cf + xf
    assert t == cf + xf or t >= 2 * max(c, x)


def test_tbo_hides_comm_when_comm_is_significant():
    # equal compute and comm halves: 3 units instead of 4
    assert float(tbo_ms(1.0, 1.0, 2.0, 2.0)) == 3.0 < 2.0 + 2.0


def test_tbo_on_the_ep_cost_model(moe_models):
    n = np.array([16, 64, 256, 1024, 2048, 4096])
    kw = dict(tp=1, attention_dp=8, ep=8, moe_tp=1, routing="balanced")
    plain = _moe_part(_worker(**kw), moe_models)
    tbo = _moe_part(_worker(tbo=True, **kw), moe_models)
    t_plain, t_tbo = plain._moe_ms(n), tbo._moe_ms(n)
    compute, comm = plain._moe_compute_ms(n), plain._a2a_ms(n)
    np.testing.assert_allclose(t_plain, compute + comm)
    assert (t_tbo >= np.maximum(compute, comm) - 1e-12).all()
    assert (t_tbo <= t_plain).all()                      # small batches are not split (no gain)
    # large batches with significant all-to-all (beyond ~2k tokens per rank this model's a2a is extrapolated)
    big = (comm > 0.3 * compute) & (n >= 1024) & (n <= 2048)
    assert big.any()
    assert (t_tbo[big] < t_plain[big]).all()


def test_tbo_deployment_field():
    base = {"model": QWEN, "gpu": "h100_sxm", "scheduler": {"max_model_len": 4096}}
    dep = deployment_from_dict({**base, "parallel": {"attention_dp": 2, "ep": 2, "tbo": True}})
    assert dep.worker.tbo
    dep = deployment_from_dict({**base, "tbo": True, "parallel": {"attention_dp": 2, "ep": 2}})
    assert dep.worker.tbo
    with pytest.raises(InputError, match="ep > 1") as exc:
        deployment_from_dict({**base, "parallel": {"tp": 2, "tbo": True}})
    assert exc.value.field == "parallel.tbo"


# --------------------------------------------------------------------------------------------- AF pipeline (pure)

@given(a=st.floats(0, 5), f=st.floats(0, 5), x=st.floats(0, 5), m=st.integers(1, 8), L=st.integers(1, 100))
def test_pipeline_bounds(a, f, x, m, L):
    t = float(pipeline_ms(a, f, x, m, L))
    assert t >= L * m * max(a, f, x) - 1e-9            # the busiest resource
    assert t >= L * (a + f + 2 * x) - 1e-9             # one micro-batch's round trips
    assert t <= L * m * (a + f + 2 * x) + 1e-9         # never worse than no overlap at all
    if m == 1:
        assert t == pytest.approx(L * (a + f + 2 * x))


class _Linear:
    """Stand-in component costs: c0 + k·n ms (all layers), no attention-core or lm_head time."""

    overheads = Overheads(**{f: 0.0 for f in OVERHEAD_FIELDS})   # no engine time outside kernels
    overlap = False

    def __init__(self, c0, k):
        self.c0, self.k = c0, k

    def token_ms(self, n):
        return self.c0 + self.k * n

    ffn_ms = token_ms

    def lm_head_ms(self, n):
        return 0.0

    def prefill_attention_ms(self, q, kv):
        return 0.0

    def decode_attention_ms(self, b, kv):
        return np.zeros(len(kv))


def test_two_micro_batches_with_balanced_pools_approach_double_throughput():
    part = _Linear(0.5, 0.05)                     # balanced: attention time == FFN time
    one = AFCost(part, part, layers=48, micro_batches=1)
    two = AFCost(part, part, layers=48, micro_batches=2)
    b = 256
    gain = one.decode_times(b, np.array([b * 1000.0]))[0] / two.decode_times(b, np.array([b * 1000.0]))[0]
    assert 1.5 < gain <= 2.0
    st2 = two.pipeline_stats()
    assert 0.9 < st2["attention_utilisation"] <= 1 and 0.9 < st2["ffn_utilisation"] <= 1
    st1 = one.pipeline_stats()
    assert st1["attention_bubble_fraction"] == pytest.approx(0.5, abs=1e-6)


def test_transfers_slow_the_pipeline_and_decode_only_steps_match_iteration_time():
    part = _Linear(0.5, 0.05)
    fast = AFCost(part, part, layers=48, micro_batches=2)
    slow = AFCost(part, part, layers=48, micro_batches=2, bytes_per_token=4096, bandwidth_bytes_s=50e9,
                  latency_s=10e-6)
    kv = np.array([50_000.0])
    assert slow.decode_times(64, kv)[0] > fast.decode_times(64, kv)[0]
    empty = np.zeros(0, np.int64)
    assert slow.iteration_time(empty, empty, 64, 50_000) == slow.decode_times(64, kv)[0]
    assert slow.iteration_time(np.array([100]), np.array([100]), 64, 50_000) > slow.decode_times(64, kv)[0]


# --------------------------------------------------------------------------------------------- AF vs co-located

SCHED = {"max_num_batched_tokens": 512, "max_num_seqs": 64, "max_model_len": 4096}


@pytest.fixture(scope="module")
def colocated_and_af(frontier_cache):
    base = {"model": QWEN, "gpu": "h100_sxm", "engine": "vllm", "routing": "balanced"}
    co = deployment_from_dict({**base, "scheduler": SCHED})
    _, cm = build_replicas(co)
    af = deployment_from_dict({**base, "mode": "af", "attention": {"scheduler": SCHED},
                               "ffn": {"parallel": {"ep": 1}}, "micro_batches": 1,
                               "link": {"bandwidth_gbps": "inf", "latency_us": 0}})
    specs, afc = build_af_replicas(af)
    return cm, af, specs, afc


def test_af_one_micro_batch_zero_transfer_matches_colocated_decode(colocated_and_af):
    cm, _, _, afc = colocated_and_af
    for b in (1, 4, 16, 64):
        kv = np.array([b * 500.0, b * 3000.0])
        np.testing.assert_allclose(afc.decode_times(b, kv), cm.decode_times(b, kv), rtol=0.01)
    q, kv = np.array([300, 100]), np.array([300, 900])
    assert afc.iteration_time(q, kv, 8, 8000) == pytest.approx(cm.iteration_time(q, kv, 8, 8000), rel=0.01)


def test_af_attention_and_ffn_parts_partition_the_token_ops(colocated_and_af):
    cm, _, _, afc = colocated_and_af
    for n in (1, 37, 512):
        assert afc.attention.token_ms(n) + afc.ffn.ffn_ms(n) == pytest.approx(cm._token_lookup(n), rel=1e-6)
        assert 0 < afc.ffn.ffn_ms(n) < cm._token_lookup(n)


def test_af_replay_nothing_lost_and_stats_reported(colocated_and_af):
    from frontier_calib.sim import simulate
    from frontier_calib.sim.testing import poisson_trace

    _, af, specs, afc = colocated_and_af
    trace = poisson_trace(40, 5.0, 200, 20, seed=1)
    res = simulate(trace, specs, router=af.router)
    assert res.summary["completed"] == 40
    st_ = afc.pipeline_stats()
    for k in ("attention_utilisation", "ffn_utilisation", "attention_bubble_fraction", "ffn_bubble_fraction"):
        assert 0 <= st_[k] <= 1


# --------------------------------------------------------------------------------------------- AF deployments

def test_af_example_loads():
    dep = load_deployment(REPO / "deployments" / "qwen3-30b-a3b-h100-vllm-af.yaml")
    assert isinstance(dep, AFDeployment) and dep.mode == "af"
    assert dep.total_gpus == 4 and dep.ranks == 2 and dep.micro_batches == 2
    assert dep.scheduler.num_kv_blocks == dep.memory.kv_blocks > 0
    # attention GPUs hold no expert weights: far more KV than a co-located single-GPU worker
    assert dep.memory.weight_bytes < 10 * 2**30


@pytest.mark.parametrize("patch, field", [
    ({"ffn": {"parallel": {"ep": 3}}}, "ffn.parallel.ep"),
    ({"ffn": {"parallel": {"tp": 2}}}, "ffn.parallel.tp"),
    ({"attention": {"parallel": {"ep": 2}}}, "attention.parallel"),
    ({"micro_batches": 0}, "micro_batches"),
    ({"replicas": 2}, "replicas"),
    ({"link": {"kind": "pigeon"}}, "link.kind"),
])
def test_af_yaml_errors_name_the_field(tmp_path, patch, field):
    raw = yaml.safe_load((REPO / "deployments" / "qwen3-30b-a3b-h100-vllm-af.yaml").read_text())
    raw.update(patch)
    with pytest.raises(InputError) as exc:
        deployment_from_dict(raw, source="x.yaml")
    assert exc.value.field == field


def test_af_missing_pool_is_an_error():
    with pytest.raises(InputError, match="required section") as exc:
        deployment_from_dict({"mode": "af", "model": QWEN, "gpu": "h100_sxm", "attention": {}})
    assert exc.value.field == "ffn"


def test_af_engine_options_reach_the_attention_workers():
    raw = yaml.safe_load((REPO / "deployments" / "qwen3-30b-a3b-h100-vllm-af.yaml").read_text())
    dep = deployment_from_dict({**raw, "engine_options": {"overlap": False}}, source="x.yaml")
    assert dep.worker.overlap is False and dep.worker.cuda_graph is True
    raw["attention"] = {**raw["attention"], "engine_options": {"cuda_graph": False}}
    dep = deployment_from_dict(raw, source="x.yaml")
    assert dep.worker.cuda_graph is False and dep.worker.overlap is None
    raw["attention"]["engine_options"] = {"graphs": True}
    with pytest.raises(InputError) as exc:
        deployment_from_dict(raw, source="x.yaml")
    assert exc.value.field == "attention.engine_options"
