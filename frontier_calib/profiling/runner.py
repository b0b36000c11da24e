"""Run a profile plan: measure each shape, journal it, write canonical tables and metadata.

Layout written (the profile store's, so ``frontier-calib fit --profiles ROOT`` reads it)::

    ROOT/<gpu>/<engine>/<family>.parquet         canonical table (rebuilt atomically from the journal)
    ROOT/<gpu>/<engine>/<family>.journal.jsonl   one line per finished shape (resume state)
    ROOT/<gpu>/<engine>/profile_meta.json        environment, timing method, kernels, notes
    ROOT/<gpu>/any/collective.parquet            collectives are engine-independent (engine 'any')

Shapes are measured in a seeded random order so that a run cut short (``--budget-minutes``,
Ctrl-C) still covers the whole grid evenly; the budget is split between families in proportion
to their estimated time. Any exit (finished, budget, Ctrl-C, crash) leaves the table holding every
finished shape; rerunning continues where it stopped.
"""

from __future__ import annotations

import importlib
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..hardware import GPUSpec
from ..io import write_json
from ..profiles.store import ENGINE_INDEPENDENT
from ..attention import KINDS
from . import kernels_comm, kernels_gemm, kernels_moe
from .estimate import shape_seconds
from .journal import Journal, write_family_table
from .kernels_common import Bench, KernelContext, Unsupported
from .plan import ProfilePlan, Shape
from .timing import Measurement, Timer, TimingConfig

def _resolve(ref: str) -> Callable:
    """``'package.module:function'`` -> the function (attention kinds name their benchmark preparers so)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


#: canonical family -> prepare(shape, ctx) -> Bench; attention families come from the attention kinds'
#: ``profiling_kernels`` (frontier_calib.attention); kinds without local kernels are profiled from public tables only
PREPARERS: dict[str, Callable[[Shape, KernelContext], Bench]] = {
    "gemm": kernels_gemm.prepare,
    **{fam: _resolve(ref) for kind in KINDS.values() for fam, ref in kind.profiling_kernels.items()},
    "moe": kernels_moe.prepare,
    "collective": kernels_comm.prepare,
}


@dataclass
class RunSettings:
    out: Path                            #: ROOT of the profile store to write
    gpu: str                             #: GPU id ('cpu' for the host CPU)
    engine: str = "torch"
    engine_version: str = "unknown"
    device: str = "cpu"
    timing: TimingConfig = field(default_factory=TimingConfig)
    backend: str = "auto"                #: 'auto' (fastest importable kernels) or 'torch' (references)
    seed: int = 0
    budget_s: float | None = None        #: wall-clock budget for the whole run, seconds
    progress: bool = True
    comm_version: str = "unknown"        #: NCCL (or gloo/torch) version recorded for collectives

    def engine_for(self, family: str) -> tuple[str, str]:
        """(engine, engine_version) rows of ``family`` are filed under: collectives are
        engine-independent ('any', the NCCL version), everything else the run's engine."""
        if family == "collective":
            return ENGINE_INDEPENDENT, self.comm_version
        return self.engine, self.engine_version

    def family_dir(self, family: str) -> Path:
        return Path(self.out) / self.gpu / self.engine_for(family)[0]


@dataclass
class FamilyResult:
    family: str
    planned: int
    already_done: int = 0
    measured: int = 0
    skipped: int = 0
    table_rows: int = 0
    table: str | None = None
    kernels: dict = field(default_factory=dict)        #: kernel -> rows measured in this run
    skip_reasons: dict = field(default_factory=dict)   #: reason -> count
    stopped: str | None = None                         #: None, 'budget' or 'interrupted'


def run_plan(plan: ProfilePlan, settings: RunSettings, *, torch, spec: GPUSpec,
             preparers: dict | None = None, metadata: dict | None = None,
             rank: int = 0, world: int = 1, echo: Callable[[str], None] = print) -> list[FamilyResult]:
    """Measure every shape of ``plan`` not already journaled; returns one result per family.

    ``preparers`` overrides :data:`PREPARERS` (tests inject failures this way). Under torchrun
    (``world`` > 1) collectives run on every rank and everything else on rank 0 only.
    """
    preparers = {**PREPARERS, **(preparers or {})}
    ctx = KernelContext(torch=torch, device=settings.device, backend=settings.backend, seed=settings.seed)
    timer = Timer(torch, settings.device, settings.timing, l2_bytes=spec.l2_bytes)
    families = list(plan.shapes)
    if world > 1:   # collectives first, so no rank waits in a barrier while rank 0 profiles GEMMs
        families = [f for f in families if f == "collective"] + \
                   ([f for f in families if f != "collective"] if rank == 0 else [])
    budgets = _split_budget(plan, families, settings, spec)
    results: list[FamilyResult] = []
    try:
        for family in families:
            res = _run_family(family, plan.shapes[family], settings, preparers[family], ctx, timer, spec,
                              budgets.get(family), rank=rank, world=world)
            results.append(res)
            if family == "collective" and world > 1:
                _leave_process_group(torch)   # other ranks are done; rank 0 goes on alone
            if res.stopped == "interrupted":
                break
    finally:
        if rank == 0 and results:
            by_dir: dict[Path, list[FamilyResult]] = {}
            for r in results:
                by_dir.setdefault(settings.family_dir(r.family), []).append(r)
            for fdir, rs in by_dir.items():
                _write_metadata(fdir, settings, plan, rs, metadata or {})
    return results


def _split_budget(plan, families, settings, spec) -> dict[str, float]:
    if settings.budget_s is None:
        return {}
    t = settings.timing
    est = {f: sum(shape_seconds(s, spec, settings.device, warmup=t.warmup, repeats=t.repeats,
                                flush_l2=t.flush_l2) for s in plan.shapes[f]) for f in families}
    total = sum(est.values()) or 1.0
    return {f: settings.budget_s * est[f] / total for f in families}


def _run_family(family, shapes, settings, prepare, ctx, timer, spec, budget_s, *, rank, world) -> FamilyResult:
    torch = ctx.torch
    fdir = settings.family_dir(family)
    journal = Journal(fdir / f"{family}.journal.jsonl")
    done = journal.done_keys()
    collective = family == "collective" and world > 1
    if collective:
        torch.distributed.barrier()   # every rank has read the journal before rank 0 appends to it
    todo = [s for s in shapes if s.key not in done]
    random.Random(settings.seed).shuffle(todo)
    res = FamilyResult(family, planned=len(shapes), already_done=len(shapes) - len(todo))
    writer = rank == 0
    bar = _progress(len(todo), family, settings.progress and writer)
    t0 = time.perf_counter()
    try:
        for shape in todo:
            over = budget_s is not None and time.perf_counter() - t0 > budget_s
            if collective:          # every rank must stop at the same shape, or the others hang
                over = _any_rank(torch, over, ctx.device)
            if over:
                res.stopped = "budget"
                break
            record = _measure_shape(shape, settings, prepare, ctx, timer, collective)
            if writer:
                journal.append(record)
            if record["status"] == "ok":
                res.measured += 1
                k = record["row"]["kernel"]
                res.kernels[k] = res.kernels.get(k, 0) + 1
            else:
                res.skipped += 1
                res.skip_reasons[record["reason"]] = res.skip_reasons.get(record["reason"], 0) + 1
            bar.update(1)
    except KeyboardInterrupt:
        res.stopped = "interrupted"
    finally:
        bar.close()
        if writer:
            dest = fdir / f"{family}.parquet"
            res.table_rows = write_family_table(journal, family, dest)
            res.table = str(dest) if res.table_rows else None
    return res


def _measure_shape(shape: Shape, settings: RunSettings, prepare, ctx: KernelContext, timer: Timer,
                   collective: bool) -> dict:
    """One journal record: status 'ok' with the canonical row, or 'skipped' with the reason."""
    torch = ctx.torch
    base = {"key": shape.key, "family": shape.family}
    bench = None
    try:
        bench = prepare(shape, ctx)
        kernel = bench.kernel
        if collective:
            m = _max_over_ranks(torch, timer.measure(bench.fn, before_each=torch.distributed.barrier),
                                ctx.device)
        else:
            m = timer.measure(bench.fn)
    except Unsupported as exc:
        return {**base, "status": "skipped", "reason": str(exc)}
    except Exception as exc:
        if not _is_oom(torch, exc):
            raise
        return {**base, "status": "skipped", "reason": "out of memory"}
    finally:
        bench = None                      # free the operands before the next shape
        if ctx.device == "cuda" and _memory_tight(torch):
            torch.cuda.empty_cache()
    engine, version = settings.engine_for(shape.family)
    row = {"gpu": settings.gpu, "engine": engine, "engine_version": version, "kernel": kernel, **shape.as_dict(), "latency_ms": m.median_ms}
    return {**base, "status": "ok", "row": row,
            "stats": {"min_ms": m.min_ms, "max_ms": m.max_ms, "repeats": m.repeats, "method": m.method}}


def _max_over_ranks(torch, m: Measurement, device: str) -> Measurement:
    """The slowest rank's median: a collective finishes when its last participant does."""
    t = torch.tensor([m.median_ms, m.max_ms], dtype=torch.float64,
                     device="cuda" if device == "cuda" else "cpu")
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return Measurement(float(t[0]), m.min_ms, float(t[1]), m.repeats, m.method)


def _leave_process_group(torch) -> None:
    """Barrier, then tear the group down: a rank exiting with live gloo/NCCL threads aborts."""
    dist = torch.distributed
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _any_rank(torch, flag: bool, device: str) -> bool:
    t = torch.tensor([1.0 if flag else 0.0], device="cuda" if device == "cuda" else "cpu")
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


def _is_oom(torch, exc: Exception) -> bool:
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


def _memory_tight(torch) -> bool:
    """Release cached blocks only when memory is tight (keeps the allocator warm otherwise)."""
    try:
        free, total = torch.cuda.mem_get_info()
        return free < 0.2 * total
    except Exception:
        return False


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, family: str, enabled: bool):
    if not enabled or total == 0:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=family, unit="shape", dynamic_ncols=True)


def _write_metadata(fdir: Path, settings: RunSettings, plan: ProfilePlan, results: list[FamilyResult],
                    env: dict) -> None:
    """Merge this run into <fdir>/profile_meta.json (latest run per family, run history)."""
    path = fdir / "profile_meta.json"
    meta = {}
    if path.exists():
        try:
            meta = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            meta = {}
    engine, version = settings.engine_for(results[0].family)
    run = {
        "environment": env, "engine": engine, "engine_version": version,
        "device": settings.device, "backend": settings.backend, "seed": settings.seed,
        "timing": {**asdict(settings.timing), "method": settings.timing.describe(settings.device)},
        "models": plan.models, "limits": asdict(plan.limits), "notes": plan.notes,
        "families": {r.family: asdict(r) for r in results},
    }
    families = meta.get("families", {})
    for r in results:
        families[r.family] = {"table_rows": r.table_rows, "kernels_last_run": r.kernels,
                              "timing": run["timing"], "environment": env}
    history = (meta.get("runs", []) + [run])[-20:]
    meta = {"gpu": settings.gpu, "engine": engine, "families": families, "runs": history}
    if settings.device == "cpu":
        from .environment import CPU_NOTE
        meta["note"] = CPU_NOTE
    write_json(meta, path)
