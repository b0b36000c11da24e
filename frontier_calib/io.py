"""Atomic output writing: a failed run never leaves a half-written file behind.

Every writer goes through :func:`atomic_path`: write to a temporary sibling, then
``os.replace`` it over the destination once the write succeeded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; move it onto ``dest`` only on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give outputs normal permissions
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_json(obj: Any, dest: str | os.PathLike, *, indent: int = 2) -> Path:
    """Write ``obj`` as JSON atomically (NaN written as null)."""
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(_clean(obj), indent=indent, sort_keys=False) + "\n")
    return Path(dest)


def write_text(text: str, dest: str | os.PathLike) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_table(df, dest: str | os.PathLike) -> Path:
    """Write a DataFrame as Parquet (``.parquet``) or CSV (anything else), atomically."""
    dest = Path(dest)
    with atomic_path(dest) as tmp:
        if dest.suffix == ".parquet":
            df.to_parquet(tmp, index=False, compression="zstd")
        else:
            df.to_csv(tmp, index=False)
    return dest


def _clean(obj: Any) -> Any:
    """Make numpy scalars and NaN JSON-safe."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


@contextlib.contextmanager
def staged_output(out: Path):
    """Yield a staging folder; on success move every file in it into ``out`` (replacing), else remove it."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    ok = False
    try:
        yield staging
        for p in sorted(staging.iterdir()):
            os.replace(p, out / p.name)
        ok = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not ok and created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only if still empty
