"""Collective benchmarks through torch.distributed (NCCL on GPUs, gloo on CPUs).

Launched with ``torchrun --nproc-per-node N``: every rank prepares and times the same shapes in the
same order; the reported latency is the **maximum over ranks** of each rank's median (a collective
is done when the last rank is). Each repeat starts after a barrier so rank skew is not timed.

``message_bytes`` follows nccl-tests: the full buffer of the operation on each GPU, i.e. the
all-reduce tensor, the all-gather *output*, the reduce-scatter *input*, the all-to-all send
buffer. Point-to-point (KV-cache transfer) bandwidth is not profiled: the canonical schema has no
table for it yet.
"""

from __future__ import annotations

import os

from .kernels_common import Bench, KernelContext, Unsupported
from .plan import Shape


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) for a plain process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group(torch, device: str) -> str:
    """Initialise torch.distributed from torchrun's env (idempotent). Returns the backend name."""
    dist = torch.distributed
    backend = "nccl" if device == "cuda" else "gloo"
    if not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return dist.get_backend()


def prepare(shape: Shape, ctx: KernelContext) -> Bench:
    torch = ctx.torch
    dist = torch.distributed
    if not dist.is_initialized():
        raise Unsupported("collectives need torch.distributed (launch with torchrun --nproc-per-node N)")
    n = dist.get_world_size()
    if shape["num_gpus"] != n:
        raise Unsupported(f"planned for {shape['num_gpus']} GPUs, launched with {n}")
    dt = ctx.float_dtype(shape["dtype"])
    elem = torch.empty((), dtype=dt).element_size()
    numel = shape["message_bytes"] // elem
    if numel % n:
        raise Unsupported(f"{shape['message_bytes']} bytes do not split evenly over {n} ranks")
    dev = ctx.device
    op = shape["op"]
    gloo = dist.get_backend() == "gloo"
    if op == "all_reduce":
        buf = torch.ones(numel, dtype=dt, device=dev)
        return Bench(dist.get_backend(), lambda: dist.all_reduce(buf), keep=(buf,))
    if op == "all_gather":
        out = torch.empty(numel, dtype=dt, device=dev)
        inp = torch.ones(numel // n, dtype=dt, device=dev)
        if gloo:
            parts = list(out.chunk(n))
            return Bench("gloo", lambda: dist.all_gather(parts, inp), keep=(out, inp))
        return Bench(dist.get_backend(), lambda: dist.all_gather_into_tensor(out, inp), keep=(out, inp))
    if op == "reduce_scatter":
        if gloo:
            raise Unsupported("gloo has no reduce_scatter")
        inp = torch.ones(numel, dtype=dt, device=dev)
        out = torch.empty(numel // n, dtype=dt, device=dev)
        return Bench(dist.get_backend(), lambda: dist.reduce_scatter_tensor(out, inp), keep=(out, inp))
    if op == "all_to_all":
        inp = torch.ones(numel, dtype=dt, device=dev)
        out = torch.empty(numel, dtype=dt, device=dev)
        return Bench(dist.get_backend(), lambda: dist.all_to_all_single(out, inp), keep=(out, inp))
    raise Unsupported(f"unknown collective '{op}'")
