"""The canonical request table: construction, helpers and validate_trace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from frontier_calib.errors import InputError
from frontier_calib.traces import Trace, canonical_trace, validate_trace


def _frame(**extra) -> pd.DataFrame:
    return pd.DataFrame({"arrival_s": [5.0, 3.0, 3.0], "input_tokens": [10, 20, 30], "output_tokens": [1, 2, 3],
                         **extra})


def test_canonical_trace_sorts_stably_shifts_to_zero_and_keeps_ids():
    trace = canonical_trace(_frame(), source="mem")
    df = trace.requests
    assert list(df["request_id"]) == [1, 2, 0]
    assert list(df["arrival_s"]) == [0.0, 0.0, 2.0]
    assert list(df.columns) == ["request_id", "arrival_s", "input_tokens", "output_tokens"]
    assert df["input_tokens"].dtype == np.int64 and df["arrival_s"].dtype == np.float64
    assert isinstance(df.index, pd.RangeIndex)
    assert trace.num_requests == 3 and trace.duration_s == 2.0


def test_head_and_with_arrivals():
    trace = canonical_trace(_frame())
    assert trace.head(2).num_requests == 2 and "first 2" in trace.head(2).source
    assert trace.head(10) is trace
    moved = trace.with_arrivals([10.0, 1.0, 4.0])
    assert list(moved.requests["request_id"]) == [2, 0, 1]
    assert list(moved.requests["arrival_s"]) == [0.0, 3.0, 9.0]
    with pytest.raises(ValueError, match="3 arrival times"):
        trace.with_arrivals([0.0])


def test_session_ids_may_be_missing():
    trace = canonical_trace(_frame(session_id=["a", None, "b"]))
    assert trace.requests["session_id"].dtype == "string"
    assert trace.requests["session_id"].isna().sum() == 1


@pytest.mark.parametrize("change, field, text", [
    (lambda df: df.assign(input_tokens=[10, 0, 30]), "input_tokens", "at least 1"),
    (lambda df: df.assign(output_tokens=[1.5, 2, 3]), "output_tokens", "whole numbers"),
    (lambda df: df.assign(arrival_s=[0.0, np.nan, 1.0]), "arrival_s", "not finite"),
    (lambda df: df.assign(request_id=[7, 7, 8]), "request_id", "duplicate"),
    (lambda df: df.drop(columns="output_tokens"), "output_tokens", "missing column"),
    (lambda df: df.assign(measured_ttft_s=[0.1, -1.0, 0.2]), "measured_ttft_s", "negative"),
])
def test_violations_name_the_field(change, field, text):
    with pytest.raises(InputError, match=text) as info:
        canonical_trace(change(_frame()), source="mem")
    assert info.value.field == field


def test_hash_ids_must_match_block_size():
    frame = _frame(hash_ids=[[1], [1, 2], [3]])
    with pytest.raises(InputError, match="hash_block_size"):
        canonical_trace(frame)
    with pytest.raises(InputError, match=r"ceil\(input_tokens / 16\) = 2"):
        canonical_trace(frame, hash_block_size=16)
    ok = canonical_trace(frame.assign(input_tokens=[16, 17, 1]), hash_block_size=16)
    assert ok.requests["hash_ids"].iloc[0] == [1, 2]


def test_validate_catches_hand_made_mistakes():
    good = canonical_trace(_frame())
    with pytest.raises(InputError, match="first arrival must be at 0"):
        validate_trace(Trace(good.requests.assign(arrival_s=[1.0, 2.0, 3.0])))
    with pytest.raises(InputError, match="non-decreasing"):
        validate_trace(Trace(good.requests.assign(arrival_s=[0.0, 2.0, 1.0])))
    with pytest.raises(InputError, match="index"):
        validate_trace(Trace(good.requests.iloc[::-1]))
    with pytest.raises(InputError, match="concurrency"):
        validate_trace(Trace(good.requests, concurrency=0))
    with pytest.raises(InputError, match="no requests"):
        validate_trace(Trace(good.requests.iloc[:0]))
