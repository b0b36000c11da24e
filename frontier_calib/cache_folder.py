"""Where the per-user cache lives (``$FRONTIER_CALIB_CACHE``, else the platform cache folder) and how an entry is
marked as used. A leaf module: the operator-model registry and the cost-table cache write into this folder, and
`frontier-calib cache` (:mod:`frontier_calib.cache`) inspects and prunes it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache folder: ``$FRONTIER_CALIB_CACHE``, else the platform's per-user cache folder."""
    env = os.environ.get("FRONTIER_CALIB_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("frontier-calib"))


def touch(path: Path) -> None:
    """Mark a cache entry (file or folder) as used now (best effort: a read-only cache is not an error)."""
    try:
        os.utime(path)
    except OSError:
        pass
