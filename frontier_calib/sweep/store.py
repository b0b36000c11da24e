"""Result rows on disk as they finish, so an interrupted sweep resumes where it stopped.

Parquet files cannot be appended to, so finished rows go into numbered part files
``DIR/<name>.parts/part-000001.parquet`` (each written atomically) every ``flush_every`` rows or
``flush_seconds`` seconds, and whenever the sweep stops (finished, interrupted, crashed). On start the store
reads every part; a point whose id has a row with any status but 'error' is finished and not run again
('error' rows are retried). :meth:`ResultStore.final` gives the rows of the current points ordered by point
index, which is what ``DIR/results.parquet`` holds: equal for every executor and completion order.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..io import write_table

RETRY_STATUSES = ("error",)


class ResultStore:
    """Append-as-finished rows keyed by ``point_id``."""

    def __init__(self, out_dir: str | Path, name: str = "results", *, flush_every: int = 10,
                 flush_seconds: float = 30.0):
        self.dir = Path(out_dir) / f"{name}.parts"
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self._pending: list[dict] = []
        self._last_flush = time.monotonic()
        parts = sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []
        frames = [pd.read_parquet(p) for p in parts]
        self._old = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in parts), default=0)

    def finished_ids(self) -> set[str]:
        """Ids of points already done (rows with any status but 'error')."""
        if self._old.empty:
            return set()
        return set(self._old.loc[~self._old["status"].isin(RETRY_STATUSES), "point_id"])

    def add(self, row: dict) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows as one new part file (atomically)."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        frame = pd.DataFrame(self._pending)
        write_table(frame, self.dir / f"part-{self._next:06d}.parquet")
        self._next += 1
        self._old = pd.concat([self._old, frame], ignore_index=True) if not self._old.empty else frame
        self._pending = []

    def compact(self) -> None:
        """Fold every part file into one (the latest row per point id), then delete the older parts.

        Crash-safe: the folded part is written (atomically) under the next number before anything is deleted,
        and readers keep the latest row per point id, so an interruption at any moment loses nothing.
        """
        self.flush()
        parts = sorted(self.dir.glob("part-*.parquet")) if self.dir.is_dir() else []
        if len(parts) <= 1:
            return
        self._pending = self.rows().to_dict("records")
        self._old = pd.DataFrame()
        self.flush()
        for p in parts:
            p.unlink()

    def rows(self) -> pd.DataFrame:
        """Every stored row (flushed and pending), the latest row per point id."""
        frames = [f for f in (self._old, pd.DataFrame(self._pending)) if not f.empty]
        if not frames:
            return pd.DataFrame()
        df = pd.concat(frames, ignore_index=True)
        return df.drop_duplicates("point_id", keep="last").reset_index(drop=True)

    def final(self, point_ids: list[str]) -> pd.DataFrame:
        """Rows of ``point_ids`` (the current sweep's points) that exist, ordered by their position in the list
        (the point index); ``index`` is set to that position."""
        df = self.rows()
        if df.empty:
            return df
        order = {pid: i for i, pid in enumerate(point_ids)}
        df = df[df["point_id"].isin(order)].copy()
        df["index"] = df["point_id"].map(order).astype("int64")
        return df.sort_values("index", kind="stable").reset_index(drop=True)
