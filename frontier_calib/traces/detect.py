"""Tell a trace file's format from its content (magic bytes, first line, CSV header), not its name."""

from __future__ import annotations

import json
import os
from typing import Literal

from ..errors import InputError
from .parsing import PathLike

FORMATS: tuple[str, ...] = ("native", "mooncake", "azure", "burstgpt", "vllm_bench", "vllm_request_log",
                            "inference_perf")
#: key of the metadata record that native JSONL files may start with (see native.py)
NATIVE_META_KEY = "frontier_calib"
#: prefix of the metadata comment line that native CSV files may start with (see native.py)
NATIVE_CSV_META_PREFIX = "# frontier_calib "

Container = Literal["parquet", "json", "csv"]


def first_line(path: PathLike) -> str:
    """The first non-blank line of a text file, without its line ending ('' for an empty file)."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    return line.rstrip("\r\n")
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not a UTF-8 text file ({exc.reason})", path=str(path)) from exc
    return ""


def sniff_container(path: PathLike) -> Container:
    """'parquet' (PAR1 magic), 'json' (first character '{' or '[') or 'csv' (anything else)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    if head == b"PAR1":
        return "parquet"
    return "json" if first_line(path).lstrip()[:1] in ("{", "[") else "csv"


def detect_format(path: PathLike) -> str:
    """One of :data:`FORMATS`, or :class:`InputError` saying what the first line looked like."""
    container = sniff_container(path)
    if container == "parquet":
        return "native"
    line = first_line(path)
    if not line:
        raise InputError("the file is empty" if os.path.getsize(path) == 0 else "the file holds only blank lines",
                         path=str(path), fix="point at a trace with at least one request")
    if container == "json":
        found = _json_format(line, path)
    else:
        found = _csv_format(line)
    if found is None:
        raise InputError(f"cannot tell the trace format from the first line {line[:120]!r}", path=str(path),
                         fix=f"pass the format explicitly, one of {', '.join(FORMATS)}")
    return found


def _json_format(line: str, path: PathLike) -> str | None:
    if line.lstrip().startswith("["):   # a JSON array of records: inference-perf's per-request report
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(1 << 16)
        return "inference_perf" if '"output_token_times"' in head or '"start_time"' in head else None
    if line.strip() == "{":  # a pretty-printed JSON document: only vLLM bench results look like this
        return "vllm_bench"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"first line is not valid JSON ({exc.msg})", path=str(path), row=1) from exc
    keys = set(record) if isinstance(record, dict) else set()
    if {"timestamp", "input_length"} <= keys:
        return "mooncake"
    if NATIVE_META_KEY in keys or "arrival_s" in keys:
        return "native"
    if {"ttfts", "input_lens"} & keys:
        return "vllm_bench"
    if {"input_toks", "queued_ts", "first_token_ts"} <= keys:
        return "vllm_request_log"
    return None


def _csv_format(header: str) -> str | None:
    if header.startswith(NATIVE_CSV_META_PREFIX):
        return "native"
    names = {name.strip().strip('"') for name in header.split(",")}
    if {"TIMESTAMP", "ContextTokens"} <= names:
        return "azure"
    if {"Timestamp", "Request tokens"} <= names:
        return "burstgpt"
    if "arrival_s" in names:
        return "native"
    return None

