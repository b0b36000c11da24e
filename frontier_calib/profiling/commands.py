"""``frontier-calib profile``: measure this machine's operators into the canonical profile schema."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from ..dtypes import normalize_dtype
from ..errors import FrontierError
from ..hardware import GPUSpec, get_gpu
from ..io import check_output_dir
from ..engines import engine_names
from ..names import check_engine
from ..names import gpu_id as canonical_gpu
from ..model_spec import ModelSpec, load_model
from .estimate import CPU_SPEC, fits_memory, plan_seconds
from .grid import parse_int_list
from .plan import FAMILY_GROUPS, Limits, ProfilePlan, build_plan, expand_families, tiny_model
from .routing import parse_distribution
from .timing import TimingConfig

#: names tables may be filed under: the serving engines, or 'torch' for the plain PyTorch kernels
PROFILE_ENGINES = (*engine_names(), "torch")

#: limits applied on --device cpu without --tiny, so a CPU run finishes in minutes
CPU_CAPS = Limits(max_num_batched_tokens=256, max_num_seqs=16, max_model_len=1024, max_prefill_batch=4)


def _split(values) -> list[str]:
    out = []
    for v in values or ():
        out += [p.strip() for p in str(v).split(",") if p.strip()]
    return out


def load_models(names, tiny: bool) -> list[ModelSpec]:
    models = [load_model(n) for n in dict.fromkeys(_split(names))]
    return [tiny_model(m) for m in models] if tiny else models


def make_limits(tiny: bool, device: str, max_tokens, max_seqs, max_len) -> tuple[Limits, list[str]]:
    """Engine limits from the flags; CPU runs without --tiny are capped (and say so)."""
    notes = []
    base = Limits.tiny() if tiny else Limits()
    if device == "cpu" and not tiny:
        base = dataclasses.replace(base, **{k: getattr(CPU_CAPS, k) for k in (
            "max_num_batched_tokens", "max_num_seqs", "max_model_len", "max_prefill_batch")})
        notes.append(f"device cpu: token grids capped (max_num_batched_tokens={base.max_num_batched_tokens}, "
                     f"max_num_seqs={base.max_num_seqs}, max_model_len={base.max_model_len}); "
                     "use --tiny for a seconds-long pipeline test")
    over = {k: v for k, v in (("max_num_batched_tokens", max_tokens), ("max_num_seqs", max_seqs),
                              ("max_model_len", max_len)) if v is not None}
    for k, v in over.items():
        if v < 1:
            raise FrontierError(f"--{k.replace('_', '-')} must be positive, got {v}")
    return dataclasses.replace(base, **over), notes


def fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def format_plan(plan: ProfilePlan, est: dict[str, float], *, header: list[str]) -> str:
    lines = list(header)
    lines.append("")
    lines.append(f"{'family':<18} {'shapes':>7} {'est. time':>10}   what varies")
    for fam, shapes in plan.shapes.items():
        lines.append(f"{fam:<18} {len(shapes):>7} {fmt_seconds(est[fam]):>10}   {plan.describe(fam)}")
    lines.append(f"{'total':<18} {plan.total():>7} {fmt_seconds(sum(est.values())):>10}")
    if plan.notes:
        lines.append("notes:")
        lines += [f"  - {n}" for n in plan.notes]
    return "\n".join(lines)


def _spec_for_plan(device: str, gpu: str | None, torch) -> tuple[GPUSpec, str, list[str]]:
    """(spec, gpu id, notes) for planning; detection is best effort on dry runs."""
    if device == "cpu":
        return CPU_SPEC, "cpu", []
    if gpu:
        spec = get_gpu(gpu)
        return spec, spec.name, []
    if torch is not None and torch.cuda.is_available():
        from .environment import detect_gpu_id
        gid = detect_gpu_id(torch, "cuda", None)
        return get_gpu(gid), gid, []
    spec = get_gpu("h100_sxm")
    return spec, spec.name, ["no GPU detected: estimates assume h100_sxm (pass --gpu to choose)"]


@click.command("profile")
@click.argument("what", type=click.Choice(list(FAMILY_GROUPS)))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Profile store root; tables go to OUT/<gpu>/<engine>/<family>.parquet.")
@click.option("--model", "models", multiple=True,
              help="Preset name, Hugging Face id or config.json path (repeat or comma-separate).")
@click.option("--tp", default="1", show_default=True, help="Tensor-parallel degrees, e.g. 1,2,4,8.")
@click.option("--ep", default="1", show_default=True, help="Expert-parallel degrees for MoE, e.g. 1,8.")
@click.option("--dtype", "dtypes", default="bf16", show_default=True,
              help="Weight/GEMM formats: bf16, fp16, fp8 (per-tensor), fp8_block.")
@click.option("--kv-dtype", "kv_dtypes", default="bf16", show_default=True, help="KV-cache formats.")
@click.option("--distribution", "distributions", default="balanced", show_default=True,
              help="MoE routing: balanced and/or power_law_<alpha>, comma-separated.")
@click.option("--device", type=click.Choice(["cuda", "cpu"]), default="cuda", show_default=True)
@click.option("--gpu", default=None, help="GPU id for the tables (default: detected from the device).")
@click.option("--engine", default="torch", show_default=True,
              help=f"Engine name the tables are filed under: {', '.join(PROFILE_ENGINES)}.")
@click.option("--engine-version", default=None, help="Recorded engine_version (default: that package's).")
@click.option("--max-num-batched-tokens", type=int, default=None, help="Token budget per step [8192].")
@click.option("--max-num-seqs", type=int, default=None, help="Largest decode batch [256].")
@click.option("--max-model-len", type=int, default=None, help="Longest context [model limit, <= 32768].")
@click.option("--tiny", is_flag=True, help="Shrunken models and grids: a seconds-long pipeline test.")
@click.option("--warmup", type=int, default=None, help="Untimed calls per shape [5 cuda, 1 cpu].")
@click.option("--repeats", type=int, default=None, help="Timed calls per shape (median kept) [20 cuda, 3 cpu].")
@click.option("--no-l2-flush", is_flag=True, help="Do not flush L2 between repeats.")
@click.option("--backend", type=click.Choice(["auto", "torch"]), default="auto", show_default=True,
              help="auto: fastest importable kernels (flash_attn, vLLM); torch: references only.")
@click.option("--budget-minutes", type=float, default=None, help="Stop after this much time; rerun continues.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the plan and its estimated time; measure nothing.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def profile(what, out, models, tp, ep, dtypes, kv_dtypes, distributions, device, gpu, engine, engine_version,
            max_num_batched_tokens, max_num_seqs, max_model_len, tiny, warmup, repeats, no_l2_flush, backend,
            budget_minutes, seed, dry_run, progress):
    """Profile GEMM, attention, MoE and collective latencies of this machine.

    WHAT is gemm, attention, moe, comm or all. Shapes come from the models and parallel degrees
    given (the GEMMs a layer issues under that TP, attention heads per shard, expert shapes per
    EP/TP), crossed with token counts up to the engine limits. Collectives need
    `torchrun --nproc-per-node N -m frontier_calib.cli profile comm ...`.
    """
    from .kernels_comm import world

    check_engine(engine, PROFILE_ENGINES)
    if gpu and device != "cpu":
        gpu = canonical_gpu(gpu)
    if not dry_run:
        check_output_dir(out, option="--out")  # a resumable store: earlier tables stay, new ones are added
    families = expand_families(what)
    tps = parse_int_list(tp, what="tp")
    eps = parse_int_list(ep, what="ep")
    dts = [normalize_dtype(d, where="--dtype") for d in _split([dtypes])]
    kvs = [normalize_dtype(d, where="--kv-dtype") for d in _split([kv_dtypes])]
    dists = _split([distributions])
    for d in dists:
        parse_distribution(d)
    specs = load_models(models, tiny)
    if not specs and what != "comm":
        raise FrontierError("pass --model (a preset such as Mixtral-8x7B-v0.1, a Hugging Face id or a "
                            "config.json); shapes are derived from the models you plan to serve")
    limits, notes = make_limits(tiny, device, max_num_batched_tokens, max_num_seqs, max_model_len)
    rank, world_size = world()

    torch = None
    if not dry_run:
        from .environment import require_torch, resolve_device
        torch = require_torch()
        device = resolve_device(torch, device)
    else:
        try:
            import torch as _torch   # only to detect the GPU for estimates
            torch = _torch
        except ImportError:
            torch = None
    if dry_run:
        spec, gpu_id, spec_notes = _spec_for_plan(device, gpu, torch)
    else:
        from .environment import detect_gpu_id
        gpu_id = detect_gpu_id(torch, device, gpu)
        spec = CPU_SPEC if device == "cpu" else get_gpu(gpu_id)
        spec_notes = []
    notes += spec_notes

    comm_gpus: list[int] = []
    if "collective" in families:
        if world_size > 1:
            comm_gpus = [world_size]
        elif dry_run:
            comm_gpus = [t for t in tps if t > 1]
        else:
            notes.append("collective: skipped in a single process; launch under "
                         "`torchrun --nproc-per-node N` on N GPUs to measure collectives")
    timing = TimingConfig.for_device(device)
    timing = TimingConfig(warmup=timing.warmup if warmup is None else warmup,
                          repeats=timing.repeats if repeats is None else repeats,
                          flush_l2=timing.flush_l2 and not no_l2_flush)
    if timing.repeats < 1 or timing.warmup < 0:
        raise FrontierError("--repeats must be >= 1 and --warmup >= 0")
    memory = spec.memory_bytes
    if not dry_run and device == "cuda":
        memory = float(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    plan_families = [f for f in families if f != "collective" or comm_gpus]
    plan = build_plan(specs, plan_families, tps=tps, eps=eps, dtypes=dts, kv_dtypes=kvs, distributions=dists,
                      limits=limits, comm_gpus=comm_gpus,
                      comm_implementation="nccl" if device == "cuda" else "gloo",
                      fits=lambda s: fits_memory(s, memory))
    plan.notes[:0] = notes
    if device == "cpu":
        from .environment import CPU_NOTE
        plan.notes.append(CPU_NOTE)
    est = plan_seconds(plan, spec, device, warmup=timing.warmup, repeats=timing.repeats, flush_l2=timing.flush_l2)
    header = [
        f"profile plan: {', '.join(plan.models) or '(no model)'} | tp {','.join(map(str, tps))} | "
        f"ep {','.join(map(str, eps))} | dtype {','.join(dts)} | kv {','.join(kvs)}",
        f"target: {gpu_id} ({device}), engine {engine}; tables -> {Path(out) / gpu_id / engine}"
        + (f" (collectives -> {Path(out) / gpu_id / 'any'})" if "collective" in plan.shapes else ""),
        f"limits: max_num_batched_tokens={limits.max_num_batched_tokens}, max_num_seqs={limits.max_num_seqs}, "
        f"max_model_len={limits.max_model_len or 'model limit (<= 32768)'}",
        f"timing: {timing.describe(device)}; estimate = roofline on {spec.name} x calls + "
        "fixed setup per shape",
    ]
    if budget_minutes is not None:
        header.append(f"budget: {budget_minutes:g} min (shapes run in a seeded random order; rerun continues)")
    if rank == 0:
        click.echo(format_plan(plan, est, header=header))
    if dry_run:
        return
    if plan.total() == 0:
        click.echo("nothing to measure")
        return
    _run(plan, torch=torch, spec=spec, out=out, gpu_id=gpu_id, engine=engine, engine_version=engine_version,
         device=device, timing=timing, backend=backend, seed=seed, budget_minutes=budget_minutes,
         progress=progress, rank=rank, world_size=world_size)


def _run(plan, *, torch, spec, out, gpu_id, engine, engine_version, device, timing, backend, seed,
         budget_minutes, progress, rank, world_size):
    from .environment import collect_metadata, engine_version as find_version
    from .kernels_comm import init_process_group
    from .runner import RunSettings, run_plan

    if device == "cpu":
        torch.set_num_threads(1)    # stable CPU timings; they only test the pipeline anyway
    if "collective" in plan.shapes and world_size > 1:
        init_process_group(torch, device)
    if device == "cuda":
        nccl = getattr(getattr(torch.cuda, "nccl", None), "version", lambda: None)()
        comm_version = "nccl " + ".".join(map(str, nccl)) if isinstance(nccl, tuple) else f"nccl {nccl}"
    else:
        comm_version = f"gloo (torch {torch.__version__})"
    settings = RunSettings(out=Path(out), gpu=gpu_id, engine=engine, comm_version=comm_version,
                           engine_version=find_version(engine, engine_version, torch), device=device,
                           timing=timing, backend=backend, seed=seed,
                           budget_s=None if budget_minutes is None else budget_minutes * 60, progress=progress)
    meta = collect_metadata(torch, device, gpu_id)
    results = run_plan(plan, settings, torch=torch, spec=spec, metadata=meta, rank=rank, world=world_size)
    if rank != 0:
        return
    click.echo("")
    interrupted = False
    for r in results:
        state = {"budget": " (budget reached; rerun to continue)",
                 "interrupted": " (interrupted; rerun to continue)"}.get(r.stopped, "")
        interrupted |= r.stopped == "interrupted"
        click.echo(f"{r.family}: measured {r.measured}, skipped {r.skipped}, already done {r.already_done} "
                   f"of {r.planned}; table {r.table or '(none)'} ({r.table_rows} rows){state}")
        if r.kernels:
            click.echo(f"  kernels: {', '.join(f'{k} ({n})' for k, n in sorted(r.kernels.items()))}")
        for reason, n in sorted(r.skip_reasons.items(), key=lambda kv: -kv[1])[:3]:
            click.echo(f"  skipped {n}: {reason}")
    if device == "cpu":
        from .environment import CPU_NOTE
        click.echo(f"note: {CPU_NOTE}")
    click.echo(f"next: frontier-calib fit --profiles {out} --gpu {gpu_id} --engine {engine}")
    if interrupted:
        sys.exit(130)
