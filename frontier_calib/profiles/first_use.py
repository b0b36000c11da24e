"""Tables on first use: a GPU whose tables are not bundled is imported from the ``public-data`` extra
(aiconfigurator-core) into the user data folder (:func:`store.user_data_root`) the first time it is asked for.

The bundle in the repository stays small (H100, A100, H200); B200, GB200, RTX PRO 6000, ... are converted by
the same importer as ``frontier-calib profiles import aiconfigurator`` and land beside a manifest, so
``profiles list`` and the operator-model cache (keyed by the tables' sha256) treat them like bundled ones.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from ..errors import CoverageError, FrontierError
from ..io import write_table, write_text
from ..names import unknown
from . import store
from .importers import aiconfigurator as aic
from .manifest import entry_for, update_manifest

#: GEMM/MoE dtypes kept by an import (others are dropped to keep the tables small)
DEFAULT_DTYPES = ("bf16", "fp8", "fp8_block", "int4_wo", "mxfp4", "mxfp4_fp8", "nvfp4")

EXTRA_HINT = "pip install -e '.[public-data]' (or pip install aiconfigurator-core==0.12.0)"


def write_imported(tables, out: Path, *, version: str, echo=None) -> list[dict]:
    """Write converted tables under ``out`` (one Parquet file each), then the manifest and NOTICE."""
    entries = []
    for t in tables:
        dest = Path(out) / t.gpu / t.engine / f"{t.family}.parquet"
        write_table(t.frame, dest)
        entry = entry_for(dest, Path(out), gpu=t.gpu, engine=t.engine, family=t.family, rows=len(t.frame),
                          source_package=aic.SOURCE_PACKAGE, source_version=version, sources=t.sources)
        if t.filled_dtypes:  # dtypes the newest version folder lacks, taken from an older one
            entry["filled_dtypes"] = dict(t.filled_dtypes)
        entries.append(entry)
        if echo:
            echo(f"{t.gpu:>9} {t.engine:>7} {t.family:<18} {len(t.frame):>7} rows -> {dest}")
    update_manifest(Path(out), entries, notice=aic.LICENSE_NOTICE)
    write_text(aic.LICENSE_NOTICE + "\n", Path(out) / "NOTICE")
    return entries


def importable_gpus(source=None) -> list[str]:
    """GPUs the installed aiconfigurator-core (or ``source``) has tables for; [] when it is not installed."""
    try:
        data = aic.find_systems_dir(source) / "data"
    except FrontierError:
        return []
    return sorted(p.name for p in data.iterdir() if p.is_dir() and any(p.iterdir()))


@contextlib.contextmanager
def _lock(folder: Path):
    """One importer at a time per data folder (parallel sweep workers); no-op where flock is missing."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(folder / ".import.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_tables(gpu: str, engine: str, *, source=None, progress: bool = True) -> list[Path]:
    """Make the tables of (gpu, engine) available, importing them into the user data folder if no folder has
    them yet. Returns the files written ([] when nothing was needed or the source has no such GPU: the
    caller's own lookup then reports what is missing).

    Raises a one-line :class:`FrontierError` naming the extra when aiconfigurator-core is not installed.
    """
    if store.has_engine_tables(gpu, engine) or engine not in aic.ENGINES:
        return []
    try:
        systems = aic.find_systems_dir(source)
    except FrontierError:
        raise FrontierError(
            f"no profile tables for gpu={gpu} engine={engine} under {store.describe_roots()}; tables beyond "
            f"the bundle are imported on first use from the public-data extra, which is not installed: "
            f"{EXTRA_HINT}") from None
    if not (systems / "data" / gpu).is_dir():
        return []
    out = store.user_data_root()
    with _lock(out):
        if store.has_engine_tables(gpu, engine):  # another process imported them meanwhile
            return []
        version = aic.package_version() if source is None else f"from {source}"
        families = list(dict.fromkeys(s.family for s in aic.SOURCES))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(families), unit="table", file=sys.stderr,
                       desc=f"first use of {gpu}/{engine}: importing {aic.SOURCE_PACKAGE} {version} tables")
        tables = []
        for fam in families:
            if bar:
                bar.set_postfix_str(fam)
            tables += aic.import_gpu(gpu, engines=(engine,), families={fam}, source=source,
                                     dtypes=set(DEFAULT_DTYPES))
            if bar:
                bar.update(1)
        if bar:
            bar.close()
        if not any(t.engine == engine for t in tables):
            raise CoverageError(f"{aic.SOURCE_PACKAGE} {version} has no {engine} tables for gpu {gpu}")
        entries = write_imported(tables, out, version=version)
        if progress:
            print(f"imported {len(entries)} tables of {gpu}/{engine} into {out}", file=sys.stderr)
    return [out / e["path"] for e in entries]


def check_coverage(gpu: str, engine: str, root: str | Path | None = None) -> None:
    """FrontierError, listing what there is, unless the tables for ``gpu`` (an id) and ``engine`` are under
    ``root`` (None: the bundle and the user data folder, after importing an importable GPU on first use)."""
    if root is None:
        ensure_tables(gpu, engine)
    avail = store.available(root)
    where = store.describe_roots(root)
    gpu = store.table_gpu(gpu, root)
    gpus = sorted(set(avail["gpu"]))
    if gpu not in gpus:
        raise unknown("GPU", gpu, gpus, f" in the profile tables under {where}")
    engines = sorted(set(avail.loc[avail["gpu"] == gpu, "engine"]) - {store.ENGINE_INDEPENDENT})
    if engine not in engines:
        raise unknown("engine", engine, engines, f" for {gpu} in the profile tables under {where}")
