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

from datetime import date

import numpy as np

from ..lazy import pandas as pd
from ..errors import InputError
from .parsing import PathLike, csv_rows, int_values, read_csv, require_columns
from .schema import Trace, canonical_trace

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
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
    if len(lines) < 2 or lines[0] != ",".join(COLUMNS):
        return None
    # every field in one list: a line with more or fewer than three fields shifts a stamp into a count column,
    # which then is not all digits
    fields = ",".join(lines[1:]).split(",")
    if len(fields) != 3 * (len(lines) - 1):
        return None
    stamps = fields[0::3]
    counts = []
    for column in (fields[1::3], fields[2::3]):
        text = "".join(column)
        if not (text.isascii() and text.isdigit()) or not all(column):
            return None
        try:
            values = np.fromiter(map(int, column), dtype=np.int64, count=len(column))
        except OverflowError:
            return None
        if values.min() < 1:
            return None
        counts.append(values)
    ns = _stamps_ns(stamps)
    return None if ns is None else (ns, *counts)


def _stamps_ns(stamps: tuple) -> np.ndarray | None:
    """Nanoseconds since the epoch of ``YYYY-MM-DD HH:MM:SS[.fraction]`` stamps (``T`` also separates the date),
    vectorised per stamp length; None if any stamp has another form (the pandas path decides about those)."""
    text = "".join(stamps)
    if not text.isascii():
        return None
    lengths = np.fromiter(map(len, stamps), dtype=np.int64, count=len(stamps))
    ends = np.cumsum(lengths)
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    out = np.empty(len(stamps), dtype=np.int64)
    for width in np.unique(lengths).tolist():
        if not (width == 19 or 21 <= width <= 29):
            return None
        rows = np.flatnonzero(lengths == width)
        idx = (ends[rows] - width)[:, None] + np.arange(width)
        c = chars[idx]                                       # one stamp per row
        seps = {4: b"-", 7: b"-", 13: b":", 16: b":", **({19: b"."} if width > 19 else {})}
        for pos, sep in seps.items():
            if not (c[:, pos] == ord(sep)).all():
                return None
        if not ((c[:, 10] == ord(" ")) | (c[:, 10] == ord("T"))).all():
            return None
        digit_pos = [p for p in range(width) if p not in seps and p != 10]
        d = c[:, digit_pos].astype(np.int64) - ord("0")
        if d.min() < 0 or d.max() > 9:
            return None
        value = dict(zip(digit_pos, d.T))
        h = value[11] * 10 + value[12]
        mi = value[14] * 10 + value[15]
        sec = value[17] * 10 + value[18]
        if h.max() > 23 or mi.max() > 59 or sec.max() > 59:
            return None
        frac = np.zeros(len(rows), dtype=np.int64)
        for p in range(20, width):
            frac += value[p] * 10 ** (8 - (p - 20))
        dates, which = np.unique(c[:, :10].copy().view("S10").ravel(), return_inverse=True)
        try:
            days = np.array([date.fromisoformat(x.decode()).toordinal() - _EPOCH for x in dates], dtype=np.int64)
        except ValueError:
            return None
        out[rows] = (((days[which.ravel()] * 24 + h) * 60 + mi) * 60 + sec) * 1_000_000_000 + frac
    return out


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
