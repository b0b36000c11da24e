"""Checked conversion of raw file values into canonical columns, shared by every reader.

Each helper takes the raw values of one field plus, aligned with them, the row number each value came
from, and raises :class:`InputError` naming the file, that row and the field on the first bad value.
Readers choose what a row number means and say so: 1-based file line for CSV and JSONL (a CSV header
is line 1), 1-based data row for Parquet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np
from ..lazy import pandas as pd

from ..errors import InputError

PathLike = str | os.PathLike


def jsonl_objects(path: PathLike):
    """Yield ``(line number, record)`` for every non-blank line of a JSON Lines file (1-based line numbers);
    a line that is not a JSON object, or a file that is not UTF-8 text, is an :class:`InputError` naming the
    file and the line."""
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"line is not valid JSON ({exc.msg})", path=str(path), row=lineno) from None
                if not isinstance(record, dict):
                    raise InputError("line is not a JSON object", path=str(path), row=lineno)
                yield lineno, record
    except UnicodeDecodeError as exc:
        raise InputError(f"not a UTF-8 text file ({exc.reason})", path=str(path)) from None


def json_document(path: PathLike):
    """The JSON document in ``path``; a missing file, invalid JSON or non-UTF-8 text is an :class:`InputError`
    naming the file (and, for invalid JSON, the line and column)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, line {exc.lineno} column {exc.colno})", path=str(path),
                         row=exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not a UTF-8 text file ({exc.reason})", path=str(path)) from None


def read_csv(path: PathLike, **options) -> pd.DataFrame:
    """``pandas.read_csv`` with unreadable files reported as :class:`InputError`."""
    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable CSV file ({exc})", path=str(path)) from exc


def csv_rows(frame: pd.DataFrame, skipped_lines: int = 0) -> np.ndarray:
    """1-based file line of each data row: the header is line 1 (after ``skipped_lines``)."""
    return np.arange(len(frame)) + 2 + skipped_lines


def require_columns(present: Iterable[str], required: Sequence[str], path: PathLike) -> None:
    """Raise if any of ``required`` is not among ``present`` (the file's header)."""
    present = list(present)
    for name in required:
        if name not in present:
            raise InputError(f"missing column; found {present}", path=str(path), field=name,
                             fix=f"the file needs the columns {list(required)}")


def int_values(values: Sequence | pd.Series, rows: np.ndarray, *, path: PathLike, field: str,
               minimum: int = 1) -> np.ndarray:
    """Whole numbers >= ``minimum`` as int64; missing, non-numeric and fractional values are errors."""
    raw = pd.Series(values)
    if pd.api.types.is_integer_dtype(raw.dtype):
        result = raw.to_numpy(dtype=np.int64)
        _raise_first(result < minimum, raw, rows, path, field, f"must be at least {minimum}")
        return result
    num = _numeric(raw)
    _raise_first(np.isnan(num), raw, rows, path, field, "is not a number")
    _raise_first(np.isinf(num) | (num != np.floor(num)), raw, rows, path, field, "is not a whole number")
    _raise_first(num < minimum, raw, rows, path, field, f"must be at least {minimum}")
    return num.astype(np.int64)


def float_values(values: Sequence | pd.Series, rows: np.ndarray, *, path: PathLike, field: str,
                 minimum: float | None = None, allow_missing: bool = False) -> np.ndarray:
    """Finite floats (>= ``minimum`` if given) as float64; missing values are NaN if ``allow_missing``."""
    raw = pd.Series(values)
    num = _numeric(raw)
    not_number = np.isnan(num)
    if allow_missing:
        not_number &= ~_is_missing(raw)
    _raise_first(not_number, raw, rows, path, field, "is not a number")
    _raise_first(np.isinf(num), raw, rows, path, field, "is not finite")
    if minimum is not None:
        _raise_first(num < minimum, raw, rows, path, field, f"must be at least {minimum}")
    return num


def int_list(value: object, row: int, *, path: PathLike, field: str) -> list[int]:
    """A list of ints from a list/array, a JSON list string ``"[1, 2]"`` or a space-separated ``"1 2"``."""
    items = _list_items(value, row, path=path, field=field)
    out = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
        try:
            number = int(item) if isinstance(item, str) else item
        except ValueError:
            number = None
        if isinstance(number, (bool, np.bool_)) or not isinstance(number, (int, np.integer)):
            raise InputError(f"list entry {_show(item)} is not an integer", path=str(path), row=row, field=field)
        out.append(int(number))
    return out


def float_list(value: object, row: int, *, path: PathLike, field: str) -> list[float]:
    """A list of finite non-negative floats from a list/array or a JSON list string (seconds)."""
    out = []
    for item in _list_items(value, row, path=path, field=field):
        try:
            number = float(item)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(item, (bool, np.bool_)) or not np.isfinite(number) or number < 0:
            raise InputError(f"list entry {_show(item)} is not a finite non-negative number", path=str(path), row=row,
                             field=field)
        out.append(number)
    return out


def is_missing(value: object) -> bool:
    """True for None, NaN, pd.NA and empty/blank strings."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, np.ndarray)):
        return False
    return bool(pd.isna(value))


def _list_items(value: object, row: int, *, path: PathLike, field: str) -> list:
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(f"not a valid JSON list ({exc.msg})", path=str(path), row=row, field=field) from exc
            if isinstance(parsed, list):
                return parsed
        else:
            return text.split()
    what = "missing or NaN value" if is_missing(value) else f"{_show(value)} is not a list"
    raise InputError(what, path=str(path), row=row, field=field)


def _numeric(raw: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(raw.dtype):
        return np.full(len(raw), np.nan)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan)
    # mixed/str values: anything that is not a plain number (bools from JSON included) becomes NaN
    cleaned = raw.map(lambda v: np.nan if isinstance(v, (bool, list, dict)) else v)
    return pd.to_numeric(cleaned, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _is_missing(raw: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.isna().to_numpy()
    return raw.map(is_missing).to_numpy(dtype=bool)


def _raise_first(bad: np.ndarray, raw: pd.Series, rows: np.ndarray, path: PathLike, field: str,
                 requirement: str) -> None:
    if not bad.any():
        return
    pos = int(np.flatnonzero(bad)[0])
    value = raw.iloc[pos]
    message = "missing or NaN value" if is_missing(value) else f"value {_show(value)} {requirement}"
    raise InputError(message, path=str(path), row=int(rows[pos]), field=field)


def _show(value: object) -> str:
    """A raw value for an error message: strings quoted, numbers plain (no numpy reprs)."""
    return repr(value) if isinstance(value, str) else str(value)
