"""``load_trace``: any supported trace file -> canonical :class:`Trace`, format told by content or named."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import replace

from ..errors import FrontierError, InputError
from .azure import read_azure
from .burstgpt import read_burstgpt
from .detect import FORMATS, detect_format
from .inference_perf import read_inference_perf
from .mooncake import read_mooncake
from .native import read_native
from .params import positive, whole
from .schema import Trace
from .vllm_bench import read_vllm_bench
from .vllm_request_log import read_vllm_request_log

READERS: dict[str, Callable[..., Trace]] = {
    "native": read_native,
    "mooncake": read_mooncake,
    "azure": read_azure,
    "burstgpt": read_burstgpt,
    "vllm_bench": read_vllm_bench,
    "vllm_request_log": read_vllm_request_log,
    "inference_perf": read_inference_perf,
}


def load_trace(path: str | os.PathLike, format: str | None = None, *, limit: int | None = None,
               time_scale: float | None = None, **options) -> Trace:
    """Read a trace file into the canonical table.

    format: one of :data:`~.detect.FORMATS`; None detects it from the content.
    limit: keep only the first ``limit`` requests in arrival order.
    time_scale: multiply every arrival time (hence every inter-arrival gap) by this factor;
        2.0 halves the request rate.
    options: reader-specific keywords: ``hash_block_size`` (native, mooncake, inference_perf; tokens per hash id),
        ``seed`` (vllm_bench; for reconstructed open-loop arrivals).
    """
    if not os.path.isfile(path):
        raise InputError("file not found", path=str(path))
    if os.path.getsize(path) == 0:
        raise InputError("the file is empty", path=str(path), fix="point at a trace with at least one request")
    if format is None:
        format = detect_format(path)
    if format not in READERS:
        raise FrontierError(f"unknown trace format {format!r}; choose one of {', '.join(FORMATS)}")
    reader = READERS[format]
    accepted = [name for name in inspect.signature(reader).parameters if name != "path"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise FrontierError(f"the {format} reader takes no option {unknown[0]!r}; it takes {accepted or 'none'}")
    trace = reader(path, **options)
    if limit is not None:
        trace = trace.head(whole("limit", limit))
    if time_scale is not None:
        factor = positive("time_scale", time_scale)
        trace = replace(trace.with_arrivals(trace.requests["arrival_s"].to_numpy() * factor),
                        source=f"{trace.source} [arrival times x{factor:g}]")
    return trace
