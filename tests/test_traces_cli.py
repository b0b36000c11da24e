"""The ``traces`` click group (show, generate) and the sample traces committed in ../traces."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_calib.errors import InputError
from frontier_calib.traces import load_spec, load_trace, trace_from_spec
from frontier_calib.traces.commands import traces

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "traces"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "traces"
SHARED = REPO.parent / "shared" / "traces"
#: sample trace -> the spec that made it (traces/README.md lists the commands)
SAMPLE_SPECS = {
    "poisson_lognormal_1k.csv": "poisson_lognormal_1k.yaml",
    "shared_prefix_small.jsonl": "shared_prefix_small.yaml",
    "closed_loop_c16.csv": "closed_loop_c16.yaml",
    "bursty_gamma.csv": "bursty_gamma.yaml",
}


def test_generate_then_show(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("kind: shared_prefix\nnum_groups: 2\nprompts_per_group: 5\nsystem_prompt_len: 64\n"
                    "question_len: 32\noutput_len: 10\narrival: {kind: poisson, rate: 2}\nhash_block_size: 16\n")
    out = tmp_path / "t.jsonl"
    runner = CliRunner()
    result = runner.invoke(traces, ["generate", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote 10 requests" in result.output
    result = runner.invoke(traces, ["show", str(out)])
    assert result.exit_code == 0, result.output
    assert "format: native (detected)" in result.output
    assert "requests: 10" in result.output and "mean arrival rate" in result.output
    assert "input_tokens (tokens): mean 96.0" in result.output
    assert "prefix reuse" in result.output


@pytest.mark.filterwarnings("ignore:.*dropped")
def test_show_named_format_and_measured_latencies():
    result = CliRunner().invoke(traces, ["show", str(FIXTURES / "vllm_bench_concurrency4.json"),
                                         "--format", "vllm_bench"])
    assert result.exit_code == 0, result.output
    assert "format: vllm_bench\n" in result.output
    assert "closed loop: 4 concurrent clients" in result.output
    assert "measured_ttft_ms (ms)" in result.output and "dropped 2 of 10" in result.output


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real traces not found at {SHARED}")
def test_show_mooncake_prefix_stats():
    result = CliRunner().invoke(traces, ["show", str(SHARED / "mooncake_synthetic_trace.jsonl")])
    assert result.exit_code == 0, result.output
    assert "format: mooncake (detected)" in result.output
    assert "prefix blocks: 121,877 of 512 tokens" in result.output


def test_generate_reports_bad_spec(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("num_requests: 10\ninput_tokens: 5\noutput_tokens: {kind: zipf}\n")
    result = CliRunner().invoke(traces, ["generate", str(spec), "--out", str(tmp_path / "t.csv")])
    assert isinstance(result.exception, InputError)
    assert "output_tokens.kind" in str(result.exception) and str(spec) in str(result.exception)
    assert not (tmp_path / "t.csv").exists()


@pytest.mark.parametrize("sample, spec", SAMPLE_SPECS.items())
def test_committed_samples_match_their_specs(sample, spec):
    path = SAMPLES / sample
    assert path.stat().st_size < 200_000
    spec_path = SAMPLES / "specs" / spec
    made = trace_from_spec(load_spec(spec_path), spec_path=spec_path)
    stored = load_trace(path)
    pd.testing.assert_frame_equal(stored.requests, made.requests)
    assert (stored.hash_block_size, stored.concurrency) == (made.hash_block_size, made.concurrency)


def test_every_sample_has_a_spec():
    samples = {p.name for p in SAMPLES.iterdir() if p.is_file() and p.suffix in (".csv", ".jsonl", ".parquet")}
    assert samples == set(SAMPLE_SPECS)
