"""Before the points run: fit the operator models the sweep needs once, here, and collect their files.

Without this, every worker process would find the same models missing and fit them at the same time.
``prepare_models`` parses each distinct deployment of the sweep (rejected ones are skipped: their points
become 'infeasible' rows), fits what the model cache lacks, and returns the model files for shipping to
Ray workers on other machines ({path relative to the model cache: bytes}).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..errors import FrontierError


def workers_of(dep) -> list:
    """The WorkerSpecs a deployment runs (co-located: one; PD: prefill and decode; AF: attention and FFN)."""
    mode = getattr(dep, "mode", "colocated")
    if mode == "pd":
        return [dep.prefill.worker, dep.decode.worker]
    if mode == "af":
        return [dep.worker, dep.ffn_worker]
    return [dep.worker]


def parse_distinct(deployments: list[dict], base_dir: Path | None) -> Iterator[tuple[dict, object]]:
    """Each distinct deployment mapping once, parsed: ``(raw, deployment)``, or ``(raw, the FrontierError)`` for
    one the deployment parser rejects."""
    from ..deployment import deployment_from_dict

    seen: set[str] = set()
    for raw in deployments:
        key = repr(raw)
        if key in seen:
            continue
        seen.add(key)
        try:
            yield raw, deployment_from_dict(raw, source="deployment", base_dir=base_dir)
        except FrontierError as exc:
            yield raw, exc


def prepare_models(deployments: list[dict], base_dir: Path | None, *, progress: bool = False,
                   collect: bool = False) -> dict:
    """Fit (once) the operator models of every deployment that parses; with ``collect``, return their cached
    files as {relative path: bytes}."""
    from ..cost.cache import needed_families, needed_groups
    from ..cache_folder import cache_dir
    from ..opmodel.registry import cached_model_set, family_cache_dir

    need: dict[tuple, tuple[set, dict]] = {}
    for _, dep in parse_distinct(deployments, base_dir):
        if isinstance(dep, FrontierError):
            continue
        for w in workers_of(dep):
            fams, groups = need.setdefault((w.gpu, w.engine, dep.profiles), (set(), {}))
            wanted = needed_groups(w)
            for fam in needed_families(w):
                fams.add(fam)
                if fam in wanted:
                    groups.setdefault(fam, set()).update(wanted[fam])
    files: dict[str, bytes] = {}
    root = cache_dir()
    for (gpu, engine, profiles), (fams, groups) in need.items():
        cached_model_set(gpu, engine, families=sorted(fams), groups=groups, root=profiles, progress=progress)
        if not collect:
            continue
        for fam in sorted(fams):
            d = family_cache_dir(gpu, engine, fam, profiles)
            if d is None or not d.is_dir():
                continue
            for f in sorted(d.rglob("*")):
                if f.is_file():
                    files[str(f.relative_to(root))] = f.read_bytes()
    return files
