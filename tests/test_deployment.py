"""Deployment YAML files: the examples load, impossible deployments are rejected naming the file and field,
and the CLI turns every rejection into exit code 2 with one `error:` line (no traceback)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.deployment import deployment_from_dict, load_deployment
from frontier_calib.engines import token_budget
from frontier_calib.modes.colocated import TOP_KEYS
from frontier_calib.modes.fields import CLUSTER_KEYS, PARALLEL_KEYS
from frontier_calib.cost.speculative import lookahead_blocks
from frontier_calib.cost.worker import Overheads
from frontier_calib.errors import InputError
from frontier_calib.sim.config import SchedulerConfig

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENTS = sorted((REPO / "deployments").glob("*.yaml"))
TRACE = REPO / "traces" / "poisson_lognormal_1k.csv"
LLAMA = {"model": "Llama-2-7b", "gpu": "h100_sxm", "dtype": "bf16"}

# (name, deployment dict, field named in the message, words the message must contain)
IMPOSSIBLE = [
    ("unknown top-level key", {**LLAMA, "colour": "red"}, "colour", "unknown key"),
    ("unknown parallel key", {**LLAMA, "parallel": {"tp": 1, "sp": 2}}, "parallel", "unknown key"),
    ("unknown cluster key", {**LLAMA, "cluster": {"racks": 2}}, "cluster", "unknown key"),
    ("unknown scheduler key", {**LLAMA, "scheduler": {"max_num_seq": 8}}, "scheduler", "unknown scheduler key"),
    ("unknown overhead", {**LLAMA, "overheads": {"kernel_s": 0.001}}, "overheads", "unknown overhead"),
    ("tp does not divide heads", {**LLAMA, "parallel": {"tp": 3}}, "parallel", "does not divide 32 attention heads"),
    ("tp across part of a node", {**LLAMA, "parallel": {"tp": 16}, "cluster": {"gpus_per_node": 6}},
     "parallel.tp", "spans more than one node (6 GPUs per node) but is not a multiple of 6"),
    ("tp across part of a small node", {**LLAMA, "parallel": {"tp": 4}, "cluster": {"gpus_per_node": 3}},
     "parallel.tp", "must use whole nodes"),
    ("more GPUs than the cluster", {**LLAMA, "replicas": 3, "parallel": {"tp": 4}, "cluster": {"nodes": 1}},
     "replicas", "12 GPUs, but the cluster has 1 x 8"),
    ("more replicas than GPUs", {**LLAMA, "replicas": 9, "cluster": {"nodes": 1}}, "replicas", "9 GPUs"),
    ("model does not fit", {"model": "Meta-Llama-3.1-405B", "gpu": "h100_sxm"}, "parallel", "does not fit"),
    ("unknown engine", {**LLAMA, "engine": "tgi"}, "engine", "unknown engine 'tgi'"),
    ("unknown router", {**LLAMA, "router": "random"}, "router", "unknown router 'random'"),
    ("unknown routing", {**LLAMA, "routing": "zipf"}, "routing", "unknown routing 'zipf'"),
    ("unknown dtype", {**LLAMA, "dtype": "fp7"}, "dtype", "unknown dtype 'fp7'"),
    ("unknown kv dtype", {**LLAMA, "kv_dtype": "int3"}, "kv_dtype", "unknown dtype 'int3'"),
    ("unknown model", {**LLAMA, "model": "NoSuchModel-1B"}, "model", "unknown model"),
    ("unknown gpu", {**LLAMA, "gpu": "h900"}, "gpu", "unknown GPU"),
    ("max_model_len above the context", {**LLAMA, "scheduler": {"max_model_len": 8192}},
     "scheduler.max_model_len", "exceeds the model's context length 4096"),
    ("max_model_len above the KV cache", {"model": "Meta-Llama-3.1-70B", "gpu": "h100_sxm", "parallel": {"tp": 2}},
     "scheduler.max_model_len", "more than the KV cache holds"),
    ("ep on a dense model", {**LLAMA, "parallel": {"ep": 2}}, "parallel.ep", "needs an MoE model"),
    ("moe_tp x ep != tp x attention_dp", {"model": "Mixtral-8x7B-v0.1", "gpu": "h100_sxm",
                                          "parallel": {"tp": 2, "ep": 2, "moe_tp": 2}},
     "parallel", "must equal tp x attention_dp"),
    ("ep larger than the attention GPUs", {"model": "Mixtral-8x7B-v0.1", "gpu": "h100_sxm",
                                           "parallel": {"tp": 2, "ep": 4}}, "parallel", "must equal"),
    ("zero tp", {**LLAMA, "parallel": {"tp": 0}}, "parallel.tp", "positive whole number"),
    ("zero replicas", {**LLAMA, "replicas": 0}, "replicas", "positive whole number"),
    ("zero nodes", {**LLAMA, "cluster": {"nodes": 0}}, "cluster.nodes", "positive whole number"),
    ("utilisation above 1", {**LLAMA, "scheduler": {"gpu_memory_utilization": 1.5}},
     "scheduler.gpu_memory_utilization", "(0, 1]"),
    ("utilisation not a number", {**LLAMA, "scheduler": {"gpu_memory_utilization": "most"}},
     "scheduler.gpu_memory_utilization", "(0, 1]"),
    ("zero block size", {**LLAMA, "scheduler": {"block_size": 0}}, "scheduler.block_size", "positive whole number"),
    ("scheduler value of the wrong type", {**LLAMA, "scheduler": {"long_prefill_token_threshold": "x"}},
     "scheduler", "wrong type"),
    ("token budget below max_num_seqs", {**LLAMA, "scheduler": {"max_num_batched_tokens": 64, "max_num_seqs": 128}},
     "scheduler", "step token budget"),
    ("negative overhead", {**LLAMA, "overheads": {"step_s": -0.001}}, "overheads", ">= 0"),
    ("overhead not a number", {**LLAMA, "overheads": {"step_s": "fast"}}, "overheads", ">= 0"),
    ("unsupported mode", {**LLAMA, "mode": "disaggregated"}, "mode", "not supported"),
    ("parallel not a mapping", {**LLAMA, "parallel": [1, 2]}, "parallel", "expected a mapping"),
    ("profiles not a path", {**LLAMA, "profiles": 3}, "profiles", "folder path"),
    ("missing gpu", {"model": "Llama-2-7b"}, "gpu", "required field missing"),
    ("NVLink domain on a PCIe-only card", {**LLAMA, "gpu": "rtx_pro_6000_server", "cluster": {"nvlink_domain": 8}},
     "cluster.nvlink_domain", "has no NVLink"),
    ("NVLink domain wider than an HGX board", {**LLAMA, "gpu": "b200_sxm", "cluster": {"nvlink_domain": 72}},
     "cluster.nvlink_domain", "at most 8 GPUs over NVLink, not 72; rack-scale NVLink domains: gb200 (72)"),
    ("NVLink domain of part of a tray", {**LLAMA, "gpu": "gb200", "cluster": {"nvlink_domain": 30}},
     "cluster.nvlink_domain", "whole 4-GPU trays"),
    ("gpus_per_node and nvlink_domain disagree", {**LLAMA, "gpu": "gb200",
                                                  "cluster": {"nvlink_domain": 72, "gpus_per_node": 8}},
     "cluster.nvlink_domain", "disagree"),
    ("tp across part of an NVL36 domain", {"model": "Meta-Llama-3.1-70B", "gpu": "gb200", "parallel": {"tp": 64},
                                           "cluster": {"nvlink_domain": 36}}, "parallel.tp", "whole nodes"),
]


def _write(tmp_path: Path, raw: dict, name: str = "dep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------- examples

def test_there_are_three_example_deployments():
    assert {p.name for p in DEPLOYMENTS} >= {"llama2-7b-h100-vllm.yaml", "mixtral-8x7b-h100-vllm-tp2.yaml",
                                             "qwen3-32b-h200-sglang.yaml"}


@pytest.mark.parametrize("path", DEPLOYMENTS, ids=lambda p: p.name)
def test_every_example_deployment_loads(path):
    dep = load_deployment(path)
    assert dep.name == path.stem
    assert dep.memory.kv_blocks > 0
    if dep.mode == "pd":   # prefill/decode pools: see tests/test_disagg_pd.py
        for pool in (dep.prefill, dep.decode):
            s = pool.scheduler
            assert s.num_kv_blocks == pool.memory.kv_blocks - lookahead_blocks(pool.speculative, s.max_running,
                                                                              s.block_size) > 0
        assert dep.total_gpus == dep.prefill.gpus + dep.decode.gpus
        return
    if dep.mode == "af":   # attention/FFN pools: see tests/test_moe_af.py
        s = dep.scheduler
        assert s.num_kv_blocks == dep.memory.kv_blocks - lookahead_blocks(dep.speculative, s.max_running, s.block_size)
        assert dep.total_gpus == dep.attention_gpus + dep.ffn_gpus
        return
    assert dep.total_gpus == dep.replicas * dep.worker.tp * dep.worker.attention_dp * dep.worker.pp
    assert dep.scheduler.policy == dep.worker.engine
    # speculative decoding keeps the drafts' KV slots out of the cache (cost/speculative.py: lookahead_blocks)
    s = dep.scheduler
    assert s.num_kv_blocks == dep.memory.kv_blocks - lookahead_blocks(dep.speculative, s.max_running, s.block_size)
    assert dep.describe().startswith(f"{path.stem}: {dep.worker.model.name} on {dep.replicas} x ")


def test_llama_example_matches_the_benchmark_setup():
    dep = load_deployment(REPO / "deployments" / "llama2-7b-h100-vllm.yaml")
    w, s = dep.worker, dep.scheduler
    assert (w.model.name, w.gpu, w.engine, w.dtype, w.tp, w.pp) == ("Llama-2-7b", "h100_sxm", "vllm", "bf16", 1, 1)
    assert (s.max_num_batched_tokens, s.max_num_seqs, s.max_model_len, s.block_size) == (512, 128, 4096, 16)
    assert s.enable_prefix_caching and dep.router == "round_robin" and dep.replicas == 1
    assert token_budget(s) == 512


def test_mixtral_example_spreads_moe_over_the_tp_gpus():
    dep = load_deployment(REPO / "deployments" / "mixtral-8x7b-h100-vllm-tp2.yaml")
    w = dep.worker
    assert (w.tp, w.ep, w.moe_tp, w.attention_dp, w.gpus) == (2, 1, 2, 1, 2)
    assert dep.total_gpus == 4 and dep.router == "least_outstanding"


def test_qwen_example_uses_sglang_extras():
    dep = load_deployment(REPO / "deployments" / "qwen3-32b-h200-sglang.yaml")
    s = dep.scheduler
    assert dep.worker.engine == s.policy == "sglang"
    assert dep.worker.dtype == "fp8_block" and dep.worker.gpu == "h200_sxm"
    assert s.chunked_prefill_size == 8192
    assert token_budget(s) == max(8192, s.max_prefill_tokens)


# ------------------------------------------------------------------------------------------- defaults

def test_minimal_deployment_takes_engine_and_model_defaults(tmp_path):
    dep = load_deployment(_write(tmp_path, {"model": "Llama-2-7b", "gpu": "h100_sxm"}))
    w, s = dep.worker, dep.scheduler
    assert (w.engine, w.tp, w.pp, w.ep, w.attention_dp, w.moe_tp, dep.replicas) == ("vllm", 1, 1, 1, 1, 1, 1)
    assert w.dtype == "fp16"  # the checkpoint's torch_dtype, as vLLM's dtype=auto
    assert w.kv_dtype == "bf16"
    assert s.max_model_len == 4096  # the model's context length, as vLLM
    assert dep.gpu_memory_utilization == 0.9 and s.block_size == 16
    assert dep.router == "round_robin" and w.routing == "power_law_1.01"
    assert dep.gpus_per_node == 8 and dep.nodes is None


@pytest.mark.parametrize("engine,chunked", [("vllm", True), ("sglang", True), ("trtllm", False)])
def test_chunked_prefill_defaults_to_the_engines_own(tmp_path, engine, chunked):
    """A deployment that does not say enable_chunked_prefill gets its engine's default (engines/*.py:
    chunked_prefill_default; TensorRT-LLM's BaseLlmArgs.enable_chunked_prefill is False); saying it wins, and a
    value that is not true/false is refused naming the field."""
    raw = {"model": "Llama-2-7b", "gpu": "h100_sxm", "engine": engine,
           "scheduler": {"max_num_batched_tokens": 8192, "max_model_len": 4096}}
    assert load_deployment(_write(tmp_path, raw)).scheduler.enable_chunked_prefill is chunked
    raw["scheduler"]["enable_chunked_prefill"] = not chunked
    assert load_deployment(_write(tmp_path, raw)).scheduler.enable_chunked_prefill is (not chunked)
    assert SchedulerConfig(policy=engine).enable_chunked_prefill is chunked
    raw["scheduler"]["enable_chunked_prefill"] = "yes"
    with pytest.raises(InputError, match="enable_chunked_prefill"):
        load_deployment(_write(tmp_path, raw))


@pytest.mark.parametrize("tp,gpus_per_node", [(16, 8), (4, 2), (2, 1)])
def test_tp_across_whole_nodes_is_accepted(tp, gpus_per_node):
    # costed as a hierarchical NCCL all-reduce (tests/test_cost_model.py); the worker carries the node size
    dep = deployment_from_dict({**LLAMA, "parallel": {"tp": tp}, "cluster": {"gpus_per_node": gpus_per_node}})
    assert dep.worker.tp == tp and dep.worker.gpus_per_node == gpus_per_node and dep.total_gpus == tp


def test_pd_pool_with_tp_across_nodes_is_accepted():
    dep = deployment_from_dict({"mode": "pd", **LLAMA, "prefill": {"parallel": {"tp": 1}},
                                "decode": {"parallel": {"tp": 16}}})
    assert dep.decode.worker.tp == 16 and dep.decode.worker.gpus_per_node == 8
    with pytest.raises(InputError, match="not a multiple of 12") as exc:
        deployment_from_dict({"mode": "pd", **LLAMA, "prefill": {"parallel": {"tp": 1}},
                              "decode": {"parallel": {"tp": 32}}, "cluster": {"gpus_per_node": 12}})
    assert exc.value.field == "decode.parallel.tp"


def test_moe_tp_defaults_to_tp_times_dp_over_ep():
    dep = deployment_from_dict({"model": "Mixtral-8x7B-v0.1", "gpu": "h100_sxm", "parallel": {"tp": 4, "ep": 2},
                                "scheduler": {"max_model_len": 4096}})
    assert dep.worker.moe_tp == 2 and dep.worker.gpus == 4


def test_overheads_and_paths_relative_to_the_file(tmp_path):
    cfg = tmp_path / "models" / "tiny.json"
    cfg.parent.mkdir()
    cfg.write_text((REPO / "frontier_calib" / "data" / "models" / "Llama-2-7b.json").read_text())
    dep = load_deployment(_write(tmp_path, {"model": "models/tiny.json", "gpu": "h100_sxm", "profiles": "tables",
                                            "overheads": {"step_s": 0.003}}))
    assert dep.worker.model.name == "tiny"
    assert dep.profiles == str(tmp_path / "tables")
    assert dep.worker.overheads.step_s == 0.003
    plain = deployment_from_dict({**LLAMA}).worker.overheads   # the engine's, after the shipped calibration
    assert dep.worker.overheads.per_seq_s == plain.per_seq_s   # the rest keep what they would have been
    assert dep.frontend_s == plain.frontend_s


def test_frontend_latency_from_overheads_for_every_mode():
    dep = deployment_from_dict({**LLAMA, "overheads": {"frontend_s": 0.03}})
    assert dep.frontend_s == 0.03 and dep.worker.overheads.step_s == deployment_from_dict(LLAMA).worker.overheads.step_s
    pd = yaml.safe_load((REPO / "deployments" / "deepseek-v3-h200-sglang-pd-1p1d.yaml").read_text())
    pd["prefill"]["overheads"] = {"frontend_s": 0.04}
    assert deployment_from_dict(pd).frontend_s == 0.04   # requests enter at the prefill pool


def test_sglang_without_chunked_prefill_prices_whole_prompts():
    dep = deployment_from_dict({**LLAMA, "engine": "sglang", "scheduler": {"enable_chunked_prefill": False,
                                                                           "max_prefill_tokens": 2048}})
    assert token_budget(dep.scheduler) >= dep.scheduler.max_model_len


# --------------------------------------------------------------------------------------- rejections

@pytest.mark.parametrize("name,raw,field,words", IMPOSSIBLE, ids=[c[0] for c in IMPOSSIBLE])
def test_impossible_deployment_is_rejected_naming_file_and_field(tmp_path, name, raw, field, words):
    path = _write(tmp_path, raw)
    with pytest.raises(InputError) as exc:
        load_deployment(path)
    msg = str(exc.value)
    assert msg.startswith(str(path)), msg
    assert f"field '{field}'" in msg, msg
    assert words in msg, msg
    assert exc.value.field == field


def test_file_level_problems(tmp_path):
    with pytest.raises(InputError, match="deployment file not found"):
        load_deployment(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML") as err:
        load_deployment(bad)
    assert "\n" not in str(err.value) and "line 2, column 1" in str(err.value)   # one line, says where
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="expected a YAML mapping"):
        load_deployment(bad)


@pytest.mark.parametrize("name,raw,field,words", IMPOSSIBLE, ids=[c[0] for c in IMPOSSIBLE])
def test_cli_reports_rejection_as_one_error_line(tmp_path, name, raw, field, words):
    path = _write(tmp_path, raw)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["replay", "--deployment", str(path), "--trace", str(TRACE),
                                       "--out", str(out), "--limit", "5"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert str(path) in lines[0] and f"field '{field}'" in lines[0] and words in lines[0]
    assert not out.exists()


# ---------------------------------------------------------------------------------------------- docs

def test_docs_describe_every_deployment_field():
    doc = (REPO / "docs" / "deployments.md").read_text()
    sched = {f.name for f in fields(SchedulerConfig)} - {"num_kv_blocks"} | {"gpu_memory_utilization"}
    overheads = {f.name for f in fields(Overheads)}
    missing = sorted(k for k in TOP_KEYS | PARALLEL_KEYS | CLUSTER_KEYS | sched | overheads
                     if not re.search(rf"`{re.escape(k)}`", doc))
    assert not missing, f"docs/deployments.md does not document {missing}"
    for path in DEPLOYMENTS:
        assert path.name in doc


def test_nvlink_domain_sets_the_scale_up_domain():
    """`cluster: {nvlink_domain: N}` is the GPUs that share NVLink: an NVL72 rack's 72 by default, an NVL36 half
    rack when asked; a PCIe card accepts only 1 (and keeps its server's PCIe GPUs)."""
    gb = {**LLAMA, "gpu": "gb200"}
    assert deployment_from_dict(gb).gpus_per_node == 72
    assert deployment_from_dict({**gb, "cluster": {"nvlink_domain": 36}}).worker.gpus_per_node == 36
    rtx = deployment_from_dict({**LLAMA, "gpu": "rtx_pro_6000_server", "cluster": {"nvlink_domain": 1}})
    assert rtx.gpus_per_node == 8


def test_shipped_calibration_is_the_default_and_none_opts_out(tmp_path, monkeypatch):
    """A deployment without a calibration key takes the shipped calibration's entry for its engine (the
    ENGINE@GPU entry on that GPU); 'calibration: none' keeps the physical defaults; a named file wins."""
    from frontier_calib.cost import calibration as C
    from frontier_calib.engines import get_engine

    shipped = tmp_path / "default.yaml"
    C.write_calibration(shipped, {"vllm": {"step_s": 0.002}, "vllm@h100_sxm": {"step_s": 0.003, "per_seq_s": 2e-5}})
    monkeypatch.setattr(C, "DEFAULT_CALIBRATION", shipped)
    base = {"model": "Meta-Llama-3.1-8B", "gpu": "h100_sxm", "engine": "vllm"}
    dep = deployment_from_dict(dict(base))
    assert (dep.worker.overheads.step_s, dep.worker.overheads.per_seq_s) == (0.003, 2e-5)
    other_gpu = deployment_from_dict({**base, "gpu": "h200_sxm"})
    assert other_gpu.worker.overheads.step_s == 0.002
    off = deployment_from_dict({**base, "calibration": "none"})
    assert off.worker.overheads.step_s == get_engine("vllm").overheads["step_s"]
    own = tmp_path / "own.yaml"
    C.write_calibration(own, {"vllm": {"step_s": 0.004}})
    assert deployment_from_dict({**base, "calibration": str(own)}).worker.overheads.step_s == 0.004
    explicit = deployment_from_dict({**base, "overheads": {"step_s": 0.005}})
    assert explicit.worker.overheads.step_s == 0.005 and explicit.worker.overheads.per_seq_s == 2e-5
    with pytest.raises(InputError, match="calibration"):
        deployment_from_dict({**base, "calibration": 3}, source="x.yaml")
    # without a shipped file the physical defaults apply
    monkeypatch.setattr(C, "DEFAULT_CALIBRATION", tmp_path / "missing.yaml")
    assert deployment_from_dict(dict(base)).worker.overheads.step_s == get_engine("vllm").overheads["step_s"]
