"""Cache of precomputed cost tables, so a replay with unchanged inputs needs no model evaluation.

The key hashes everything the tables depend on: the worker (model, GPU, engine, formats,
parallelism, routing), the table limits, the sha256 of the profile tables the operator models
were fitted on, and the identity of the fitted models themselves (their cached metadata, so a
refit, e.g. by `frontier-calib fit`, invalidates the tables built from the old models). A hit
loads a few NumPy arrays and skips importing XGBoost at all.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..cache_folder import touch
from ..io import atomic_path
from .. import attention
from ..cache_folder import cache_dir
from ..opmodel.registry import cached_model_set, code_fingerprint, family_cache_dir, family_files
from ..profiles import store
from .iteration import IterationCostModel
from .worker import WorkerSpec

#: every family a cost model may read: GEMMs, the registered attention kinds' families, MoE and communication
COST_FAMILIES = ("gemm", *dict.fromkeys(f for k in attention.KINDS.values() for f in k.families), "moe",
                 "collective", "moe_a2a")
TABLES_VERSION = "4"  # a manual salt; code changes already key new tables (_table_code)


def needed_families(worker: WorkerSpec) -> list[str]:
    m = worker.model
    fams = ["gemm"] + attention.needed_families(worker)
    if m.is_moe:
        fams.append("moe")
        if worker.ep > 1 and worker.attention_dp > 1:
            fams.append("moe_a2a")   # DeepEP tables; without them: NCCL all-gather + reduce-scatter (collective)
            fams.append("moe_deepep")   # DeepEPMoE expert tables (SGLang WideEP) where they cover the model
    if worker.tp > 1 or (m.is_moe and worker.ep > 1 and worker.attention_dp > 1):
        fams.append("collective")
    return fams


def needed_groups(worker: WorkerSpec) -> dict:
    """The dtype groups of each family the worker's iterations query (router and lm_head run in bf16)."""
    fmt = attention.table_format
    return {"gemm": {fmt(worker.dtype), "bf16"}, **attention.needed_groups(worker), "moe": {fmt(worker.moe_dtype)}}


def _models_signature(worker: WorkerSpec, root) -> str | None:
    """sha256 over the metadata of the fitted models the worker uses, or None when one is not fitted yet.

    Only the needed dtype groups count, so fitting another group of a family later does not invalidate
    this worker's tables.
    """
    h = hashlib.sha256()
    groups = needed_groups(worker)
    for fam in needed_families(worker):
        directory = family_cache_dir(worker.gpu, worker.engine, fam, root)
        if directory is None:
            continue  # no profile table: cached_model_set will say so
        wanted = groups.get(fam)
        metas = sorted(directory.glob(f"{fam}__*.meta.json"))
        if wanted:
            metas = [m for m in metas if m.name[len(fam) + 2:-len(".meta.json")] in wanted]
            if len(metas) < len(wanted):
                return None
        elif not metas:
            return None
        for f in metas:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _table_code() -> bytes:
    """The code that decides what the tables hold, read once per process (it cannot change under a running
    one): every module of the cost model, of the attention kinds and of the engine records (their facts, e.g.
    ``nvlink_a2a``, decide what a table holds), the model and GPU facts. A change to any of them keys new tables, so
    a cache never serves tables that another version of the code built."""
    pkg = Path(__file__).parents[1]
    files = [*sorted((pkg / "cost").glob("*.py")), *sorted((pkg / "attention").glob("*.py")),
             *sorted((pkg / "engines").glob("*.py")), pkg / "model_spec.py", pkg / "hardware.py", pkg / "dtypes.py"]
    return b"".join(p.read_bytes() for p in files)


def worker_fields(worker: WorkerSpec) -> dict:
    """The worker's fields as the cost tables see them: its engine release replaced by the code paths of its
    attention kinds (``AttentionKind.release_path``), the only way the release enters the tables, so that workers
    of releases whose paths agree (every release, for models without such a kind) share their tables."""
    w = asdict(worker)
    w.pop("engine_version")
    w["release_paths"] = tuple(kind.release_path(worker) for kind, _ in attention.model_kinds(worker.model))
    return w


def _key(worker: WorkerSpec, limits: tuple, root, models_sig: str) -> str:
    h = hashlib.sha256(TABLES_VERSION.encode())
    h.update(models_sig.encode())
    w = worker_fields(worker)
    for k in ("overheads", "cuda_graph", "overlap"):  # applied at lookup time, not baked into the tables
        w.pop(k)
    h.update(repr(sorted(w.items(), key=lambda kv: kv[0])).encode())
    h.update(repr(limits).encode())
    h.update(code_fingerprint().encode())
    h.update(_table_code())
    for fam in needed_families(worker):
        for f in family_files(worker.gpu, worker.engine, fam, root):
            h.update(store.file_sha256(f).encode())
    return h.hexdigest()[:20]


def cost_model_for(worker: WorkerSpec, *, max_tokens: int, max_seqs: int, max_model_len: int,
                   profiles_root=None, progress: bool = False) -> IterationCostModel:
    """An IterationCostModel for ``worker``, from the cache when its inputs are unchanged."""
    limits = (int(max_tokens), int(max_seqs), int(max_model_len))

    def table_path(sig: str) -> Path:
        return cache_dir() / "cost_tables" / f"{worker.model.name}-{worker.gpu}-{worker.engine}-" \
            f"{_key(worker, limits, profiles_root, sig)}.npz"

    sig = _models_signature(worker, profiles_root)
    path = table_path(sig) if sig is not None else None
    if path is not None and path.exists():
        with np.load(path) as z:
            tables = {k: z[k] for k in z.files}
        touch(path)   # last use, for `frontier-calib cache prune --older-than`
        return IterationCostModel(worker, None, max_tokens=max_tokens, max_seqs=max_seqs,
                                  max_model_len=max_model_len, tables=tables)
    models = cached_model_set(worker.gpu, worker.engine, families=needed_families(worker),
                              groups=needed_groups(worker), root=profiles_root, progress=progress)
    cm = IterationCostModel(worker, models, max_tokens=max_tokens, max_seqs=max_seqs, max_model_len=max_model_len)
    sig = _models_signature(worker, profiles_root)  # the models are in the cache now
    if sig is not None:
        with atomic_path(table_path(sig)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **cm.tables)
    return cm
