"""The outcome of a replay: per-request table, vLLM-style summary, optional timeline, engine statistics."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ..lazy import pandas as pd

from ..io import write_json, write_table
from .metrics import itl_stats, summary_from_requests, valid_itls
from .requests import RequestTable

REQUEST_COLUMNS = (
    "request_id", "replica", "status", "arrival_s", "scheduled_s", "first_token_s", "completion_s",
    "input_tokens", "output_tokens", "cached_tokens", "preemptions", "ttft_s", "tpot_s", "e2e_s",
    "itl_mean_s", "itl_p50_s", "itl_p99_s", "itl_max_s",
)
#: the per-request ITL statistics among them (:func:`~.metrics.itl_stats`)
ITL_COLUMNS = ("itl_mean_s", "itl_p50_s", "itl_p99_s", "itl_max_s")


class _RequestsTable:
    """:attr:`SimResult.requests`: a DataFrame, or a dict of columns turned into one the first time it is read."""

    def __get__(self, result, owner=None):
        if result is None:
            raise AttributeError("requests")   # a required dataclass field: no class-level default
        value = result.__dict__["_requests"]
        if type(value) is dict:
            for name, column in value.items():
                if isinstance(column, _ItlColumns):   # the per-request ITL statistics, worked out now
                    value.update(column.columns())
                    break
            value = result.__dict__["_requests"] = pd.DataFrame(value)
        return value

    def __set__(self, result, value) -> None:
        result.__dict__["_requests"] = value


@dataclass
class SimResult:
    """``requests``: one row per trace row (columns :data:`REQUEST_COLUMNS`, times in seconds);
    ``summary``: vLLM ``bench serve`` keys (milliseconds for latencies); ``timeline``: Chrome-trace events
    (µs) or None; ``stats``: engine counters (steps, cost-model calls, preemptions, KV use, wall time).

    ``requests`` may be given as a dict of columns ({name: NumPy array}, the replay's own result): the DataFrame is
    then built the first time it is read, so a caller that reads only the summary and statistics (a benchmark, a
    rate search) never imports pandas (:mod:`frontier_calib.lazy`)."""

    requests: pd.DataFrame = _RequestsTable()
    summary: dict
    timeline: list | None = None
    stats: dict = field(default_factory=dict)
    itls: np.ndarray | None = None   # all inter-token latencies of completed requests (s), for re-summarising

    def add_column(self, name: str, values) -> None:
        """Add (or replace) a per-request column, without building the table if it is still columns."""
        table = self.__dict__["_requests"]
        if type(table) is dict:
            table[name] = np.asarray(values)
        else:
            table[name] = values

    def write(self, out_dir: str | os.PathLike, *, fmt: str = "parquet") -> dict:
        """Write ``requests.<fmt>``, ``summary.json`` and (if recorded) ``timeline.json`` into ``out_dir``
        atomically. Returns the paths written."""
        out = Path(out_dir)
        paths = {"requests": write_table(self.requests, out / f"requests.{fmt}"),
                 "summary": write_json(self.summary, out / "summary.json")}
        if self.timeline is not None:
            paths["timeline"] = write_json({"traceEvents": self.timeline, "displayTimeUnit": "ms"},
                                           out / "timeline.json", indent=None)
        return paths


class _ItlColumns:
    """The per-request ITL columns of a replay's result (mean, median, p99, max: :func:`itl_stats`), worked out
    when its table is first read: a caller that reads only the summary (which needs only the flat ITL array)
    skips sorting every request's gaps (about 0.07 s of the Mooncake PD benchmark's 2 s). Stands in each of the
    four columns until then."""

    def __init__(self, itl: np.ndarray, offsets: np.ndarray, ok: np.ndarray):
        self.itl, self.offsets, self.ok = itl, offsets, ok

    def columns(self) -> dict:
        mean, p50, p99, vmax, _ = itl_stats(self.itl, self.offsets, self.ok)
        return dict(zip(ITL_COLUMNS, (mean, p50, p99, vmax)))



def request_columns(table: RequestTable, replica_names: list, *,
                    deferred_itl: bool = False) -> tuple[dict, np.ndarray]:
    """Per-request columns (:data:`REQUEST_COLUMNS`, trace row order) and the flat ITL array of completed
    requests (s). ``deferred_itl``: the four per-request ITL columns are one :class:`_ItlColumns` each (a
    :class:`SimResult` works them out when its table is read)."""
    status = np.array(table.status, dtype=object)
    ok = status == "ok"
    arrival = np.array(table.arrival, dtype=np.float64)
    first = np.array(table.first_token_s, dtype=np.float64)
    done = np.array(table.completion_s, dtype=np.float64)
    n_out = np.array(table.n_out, dtype=np.int64)
    ttft = first - arrival
    e2e = done - arrival
    with np.errstate(divide="ignore", invalid="ignore"):
        tpot = np.where(n_out > 1, (e2e - ttft) / (n_out - 1), np.nan)
    if deferred_itl:
        all_itl = valid_itls(table.itl, table.itl_off, ok)
        mean = p50 = p99 = vmax = _ItlColumns(table.itl, table.itl_off, ok)
    else:
        mean, p50, p99, vmax, all_itl = itl_stats(table.itl, table.itl_off, ok)
    rep_idx = np.array(table.replica, dtype=np.int64)
    names = np.array(list(replica_names) + [""], dtype=object)
    cached = np.array(table.cached_tokens, dtype=np.int64)
    columns = {
        "request_id": np.asarray(table.request_id),
        "replica": names[rep_idx],          # -1 (never placed) maps to ""
        "status": status,
        "arrival_s": arrival,
        "scheduled_s": np.array(table.scheduled_s, dtype=np.float64),
        "first_token_s": first,
        "completion_s": done,
        "input_tokens": np.array(table.n_in, dtype=np.int64),
        "output_tokens": n_out,
        "cached_tokens": np.maximum(cached, 0),
        "preemptions": np.array(table.preemptions, dtype=np.int64),
        "ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e,
        "itl_mean_s": mean, "itl_p50_s": p50, "itl_p99_s": p99, "itl_max_s": vmax,
    }
    return columns, all_itl


def make_result(table: RequestTable, replica_names: list, timeline, stats: dict) -> SimResult:
    """The replay's result; its per-request table stays columns until read (see :class:`SimResult`)."""
    columns, all_itl = request_columns(table, replica_names, deferred_itl=True)
    summary = summary_from_requests(columns, all_itl)
    return SimResult(columns, summary, timeline, stats, all_itl)
