"""`frontier-calib cache info | prune` on a throw-away cache folder."""

from __future__ import annotations

import os
import time

from click.testing import CliRunner

from frontier_calib.cache import cache_entries, select_for_prune
from frontier_calib.cli import main


def _fake_cache(root):
    old = root / "models" / "h100_sxm" / "vllm" / "gemm-0123456789abcdef"
    old.mkdir(parents=True)
    (old / "index.json").write_text("{}")
    (old / "gemm__bf16.json").write_bytes(b"x" * 1000)
    new = root / "cost_tables"
    new.mkdir()
    (new / "Llama-2-7b-h100_sxm-vllm-abc.npz").write_bytes(b"y" * 500)
    ten_days_ago = time.time() - 10 * 86400
    for f in [*old.iterdir(), old]:
        os.utime(f, (ten_days_ago, ten_days_ago))
    return old, new / "Llama-2-7b-h100_sxm-vllm-abc.npz"


def test_entries_and_selection(tmp_path):
    old, table = _fake_cache(tmp_path)
    entries = cache_entries(tmp_path)
    assert [(e.kind, e.path, e.bytes) for e in entries] == [("models", old, 1002), ("cost_tables", table, 500)]
    assert [e.path for e in select_for_prune(entries, older_than_days=5)] == [old]
    assert select_for_prune(entries, older_than_days=11) == []
    assert [e.path for e in select_for_prune(entries, stale=True, current_models={old})] == []
    assert [e.path for e in select_for_prune(entries, stale=True, current_models=set())] == [old]  # tables: age only
    assert len(select_for_prune(entries, everything=True)) == 2


def test_prune_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("FRONTIER_CALIB_CACHE", str(tmp_path))
    old, table = _fake_cache(tmp_path)
    r = CliRunner().invoke(main, ["cache", "prune"])
    assert r.exit_code == 2 and "--older-than DAYS, --stale or --all" in r.output
    r = CliRunner().invoke(main, ["cache", "prune", "--older-than", "5", "--dry-run"])
    assert r.exit_code == 0 and "would remove 1 of 2 entries" in r.output and old.exists()
    r = CliRunner().invoke(main, ["cache", "prune", "--older-than", "5"])
    assert r.exit_code == 0 and "removed 1 of 2 entries" in r.output
    assert not old.exists() and table.exists()
    r = CliRunner().invoke(main, ["cache", "info"])
    assert r.exit_code == 0 and str(tmp_path) in r.output and "cost_tables" in r.output
    r = CliRunner().invoke(main, ["cache", "prune", "--all"])
    assert r.exit_code == 0 and not table.exists()
