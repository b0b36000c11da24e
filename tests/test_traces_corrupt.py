"""Malformed input: every reader raises InputError naming the file, the row and the field.

Rows are 1-based file lines for CSV/JSONL (a CSV header is line 1), 1-based list positions for vLLM
bench results and 1-based data rows for Parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frontier_calib.errors import InputError
from frontier_calib.traces import load_trace

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "traces"


def _expect(path: Path, fmt: str | None, *, row: int | None, field: str | None, text: str) -> InputError:
    with pytest.raises(InputError) as info:
        load_trace(path, fmt)
    err = info.value
    assert err.path == str(path)
    assert (err.row, err.field) == (row, field), str(err)
    assert text in str(err)
    assert str(path) in str(err)
    return err


# --- Mooncake JSONL -------------------------------------------------------------------------------

MOONCAKE_OK = [
    {"timestamp": 0, "input_length": 600, "output_length": 10, "hash_ids": [0, 1]},
    {"timestamp": 27, "input_length": 100, "output_length": 5, "hash_ids": [2]},
    {"timestamp": 27, "input_length": 1100, "output_length": 7, "hash_ids": [0, 1, 3]},
]


def _mooncake(tmp_path: Path, records: list, raw_line: tuple[int, str] | None = None) -> Path:
    lines = [json.dumps(r) for r in records]
    if raw_line:
        lines[raw_line[0]] = raw_line[1]
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _with(index: int, **changes) -> list:
    records = [dict(r) for r in MOONCAKE_OK]
    for key, value in changes.items():
        if value is KeyError:
            del records[index][key]
        else:
            records[index][key] = value
    return records


@pytest.mark.parametrize("records, raw, row, field, text", [
    (MOONCAKE_OK, (1, '{"timestamp": 27, "input_length": 100,'), 2, None, "not valid JSON"),
    (_with(1, output_length=KeyError), None, 2, "output_length", "missing field"),
    (_with(2, input_length="abc"), None, 3, "input_length", "'abc' is not a number"),
    (_with(0, output_length=0), None, 1, "output_length", "at least 1"),
    (_with(1, input_length=-5), None, 2, "input_length", "at least 1"),
    (_with(2, timestamp=float("nan")), None, 3, "timestamp", "NaN"),
    (_with(0, hash_ids=[0]), None, 1, "hash_ids", "1 hash ids for 600 input tokens"),
    (_with(1, hash_ids="2"), None, 2, "hash_ids", "list of integers"),
])
def test_mooncake_corrupt(tmp_path, records, raw, row, field, text):
    _expect(_mooncake(tmp_path, records, raw), "mooncake", row=row, field=field, text=text)


def test_mooncake_decreasing_timestamps_are_sorted_not_rejected(tmp_path):
    trace = load_trace(_mooncake(tmp_path, _with(0, timestamp=5000)))
    assert list(trace.requests["request_id"]) == [1, 2, 0]
    assert list(trace.requests["arrival_s"]) == [0.0, 0.0, pytest.approx(4.973)]


# --- Azure CSV ------------------------------------------------------------------------------------

AZURE_OK = ["TIMESTAMP,ContextTokens,GeneratedTokens",
            "2023-11-16 18:15:46.6805900,374,44",
            "2023-11-16 18:15:50.9951690,396,109",
            "2023-11-16 18:15:51.0000000,100,10"]


def _csv(tmp_path: Path, lines: list[str], name: str = "trace.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("line, replacement, row, field, text", [
    (2, "2023-11-16 18:15:50.9951690,396x,109", 3, "ContextTokens", "'396x' is not a number"),
    (3, "2023-11-16 18:15:51.0000000,100,0", 4, "GeneratedTokens", "at least 1"),
    (1, "2023-13-45 99:15:46.68,374,44", 2, "TIMESTAMP", "is not a datetime"),
    (2, "2023-11-16 18:15:50.9951690,,109", 3, "ContextTokens", "missing or NaN"),
    (3, "2023-11-16 18:15:51.0000000,100,NaN", 4, "GeneratedTokens", "NaN"),
])
def test_azure_corrupt(tmp_path, line, replacement, row, field, text):
    lines = list(AZURE_OK)
    lines[line] = replacement
    _expect(_csv(tmp_path, lines), "azure", row=row, field=field, text=text)


def test_azure_missing_column(tmp_path):
    lines = [line.rsplit(",", 1)[0] for line in AZURE_OK]
    _expect(_csv(tmp_path, lines), "azure", row=None, field="GeneratedTokens", text="missing column")


# --- BurstGPT CSV ---------------------------------------------------------------------------------

def _burstgpt_lines() -> list[str]:
    return (FIXTURES / "burstgpt_sample.csv").read_text().splitlines()[:6]


@pytest.mark.parametrize("line, column, value, field, text", [
    (3, 2, "many", "Request tokens", "'many' is not a number"),
    (4, 3, "-3", "Response tokens", "at least 0"),
    (2, 0, "", "Timestamp", "missing or NaN"),
    (5, 2, "12.5", "Request tokens", "whole number"),
])
def test_burstgpt_corrupt(tmp_path, line, column, value, field, text):
    lines = _burstgpt_lines()
    cells = lines[line].split(",")
    cells[column] = value
    lines[line] = ",".join(cells)
    _expect(_csv(tmp_path, lines), "burstgpt", row=line + 1, field=field, text=text)


def test_burstgpt_missing_column(tmp_path):
    lines = [line.replace("Response tokens", "Response") for line in _burstgpt_lines()]
    _expect(_csv(tmp_path, lines), "burstgpt", row=None, field="Response tokens", text="missing column")


# --- vLLM bench JSON ------------------------------------------------------------------------------

def _bench(tmp_path: Path, **changes) -> Path:
    doc = json.loads((FIXTURES / "vllm_bench_rate4.json").read_text())
    for key, value in changes.items():
        if value is KeyError:
            del doc[key]
        elif callable(value):
            value(doc[key])
        else:
            doc[key] = value
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _set(index: int, value):
    def change(values: list) -> None:
        values[index] = value
    return change


@pytest.mark.parametrize("changes, row, field, text", [
    ({"itls": KeyError}, None, "itls", "--save-detailed"),
    ({"ttfts": lambda v: v.pop()}, None, "ttfts", "as long as input_lens (12)"),
    ({"ttfts": _set(3, "fast")}, 4, "ttfts", "'fast' is not a number"),
    ({"input_lens": _set(0, 0)}, 1, "input_lens", "at least 1"),
    ({"itls": _set(2, [0.01, "x"])}, 3, "itls", "list entry 'x'"),
    ({"request_rate": "fast"}, None, "request_rate", "number > 0"),
    ({"max_concurrency": 0}, None, "max_concurrency", "whole number >= 1"),
    ({"burstiness": -1}, None, "burstiness", "burstiness must be"),
])
def test_vllm_bench_corrupt(tmp_path, changes, row, field, text):
    _expect(_bench(tmp_path, **changes), "vllm_bench", row=row, field=field, text=text)


def test_vllm_bench_truncated_json(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text((FIXTURES / "vllm_bench_concurrency4.json").read_text()[:500])
    _expect(path, None, row=path.read_text().count("\n") + 1, field=None, text="not valid JSON")


# --- native CSV / JSONL / Parquet -----------------------------------------------------------------

def test_native_csv_corrupt_cell_and_unknown_column(tmp_path):
    lines = ["request_id,arrival_s,input_tokens,output_tokens", "0,0.0,10,5", "1,0.5,ten,5"]
    _expect(_csv(tmp_path, lines), "native", row=3, field="input_tokens", text="'ten' is not a number")
    lines = ["arrival_s,input_tokens,output_tokens,measured_ttft_ms", "0.0,10,5,3"]
    _expect(_csv(tmp_path, lines), "native", row=None, field="measured_ttft_ms", text="unknown column")


def test_native_csv_metadata_line_counts_in_row_numbers(tmp_path):
    lines = ['# frontier_calib {"hash_block_size": 4, "concurrency": null}',
             "arrival_s,input_tokens,output_tokens,hash_ids", "0.0,8,5,1 2", "1.0,4,5,3 x"]
    _expect(_csv(tmp_path, lines), None, row=4, field="hash_ids", text="list entry 'x' is not an integer")


def test_native_jsonl_bad_line_and_nan(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"arrival_s": 0, "input_tokens": 3, "output_tokens": 1}\n{"arrival_s": 1, "input_tokens"\n')
    _expect(path, None, row=2, field=None, text="not valid JSON")
    path.write_text('{"arrival_s": 0, "input_tokens": 3, "output_tokens": 1}\n'
                    '{"arrival_s": NaN, "input_tokens": 3, "output_tokens": 1}\n')
    _expect(path, None, row=2, field="arrival_s", text="NaN")


def test_native_parquet_unreadable(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")
    _expect(path, None, row=None, field=None, text="not a readable Parquet file")


def test_native_hash_ids_without_block_size(tmp_path):
    lines = ["arrival_s,input_tokens,output_tokens,hash_ids", "0.0,8,5,[1]"]
    _expect(_csv(tmp_path, lines), None, row=None, field="hash_ids", text="--hash-block-size N")
