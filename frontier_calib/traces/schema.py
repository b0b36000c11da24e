"""The canonical request table: what every trace reader returns and every consumer reads.

Units, everywhere in this table: times are **seconds** (float64), lengths are **tokens** (int64).

Columns of :attr:`Trace.requests`, in this order (optional ones only when known):

==================  ========  =========================================================================
``request_id``      int64     unique id; readers use the request's position in the source file (0-based)
``arrival_s``       float64   seconds since the first request; starts at 0, non-decreasing
``input_tokens``    int64     prompt length, >= 1
``output_tokens``   int64     generated length, >= 1
``session_id``      string    optional; conversation/session the request belongs to (may be missing)
``hash_ids``        object    optional; list[int] per row, one prefix-chained block hash per
                              ``hash_block_size`` prompt tokens (Mooncake semantics: two requests share a
                              KV prefix exactly as long as their lists share a prefix)
``measured_ttft_s`` float64   optional measured time to first token (NaN = not measured)
``measured_e2e_s``  float64   optional measured end-to-end latency
``measured_tpot_s`` float64   optional measured (e2e - ttft) / (output_tokens - 1); NaN for 1-token outputs
``measured_itls_s`` object    optional list[float] of measured inter-token latencies (None = not measured)
``measured_cached_tokens``  float64   optional prompt tokens the server reported served from its prefix cache
                              (NaN = not reported)
==================  ========  =========================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from itertools import chain
from numbers import Integral

import numpy as np
from ..lazy import pandas as pd

from ..errors import FrontierError, InputError

COLUMNS: tuple[str, ...] = (
    "request_id", "arrival_s", "input_tokens", "output_tokens", "session_id", "hash_ids",
    "measured_ttft_s", "measured_e2e_s", "measured_tpot_s", "measured_itls_s", "measured_cached_tokens",
)
REQUIRED_COLUMNS: tuple[str, ...] = COLUMNS[:4]
INT_COLUMNS: tuple[str, ...] = ("request_id", "input_tokens", "output_tokens")
MEASURED_FLOAT_COLUMNS: tuple[str, ...] = ("measured_ttft_s", "measured_e2e_s", "measured_tpot_s",
                                           "measured_cached_tokens")
SESSION_DTYPE = "string"  #: pandas StringDtype; missing sessions are pd.NA


class _RequestsTable:
    """:attr:`Trace.requests`: the DataFrame, built on first read when the trace holds plain columns
    (:meth:`Trace.from_columns`; pandas is then imported only if someone reads the table, see
    :mod:`frontier_calib.lazy`), which then replaces the columns. Assigning a DataFrame replaces them too."""

    def __get__(self, trace, owner=None):
        if trace is None:
            return None   # the dataclass field's default (a trace built from columns passes none)
        frame = trace.__dict__.get("_frame")
        if frame is None and trace.__dict__.get("_columns") is not None:
            # from now on the DataFrame is the trace (one copy of the truth, whatever a caller then does to it)
            frame = trace.__dict__["_frame"] = pd.DataFrame(trace.__dict__["_columns"])
            trace.__dict__["_columns"] = None
        return frame

    def __set__(self, trace, frame) -> None:
        trace.__dict__["_frame"] = frame
        trace.__dict__["_columns"] = None


@dataclass
class Trace:
    """A request trace: the canonical table plus what the table alone cannot say.

    ``requests`` is the table (a DataFrame, columns above). A trace with only the required columns may instead
    hold them as NumPy arrays (:meth:`from_columns`, made by :func:`canonical_trace` from a dict of columns): the
    DataFrame is then built the first time ``requests`` is read, and :meth:`column`, :attr:`num_requests`,
    :meth:`head`, :meth:`with_arrivals` and a replay never build it."""

    requests: pd.DataFrame = _RequestsTable()
    #: prompt tokens covered by one entry of ``hash_ids`` (Mooncake: 512); None without prefix info
    hash_block_size: int | None = None
    #: closed loop: N clients, each sends its next request (in row order) as soon as its previous one
    #: finishes, with no think time; ``arrival_s`` then only orders the requests. None = open loop.
    concurrency: int | None = None
    #: file path or generator description, plus notes such as dropped rows
    source: str = ""
    #: where measured timings start: 'client' (the request was sent) or 'engine' (the engine queued it, after the
    #: API server's front-end path; e.g. vLLM request-metric logs)
    timed_from: str = "client"

    @classmethod
    def from_columns(cls, columns: dict, **fields) -> Trace:
        """A trace holding ``columns`` ({name: 1-D NumPy array}, :data:`REQUIRED_COLUMNS` in that order, canonical
        dtypes) without building a DataFrame; ``fields``: the other dataclass fields. Not validated: use
        :func:`canonical_trace` on a dict of columns for that."""
        trace = cls(None, **fields)
        trace.__dict__["_columns"] = dict(columns)
        return trace

    def column(self, name: str) -> np.ndarray:
        """One column as a NumPy array (read only: it may be the trace's own storage)."""
        columns = self.__dict__.get("_columns")
        if columns is not None:
            return columns[name]
        return self.requests[name].to_numpy()

    def has_column(self, name: str) -> bool:
        columns = self.__dict__.get("_columns")
        return name in columns if columns is not None else name in self.requests.columns

    @property
    def num_requests(self) -> int:
        columns = self.__dict__.get("_columns")
        return len(columns["request_id"]) if columns is not None else len(self.requests)

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last arrival."""
        return float(self.column("arrival_s")[-1])

    def head(self, n: int) -> Trace:
        """The first ``n`` requests in arrival order (all of them if there are fewer)."""
        if not isinstance(n, Integral) or n < 1:
            raise FrontierError(f"head(n) needs a whole number n >= 1, got {n!r}")
        if n >= self.num_requests:
            return self
        source = f"{self.source} [first {n} requests]"
        columns = self.__dict__.get("_columns")
        if columns is not None:
            return replace(self, requests=None, source=source)._with_columns(
                {name: values[:n] for name, values in columns.items()})
        return replace(self, requests=self.requests.iloc[:n].reset_index(drop=True), source=source)

    def _with_columns(self, columns: dict) -> Trace:
        self.__dict__["_columns"] = columns
        return self

    def with_arrivals(self, arrival_s: np.ndarray | list[float]) -> Trace:
        """The same requests with new arrival times (seconds), one per row in the current order.

        Rows are re-sorted by the new times (stably) and shifted so that the first is at 0.
        """
        arrival_s = np.asarray(arrival_s, dtype=np.float64)
        if arrival_s.shape != (self.num_requests,):
            raise FrontierError(f"with_arrivals needs {self.num_requests} arrival times, got shape {arrival_s.shape}")
        columns = self.__dict__.get("_columns")
        if columns is not None:
            table = {**columns, "arrival_s": arrival_s}
        else:
            table = self.requests.assign(arrival_s=arrival_s)
        out = canonical_trace(table, hash_block_size=self.hash_block_size, concurrency=self.concurrency,
                              source=self.source)
        out.timed_from = self.timed_from
        return out


def canonical_trace(frame, *, hash_block_size: int | None = None, concurrency: int | None = None,
                    source: str = "") -> Trace:
    """Build a validated :class:`Trace` from a frame with at least arrival_s, input_tokens, output_tokens.

    Missing ``request_id`` becomes the row position (0-based). Rows are sorted stably by ``arrival_s``,
    times are shifted so the first arrival is 0, the index becomes 0..n-1, dtypes are made canonical
    and canonical columns come first.

    ``frame`` may also be a dict of 1-D arrays holding only required columns (``request_id`` optional): the same
    steps on NumPy arrays, and a trace that builds its DataFrame only when it is read (:meth:`Trace.from_columns`).
    """
    if isinstance(frame, dict):
        return _canonical_columns(frame, hash_block_size=hash_block_size, concurrency=concurrency, source=source)
    df = frame.copy()
    if "request_id" not in df.columns:
        df.insert(0, "request_id", np.arange(len(df), dtype=np.int64))
    for name in REQUIRED_COLUMNS:
        if name not in df.columns:
            raise InputError(f"missing column; a trace needs {', '.join(REQUIRED_COLUMNS)}", path=source or None,
                             field=name)
    df = _cast(df, source)
    df = df.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    if len(df):
        df["arrival_s"] = df["arrival_s"] - df["arrival_s"].iloc[0]
    ordered = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    trace = Trace(df[ordered], hash_block_size=hash_block_size, concurrency=concurrency, source=source)
    validate_trace(trace)
    return trace


def _canonical_columns(columns: dict, *, hash_block_size, concurrency, source: str) -> Trace:
    """:func:`canonical_trace` of a dict of required columns, on NumPy arrays (the same casts, stable sort and
    shift as the DataFrame path)."""
    extra = set(columns) - set(REQUIRED_COLUMNS)
    if extra:
        return canonical_trace(pd.DataFrame(columns), hash_block_size=hash_block_size, concurrency=concurrency,
                               source=source)
    for name in REQUIRED_COLUMNS[1:]:
        if name not in columns:
            raise InputError(f"missing column; a trace needs {', '.join(REQUIRED_COLUMNS)}", path=source or None,
                             field=name)
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    n = len(arrays["arrival_s"])
    if any(a.ndim != 1 or len(a) != n for a in arrays.values()):
        raise InputError("columns must be 1-D and of equal length", path=source or None)
    if "request_id" not in arrays:
        arrays["request_id"] = np.arange(n, dtype=np.int64)
    for name in REQUIRED_COLUMNS:
        arrays[name] = _cast_array(arrays[name], np.float64 if name == "arrival_s" else np.int64, name, source)
    order = np.argsort(arrays["arrival_s"], kind="stable")
    out = {name: arrays[name][order] for name in REQUIRED_COLUMNS}
    if n:
        out["arrival_s"] = out["arrival_s"] - out["arrival_s"][0]
    trace = Trace.from_columns(out, hash_block_size=hash_block_size, concurrency=concurrency, source=source)
    validate_trace(trace)
    return trace


def _cast_array(values: np.ndarray, dtype, name: str, source: str) -> np.ndarray:
    """One column of :func:`_canonical_columns` in its canonical dtype (the checks of :func:`_cast`)."""
    if dtype is np.int64 and values.dtype.kind == "f":
        if not (np.isfinite(values).all() and np.array_equal(values, np.floor(values))):
            raise InputError("values must be finite whole numbers", path=source or None, field=name)
    if values.dtype.kind not in "iuf":
        raise InputError(f"cannot convert to {dtype.__name__}: not numbers ({values.dtype})", path=source or None,
                         field=name)
    return values.astype(dtype)


def _cast(df: pd.DataFrame, source: str) -> pd.DataFrame:
    casts = {name: np.int64 for name in INT_COLUMNS}
    casts.update({name: np.float64 for name in ("arrival_s", *MEASURED_FLOAT_COLUMNS)})
    casts["session_id"] = SESSION_DTYPE
    for name, dtype in casts.items():
        if name in df.columns:
            if dtype is np.int64 and pd.api.types.is_float_dtype(df[name].dtype):
                values = df[name].to_numpy()
                if not (np.isfinite(values).all() and np.array_equal(values, np.floor(values))):
                    raise InputError("values must be finite whole numbers", path=source or None, field=name)
            try:
                df[name] = df[name].astype(dtype)
            except (TypeError, ValueError) as exc:
                raise InputError(f"cannot convert to {dtype}: {exc}", path=source or None, field=name) from exc
    return df


def validate_trace(trace: Trace) -> None:
    """Raise :class:`InputError` (naming the column and request) if ``trace`` breaks the contract above."""
    where = trace.source or None
    columns = trace.__dict__.get("_columns")
    df = trace.requests if columns is None else None

    def fail(message: str, field: str | None = None, position: int | None = None) -> None:
        if position is not None:
            message = f"request_id {trace.column('request_id')[position]} (position {position}): {message}"
        raise InputError(message, path=where, field=field)

    if columns is not None:
        names = list(columns)
        if names != list(REQUIRED_COLUMNS):
            fail(f"a trace made of columns holds {', '.join(REQUIRED_COLUMNS)} in that order, got {names}")
        dtypes = {name: columns[name].dtype for name in names}
    else:
        if not isinstance(df, pd.DataFrame):
            fail(f"requests must be a pandas DataFrame, got {type(df).__name__}")
        names = list(df.columns)
        for name in REQUIRED_COLUMNS:
            if name not in names:
                fail("missing column", name)
        if len(df) and not (isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1):
            fail("the index must be 0..n-1 (call reset_index(drop=True))")
        dtypes = df.dtypes.to_dict()
    if trace.num_requests == 0:
        fail("the trace has no requests")
    for name in INT_COLUMNS:
        if dtypes[name] != np.int64:
            fail(f"dtype must be int64, got {dtypes[name]}", name)
    for name in ("arrival_s", *[c for c in MEASURED_FLOAT_COLUMNS if c in names]):
        if dtypes[name] != np.float64:
            fail(f"dtype must be float64, got {dtypes[name]}", name)
    if "session_id" in names and dtypes["session_id"] != SESSION_DTYPE:
        fail(f"dtype must be {SESSION_DTYPE}, got {dtypes['session_id']}", "session_id")

    dup = _first_duplicate(trace.column("request_id"))
    if dup is not None:
        fail("duplicate request_id", "request_id", dup)
    arrival = trace.column("arrival_s")
    _first(~np.isfinite(arrival), fail, "arrival time is not finite", "arrival_s")
    if arrival[0] != 0.0:
        fail(f"the first arrival must be at 0 s, got {arrival[0]}", "arrival_s")
    _first(np.diff(arrival, prepend=0.0) < 0, fail, "arrival times must be non-decreasing (sort the rows)",
           "arrival_s")
    for name in ("input_tokens", "output_tokens"):
        _first(trace.column(name) < 1, fail, "must be at least 1 token", name)
    for name in MEASURED_FLOAT_COLUMNS:
        if name in names:
            _first(trace.column(name) < 0, fail, "a measured value cannot be negative", name)

    if trace.concurrency is not None and (not isinstance(trace.concurrency, Integral) or trace.concurrency < 1):
        fail(f"concurrency must be a whole number >= 1 or None, got {trace.concurrency!r}")
    if "hash_ids" in names:
        _validate_hash_ids(df, trace.hash_block_size, fail)
    elif trace.hash_block_size is not None:
        fail("hash_block_size is set but there is no hash_ids column", "hash_ids")
    if "measured_itls_s" in names:
        pos = _first_bad_itls(df["measured_itls_s"].tolist())
        if pos is not None:
            fail("must be a list of finite non-negative floats (seconds) or None", "measured_itls_s", pos)


def _first_duplicate(ids: np.ndarray) -> int | None:
    """Position of the first value that already occurred earlier (pandas' ``duplicated().idxmax()``), or None."""
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    repeat = ordered[1:] == ordered[:-1]
    return int(order[1:][repeat].min()) if repeat.any() else None


def _validate_hash_ids(df: pd.DataFrame, block: int | None, fail) -> None:
    if not isinstance(block, Integral) or block < 1:
        fail(f"hash_ids needs hash_block_size (tokens per hash) >= 1, got {block!r}", "hash_ids")
    problem = hash_ids_problem(df["hash_ids"].tolist(), df["input_tokens"].to_numpy(), block)
    if problem is not None:
        fail(problem[1], "hash_ids", problem[0])


def hash_ids_problem(hash_ids: list, input_tokens: np.ndarray, block: int) -> tuple[int, str] | None:
    """(position, reason) of the first entry that is not a list of ints with ceil(input_tokens / block)
    entries, or None if all are fine. Checks a whole column at C speed; loops only to locate a problem."""
    if all(type(ids) is list for ids in hash_ids) and set(map(type, chain.from_iterable(hash_ids))) <= {int}:
        lengths = np.fromiter(map(len, hash_ids), dtype=np.int64, count=len(hash_ids))
        wrong = np.flatnonzero(lengths != blocks_for(input_tokens, block))
        if not wrong.size:
            return None
        pos = int(wrong[0])
        return pos, (f"{lengths[pos]} hash ids for {input_tokens[pos]} input tokens; blocks of {block} tokens "
                     f"need ceil(input_tokens / {block}) = {blocks_for(int(input_tokens[pos]), block)}")
    pos = next(i for i, ids in enumerate(hash_ids) if type(ids) is not list or any(type(h) is not int for h in ids))
    return pos, "must be a list of integers"


def _first_bad_itls(itls: list) -> int | None:
    """Position of the first entry that is neither None nor a list of finite floats >= 0; None if all fine.
    Checks the whole column at C speed; loops only to locate a problem."""
    lists = [v for v in itls if v is not None]
    if all(type(v) is list for v in lists) and set(map(type, chain.from_iterable(lists))) <= {float}:
        values = np.fromiter(chain.from_iterable(lists), dtype=np.float64)
        if np.isfinite(values).all() and (values >= 0).all():
            return None
    return next(i for i, v in enumerate(itls) if v is not None and not (
        type(v) is list and all(type(x) is float and math.isfinite(x) and x >= 0 for x in v)))


def _first(mask: np.ndarray, fail, message: str, field: str) -> None:
    if mask.any():
        fail(message, field, int(np.flatnonzero(mask)[0]))


def blocks_for(input_tokens, hash_block_size: int):
    """Number of hash blocks covering a prompt (int or int array): ceil(input_tokens / hash_block_size)."""
    return -(-input_tokens // hash_block_size)
