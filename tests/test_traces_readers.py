"""Readers on the real public traces (../shared/traces beside the repo) and on small fixtures."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from frontier_calib.errors import FrontierError, InputError
from frontier_calib.traces import FORMATS, detect_format, load_trace
from frontier_calib.traces.loader import READERS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "traces"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real traces not found at {SHARED}")


def test_every_format_has_a_reader():
    assert tuple(READERS) == FORMATS


@needs_shared
def test_mooncake_conversation_trace():
    path = SHARED / "mooncake_conversation_trace.jsonl"
    assert detect_format(path) == "mooncake"
    start = time.perf_counter()
    trace = load_trace(path)
    elapsed = time.perf_counter() - start
    df = trace.requests
    assert trace.num_requests == 12_031 and trace.hash_block_size == 512
    assert df["input_tokens"].mean() == pytest.approx(12_035, abs=1)  # release notes: 12,035 / 343
    assert df["output_tokens"].mean() == pytest.approx(343, abs=1)
    assert trace.duration_s == pytest.approx(3536.999)
    assert all(len(ids) == math.ceil(n / 512) for ids, n in zip(df["hash_ids"], df["input_tokens"]))
    assert elapsed < 2.0, f"reading 12k Mooncake rows took {elapsed:.2f} s"


@needs_shared
def test_mooncake_synthetic_trace_limit_and_time_scale():
    path = SHARED / "mooncake_synthetic_trace.jsonl"
    full = load_trace(path)
    assert full.num_requests == 3_993
    assert full.requests["input_tokens"].mean() == pytest.approx(15_325, abs=1)
    short = load_trace(path, limit=100, time_scale=2.0)
    assert short.num_requests == 100
    np.testing.assert_allclose(short.requests["arrival_s"], 2.0 * full.requests["arrival_s"].iloc[:100])
    assert "x2" in short.source and "first 100" in short.source


@needs_shared
@pytest.mark.parametrize("name, rows", [("azure_llm_inference_2023_code.csv", 8_819),
                                        ("azure_llm_inference_2023_conv.csv", 19_366)])
def test_azure_traces(name, rows):
    path = SHARED / name
    assert detect_format(path) == "azure"
    start = time.perf_counter()
    trace = load_trace(path)
    elapsed = time.perf_counter() - start
    df = trace.requests
    assert trace.num_requests == rows and trace.hash_block_size is None
    assert df["arrival_s"].iloc[0] == 0.0 and df["arrival_s"].is_monotonic_increasing
    assert 3000 < trace.duration_s < 3700  # about one hour
    assert elapsed < 2.0, f"reading {rows} Azure rows took {elapsed:.2f} s"


@needs_shared
def test_azure_first_gaps_keep_sub_millisecond_precision():
    trace = load_trace(SHARED / "azure_llm_inference_2023_conv.csv", limit=2)
    # 18:15:46.6805900 -> 18:15:50.9951690
    assert trace.requests["arrival_s"].iloc[1] == pytest.approx(4.314579, abs=1e-6)


def test_burstgpt_fixture_drops_failures_with_a_count():
    path = FIXTURES / "burstgpt_sample.csv"
    assert detect_format(path) == "burstgpt"
    with pytest.warns(UserWarning, match="dropped 2 of 40"):
        trace = load_trace(path)
    assert trace.num_requests == 38
    assert "dropped 2 of 40" in trace.source
    assert (trace.requests["output_tokens"] >= 1).all()
    assert 11 not in set(trace.requests["request_id"])  # request_id = data row, kept across drops
    assert trace.requests["arrival_s"].iloc[0] == 0.0


def test_vllm_bench_open_loop_reconstructs_seeded_arrivals():
    path = FIXTURES / "vllm_bench_rate4.json"
    assert detect_format(path) == "vllm_bench"
    with pytest.warns(UserWarning, match="dropped 1 of 12"):
        trace = load_trace(path)
    df = trace.requests
    assert trace.num_requests == 11 and trace.concurrency is None
    assert "gamma(rate=4.0/s, burstiness=1.0) with seed=0" in trace.source
    assert 5 not in set(df["request_id"])
    np.testing.assert_allclose(df["measured_e2e_s"],
                               df["measured_ttft_s"] + [sum(v) for v in df["measured_itls_s"]])
    np.testing.assert_allclose(df["measured_tpot_s"],
                               (df["measured_e2e_s"] - df["measured_ttft_s"]) / (df["output_tokens"] - 1))
    with pytest.warns(UserWarning):
        again, other = load_trace(path), load_trace(path, seed=1)
    assert again.requests.equals(df)
    assert not other.requests["arrival_s"].equals(df["arrival_s"])


def test_vllm_bench_closed_loop_from_max_concurrency():
    path = FIXTURES / "vllm_bench_concurrency4.json"  # pretty-printed, request_rate "inf"
    assert detect_format(path) == "vllm_bench"
    with pytest.warns(UserWarning, match="dropped 2 of 10"):
        trace = load_trace(path)
    assert trace.concurrency == 4 and trace.num_requests == 8
    assert (trace.requests["arrival_s"] == 0).all()
    assert list(trace.requests["request_id"]) == [0, 1, 3, 4, 5, 6, 8, 9]  # send order kept


def test_vllm_bench_infinite_rate_without_concurrency(tmp_path):
    doc = (FIXTURES / "vllm_bench_rate4.json").read_text().replace('"request_rate": 4.0', '"request_rate": "inf"')
    path = tmp_path / "inf.json"
    path.write_text(doc)
    with pytest.warns(UserWarning):
        trace = load_trace(path)
    assert trace.concurrency is None and (trace.requests["arrival_s"] == 0).all()
    assert "request_rate inf" in trace.source


@pytest.mark.filterwarnings("ignore:.*dropped")
def test_format_can_be_named_and_options_are_checked(tmp_path):
    path = FIXTURES / "burstgpt_sample.csv"
    with pytest.raises(FrontierError, match="unknown trace format"):
        load_trace(path, "sharegpt")
    with pytest.raises(FrontierError, match="no option 'seed'"):
        load_trace(path, "burstgpt", seed=3)
    with pytest.raises(FrontierError, match="limit"):
        load_trace(path, limit=0)
    with pytest.raises(FrontierError, match="time_scale"):
        load_trace(path, time_scale=-1)
    with pytest.raises(InputError, match="file not found"):
        load_trace(tmp_path / "nope.csv")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="cannot tell the trace format") as info:
        load_trace(unknown)
    assert "native, mooncake, azure, burstgpt, vllm_bench" in str(info.value)
