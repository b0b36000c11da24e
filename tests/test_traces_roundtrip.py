"""write_trace -> load_trace gives back the same trace, for every native container."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontier_calib.errors import FrontierError
from frontier_calib.traces import Trace, canonical_trace, load_trace, shared_prefix_trace, write_trace

SUFFIXES = (".csv", ".jsonl", ".parquet")
finite = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)
sessions = st.one_of(st.none(), st.just(" "), st.just("NA"),  # empty session ids read as missing
                     st.text(string.ascii_letters + string.digits + "-_:/.# ,\"", min_size=1, max_size=12))


@st.composite
def traces(draw) -> Trace:
    n = draw(st.integers(1, 12))
    block = draw(st.integers(1, 64))
    inputs = draw(st.lists(st.integers(1, 5000), min_size=n, max_size=n))
    columns = {
        "request_id": draw(st.lists(st.integers(-2**62, 2**62), min_size=n, max_size=n, unique=True)),
        "arrival_s": np.cumsum(draw(st.lists(finite, min_size=n, max_size=n))),
        "input_tokens": inputs,
        "output_tokens": draw(st.lists(st.integers(1, 10**6), min_size=n, max_size=n)),
    }
    with_hashes = draw(st.booleans())
    if with_hashes:
        columns["hash_ids"] = [draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=-(-k // block),
                                             max_size=-(-k // block))) for k in inputs]
    if draw(st.booleans()):
        columns["session_id"] = draw(st.lists(sessions, min_size=n, max_size=n))
    if draw(st.booleans()):
        maybe = st.one_of(st.just(np.nan), finite)
        for name in ("measured_ttft_s", "measured_e2e_s", "measured_tpot_s"):
            columns[name] = draw(st.lists(maybe, min_size=n, max_size=n))
        columns["measured_itls_s"] = draw(st.lists(st.one_of(st.none(), st.lists(finite, max_size=5)),
                                                   min_size=n, max_size=n))
    concurrency = draw(st.one_of(st.none(), st.integers(1, 64)))
    return canonical_trace(pd.DataFrame(columns), hash_block_size=block if with_hashes else None,
                           concurrency=concurrency)


def _assert_same(got: Trace, want: Trace) -> None:
    pd.testing.assert_frame_equal(got.requests, want.requests)
    assert (got.hash_block_size, got.concurrency) == (want.hash_block_size, want.concurrency)


@settings(max_examples=40, deadline=None)
@given(trace=traces(), suffix=st.sampled_from(SUFFIXES))
def test_write_then_load_is_identity(trace, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"trace{suffix}"
        write_trace(trace, path)
        _assert_same(load_trace(path), trace)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_shared_prefix_round_trip_keeps_block_size(tmp_path, suffix):
    trace = shared_prefix_trace(2, 3, 100, 30, 7, seed=0, hash_block_size=32)
    path = write_trace(trace, tmp_path / f"t{suffix}")
    _assert_same(load_trace(path), trace)
    assert load_trace(path, hash_block_size=32).hash_block_size == 32


def test_unknown_extension_and_failed_write_leave_nothing(tmp_path):
    trace = shared_prefix_trace(1, 2, 16, 16, 4)
    with pytest.raises(FrontierError, match="use one of .csv, .jsonl, .parquet"):
        write_trace(trace, tmp_path / "t.txt")
    assert list(tmp_path.iterdir()) == []
