"""The project's own trace files: the canonical columns (see schema.py) as CSV, JSONL or Parquet.

List columns (``hash_ids``, ``measured_itls_s``) are JSON lists in CSV cells (``hash_ids`` may also be
space-separated integers), JSON arrays in JSONL and list columns in Parquet. An empty ``session_id``
reads as missing. What the table cannot hold
(``hash_block_size``, ``concurrency``) is written only when set: as a first line
``# frontier_calib {"hash_block_size": 16, "concurrency": null}`` in CSV (read such a file elsewhere with
``skiprows=1``), as a first record ``{"frontier_calib": {...}}`` in JSONL, as schema metadata in Parquet.

Error rows: 1-based file lines for CSV and JSONL (the CSV header is a line too), 1-based data rows for
Parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ..lazy import pandas as pd

from ..errors import FrontierError, InputError
from ..io import atomic_path
from .detect import NATIVE_CSV_META_PREFIX, NATIVE_META_KEY, first_line, sniff_container
from .parsing import (PathLike, csv_rows, float_list, float_values, int_list, int_values, is_missing, jsonl_objects,
                      read_csv, require_columns)
from .schema import COLUMNS, MEASURED_FLOAT_COLUMNS, REQUIRED_COLUMNS, Trace, canonical_trace, validate_trace

LIST_COLUMNS = ("hash_ids", "measured_itls_s")
WRITE_SUFFIXES = (".csv", ".jsonl", ".parquet")


def _exact_floats() -> dict:
    """pandas >= 3 parses CSV floats exactly by default (and deprecates the option); pandas 2 needs asking."""
    return {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def read_native(path: PathLike, *, hash_block_size: int | None = None) -> Trace:
    """Read a native CSV, JSONL or Parquet trace (container told by content).

    ``hash_block_size`` (tokens per hash) overrides the file's metadata; it is needed when a file
    has ``hash_ids`` but no metadata.
    """
    reader = {"csv": _read_csv, "json": _read_jsonl, "parquet": _read_parquet}[sniff_container(path)]
    frame, rows, meta = reader(path)
    if not isinstance(meta, dict):
        raise InputError(f"metadata must be a JSON object, got {meta!r}", path=str(path), field=NATIVE_META_KEY)
    unknown = set(meta) - {"hash_block_size", "concurrency"}
    if unknown:
        raise InputError(f"unknown metadata keys {sorted(unknown)}", path=str(path), field=NATIVE_META_KEY)
    columns = _check_columns(frame, rows, path)
    block = hash_block_size if hash_block_size is not None else meta.get("hash_block_size")
    if "hash_ids" in columns and block is None:
        raise InputError("hash_ids present but the tokens per hash are unknown", path=str(path), field="hash_ids",
                         fix="pass --hash-block-size N to `frontier-calib replay` or `traces show` "
                             "(e.g. 512 for Mooncake-style hashes)")
    return canonical_trace(columns, hash_block_size=block, concurrency=meta.get("concurrency"), source=str(path))


def write_trace(trace: Trace, path: PathLike) -> Path:
    """Write ``trace`` atomically as native CSV, JSONL or Parquet (chosen by extension); returns the path."""
    dest = Path(path)
    if dest.suffix.lower() not in WRITE_SUFFIXES:
        raise FrontierError(f"{dest}: cannot write a trace as '{dest.suffix}'; use one of {', '.join(WRITE_SUFFIXES)}")
    validate_trace(trace)
    meta = {"hash_block_size": trace.hash_block_size, "concurrency": trace.concurrency}
    has_meta = any(v is not None for v in meta.values())
    df = trace.requests[[c for c in COLUMNS if c in trace.requests.columns]]
    with atomic_path(dest) as tmp:
        if dest.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            if has_meta:
                extra = {NATIVE_META_KEY.encode(): json.dumps(meta).encode()}
                table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
            pq.write_table(table, tmp, compression="zstd")
        elif dest.suffix.lower() == ".csv":
            head = NATIVE_CSV_META_PREFIX + json.dumps(meta) + "\n" if has_meta else ""
            tmp.write_text(head + _csv_ready(df).to_csv(index=False, lineterminator="\n"), encoding="utf-8")
        else:
            lines = [json.dumps({NATIVE_META_KEY: meta})] if has_meta else []
            lines += [json.dumps(_json_ready(rec), allow_nan=False) for rec in df.to_dict("records")]
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


def _read_csv(path: PathLike) -> tuple[pd.DataFrame, np.ndarray, dict]:
    head = first_line(path)
    meta, skip = ({}, 0)
    if head.startswith(NATIVE_CSV_META_PREFIX):
        meta, skip = _parse_meta(head[len(NATIVE_CSV_META_PREFIX):], path, 1), 1
    text_columns = {name: "string" for name in ("session_id", *LIST_COLUMNS)}
    frame = read_csv(path, skiprows=skip, dtype=text_columns, keep_default_na=False, na_values=[""], **_exact_floats())
    return frame, csv_rows(frame, skip), meta


def _read_jsonl(path: PathLike) -> tuple[pd.DataFrame, np.ndarray, dict]:
    records, rows, meta = [], [], {}
    for lineno, record in jsonl_objects(path):
        if not records and not meta and set(record) == {NATIVE_META_KEY}:
            meta = record[NATIVE_META_KEY]
            continue
        records.append(record)
        rows.append(lineno)
    return pd.DataFrame.from_records(records), np.asarray(rows, dtype=np.int64), meta


def _read_parquet(path: PathLike) -> tuple[pd.DataFrame, np.ndarray, dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"not a readable Parquet file ({exc})", path=str(path)) from exc
    raw_meta = (table.schema.metadata or {}).get(NATIVE_META_KEY.encode())
    meta = _parse_meta(raw_meta.decode(), path, None) if raw_meta else {}
    return table.to_pandas(), np.arange(1, table.num_rows + 1), meta


def _parse_meta(text: str, path: PathLike, row: int | None) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"metadata is not valid JSON ({exc.msg})", path=str(path), row=row,
                         field=NATIVE_META_KEY) from exc


def _check_columns(frame: pd.DataFrame, rows: np.ndarray, path: PathLike) -> pd.DataFrame:
    """Checked canonical columns from raw file columns; unknown column names are errors (typos)."""
    if len(frame) == 0:
        raise InputError("the file has no requests", path=str(path))
    unknown = [c for c in frame.columns if c not in COLUMNS]
    if unknown:
        raise InputError(f"unknown column; native traces have only {list(COLUMNS)}", path=str(path),
                         field=str(unknown[0]))
    require_columns(frame.columns, REQUIRED_COLUMNS[1:], path)
    kw = {"path": path}
    out = {}
    if "request_id" in frame:
        out["request_id"] = int_values(frame["request_id"], rows, field="request_id",
                                       minimum=np.iinfo(np.int64).min, **kw)
    out["arrival_s"] = float_values(frame["arrival_s"], rows, field="arrival_s", **kw)
    out["input_tokens"] = int_values(frame["input_tokens"], rows, field="input_tokens", **kw)
    out["output_tokens"] = int_values(frame["output_tokens"], rows, field="output_tokens", **kw)
    if "session_id" in frame:
        out["session_id"] = [None if _no_session(v) else str(v) for v in frame["session_id"]]
    if "hash_ids" in frame:
        out["hash_ids"] = [int_list(v, int(r), field="hash_ids", **kw) for v, r in zip(frame["hash_ids"], rows)]
    for name in MEASURED_FLOAT_COLUMNS:
        if name in frame:
            out[name] = float_values(frame[name], rows, field=name, minimum=0.0, allow_missing=True, **kw)
    if "measured_itls_s" in frame:
        out["measured_itls_s"] = [None if is_missing(v) else float_list(v, int(r), field="measured_itls_s", **kw)
                                  for v, r in zip(frame["measured_itls_s"], rows)]
    return pd.DataFrame(out)


def _no_session(value: object) -> bool:
    """Missing session: null/NaN or the empty string (CSV cannot tell them apart); blanks are kept."""
    return value == "" if isinstance(value, str) else bool(pd.isna(value))


def _csv_ready(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for name in LIST_COLUMNS:
        if name in df.columns:
            df[name] = [None if v is None else json.dumps(v, separators=(",", ":")) for v in df[name]]
    return df


def _json_ready(record: dict) -> dict:
    return {k: (None if not isinstance(v, list) and pd.isna(v) else v) for k, v in record.items()}
