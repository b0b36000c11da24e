"""The resume journal: one JSON line per finished shape, flushed and fsynced as it is written.

``ROOT/<gpu>/<engine>/<family>.journal.jsonl`` is the source of truth of a profiling run; the
canonical ``<family>.parquet`` next to it is rebuilt from it (atomically) at the end of a run, on
Ctrl-C, and on errors. A crash can at worst leave a truncated last line, which is ignored (that
shape is measured again). Rerunning skips every key already in the journal, measured or skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..io import write_table
from ..profiles.schema import columns, validate_table


class Journal:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def records(self) -> list[dict]:
        """All complete records, later records of a key replacing earlier ones."""
        if not self.path.exists():
            return []
        by_key: dict[str, dict] = {}
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue          # a line cut short by a crash
                if isinstance(rec, dict) and "key" in rec:
                    by_key[rec["key"]] = rec
        return list(by_key.values())

    def done_keys(self) -> set[str]:
        return {r["key"] for r in self.records()}

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def rows(self) -> list[dict]:
        return [r["row"] for r in self.records() if r.get("status") == "ok"]


def write_family_table(journal: Journal, family: str, dest: str | os.PathLike) -> int:
    """Rebuild the canonical table of ``family`` from the journal; returns its row count (0 = none written)."""
    rows = journal.rows()
    if not rows:
        return 0
    df = pd.DataFrame(rows)
    df = validate_table(df[columns(family)], family, path=str(journal.path))
    write_table(df, dest)
    return len(df)
