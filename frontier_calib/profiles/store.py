"""Where profile tables live and how to load them.

Layout (bundled under the repository's ``profiles/`` folder, and the same for any folder a
user profiles into)::

    ROOT/<gpu>/<engine>/<family>.parquet      e.g. profiles/h100_sxm/vllm/gemm.parquet
    ROOT/<gpu>/any/collective.parquet         engine-independent tables (NCCL)
    ROOT/manifest.json                        provenance per table (source, version, rows, sha256)

CSV files (``<family>.csv``) are accepted too, for hand-made tables.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from ..errors import CoverageError, InputError
from .schema import FAMILIES, validate_table

ENGINE_INDEPENDENT = "any"


def bundled_root() -> Path:
    """The bundled profile folder: ``$FRONTIER_CALIB_PROFILES`` or the repository's ``profiles/``."""
    env = os.environ.get("FRONTIER_CALIB_PROFILES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "profiles"


def table_path(root: Path, gpu: str, engine: str, family: str) -> Path | None:
    for ext in (".parquet", ".csv"):
        p = Path(root) / gpu / engine / f"{family}{ext}"
        if p.exists():
            return p
    return None


def read_table(path: Path, family: str) -> pd.DataFrame:
    """Read and validate one table file (Parquet or CSV)."""
    path = Path(path)
    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # unreadable file: say which
        raise InputError(f"cannot read profile table ({exc.__class__.__name__}: {exc})", path=str(path)) from None
    return validate_table(df, family, path=str(path))


def load_family(family: str, gpu: str, engine: str, root: str | Path | None = None) -> pd.DataFrame:
    """All rows of one family for (gpu, engine), engine-independent rows included.

    Raises :class:`CoverageError` when there is no such table.
    """
    root = Path(root) if root is not None else bundled_root()
    frames = []
    for eng in dict.fromkeys([engine, ENGINE_INDEPENDENT]):
        p = table_path(root, gpu, eng, family)
        if p is not None:
            frames.append(read_table(p, family))
    if not frames:
        raise CoverageError(
            f"no '{family}' profile table for gpu={gpu} engine={engine} under {root} "
            f"(run `frontier-calib profiles list` to see coverage, or profile/import it)")
    return pd.concat(frames, ignore_index=True)


def available(root: str | Path | None = None) -> pd.DataFrame:
    """One row per table file: gpu, engine, family, path."""
    root = Path(root) if root is not None else bundled_root()
    rows = []
    if root.exists():
        for gpu_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for eng_dir in sorted(p for p in gpu_dir.iterdir() if p.is_dir()):
                for f in sorted(eng_dir.iterdir()):
                    if f.stem in FAMILIES and f.suffix in (".parquet", ".csv"):
                        rows.append({"gpu": gpu_dir.name, "engine": eng_dir.name, "family": f.stem, "path": str(f)})
    return pd.DataFrame(rows, columns=["gpu", "engine", "family", "path"])


def check_coverage(gpu: str, engine: str, root: str | Path | None = None) -> None:
    """FrontierError, listing what there is, unless ``root`` holds tables for ``gpu`` (an id) and ``engine``."""
    from ..names import unknown

    root = Path(root) if root is not None else bundled_root()
    gpus = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if gpu not in gpus:
        raise unknown("GPU", gpu, gpus, f" in the profile tables under {root}")
    engines = sorted(p.name for p in (root / gpu).iterdir() if p.is_dir() and p.name != ENGINE_INDEPENDENT)
    if engine not in engines:
        raise unknown("engine", engine, engines, f" for {gpu} in the profile tables under {root}")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
