"""inference-perf per-request results (``per_request_lifecycle_metrics.json``): reader, detection, prefixes, errors."""

import json

import numpy as np
import pytest

from frontier_calib.errors import InputError
from frontier_calib.traces import load_trace
from frontier_calib.traces.detect import detect_format
from frontier_calib.traces.inference_perf import prefix_hash_ids, shared_prefix_lengths

SYSTEM = ["You are a careful assistant for tax questions. " * 8, "You translate English to French politely. " * 8]


def _record(start, n_in, n_out, prompt, itl=0.01, ttft=0.05, error=None, chat=False):
    times = [start + ttft + k * itl for k in range(n_out)]
    body = {"model": "m", "max_tokens": n_out}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    return {"start_time": start, "end_time": times[-1] + 0.002, "request": json.dumps(body), "response": "x",
            "info": {"input_tokens": n_in, "output_tokens": n_out, "output_token_times": times}, "error": error}


def _write(tmp_path, records, name="per_request_lifecycle_metrics.json", indent=2):
    p = tmp_path / name
    p.write_text(json.dumps(records, indent=indent))
    return p


def _records():
    recs = []
    for i in range(8):
        system = SYSTEM[i % 2]
        question = f"question number {i}: " + "why " * (5 + i)
        recs.append(_record(100.0 + 0.5 * i, 160 + 4 * i, 12 + i, system + question))
    return recs


def test_reader_timings_and_arrivals(tmp_path):
    path = _write(tmp_path, _records())
    assert detect_format(path) == "inference_perf"
    t = load_trace(path)
    df = t.requests
    assert len(df) == 8 and t.concurrency is None
    np.testing.assert_allclose(df["arrival_s"], 0.5 * np.arange(8))
    np.testing.assert_allclose(df["measured_ttft_s"], 0.05)
    np.testing.assert_allclose(df["measured_tpot_s"], 0.01)
    np.testing.assert_allclose(df["measured_e2e_s"], 0.05 + 0.01 * (df["output_tokens"] - 1) + 0.002)
    assert df["measured_itls_s"].isna().all()   # chunk times are not inter-token latencies (module docstring)
    # a one-line array is detected too
    assert detect_format(_write(tmp_path, _records(), name="one_line.json", indent=None)) == "inference_perf"


def test_shared_system_prompts_share_hash_prefixes(tmp_path):
    t = load_trace(_write(tmp_path, _records()))
    assert t.hash_block_size == 16
    ids = t.requests["hash_ids"].tolist()
    # prompts with the same system prompt share their leading blocks, the two groups share none
    same = [a == b for a, b in zip(ids[0], ids[2])]
    assert same[0] and sum(same) >= 10
    assert ids[0][0] != ids[1][0]
    # the shared run is a prefix: once two chains differ they never agree again
    assert same == sorted(same, reverse=True)
    assert "shared prompt prefixes" in t.source


def test_lcp_helpers():
    assert shared_prefix_lengths(["abcX", "abcY", "zz", None, (1, 2, 3), (1, 2, 4)]).tolist() == [3, 3, 0, 0, 2, 2]
    ids, note = prefix_hash_ids([None, None], np.array([32, 32]), 16)
    assert ids is None and "unknown" in note
    # token-id prompts compare token by token: 40 shared tokens = 2 full blocks of 16
    a, b = tuple(range(64)), tuple(range(40)) + tuple(range(1000, 1024))
    ids, _ = prefix_hash_ids([a, b], np.array([64, 64]), 16)
    assert ids[0][:2] == ids[1][:2] and ids[0][2] != ids[1][2]


def test_chat_bodies_and_failed_requests(tmp_path):
    recs = [_record(10.0 + i, 100, 5, SYSTEM[0] + f"q{i}", chat=True) for i in range(3)]
    recs.append(_record(20.0, 100, 5, "p", error={"error_type": "HTTP Error 500", "error_msg": "boom"}))
    with pytest.warns(UserWarning, match="dropped 1 of 4"):
        t = load_trace(_write(tmp_path, recs))
    assert len(t.requests) == 3 and t.requests["request_id"].tolist() == [0, 1, 2]
    assert t.requests["hash_ids"].iloc[0][0] == t.requests["hash_ids"].iloc[1][0]


@pytest.mark.parametrize("mutate, match", [
    (lambda r: r[1]["info"].update(input_tokens=0), "row 2.*info.input_tokens"),
    (lambda r: r[2].update(start_time="soon"), "row 3.*start_time"),
    (lambda r: r[0]["info"].update(output_token_times=[5.0, 4.0]), "row 1.*out of order"),
])
def test_bad_records_name_the_row_and_field(tmp_path, mutate, match):
    recs = _records()
    mutate(recs)
    with pytest.raises(InputError, match=match):
        load_trace(_write(tmp_path, recs))


def test_not_an_array_or_all_failed(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('[{"start_time": 1.0, "error": {"error_type": "x"}}]')
    with pytest.raises(InputError, match="all 1 requests failed"):
        load_trace(p, format="inference_perf")
    p.write_text('{"start_time": 1}')
    with pytest.raises(InputError, match="JSON array"):
        load_trace(p, format="inference_perf")


def test_nested_info_layout_prefers_the_servers_counts(tmp_path):
    """Later inference-perf versions nest the counts (request_metrics / response_metrics) and add the server's
    usage and a stage_id; the server's token counts win over the client's re-tokenization."""
    rec = _record(5.0, 100, 20, SYSTEM[0] + "q")
    info = rec.pop("info")
    rec["stage_id"] = 2
    rec["info"] = {"request_metrics": {"text": {"input_tokens": 99}},
                   "response_metrics": {"output_tokens": 19, "output_token_times": info["output_token_times"],
                                        "server_usage": {"prompt_tokens": 101, "completion_tokens": 20,
                                                         "prompt_tokens_details": {"cached_tokens": 64}}}}
    t = load_trace(_write(tmp_path, [rec, _record(6.0, 80, 10, SYSTEM[1] + "r")]))
    assert t.requests["input_tokens"].tolist() == [101, 80]
    assert t.requests["output_tokens"].tolist() == [20, 10]
    cached = t.requests["measured_cached_tokens"].tolist()
    assert cached[0] == 64 and np.isnan(cached[1])
    from frontier_calib.traces.inference_perf import record_starts_and_stages
    starts, stages = record_starts_and_stages(tmp_path / "per_request_lifecycle_metrics.json")
    assert starts.tolist() == [5.0, 6.0] and stages.tolist() == [2, -1]


def test_validate_trace_compares_the_prefix_cache_hits(tmp_path, frontier_cache):
    from pathlib import Path

    from frontier_calib.validate.trace import compare_trace

    recs = _records()
    for r in recs:   # the server says half of every prompt came from its cache
        r["info"]["response_metrics"] = {"server_usage": {"prompt_tokens_details": {
            "cached_tokens": r["info"]["input_tokens"] // 2}}}
    dep = Path(__file__).parent.parent / "deployments" / "llama2-7b-h100-vllm.yaml"
    res = compare_trace(dep, _write(tmp_path, recs))
    row = res["aggregate"].set_index("metric").loc["prefix_cache_hit_share"]
    assert 0.45 < row["measured"] < 0.55 and 0.0 <= row["predicted"] <= 1.0
    assert np.isnan(res["aggregate"].set_index("metric").loc["mean_itl_ms", "measured"])
