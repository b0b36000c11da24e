"""`frontier-calib replay` / `demo` end to end, and the physics of replays through the real cost model
(Llama-2-7b, one H100, vLLM policy): more load never lowers TTFT, prefix caching lowers it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontier_calib.cli import main
from frontier_calib.deployment import build_replicas, deployment_from_dict
from frontier_calib.sim import REQUEST_COLUMNS, simulate
from frontier_calib.traces import lognormal, poisson, shared_prefix_trace, synthetic_trace, uniform

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = REPO / "deployments" / "llama2-7b-h100-vllm.yaml"
TRACE = REPO / "traces" / "poisson_lognormal_1k.csv"

pytestmark = pytest.mark.usefixtures("frontier_cache")

BENCH_KEYS = ["completed", "duration", "request_throughput", "output_throughput", "total_token_throughput"] + [
    f"{stat}_{metric}_ms" for metric in ("ttft", "tpot", "itl", "e2el") for stat in ("mean", "median", "p99")]


def _replay(out: Path, *extra: str, limit: int = 200, deployment: Path = DEPLOYMENT, trace: Path = TRACE):
    args = ["replay", "--deployment", str(deployment), "--trace", str(trace), "--out", str(out)]
    if limit is not None:
        args += ["--limit", str(limit)]
    return CliRunner().invoke(main, args + list(extra))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory, llama_replicas):  # llama_replicas: the cost tables are built (and cached) once
    out = tmp_path_factory.mktemp("replay")
    result = _replay(out, "--timeline")
    assert result.exit_code == 0, result.output
    return out, result


# --------------------------------------------------------------------------------------------- outputs

def test_replay_writes_requests_summary_and_timeline(replayed):
    out, result = replayed
    assert sorted(p.name for p in out.iterdir()) == ["requests.parquet", "summary.json", "timeline.json"]
    assert "Serving Benchmark Result" in result.output and "mean_ttft_ms" in result.output


def test_requests_table_has_the_per_request_columns(replayed):
    out, _ = replayed
    df = pd.read_parquet(out / "requests.parquet")
    assert list(df.columns) == list(REQUEST_COLUMNS)
    assert len(df) == 200
    trace = pd.read_csv(TRACE).head(200)
    assert df["request_id"].tolist() == trace["request_id"].tolist()
    assert df["input_tokens"].tolist() == trace["input_tokens"].tolist()
    ok = df[df["status"] == "ok"]
    assert len(ok) >= 195
    assert (ok["arrival_s"] <= ok["scheduled_s"]).all()
    assert (ok["scheduled_s"] < ok["first_token_s"]).all()
    assert (ok["first_token_s"] <= ok["completion_s"]).all()
    assert np.allclose(ok["ttft_s"], ok["first_token_s"] - ok["arrival_s"])
    assert np.allclose(ok["e2e_s"], ok["completion_s"] - ok["arrival_s"])
    many = ok[ok["output_tokens"] > 1]
    assert np.allclose(many["tpot_s"], (many["e2e_s"] - many["ttft_s"]) / (many["output_tokens"] - 1))
    assert (ok["replica"] == "r0").all()
    assert (df.loc[df["status"] != "ok", "status"].str.startswith("rejected:")).all()


def test_summary_has_vllm_bench_keys(replayed):
    out, _ = replayed
    s = json.loads((out / "summary.json").read_text())
    missing = [k for k in BENCH_KEYS if k not in s]
    assert not missing
    df = pd.read_parquet(out / "requests.parquet")
    ok = df[df["status"] == "ok"]
    assert s["completed"] == len(ok)
    assert s["mean_ttft_ms"] == pytest.approx(ok["ttft_s"].mean() * 1e3, rel=1e-9)
    assert s["median_e2el_ms"] == pytest.approx(ok["e2e_s"].median() * 1e3, rel=1e-9)
    assert s["request_throughput"] == pytest.approx(s["completed"] / s["duration"], rel=1e-9)
    assert s["output_throughput"] == pytest.approx(ok["output_tokens"].sum() / s["duration"], rel=1e-9)
    assert s["mean_ttft_ms"] <= s["p99_ttft_ms"] and s["median_tpot_ms"] <= s["p99_tpot_ms"]
    # physically plausible for a 7B model on one H100 at ~5 req/s
    assert 5 < s["mean_tpot_ms"] < 50 and 10 < s["mean_ttft_ms"] < 1000
    assert (s["model"], s["gpu"], s["engine"], s["num_gpus"], s["seed"]) == ("Llama-2-7b", "h100_sxm", "vllm", 1, 0)


def test_timeline_is_chrome_trace_json(replayed):
    out, _ = replayed
    tl = json.loads((out / "timeline.json").read_text())
    events = tl["traceEvents"]
    assert isinstance(events, list) and events
    for ev in events:
        assert isinstance(ev["name"], str) and ev["ph"] in {"X", "B", "E", "i", "I", "M", "C"}
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        if ev["ph"] != "M":
            assert isinstance(ev["ts"], (int, float)) and math.isfinite(ev["ts"]) and ev["ts"] >= 0
        if ev["ph"] == "X":
            assert ev["dur"] >= 0
    steps = [ev for ev in events if ev["ph"] == "X"]
    assert {ev["name"] for ev in steps} <= {"prefill", "decode", "prefill+decode"}
    assert {"decode", "prefill+decode"} <= {ev["name"] for ev in steps}
    ends = max(ev["ts"] + ev["dur"] for ev in steps) / 1e6
    s = json.loads((out / "summary.json").read_text())
    assert ends == pytest.approx(s["duration"], rel=0.05)


def test_csv_output_and_no_timeline_by_default(tmp_path, llama_replicas):
    result = _replay(tmp_path, "--csv", limit=50)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.csv", "summary.json"]
    df = pd.read_csv(tmp_path / "requests.csv")
    assert list(df.columns) == list(REQUEST_COLUMNS) and len(df) == 50


def test_same_seed_gives_byte_identical_requests(tmp_path, replayed):
    out, _ = replayed
    again = tmp_path / "again"
    assert _replay(again, "--timeline").exit_code == 0
    assert (again / "requests.parquet").read_bytes() == (out / "requests.parquet").read_bytes()
    a = tmp_path / "a"
    b = tmp_path / "b"
    for d in (a, b):
        assert _replay(d, "--csv", "--seed", "7", limit=80).exit_code == 0
    assert (a / "requests.csv").read_bytes() == (b / "requests.csv").read_bytes()


def test_corrupted_trace_fails_cleanly_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.csv"
    lines = TRACE.read_text().splitlines()[:30]
    lines[12] = "11,not-a-time,100,20"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = _replay(out, trace=bad, limit=None)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert str(bad) in result.output
    assert not out.exists()
    # into an existing folder: nothing is added
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert _replay(out, trace=bad, limit=None).exit_code == 2
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_failure_while_writing_leaves_no_partial_set(tmp_path, monkeypatch, llama_replicas):
    import frontier_calib.replay as replay_mod

    def broken(obj, dest, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(replay_mod, "write_json", broken)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        replay_mod.run_replay(DEPLOYMENT, TRACE, out=out, limit=20, progress=False)
    assert not out.exists() or list(out.iterdir()) == []


def test_demo_runs(tmp_path, llama_replicas):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["requests.parquet", "summary.json", "timeline.json"]
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["completed"] + s.get("failed", 0) == 1000 and s["completed"] > 990


# ------------------------------------------------------------------------------- physics of the replay

def _variant(llama_deployment, **scheduler):
    raw = dict(llama_deployment.raw)
    raw["scheduler"] = {**raw["scheduler"], **scheduler}
    return build_replicas(deployment_from_dict(raw, source=str(DEPLOYMENT)))[0]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1))
def test_higher_arrival_rate_never_lowers_mean_ttft(llama_replicas, seed):
    specs, _ = llama_replicas
    means = []
    for rate in (0.5, 1, 2, 4, 8, 12):
        # same seed: the same requests, with the same exponential gaps scaled by 1/rate
        trace = synthetic_trace(300, arrival=poisson(rate), input_len=lognormal(800, 0.6),
                                output_len=lognormal(150, 0.6), seed=seed)
        df = simulate(trace, specs).requests
        ok = df[df["status"] == "ok"].iloc[60:]  # steady state: skip the warm-up from an empty server
        means.append(ok["ttft_s"].mean())
    assert np.all(np.diff(means) >= 0), means
    assert means[-1] > means[0]


@pytest.mark.parametrize("rate", [2.0, 8.0])
def test_prefix_caching_lowers_ttft_on_shared_prefixes(llama_deployment, rate):
    trace = shared_prefix_trace(8, 25, 1024, uniform(64, 256), 64, arrival=poisson(rate), seed=3)
    on = simulate(trace, _variant(llama_deployment, enable_prefix_caching=True)).requests
    off = simulate(trace, _variant(llama_deployment, enable_prefix_caching=False)).requests
    assert (on["status"] == "ok").all() and (off["status"] == "ok").all()
    assert (off["cached_tokens"] == 0).all()
    assert on["cached_tokens"].sum() > 0.8 * 1024 * (200 - 8)  # all but each group's first prompt hit the prefix
    assert on["ttft_s"].mean() < 0.7 * off["ttft_s"].mean()
    assert on["ttft_s"].median() < off["ttft_s"].median()


def test_no_shared_prefix_no_gain(llama_deployment):
    trace = shared_prefix_trace(8, 10, 0, uniform(200, 600), 32, arrival=poisson(4), seed=0)
    on = simulate(trace, _variant(llama_deployment, enable_prefix_caching=True)).requests
    off = simulate(trace, _variant(llama_deployment, enable_prefix_caching=False)).requests
    assert on["cached_tokens"].sum() == 0
    assert on["ttft_s"].to_numpy() == pytest.approx(off["ttft_s"].to_numpy())
