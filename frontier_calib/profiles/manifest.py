"""The bundle manifest: provenance of every table (source package and version, source files,
rows, sha256), kept in ``ROOT/manifest.json``."""

from __future__ import annotations

import json
from pathlib import Path

from ..io import write_json
from .store import file_sha256

MANIFEST = "manifest.json"


def read_manifest(root: Path) -> dict:
    p = Path(root) / MANIFEST
    if not p.exists():
        return {"tables": []}
    return json.loads(p.read_text())


def update_manifest(root: Path, entries: list[dict], notice: str | None = None) -> Path:
    """Replace the entries for the same (gpu, engine, family) and write the manifest atomically."""
    man = read_manifest(root)
    keep = {(e["gpu"], e["engine"], e["family"]): e for e in man.get("tables", [])}
    for e in entries:
        keep[(e["gpu"], e["engine"], e["family"])] = e
    man["tables"] = [keep[k] for k in sorted(keep)]
    if notice:
        man["notice"] = notice
    return write_json(man, Path(root) / MANIFEST)


def entry_for(path: Path, root: Path, *, gpu, engine, family, rows, source_package, source_version,
              sources) -> dict:
    return {"gpu": gpu, "engine": engine, "family": family, "path": str(Path(path).relative_to(root)),
            "rows": int(rows), "sha256": file_sha256(path), "source_package": source_package,
            "source_version": source_version, "source_files": list(sources)}
