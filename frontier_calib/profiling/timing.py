"""Timing one kernel call the way kernel engineers trust.

On CUDA: ``warmup`` untimed calls (clocks ramp up, caches and autotuners settle), then ``repeats``
calls each bracketed by CUDA events recorded on the stream, with the L2 cache flushed before every
repeat by writing a buffer larger than L2 (so a call never reads its operands from the previous
call's cache), and the **median** GPU time reported. On CPU: the same loop with
``time.perf_counter`` (torch CPU ops are synchronous); CPU numbers only test the pipeline.

All times are **milliseconds** (the canonical ``latency_ms`` unit).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class TimingConfig:
    warmup: int = 5          #: untimed calls before measuring
    repeats: int = 20        #: timed calls; the median is reported
    flush_l2: bool = True    #: write a buffer larger than L2 before each timed call (CUDA only)

    @classmethod
    def for_device(cls, device: str) -> "TimingConfig":
        """Defaults: 5 warm-up + 20 repeats with L2 flush on CUDA; 1 + 3 on CPU (pipeline tests)."""
        return cls() if device == "cuda" else cls(warmup=1, repeats=3, flush_l2=False)

    def describe(self, device: str) -> str:
        method = "CUDA events" if device == "cuda" else "time.perf_counter"
        flush = ", L2 flushed before each repeat" if (self.flush_l2 and device == "cuda") else ""
        return f"{self.warmup} warm-up + {self.repeats} timed calls, median, {method}{flush}"


@dataclass(frozen=True)
class Measurement:
    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    method: str              #: "cuda_events" or "perf_counter"


class Timer:
    """Measures zero-argument callables on one device; owns the L2 flush buffer."""

    def __init__(self, torch, device: str, config: TimingConfig, *, l2_bytes: float = 50e6):
        if config.repeats < 1 or config.warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")
        self.torch, self.device, self.config = torch, device, config
        self._flush_buf = None
        if device == "cuda" and config.flush_l2:
            nbytes = int(max(2 * l2_bytes, 64 * 2**20))      # twice L2, at least 64 MiB
            self._flush_buf = torch.empty(nbytes // 4, dtype=torch.int32, device="cuda")

    def flush_l2(self) -> None:
        """Evict the L2 cache by writing every byte of a buffer larger than it (CUDA only)."""
        if self._flush_buf is not None:
            self._flush_buf.zero_()

    def measure(self, fn: Callable[[], object], *, before_each: Callable[[], object] | None = None) -> Measurement:
        """Median time of ``fn()`` in milliseconds. ``before_each`` runs untimed before every
        repeat (e.g. a barrier that aligns ranks for collectives)."""
        cfg = self.config
        for _ in range(cfg.warmup):
            fn()
        if self.device == "cuda":
            return self._measure_cuda(fn, before_each)
        times = []
        for _ in range(cfg.repeats):
            if before_each is not None:
                before_each()
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return _summary(times, "perf_counter")

    def _measure_cuda(self, fn, before_each) -> Measurement:
        torch, cfg = self.torch, self.config
        torch.cuda.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(cfg.repeats)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(cfg.repeats)]
        for i in range(cfg.repeats):
            if before_each is not None:
                before_each()
            self.flush_l2()
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize()
        return _summary([s.elapsed_time(e) for s, e in zip(starts, ends)], "cuda_events")


def _summary(times_ms: list[float], method: str) -> Measurement:
    return Measurement(median_ms=float(statistics.median(times_ms)), min_ms=float(min(times_ms)),
                       max_ms=float(max(times_ms)), repeats=len(times_ms), method=method)
