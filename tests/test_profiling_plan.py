"""Profile plans: shapes derived from the model spec, de-duplicated, estimated; works without torch."""

import pytest
from click.testing import CliRunner

from frontier_calib.errors import FrontierError
from frontier_calib.hardware import get_gpu
from frontier_calib.model_spec import load_model
from frontier_calib.profiling.commands import profile
from frontier_calib.profiling.estimate import attention_pairs, fits_memory, plan_seconds
from frontier_calib.profiling.grid import parse_int_list, pow2_and_half_grid
from frontier_calib.profiling.plan import FAMILY_GROUPS, Limits, Shape, build_plan, tiny_model
from frontier_calib.profiling.routing import busiest_rank, parse_distribution, route
from frontier_calib.profiles.schema import FAMILIES


def test_grids():
    assert pow2_and_half_grid(1, 16) == [1, 2, 3, 4, 6, 8, 12, 16]
    assert pow2_and_half_grid(1, 20)[-1] == 20
    assert parse_int_list("4,1,2,2", what="tp") == [1, 2, 4]
    with pytest.raises(FrontierError, match="--tp"):
        parse_int_list("1,x", what="tp")


def test_gemm_shapes_are_the_layer_gemms_under_tp():
    mix = load_model("Mixtral-8x7B-v0.1")
    plan = build_plan([mix], ["gemm"], tps=[1, 2, 4], limits=Limits(max_num_batched_tokens=64))
    nk = {(s["n"], s["k"]) for s in plan.shapes["gemm"]}
    expected = set()
    for tp in (1, 2, 4):
        expected |= {(g.n, g.k) for g in mix.layer_gemms(tp, moe_layer=True)}
        expected.add((mix.lm_head_gemm(tp).n, mix.lm_head_gemm(tp).k))
    assert nk == expected                      # exactly what the model issues, nothing cartesian
    assert (6144, 4096) in nk and (1536, 4096) in nk and (8, 4096) in nk
    ms = sorted({s["m"] for s in plan.shapes["gemm"]})
    assert ms[0] == 1 and ms[-1] == 64
    assert len(plan.shapes["gemm"]) == len(nk) * len(ms)     # router (8, 4096) shared by all TPs: once


def test_shapes_deduplicated_across_models():
    a = build_plan([load_model("Mixtral-8x7B-v0.1")], ["attention_decode"], tps=[1, 2])
    b = build_plan([load_model("Mixtral-8x7B-v0.1"), load_model("Mistral-7B-v0.1")], ["attention_decode"],
                   tps=[1, 2])
    keys = [s.key for s in b.shapes["attention_decode"]]
    assert len(keys) == len(set(keys))
    # Mistral has the same heads as Mixtral but a 4096 sliding window: only windowed shapes are new
    extra = {s["window"] for s in b.shapes["attention_decode"]} - {s["window"] for s in a.shapes["attention_decode"]}
    assert extra == {4096}


def test_attention_heads_per_shard_and_limits():
    llama = load_model("Meta-Llama-3.1-8B")
    lim = Limits(max_num_batched_tokens=2048, max_num_seqs=64, max_model_len=8192)
    plan = build_plan([llama], ["attention_prefill", "attention_decode"], tps=[1, 4, 16], limits=lim)
    heads = {(s["num_heads"], s["num_kv_heads"]) for s in plan.shapes["attention_prefill"]}
    assert heads == {(32, 8), (8, 2), (2, 1)}    # tp=16 replicates KV heads
    for s in plan.shapes["attention_prefill"]:
        assert s["batch_size"] * s["q_len"] <= 2048 and s["q_len"] <= s["kv_len"] <= 8192
    assert any(s["kv_len"] > s["q_len"] for s in plan.shapes["attention_prefill"])  # prefix chunks
    assert max(s["kv_len"] for s in plan.shapes["attention_prefill"]) == 8192
    assert max(s["batch_size"] for s in plan.shapes["attention_decode"]) == 64
    assert max(s["kv_len"] for s in plan.shapes["attention_decode"]) == 8192


def test_invalid_degrees_are_noted_not_fatal():
    plan = build_plan([load_model("Meta-Llama-3.1-8B")], ["gemm"], tps=[1, 3])
    assert any("tp=3 does not divide 32 attention heads" in n for n in plan.notes)
    assert plan.shapes["gemm"]


def test_moe_and_mla_plans():
    ds = load_model("DeepSeek-V3")
    plan = build_plan([ds], ["moe", "mla_prefill", "mla_decode", "attention_decode"], tps=[8], eps=[1, 8])
    cfgs = {(s["moe_tp"], s["moe_ep"]) for s in plan.shapes["moe"]}
    assert cfgs == {(8, 1), (1, 8)}
    s = plan.shapes["moe"][0]
    assert (s["hidden_size"], s["inter_size"], s["topk"], s["num_experts"]) == (7168, 2048, 8, 256)
    assert {s["num_heads"] for s in plan.shapes["mla_decode"]} == {16}
    assert "attention_decode" not in plan.shapes            # MLA models have no GQA attention shapes


def test_shapes_carry_exactly_the_schema_columns():
    plan = build_plan([tiny_model(load_model("gpt-oss-20b"))], FAMILY_GROUPS["all"], tps=[1, 2],
                      limits=Limits.tiny(), comm_gpus=[2])
    for fam, shapes in plan.shapes.items():
        cols = [c.name for c in FAMILIES[fam].columns]
        assert all(list(s.as_dict()) == cols for s in shapes)
    assert {s["window"] for s in plan.shapes["attention_prefill"]} == {0, 32}
    with pytest.raises(ValueError):
        Shape.make("gemm", m=1, n=2)


def test_memory_filter_and_estimate():
    h100 = get_gpu("h100_sxm")
    mix = load_model("Mixtral-8x7B-v0.1")
    plan = build_plan([mix], ["attention_decode"], tps=[1], limits=Limits(max_num_seqs=4096, max_model_len=131072),
                      fits=lambda s: fits_memory(s, h100.memory_bytes))
    assert any("would not fit" in n for n in plan.notes)
    est = plan_seconds(plan, h100, "cuda", warmup=5, repeats=20, flush_l2=True)
    assert est["attention_decode"] > 0


def test_attention_pairs():
    assert attention_pairs(4, 4, 0) == 10                     # 1+2+3+4
    assert attention_pairs(2, 6, 0) == 5 + 6                  # a chunk after a 4-token prefix
    assert attention_pairs(4, 4, 2) == 1 + 2 + 2 + 2
    assert attention_pairs(2, 6, 3) == 6


def test_routing():
    ids = route(64, 8, 2, "balanced")
    assert (ids[:, 0] != ids[:, 1]).all()
    assert set(map(int, __import__("numpy").bincount(ids.ravel(), minlength=8))) == {16}
    skew = route(512, 8, 2, "power_law_1.5", seed=3)
    assert (skew == route(512, 8, 2, "power_law_1.5", seed=3)).all()           # seeded
    assert (skew[:, 0] != skew[:, 1]).all()
    counts = __import__("numpy").bincount(skew.ravel(), minlength=8)
    assert counts.max() > 3 * counts.min()
    lo, hi = busiest_rank(skew, 8, 4)
    assert hi - lo == 2 and counts[lo:hi].sum() == max(counts[i:i + 2].sum() for i in range(0, 8, 2))
    with pytest.raises(FrontierError, match="power_law_<alpha>"):
        parse_distribution("zipf")


def test_dry_run_mixtral_tp_1_2_4(tmp_path):
    res = CliRunner().invoke(profile, ["all", "--out", str(tmp_path), "--model", "Mixtral-8x7B-v0.1",
                                       "--tp", "1,2,4", "--gpu", "h100_sxm", "--dry-run"])
    assert res.exit_code == 0, res.output
    out = res.output
    for fam in ("gemm", "attention_prefill", "attention_decode", "moe", "collective", "total"):
        assert f"\n{fam}" in out
    assert "est. time" in out and "h100_sxm" in out
    gemm_line = next(line for line in out.splitlines() if line.startswith("gemm"))
    assert gemm_line.split()[1] == "260"            # 10 distinct (n, k) x 26 token counts
    assert not any(tmp_path.iterdir())              # a dry run writes nothing


def test_cli_errors(tmp_path):
    res = CliRunner().invoke(profile, ["gemm", "--out", str(tmp_path), "--dry-run"])
    assert res.exit_code != 0 and "pass --model" in str(res.exception)
    res = CliRunner().invoke(profile, ["moe", "--out", str(tmp_path), "--model", "Mixtral-8x7B-v0.1",
                                       "--distribution", "zipf", "--dry-run"])
    assert "power_law_<alpha>" in str(res.exception)
