"""Azure LLM inference trace CSVs (AzurePublicDataset, 2023 code/conversation).

Columns: ``TIMESTAMP`` (wall-clock datetime such as ``2023-11-16 18:15:46.6805900``, 7 fractional
digits; parsed to microseconds), ``ContextTokens`` (prompt tokens), ``GeneratedTokens`` (output tokens).
Error rows are 1-based file lines (the header is line 1).
"""

from __future__ import annotations

import pandas as pd

from ..errors import InputError
from .parsing import PathLike, csv_rows, int_values, read_csv, require_columns
from .schema import Trace, canonical_trace

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def read_azure(path: PathLike) -> Trace:
    """Read an Azure LLM inference CSV; arrival_s is seconds since the earliest TIMESTAMP."""
    frame = read_csv(path, dtype={"TIMESTAMP": "string"})
    require_columns(frame.columns, COLUMNS, path)
    rows = csv_rows(frame)
    stamps = pd.to_datetime(frame["TIMESTAMP"], format="ISO8601", errors="coerce")
    if stamps.isna().any():
        pos = int(stamps.isna().to_numpy().nonzero()[0][0])
        raise InputError(f"value {frame['TIMESTAMP'].iloc[pos]!r} is not a datetime like '2023-11-16 18:15:46.68'",
                         path=str(path), row=int(rows[pos]), field="TIMESTAMP")
    out = pd.DataFrame({
        "arrival_s": (stamps - stamps.min()).dt.total_seconds(),
        "input_tokens": int_values(frame["ContextTokens"], rows, path=path, field="ContextTokens"),
        "output_tokens": int_values(frame["GeneratedTokens"], rows, path=path, field="GeneratedTokens"),
    })
    return canonical_trace(out, source=str(path))
