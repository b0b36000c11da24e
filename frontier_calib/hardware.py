"""GPU and interconnect specifications: the one place for these facts.

Units: FLOP/s, bytes/s, bytes, seconds. Bandwidths are per GPU and one direction.
Figures are the vendors' dense (no sparsity) tensor-core peaks and datasheet bandwidths;
the profile tables, not these numbers, carry the achieved performance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dtypes import COMPUTE_DTYPE, normalize_dtype
from .errors import FrontierError


@dataclass(frozen=True)
class GPUSpec:
    name: str                      #: canonical id, e.g. ``h100_sxm``
    marketing_name: str
    sm_count: int                  #: streaming multiprocessors (for wave quantisation)
    memory_bytes: float            #: HBM capacity, bytes
    hbm_bandwidth: float           #: HBM bytes/s
    peak_flops: dict = field(default_factory=dict)  #: compute dtype -> dense FLOP/s
    gpus_per_node: int = 8
    nvlink_bandwidth: float = 450e9   #: intra-node bytes/s per GPU, one direction
    network_bandwidth: float = 50e9   #: inter-node (RDMA) bytes/s per GPU, one direction
    network_latency_s: float = 10e-6  #: inter-node point-to-point latency, seconds
    nvlink_latency_s: float = 3e-6    #: intra-node point-to-point latency, seconds
    l2_bytes: float = 50e6

    def flops(self, dtype: str) -> float:
        """Dense tensor-core FLOP/s for a kernel running on ``dtype`` (falls back to bf16)."""
        compute = COMPUTE_DTYPE[normalize_dtype(dtype)]
        return self.peak_flops.get(compute, self.peak_flops["bf16"])


GPUS: dict[str, GPUSpec] = {
    "a100_sxm": GPUSpec(
        "a100_sxm", "NVIDIA A100-SXM4-80GB", sm_count=108, memory_bytes=80 * 2**30,
        hbm_bandwidth=2.039e12, peak_flops={"bf16": 312e12, "int8": 624e12},
        nvlink_bandwidth=300e9, network_bandwidth=25e9, l2_bytes=40e6),
    "h100_sxm": GPUSpec(
        "h100_sxm", "NVIDIA H100 80GB HBM3", sm_count=132, memory_bytes=80 * 2**30,
        hbm_bandwidth=3.35e12, peak_flops={"bf16": 989e12, "fp8": 1979e12, "int8": 1979e12},
        nvlink_bandwidth=450e9, network_bandwidth=50e9),
    "h200_sxm": GPUSpec(
        "h200_sxm", "NVIDIA H200", sm_count=132, memory_bytes=141 * 2**30,
        hbm_bandwidth=4.8e12, peak_flops={"bf16": 989e12, "fp8": 1979e12, "int8": 1979e12},
        nvlink_bandwidth=450e9, network_bandwidth=50e9),
    "b200_sxm": GPUSpec(
        "b200_sxm", "NVIDIA B200", sm_count=148, memory_bytes=180 * 2**30,
        hbm_bandwidth=8.0e12,
        peak_flops={"bf16": 2250e12, "fp8": 4500e12, "int8": 4500e12, "fp4": 9000e12},
        nvlink_bandwidth=900e9, network_bandwidth=50e9, l2_bytes=126e6),
    # Not a GPU: lets profiles measured with `frontier-calib profile --device cpu` be fitted, so the
    # profile -> fit -> predict pipeline is testable without a GPU. Its numbers mean nothing for serving.
    "cpu": GPUSpec(
        "cpu", "host CPU (pipeline testing only)", sm_count=2, memory_bytes=16 * 2**30,
        hbm_bandwidth=20e9, peak_flops={"bf16": 2e11, "fp8": 2e11, "int8": 2e11},
        gpus_per_node=1, nvlink_bandwidth=10e9, network_bandwidth=1e9, l2_bytes=8e6),
}

#: spellings seen in the wild -> canonical id
_GPU_ALIASES = {
    "h100": "h100_sxm", "h100_sxm5": "h100_sxm", "nvidia h100 80gb hbm3": "h100_sxm",
    "h200": "h200_sxm", "nvidia h200": "h200_sxm", "a100": "a100_sxm",
    "a100_sxm4": "a100_sxm", "nvidia a100-sxm4-80gb": "a100_sxm", "b200": "b200_sxm",
}


def get_gpu(name: str) -> GPUSpec:
    """Look up a GPU by id (``h100_sxm``) or common alias (``H100``)."""
    key = str(name).strip().lower()
    key = _GPU_ALIASES.get(key, key)
    if key not in GPUS:
        raise FrontierError(f"unknown GPU '{name}'; known: {', '.join(sorted(GPUS))} "
                            "(add one in frontier_calib/hardware.py)")
    return GPUS[key]


def gpu_from_device_name(device_name: str) -> str | None:
    """Best-effort map from a CUDA device name (``torch.cuda.get_device_name``) to a GPU id."""
    low = device_name.lower()
    for gid, spec in GPUS.items():
        if spec.marketing_name.lower() in low:
            return gid
    for token, gid in (("h200", "h200_sxm"), ("h100", "h100_sxm"), ("a100", "a100_sxm"), ("b200", "b200_sxm")):
        if token in low:
            return gid
    return None
