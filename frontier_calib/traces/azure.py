"""Azure LLM inference trace CSVs (AzurePublicDataset, 2023 code/conversation).

Columns: ``TIMESTAMP`` (wall-clock datetime such as ``2023-11-16 18:15:46.6805900``, 7 fractional
digits; parsed to nanoseconds), ``ContextTokens`` (prompt tokens), ``GeneratedTokens`` (output tokens).
Error rows are 1-based file lines (the header is line 1).

A plain file (that header, three comma-separated fields per line, ``YYYY-MM-DD HH:MM:SS[.fraction]`` stamps,
whole token counts >= 1: the published traces) is read without pandas (:func:`_read_plain`, about 0.2 s less
start-up for a replay); anything else goes through ``pandas.read_csv`` and ``pandas.to_datetime``, which also
report every kind of bad value. Both paths turn the stamps into integer nanoseconds and the arrival times into
seconds with the same arithmetic (:func:`_seconds_since_first`), so they give the same trace
(``tests/test_speed_paths.py``).
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np

from ..lazy import pandas as pd
from ..errors import InputError
from .parsing import PathLike, csv_rows, int_values, read_csv, require_columns
from .schema import Trace, canonical_trace

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?")
_EPOCH = date(1970, 1, 1).toordinal()


def read_azure(path: PathLike) -> Trace:
    """Read an Azure LLM inference CSV; arrival_s is seconds since the earliest TIMESTAMP."""
    plain = _read_plain(path)
    if plain is None:
        plain = _read_with_pandas(path)
    stamps_ns, context, generated = plain
    return canonical_trace({"arrival_s": _seconds_since_first(stamps_ns), "input_tokens": context,
                            "output_tokens": generated}, source=str(path))


def _seconds_since_first(stamps_ns: np.ndarray) -> np.ndarray:
    """Seconds (float64) from the earliest stamp, from integer nanoseconds: whole seconds plus the remainder
    over 1e9, as pandas' ``Series.dt.total_seconds`` computes them (pandas 3; exact to the last bit for
    spans below 2**53 ns, 104 days)."""
    whole, rest = np.divmod(stamps_ns - stamps_ns.min(), 1_000_000_000)
    return whole + rest / 1e9


def _read_plain(path: PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(stamps in ns since the epoch, context tokens, generated tokens) of a plain file, or None when the file
    is anything else (unreadable, another header, quoting, blank or short lines, an unusual stamp or count):
    the pandas path then reads it and names any bad value."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            lines = fh.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != ",".join(COLUMNS) or len(lines) < 2:
        return None
    n = len(lines) - 1
    stamps = np.empty(n, dtype=np.int64)
    context = np.empty(n, dtype=np.int64)
    generated = np.empty(n, dtype=np.int64)
    days: dict = {}
    match = _STAMP.fullmatch
    for i, line in enumerate(lines[1:]):
        fields = line.split(",")
        if len(fields) != 3:
            return None
        stamp, ctx, gen = fields
        m = match(stamp)
        if m is None or not (ctx.isdigit() and gen.isdigit() and ctx.isascii() and gen.isascii()
                             and len(ctx) < 19 and len(gen) < 19):
            return None
        day, hh, mm, ss, frac = m.groups()
        d = days.get(day)
        if d is None:
            try:
                d = days[day] = date.fromisoformat(day).toordinal() - _EPOCH
            except ValueError:
                return None
        h, mi, s = int(hh), int(mm), int(ss)
        if h > 23 or mi > 59 or s > 59:
            return None
        stamps[i] = ((d * 24 + h) * 60 + mi) * 60 * 1_000_000_000 + s * 1_000_000_000 \
            + (int(frac.ljust(9, "0")) if frac else 0)
        context[i] = int(ctx)
        generated[i] = int(gen)
    if context.min() < 1 or generated.min() < 1:
        return None
    return stamps, context, generated


def _read_with_pandas(path: PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_read_plain`'s result for any file pandas reads, or an :class:`InputError` naming the first bad value."""
    frame = read_csv(path, dtype={"TIMESTAMP": "string"})
    require_columns(frame.columns, COLUMNS, path)
    rows = csv_rows(frame)
    stamps = pd.to_datetime(frame["TIMESTAMP"], format="ISO8601", errors="coerce")
    if stamps.isna().any():
        pos = int(stamps.isna().to_numpy().nonzero()[0][0])
        raise InputError(f"value {frame['TIMESTAMP'].iloc[pos]!r} is not a datetime like '2023-11-16 18:15:46.68'",
                         path=str(path), row=int(rows[pos]), field="TIMESTAMP")
    since = (stamps - stamps.min()).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    return (since,
            int_values(frame["ContextTokens"], rows, path=path, field="ContextTokens"),
            int_values(frame["GeneratedTokens"], rows, path=path, field="GeneratedTokens"))
