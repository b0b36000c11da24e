"""Mooncake (FAST'25) JSONL traces.

One JSON object per line: ``timestamp`` (milliseconds since trace start), ``input_length`` and
``output_length`` (tokens), ``hash_ids`` (one id per 512-token block of the prompt, prefix-chained:
equal ids mean an equal prompt prefix up to and including that block). Error rows are 1-based file lines.
"""

from __future__ import annotations

import json

import numpy as np
from ..lazy import pandas as pd

from ..errors import InputError
from .parsing import PathLike, float_values, int_values
from .schema import Trace, canonical_trace, hash_ids_problem

FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
MOONCAKE_BLOCK_TOKENS = 512


def read_mooncake(path: PathLike, *, hash_block_size: int = MOONCAKE_BLOCK_TOKENS) -> Trace:
    """Read a Mooncake JSONL trace; ``hash_block_size`` is the tokens per hash id (512 in the release)."""
    records, rows = [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.isspace():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"line is not valid JSON ({exc.msg})", path=str(path), row=lineno) from exc
            rows.append(lineno)
    if not rows:
        raise InputError("the file has no requests", path=str(path))
    columns = {name: _field(records, rows, name, path) for name in FIELDS}
    line_numbers = np.asarray(rows)
    kw = {"path": path}
    timestamp_ms = float_values(columns["timestamp"], line_numbers, field="timestamp", **kw)
    input_tokens = int_values(columns["input_length"], line_numbers, field="input_length", **kw)
    output_tokens = int_values(columns["output_length"], line_numbers, field="output_length", **kw)
    problem = hash_ids_problem(columns["hash_ids"], input_tokens, hash_block_size)
    if problem is not None:
        raise InputError(problem[1], path=str(path), row=rows[problem[0]], field="hash_ids",
                         fix=f"if the trace's hash blocks are not {hash_block_size} tokens, pass --hash-block-size N "
                             "to `frontier-calib replay` or `traces show`")
    frame = pd.DataFrame({
        "arrival_s": timestamp_ms / 1000.0,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "hash_ids": columns["hash_ids"],
    })
    return canonical_trace(frame, hash_block_size=hash_block_size, source=str(path))


def _field(records: list, rows: list[int], name: str, path: PathLike) -> list:
    """One field of every record; locates the first line that is not an object or lacks the field."""
    try:
        return [record[name] for record in records]
    except (KeyError, TypeError):
        pos = next(i for i, r in enumerate(records) if not isinstance(r, dict) or name not in r)
        what = "missing field" if isinstance(records[pos], dict) else "line is not a JSON object"
        raise InputError(what, path=str(path), row=rows[pos], field=name) from None
