"""Where profile tables live and how to load them.

Two default folders are searched, in this order: the bundled one (the repository's ``profiles/``, or
``$FRONTIER_CALIB_PROFILES``) and the user data one (``$FRONTIER_CALIB_DATA``, else the platform's user
data folder + ``/profiles``), where tables of GPUs beyond the bundle are imported on first use (see
:mod:`frontier_calib.profiles.first_use`). Each table is taken from the first folder that has it. An
explicit ``root`` replaces both.

Layout (the same in every folder, and for any folder a user profiles into)::

    ROOT/<gpu>/<engine>/<family>.parquet      e.g. profiles/h100_sxm/vllm/gemm.parquet
    ROOT/<gpu>/any/collective.parquet         engine-independent tables (NCCL)
    ROOT/manifest.json                        provenance per table (source, version, rows, sha256)

CSV files (``<family>.csv``) are accepted too, for hand-made tables.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..lazy import pandas as pd

from ..errors import CoverageError, InputError
from .schema import FAMILIES, validate_table

ENGINE_INDEPENDENT = "any"

#: GPUs that have no kernel tables of their own and are priced with the tables of the same silicon. The H800
#: SXM5 is the H100 SXM5 die, memory and clocks (same SMs, HBM3 bandwidth and tensor peaks in
#: ``hardware.py``) with NVLink cut to 400 GB/s: its GEMM, attention and MoE kernels run at H100 speed, so
#: the H100 tables price them. Its own spec still supplies NVLink/network bandwidths to the roofline features,
#: the PD/AF links and the unprofiled collectives; the H100's *measured* NVLink collectives and intra-node
#: DeepEP all-to-all keep H100 speed (a stand-in's limit, stated in docs/validation.md).
TABLE_STAND_INS = {"h800_sxm": "h100_sxm"}


def table_gpu(gpu: str, root: str | Path | None = None) -> str:
    """The GPU whose tables price ``gpu``: itself when some folder holds tables for it, else its stand-in
    (:data:`TABLE_STAND_INS`), else itself."""
    stand_in = TABLE_STAND_INS.get(gpu)
    if stand_in is None or any((r / gpu).is_dir() for r in _roots(root)):
        return gpu
    return stand_in


def bundled_root() -> Path:
    """The bundled profile folder: ``$FRONTIER_CALIB_PROFILES`` or the repository's ``profiles/``."""
    env = os.environ.get("FRONTIER_CALIB_PROFILES")
    if env:
        return Path(env)
    return _REPO_PROFILES


_REPO_PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def user_data_root() -> Path:
    """Where imported tables go: ``$FRONTIER_CALIB_DATA`` or the platform user data folder's ``profiles/``."""
    env = os.environ.get("FRONTIER_CALIB_DATA")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("frontier-calib")) / "profiles"


def default_roots() -> list[Path]:
    """The folders searched when no ``root`` is given, first wins: bundled, then user data."""
    return list(dict.fromkeys([bundled_root(), user_data_root()]))


def _roots(root) -> list[Path]:
    return [Path(root)] if root is not None else default_roots()


def describe_roots(root=None) -> str:
    """The searched folders, for messages."""
    return " or ".join(str(r) for r in _roots(root))


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


def find_table(gpu: str, engine: str, family: str, root: str | Path | None = None) -> Path | None:
    """The table file of (gpu, engine folder, family): under ``root``, else the first default folder holding it.
    A GPU without tables of its own reads its stand-in's (:func:`table_gpu`)."""
    gpu = table_gpu(gpu, root)
    for r in _roots(root):
        p = table_path(r, gpu, engine, family)
        if p is not None:
            return p
    return None


def family_paths(gpu: str, engine: str, family: str, root: str | Path | None = None) -> list[Path]:
    """The files one family of (gpu, engine) is read from: the engine's table and the engine-independent one."""
    paths = [find_table(gpu, eng, family, root) for eng in dict.fromkeys([engine, ENGINE_INDEPENDENT])]
    return [p for p in paths if p is not None]


def has_engine_tables(gpu: str, engine: str, root: str | Path | None = None) -> bool:
    """True when some folder holds at least one table of (gpu, engine) (engine-independent ones not counted)."""
    return any(find_table(gpu, engine, fam, root) is not None for fam in FAMILIES)


def load_family(family: str, gpu: str, engine: str, root: str | Path | None = None) -> pd.DataFrame:
    """All rows of one family for (gpu, engine), engine-independent rows included.

    Raises :class:`CoverageError` when there is no such table.
    """
    frames = [read_table(p, family) for p in family_paths(gpu, engine, family, root)]
    if not frames:
        raise CoverageError(
            f"no '{family}' profile table for gpu={gpu} engine={engine} under {describe_roots(root)} "
            f"(run `frontier-calib profiles list` to see coverage, or profile/import it)")
    return pd.concat(frames, ignore_index=True)


def available(root: str | Path | None = None) -> pd.DataFrame:
    """One row per table in use: gpu, engine, family, path, root (the folder it lives in). With no ``root``,
    both default folders are listed and a table the bundle also holds is left out (the bundle's wins)."""
    rows, seen = [], set()
    for r in _roots(root):
        if not r.is_dir():
            continue
        for gpu_dir in sorted(p for p in r.iterdir() if p.is_dir()):
            for eng_dir in sorted(p for p in gpu_dir.iterdir() if p.is_dir()):
                for f in sorted(eng_dir.iterdir()):
                    key = (gpu_dir.name, eng_dir.name, f.stem)
                    if f.stem in FAMILIES and f.suffix in (".parquet", ".csv") and key not in seen:
                        seen.add(key)
                        rows.append({"gpu": gpu_dir.name, "engine": eng_dir.name, "family": f.stem,
                                     "path": str(f), "root": str(r)})
    return pd.DataFrame(rows, columns=["gpu", "engine", "family", "path", "root"])


#: (path, mtime ns, size) -> sha256: cache keys hash the profile tables on every replay setup
_SHA256: dict = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex); worked out once per process while the file's mtime and size stay."""
    st = os.stat(path)
    key = (str(path), st.st_mtime_ns, st.st_size)
    digest = _SHA256.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = _SHA256[key] = h.hexdigest()
    return digest
