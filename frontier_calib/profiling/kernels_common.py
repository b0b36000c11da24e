"""What every kernel module shares: the prepared benchmark, the context, dtype mapping, skips.

A kernel module exposes ``prepare(shape, ctx) -> Bench``: it allocates the operands for one shape
(untimed) and returns a zero-argument callable that runs exactly one call of the operator, plus
the name of the kernel implementation that callable runs (the table's ``kernel`` column).
``prepare`` raises :class:`Unsupported` (with the reason) for shapes this machine cannot run.
"""

from __future__ import annotations

import functools
import importlib
import logging
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger(__name__)


class Unsupported(Exception):
    """This shape cannot be measured here (missing kernel, dtype not supported on the device)."""


@dataclass
class Bench:
    kernel: str                        #: implementation timed, recorded in the ``kernel`` column
    fn: Callable[[], object]           #: one call of the operator on pre-allocated operands
    keep: tuple = ()                   #: tensors the callable needs kept alive


@dataclass
class KernelContext:
    torch: object                      #: the imported torch module
    device: str                        #: "cuda" or "cpu"
    backend: str = "auto"              #: "auto": fastest importable kernel; "torch": references only
    seed: int = 0
    warned: set = field(default_factory=set)

    def generator(self, salt: int = 0):
        g = self.torch.Generator(device=self.device)
        g.manual_seed(self.seed * 1_000_003 + salt)
        return g

    def randn(self, *shape, dtype, scale: float = 1.0, salt: int = 0):
        """Seeded normal tensor on the device (generated in fp32, then cast)."""
        t = self.torch.randn(*shape, generator=self.generator(salt), device=self.device,
                             dtype=self.torch.float32)
        if scale != 1.0:
            t.mul_(scale)
        return t.to(dtype)

    def float_dtype(self, name: str):
        """torch dtype for bf16/fp16/fp32, else Unsupported."""
        torch = self.torch
        table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
        if name not in table:
            raise Unsupported(f"dtype {name} needs a quantized kernel this reference does not provide")
        return table[name]

    def use_fast(self) -> bool:
        return self.backend == "auto" and self.device == "cuda"

    def warn_once(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning(message)


def optional_import(name: str):
    """The module if importable (any import error counts as absent), else None."""
    try:
        return importlib.import_module(name)
    except Exception:   # broken optional installs raise all sorts of errors
        return None


@functools.lru_cache(maxsize=4)
def _fp8_probe(torch, device: str) -> str | None:
    """None when per-tensor fp8 GEMM (torch._scaled_mm) works on ``device``, else the reason."""
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no float8 / _scaled_mm"
    try:
        a = torch.zeros(16, 32, device=device).to(torch.float8_e4m3fn)
        b = torch.zeros(16, 32, device=device).to(torch.float8_e4m3fn)
        one = torch.ones((), device=device)
        torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        return None
    except Exception as exc:   # unsupported arch / build
        return f"torch._scaled_mm is not usable on {device}: {str(exc).splitlines()[0][:120]}"


def require_fp8(ctx: KernelContext) -> None:
    reason = _fp8_probe(ctx.torch, ctx.device)
    if reason:
        raise Unsupported(reason)


def smoke(bench: Bench) -> Bench:
    """Run one call so shape-constraint errors of optional kernels surface before timing."""
    bench.fn()
    return bench
