"""Where profiling runs: torch import with a clear error, device checks, GPU id, run metadata."""

from __future__ import annotations

import datetime as _dt
import importlib
import importlib.metadata
import os
import platform
import subprocess

from ..errors import FrontierError
from ..hardware import get_gpu, gpu_from_device_name

CPU_NOTE = ("CPU timings: these numbers only exercise the profile -> fit -> predict pipeline; "
            "they say nothing about GPU serving performance")

#: optional fast-kernel libraries recorded in the metadata (import name -> distribution name)
KERNEL_LIBRARIES = {"flash_attn": "flash-attn", "flashinfer": "flashinfer-python", "vllm": "vllm",
                    "sgl_kernel": "sgl-kernel", "deep_gemm": "deep-gemm"}


def require_torch():
    """Import torch, or raise a FrontierError that says how to install it."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise FrontierError("profiling needs PyTorch, which is not installed: "
                            "pip install 'frontier-calib[profiling]' (or the torch build for your CUDA); "
                            "--dry-run works without it") from None
    return torch


def resolve_device(torch, device: str) -> str:
    """'cuda' or 'cpu'; raises when CUDA was asked for but is not usable."""
    if device not in ("cuda", "cpu"):
        raise FrontierError(f"--device must be cuda or cpu, got '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise FrontierError("--device cuda: no CUDA device is visible to torch "
                            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); "
                            "use --device cpu --tiny to test the pipeline")
    return device


def detect_gpu_id(torch, device: str, requested: str | None) -> str:
    """GPU id for the table layout: ``--gpu`` if given (validated), 'cpu' on the CPU, else detected."""
    if device == "cpu":
        if requested not in (None, "cpu"):
            raise FrontierError(f"--gpu {requested} with --device cpu: CPU tables are stored under 'cpu'")
        return "cpu"
    if requested:
        return get_gpu(requested).name
    name = torch.cuda.get_device_name()
    gid = gpu_from_device_name(name)
    if gid is None:
        raise FrontierError(f"cannot map CUDA device '{name}' to a known GPU id; pass --gpu "
                            "(and add its spec to frontier_calib/hardware.py)")
    return gid


def engine_version(engine: str, explicit: str | None, torch=None) -> str:
    """The version recorded in ``engine_version``: explicit, torch's for 'torch', else the package's."""
    if explicit:
        return explicit
    if engine == "torch" and torch is not None:
        return str(torch.__version__)
    try:
        return importlib.metadata.version(engine)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def library_versions() -> dict[str, str]:
    """Versions of optional kernel libraries that are importable (metadata only)."""
    out = {}
    for mod, dist in KERNEL_LIBRARIES.items():
        try:
            out[mod] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def nvidia_smi() -> dict[str, str]:
    """Driver, clocks and power limit from ``nvidia-smi`` (best effort; {} when unavailable)."""
    fields = ["name", "driver_version", "clocks.sm", "clocks.max.sm", "clocks.mem", "clocks.max.mem",
              "power.limit", "temperature.gpu", "persistence_mode"]
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    line = out.strip().splitlines()[0] if out.strip() else ""
    values = [v.strip() for v in line.split(",")]
    return dict(zip(fields, values)) if len(values) == len(fields) else {}


def collect_metadata(torch, device: str, gpu_id: str) -> dict:
    """What a reader needs to trust (or distrust) the numbers: hardware, software, clocks."""
    meta = {
        "collected_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device, "gpu": gpu_id, "host_platform": platform.platform(),
        "python": platform.python_version(), "torch": str(torch.__version__),
        "torch_cuda": torch.version.cuda, "libraries": library_versions(),
    }
    try:
        meta["frontier_calib"] = importlib.metadata.version("frontier-calib")
    except importlib.metadata.PackageNotFoundError:
        pass
    if device == "cuda":
        idx = torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        meta.update({
            "gpu_name": torch.cuda.get_device_name(idx),
            "compute_capability": f"{props.major}.{props.minor}",
            "gpu_memory_bytes": int(props.total_memory), "sm_count": int(props.multi_processor_count),
            "cudnn": torch.backends.cudnn.version(), "nvidia_smi": nvidia_smi(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        })
    else:
        meta.update({"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                     "note": CPU_NOTE})
    return meta
