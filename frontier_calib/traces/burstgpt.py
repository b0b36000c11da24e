"""BurstGPT CSV traces.

Columns: ``Timestamp`` (seconds since trace start), ``Model``, ``Request tokens``, ``Response tokens``,
``Total tokens``, ``Log Type``. Only Timestamp and the two token columns are read. Rows with 0 response
tokens are failed requests: they are dropped, counted in ``Trace.source`` and reported with a warning.
Error rows are 1-based file lines (the header is line 1).
"""

from __future__ import annotations

import warnings

import numpy as np
from ..lazy import pandas as pd

from ..errors import InputError
from .parsing import PathLike, csv_rows, float_values, int_values, read_csv, require_columns
from .schema import Trace, canonical_trace

COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


def read_burstgpt(path: PathLike) -> Trace:
    """Read a BurstGPT CSV, dropping failed requests (Response tokens = 0) with a count."""
    frame = read_csv(path)
    require_columns(frame.columns, COLUMNS, path)
    rows = csv_rows(frame)
    kw = {"path": path}
    out = pd.DataFrame({
        "request_id": np.arange(len(frame), dtype=np.int64),  # data row in the file, kept across drops
        "arrival_s": float_values(frame["Timestamp"], rows, field="Timestamp", **kw),
        "input_tokens": int_values(frame["Request tokens"], rows, field="Request tokens", **kw),
        "output_tokens": int_values(frame["Response tokens"], rows, field="Response tokens", minimum=0, **kw),
    })
    failed = out["output_tokens"] == 0
    source = str(path)
    if failed.any():
        if failed.all():
            raise InputError("every request failed (Response tokens = 0)", path=source, field="Response tokens")
        note = f"dropped {int(failed.sum())} of {len(out)} requests with 0 response tokens (failures)"
        warnings.warn(f"{source}: {note}", stacklevel=2)
        source = f"{source}; {note}"
        out = out[~failed]
    return canonical_trace(out, source=source)
