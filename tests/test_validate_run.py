"""Measured run folders (requests.jsonl + meta.json): the per-request log reader, the engine arguments ->
deployment mapping, the other simulator's summary, and `validate run` end to end on a small folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.errors import InputError
from frontier_calib.traces import load_trace
from frontier_calib.traces.detect import detect_format
from frontier_calib.validate.run_folder import deployment_for_run, read_other_simulator, run_folders

SHARED = Path(__file__).resolve().parents[2] / "shared" / "validation" / "llmservingsim_rtxpro6000"


def _run(tmp_path: Path, model="meta-llama/Llama-2-7b-hf", n=6, **kw) -> Path:
    d = tmp_path / "run"
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        q = 1000.0 + i * 0.5
        lines.append(json.dumps({"request_id": f"bench-{i}", "input_toks": 100 + 10 * i, "output_toks": 20,
                                 "arrival_time": 1.7e9 + i * 0.5, "queued_ts": q, "scheduled_ts": q,
                                 "first_token_ts": q + 0.05, "last_token_ts": q + 0.05 + 19 * 0.01}))
    (d / "requests.jsonl").write_text("\n".join(lines) + "\n")
    args = {"model": model, "tensor_parallel_size": 1, "data_parallel_size": 1, "enable_expert_parallel": False,
            "max_num_seqs": 32, "max_num_batched_tokens": 2048, "max_model_len": 4096, "dtype": "bfloat16",
            "kv_cache_dtype": "auto", **kw}
    (d / "meta.json").write_text(json.dumps({"vllm_version": "0.19.0", "engine_kwargs": args}))
    (d / "llmservingsim_summary.txt").write_text(
        "Metric   vLLM   Sim   Diff%\n---\nTTFT Mean   50.0   48.0   -4.0%\nTPOT Mean   10.0   10.1   +1.0%\n"
        "Latency Mean   240.0   236.0   -1.7%\n")
    (d / "timeseries.csv").write_text("t,prompt_throughput,gen_throughput,running,waiting,kv_cache_pct\n"
                                      "1.0,100,10,2,0,0.0\n2.0,100,10,3,0,0.0\n3.0,100,10,1,0,0.0\n")
    return d


def test_reader_measures_from_the_engine_queue(tmp_path):
    d = _run(tmp_path)
    assert detect_format(d / "requests.jsonl") == "vllm_request_log"
    tr = load_trace(d / "requests.jsonl")
    df = tr.requests
    assert tr.timed_from == "engine"
    assert np.allclose(df["measured_ttft_s"], 0.05) and np.allclose(df["measured_tpot_s"], 0.01)
    assert np.allclose(df["measured_e2e_s"], 0.05 + 0.19)
    assert np.allclose(df["arrival_s"], np.arange(6) * 0.5)


def test_reader_names_the_bad_row(tmp_path):
    d = _run(tmp_path)
    lines = (d / "requests.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["first_token_ts"] = bad["queued_ts"] - 1
    lines[2] = json.dumps(bad)
    (d / "requests.jsonl").write_text("\n".join(lines))
    with pytest.raises(InputError, match="row 3"):
        load_trace(d / "requests.jsonl")


def test_engine_arguments_become_a_deployment(tmp_path):
    dense = deployment_for_run(_run(tmp_path / "a", data_parallel_size=2), "h100")
    assert dense["replicas"] == 2 and dense["parallel"] == {"tp": 1}
    assert dense["scheduler"]["max_num_seqs"] == 32 and dense["scheduler"]["max_num_batched_tokens"] == 2048
    moe = deployment_for_run(_run(tmp_path / "b", model="Qwen/Qwen3-30B-A3B-Instruct-2507", data_parallel_size=2,
                                  enable_expert_parallel=True), "h100")
    assert moe["parallel"] == {"tp": 1, "attention_dp": 2, "ep": 2} and "replicas" not in moe
    with pytest.raises(InputError, match="engine_kwargs.model"):
        deployment_for_run(_run(tmp_path / "c", model="no/such-model"), "h100")


def test_other_simulator_summary_and_folders(tmp_path):
    d = _run(tmp_path)
    other = read_other_simulator(d).set_index("metric")
    assert other.loc["mean_ttft_ms", "error"] == pytest.approx(-0.04)
    assert other.loc["mean_e2el_ms", "measured"] == 240.0
    assert run_folders([tmp_path]) == [d] and run_folders([d]) == [d]
    with pytest.raises(InputError, match="not a run folder"):
        run_folders([tmp_path / "run" / "requests.jsonl"])


def test_validate_run_end_to_end(tmp_path, frontier_cache):
    d = _run(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["validate", "run", str(d), "--gpu", "h100_sxm", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "run: mean TTFT" in r.output and "other simulator -4.0%" in r.output
    for f in ("report.md", "runs.csv", "occupancy.png", "run/requests.csv", "run/cdf.png"):
        assert (out / f).is_file(), f
    runs = (out / "runs.csv").read_text()
    assert "mean_tpot_ms" in runs


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared validation runs are not beside the checkout")
def test_shared_runs_map_to_deployments():
    runs = run_folders([SHARED])
    assert [r.name for r in runs] == ["Llama-3.1-8B", "Qwen3-30B-A3B-Instruct-2507", "Qwen3-32B"]
    deps = {r.name: deployment_for_run(r, "rtx_pro_6000_server") for r in runs}
    assert deps["Qwen3-32B"]["parallel"] == {"tp": 2}
    assert deps["Qwen3-30B-A3B-Instruct-2507"]["parallel"]["attention_dp"] == 2


def test_simulated_occupancy_counts_waiting_from_the_scheduler():
    """A request waits from the moment it reaches the scheduler (send time + front-end latency), not from its
    send time (the results' arrival_s)."""
    from types import SimpleNamespace

    from frontier_calib.cost.worker import Overheads
    from frontier_calib.validate.run_folder import simulated_occupancy

    req = pd.DataFrame({"status": ["ok", "ok"], "arrival_s": [0.5, 0.5], "scheduled_s": [1.2, 3.5],
                        "first_token_s": [1.3, 3.6], "completion_s": [2.5, 4.5], "input_tokens": [100, 100000]})
    res = SimpleNamespace(requests=req)
    plain = simulated_occupancy(res, 5.0)
    assert plain.set_index("t").loc[1.0, "waiting"] == 2 and plain.set_index("t").loc[2.0, "running"] == 1
    fe = Overheads(frontend_s=0.1, frontend_per_token_s=1e-5)   # the second request reaches it at 0.5 + 1.1 s
    occ = simulated_occupancy(res, 5.0, frontend=fe).set_index("t")
    assert occ.loc[1.0, "waiting"] == 1 and occ.loc[2.0, "waiting"] == 1 and occ.loc[4.0, "running"] == 1


def _newer_meta(d: Path, **extra) -> None:
    """Rewrite the folder's meta.json the way newer LLMServingSim harnesses write it (hardware, KV blocks, the
    resolved vLLM config)."""
    meta = json.loads((d / "meta.json").read_text())
    meta.update({"hardware": {"device_name": "NVIDIA H100 80GB HBM3"},
                 "kv_cache": {"num_gpu_blocks": 500, "block_size": 16},
                 "resolved_config": {"scheduler_config": {"async_scheduling": False},
                                     "parallel_config": {"disable_custom_all_reduce": True}}, **extra})
    (d / "meta.json").write_text(json.dumps(meta))


def test_newer_meta_sets_what_the_engine_ran(tmp_path):
    from frontier_calib.deployment import deployment_from_dict
    from frontier_calib.validate.run_folder import run_gpu_from_meta

    d = _run(tmp_path, tensor_parallel_size=2)
    _newer_meta(d)
    assert run_gpu_from_meta(d) == "h100_sxm"
    raw = deployment_for_run(d, "h100_sxm")
    assert raw["scheduler"]["num_gpu_blocks_override"] == 500 and raw["scheduler"]["block_size"] == 16
    assert raw["engine_options"] == {"overlap": False, "custom_all_reduce": False}
    dep = deployment_from_dict(raw, source=str(d / "meta.json"))
    assert dep.scheduler.num_kv_blocks == 500 and dep.memory.kv_tokens == 8000
    assert dep.worker.custom_all_reduce is False and dep.worker.overlap is False
    # without the facts: the engine's defaults and the planned KV capacity
    plain = deployment_from_dict(deployment_for_run(_run(tmp_path / "p", tensor_parallel_size=2), "h100_sxm"))
    assert plain.worker.custom_all_reduce is True and plain.scheduler.num_kv_blocks > 500


def test_run_gpu_needs_a_device_name(tmp_path):
    from frontier_calib.validate.run_folder import run_gpu_from_meta

    d = _run(tmp_path)
    with pytest.raises(InputError, match="hardware.device_name") as exc:
        run_gpu_from_meta(d)
    assert "--gpu" in str(exc.value)
    r = CliRunner().invoke(main, ["validate", "run", str(d), "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "--gpu" in r.output and "Traceback" not in r.output
    _newer_meta(d, hardware={"device_name": "NVIDIA Quantum 9000"})
    with pytest.raises(InputError, match="unknown GPU"):
        run_gpu_from_meta(d)


def test_custom_all_reduce_off_prices_nccl(tp_nccl_costs):
    on, off = tp_nccl_costs
    n = np.array([1, 64, 512])
    assert np.all(off._tp_allreduce_ms(n) != on._tp_allreduce_ms(n))


@pytest.fixture(scope="module")
def tp_nccl_costs(frontier_cache, worker):
    from dataclasses import replace

    from frontier_calib.cost.cache import needed_families
    from frontier_calib.cost.iteration import IterationCostModel
    from frontier_calib.opmodel.registry import cached_model_set

    w = replace(worker, tp=2)
    models = cached_model_set(w.gpu, w.engine, families=needed_families(w))
    kw = dict(max_tokens=64, max_seqs=4, max_model_len=256)
    return (IterationCostModel(w, models, **kw),
            IterationCostModel(replace(w, custom_all_reduce=False), models, **kw))
