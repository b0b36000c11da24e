"""`frontier-calib cache info | prune`: what the per-user cache holds, and removing what is no longer used.

The cache (``$FRONTIER_CALIB_CACHE``, else the platform cache dir) holds two kinds of entries, both keyed by
content hashes so that nothing is ever stale *in use*, only unused:

* ``models/<gpu>/<engine>/<family>-<key>/``: fitted operator models of one family (``key``: the profile tables'
  sha256 and the feature/model code), see :mod:`frontier_calib.opmodel.registry`;
* ``cost_tables/<model>-<gpu>-<engine>-<key>.npz``: per-iteration cost tables of one worker shape, see
  :mod:`frontier_calib.cost.cache`.

Every code or table change adds new entries beside the old ones, so the cache only grows. An entry's *last use*
is the newest modification time of its files (loading an entry touches it). ``prune`` removes entries unused for
``--older-than`` days, model folders the current code and bundled tables would not load (``--stale``), or
everything (``--all``); removed entries are simply rebuilt when next needed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import click

from .errors import InputError

KINDS = ("models", "cost_tables")


@dataclass
class CacheEntry:
    """One removable unit of the cache: a model folder or a cost-table file."""

    kind: str          #: 'models' or 'cost_tables'
    path: Path
    bytes: int         #: size on disk (bytes)
    last_used: float   #: newest mtime of its files (seconds since the epoch)


def _usage(path: Path) -> tuple[int, float]:
    """(bytes, last use): a file's size and mtime; a folder's total size and the newest mtime of it and its
    files (loading a model folder touches the folder)."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), max([s.st_mtime for s in stats] + [path.stat().st_mtime])


def cache_entries(root: Path) -> list[CacheEntry]:
    """Every model folder and cost-table file under the cache folder ``root`` (sorted by path)."""
    out = []
    models = root / "models"
    if models.is_dir():
        for d in sorted(models.glob("*/*/*")):
            if d.is_dir():
                out.append(CacheEntry("models", d, *_usage(d)))
    tables = root / "cost_tables"
    if tables.is_dir():
        for f in sorted(tables.glob("*.npz")):
            out.append(CacheEntry("cost_tables", f, *_usage(f)))
    return out


def current_model_dirs() -> set[Path]:
    """The model folders the current code would load for the bundled profile tables (every GPU x engine that has
    tables, every family; engine-independent tables are fitted into each engine's folder)."""
    from .opmodel.registry import family_cache_dir
    from .profiles import store
    from .profiles.schema import FAMILIES

    avail = store.available()
    pairs = {(g, e) for g, e in zip(avail["gpu"], avail["engine"]) if e != store.ENGINE_INDEPENDENT}
    out = set()
    for gpu, engine in sorted(pairs):
        for family in FAMILIES:
            d = family_cache_dir(gpu, engine, family)
            if d is not None:
                out.add(d)
    return out


def select_for_prune(entries: list[CacheEntry], *, older_than_days: float | None = None, stale: bool = False,
                     everything: bool = False, now: float | None = None,
                     current_models: set[Path] | None = None) -> list[CacheEntry]:
    """Entries that ``prune`` would remove with these options (an entry matching any one option is removed)."""
    now = time.time() if now is None else now
    picked = []
    for e in entries:
        if everything:
            picked.append(e)
        elif older_than_days is not None and now - e.last_used > older_than_days * 86400.0:
            picked.append(e)
        elif stale and e.kind == "models" and current_models is not None and e.path not in current_models:
            picked.append(e)
    return picked


def remove_entry(e: CacheEntry) -> None:
    if e.path.is_dir():
        shutil.rmtree(e.path)
    else:
        e.path.unlink(missing_ok=True)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GB"


def _age(seconds: float) -> str:
    days = seconds / 86400.0
    return f"{days:.1f} d" if days >= 1 else f"{seconds / 3600.0:.1f} h"


@click.group()
def cache():
    """Inspect or prune the per-user cache of fitted models and cost tables."""


@cache.command("info")
def info_cmd():
    """Where the cache is, and per kind: entries, size, oldest and newest last use."""
    from .cache_folder import cache_dir

    root = cache_dir()
    click.echo(f"cache: {root}" + ("" if root.exists() else " (empty: nothing cached yet)"))
    entries = cache_entries(root) if root.exists() else []
    now = time.time()
    click.echo(f"{'kind':<12} {'entries':>8} {'size':>10} {'oldest use':>11} {'newest use':>11}")
    for kind in KINDS:
        es = [e for e in entries if e.kind == kind]
        if not es:
            click.echo(f"{kind:<12} {0:>8} {'0 B':>10} {'-':>11} {'-':>11}")
            continue
        size = sum(e.bytes for e in es)
        click.echo(f"{kind:<12} {len(es):>8} {_fmt_bytes(size):>10} {_age(now - min(e.last_used for e in es)):>11} "
                   f"{_age(now - max(e.last_used for e in es)):>11}")
    models = [e for e in entries if e.kind == "models"]
    if models:
        current = current_model_dirs()
        stale = [e for e in models if e.path not in current]
        click.echo(f"model folders the current code and bundled tables would not load: {len(stale)} "
                   f"({_fmt_bytes(sum(e.bytes for e in stale))}); `frontier-calib cache prune --stale` removes them")


@cache.command("prune")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=None,
              help="Remove entries not used for this many days.")
@click.option("--stale", is_flag=True,
              help="Remove model folders the current code and bundled tables would not load (fitted by an older "
                   "version, on older tables, or on a custom --profiles folder).")
@click.option("--all", "everything", is_flag=True, help="Remove everything in the cache.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
def prune_cmd(older_than, stale, everything, dry_run):
    """Remove unused cache entries (they are rebuilt when next needed)."""
    from .cache_folder import cache_dir

    if older_than is None and not stale and not everything:
        raise InputError("nothing selected", fix="give --older-than DAYS, --stale or --all")
    root = cache_dir()
    entries = cache_entries(root) if root.exists() else []
    picked = select_for_prune(entries, older_than_days=older_than, stale=stale, everything=everything,
                              current_models=current_model_dirs() if stale else None)
    size = sum(e.bytes for e in picked)
    verb = "would remove" if dry_run else "removed"
    for e in picked:
        if dry_run:
            click.echo(f"  {e.kind}: {e.path.relative_to(root)} ({_fmt_bytes(e.bytes)})")
        else:
            remove_entry(e)
    click.echo(f"{verb} {len(picked)} of {len(entries)} entries ({_fmt_bytes(size)}) from {root}")
