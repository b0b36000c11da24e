"""``validate inference-perf``: stage reports -> rebuilt stage traces -> replay -> per-stage comparison."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.errors import FrontierError, InputError
from frontier_calib.traces.lengths import QuantileLengths
from frontier_calib.validate.inference_perf import compare_stages, read_stage, stage_files, stage_trace

FIX = Path(__file__).parent / "fixtures" / "validate" / "inference_perf_kubecon"
LLAMA = Path(__file__).parent.parent / "deployments" / "llama2-7b-h100-vllm.yaml"


def test_quantile_lengths_follow_the_percentiles():
    d = QuantileLengths((0.0, 0.5, 1.0), (10.0, 40.0, 256.0))
    x = d.sample(20000, seed=3)
    assert x.min() >= 10 and x.max() <= 256
    assert abs(np.median(x) - 40) <= 2
    assert (d.sample(50, seed=3) == d.sample(50, seed=3)).all()
    with pytest.raises(FrontierError):
        QuantileLengths((0.2, 1.0), (1.0, 5.0))


def test_stage_reports_rebuild_the_stage():
    files = stage_files(FIX)
    assert [i for i, _ in files] == [0, 3]
    st = read_stage(files[1][1])
    assert st["rate"] == pytest.approx(53.2) and st["duration"] == pytest.approx(59.973, abs=1e-3)
    assert st["latency"]["ttft"]["mean"] == pytest.approx(0.032064, rel=1e-4)
    t = stage_trace(st, {}, seed=0, stage_index=3)
    df = t.requests
    assert t.num_requests == round(53.2 * 59.97293011297006)
    np.testing.assert_allclose(np.diff(df["arrival_s"]), 1 / 53.2)        # constant load: evenly spaced
    assert df["input_tokens"].between(10, 256).all() and df["output_tokens"].between(11, 257).all()
    poisson = stage_trace(st, {"load": {"type": "poisson"}}, seed=0, stage_index=3).requests["arrival_s"]
    assert np.diff(poisson).std() > 0.5 / 53.2


def test_shared_prefix_config_gives_prefix_groups():
    st = read_stage(stage_files(FIX)[0][1])
    cfg = {"data": {"type": "shared_prefix", "shared_prefix": {
        "num_groups": 4, "num_prompts_per_group": 30, "system_prompt_len": 256, "question_len": 32,
        "output_len": 20}}}
    t = stage_trace(st, cfg, seed=0)
    df = t.requests
    assert t.num_requests == 60 and (df["input_tokens"] == 288).all() and (df["output_tokens"] == 20).all()
    firsts = {ids[0] for ids in df["hash_ids"]}
    assert len(firsts) == 4   # every prompt starts with one of the four system prompts


def test_compare_stages_and_cli(tmp_path, frontier_cache):
    res = compare_stages(LLAMA, FIX, seed=0)
    df = res["stages"]
    assert df["stage"].tolist() == [0, 3] and df["requests"].tolist() == [60, 3191]
    assert (df["replayed_ok"] == df["requests"]).all()
    for col in ("mean_ttft_error", "mean_ntpot_error", "mean_e2el_error", "output_tok_s_error"):
        assert np.isfinite(df[col]).all()
    assert np.isfinite(res["summary"]["mean_ntpot_mape"])
    out = tmp_path / "vip"
    r = CliRunner().invoke(main, ["validate", "inference-perf", str(FIX), "-d", str(LLAMA), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "stage 3 at 53.20 req/s" in r.output
    for name in ("report.md", "stages.csv", "stages.png", "summary.json"):
        assert (out / name).is_file()
    assert json.loads((out / "summary.json").read_text())["stages"] == 2


def test_bad_folders_and_reports(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["validate", "inference-perf", str(tmp_path), "-d", str(LLAMA), "--out",
                             str(tmp_path / "o")])
    assert r.exit_code != 0 and "stage_<N>_lifecycle_metrics.json" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad"
    shutil.copytree(FIX / "results", bad)
    doc = json.loads((bad / "stage_0_lifecycle_metrics.json").read_text())
    del doc["load_summary"]["requested_rate"], doc["load_summary"]["achieved_rate"]
    (bad / "stage_0_lifecycle_metrics.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="load_summary.achieved_rate"):
        read_stage(bad / "stage_0_lifecycle_metrics.json")
    (bad / "stage_3_lifecycle_metrics.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_stage(bad / "stage_3_lifecycle_metrics.json")


def _per_request_run(tmp_path, counts=(10, 20), rates=(2.0, 4.0)):
    """A run folder with per-request records and a stage report per stage (stages one after the other)."""
    run = tmp_path / "run"
    run.mkdir()
    recs, t = [], 1000.0
    for k, (n, rate) in enumerate(zip(counts, rates)):
        for i in range(n):
            start = t + i / rate
            times = [start + 0.03 + 0.008 * j for j in range(40)]
            body = {"prompt": "system prompt shared by all. " * 20 + f"question {k}-{i} " * 5}
            recs.append({"start_time": start, "end_time": times[-1], "request": json.dumps(body),
                         "info": {"input_tokens": 160, "output_tokens": 40, "output_token_times": times},
                         "error": None})
        t += n / rate + 5.0   # a pause between stages
        st = json.loads((FIX / "results" / "stage_0_lifecycle_metrics.json").read_text())
        st["load_summary"].update(count=n, requested_rate=rate, send_duration=n / rate)
        (run / f"stage_{k}_lifecycle_metrics.json").write_text(json.dumps(st))
    (run / "per_request_lifecycle_metrics.json").write_text(json.dumps(recs))
    return run


def test_per_request_records_are_replayed_and_split_by_stage(tmp_path, frontier_cache):
    run = _per_request_run(tmp_path)
    res = compare_stages(LLAMA, run, seed=0)
    df = res["stages"]
    assert df["requests"].tolist() == [10, 20] and (df["replayed_ok"] == df["requests"]).all()
    assert "recorded requests" in res["summary"]["requests_from"]
    assert np.isfinite(df["mean_ttft_error"]).all()
    # the stage reports must count the file's requests
    st = json.loads((run / "stage_1_lifecycle_metrics.json").read_text())
    st["load_summary"]["count"] = 21
    (run / "stage_1_lifecycle_metrics.json").write_text(json.dumps(st))
    with pytest.raises(InputError, match="stage reports count 31"):
        compare_stages(LLAMA, run, seed=0)


def test_recorded_stage_ids_win_over_counts(tmp_path, frontier_cache):
    run = _per_request_run(tmp_path)
    recs = json.loads((run / "per_request_lifecycle_metrics.json").read_text())
    for i, r in enumerate(recs):
        r["stage_id"] = 0 if i < 10 else 1
    (run / "per_request_lifecycle_metrics.json").write_text(json.dumps(recs))
    st = json.loads((run / "stage_1_lifecycle_metrics.json").read_text())
    st["load_summary"]["count"] = 99   # the counts no longer matter
    (run / "stage_1_lifecycle_metrics.json").write_text(json.dumps(st))
    assert compare_stages(LLAMA, run, seed=0)["stages"]["requests"].tolist() == [10, 20]
