"""GPU and interconnect specifications: the one place for these facts.

Units: FLOP/s, bytes/s, bytes, seconds. Bandwidths are per GPU and one direction.
Figures are the vendors' dense (no sparsity) tensor-core peaks and datasheet bandwidths;
the profile tables, not these numbers, carry the achieved performance. Where aiconfigurator-core
(``aiconfigurator_core/systems/<gpu>.yaml``) states a figure, it is used (``tests/test_hardware_gpus.py``
checks that they agree); each entry names its other sources.

Scale-up domain: what the simulator calls a *node* (``gpus_per_node``) is the set of GPUs one
tensor/expert-parallel group reaches over ``nvlink_bandwidth``: an 8-GPU HGX board, or a whole NVL72
rack (72 GPUs over NVLink switches, although a tray holds 4: ``gpus_per_tray``). GPUs without NVLink
(``intra_node_link="pcie"``) talk over PCIe inside a node; for them ``nvlink_bandwidth`` and
``nvlink_latency_s`` hold the PCIe figures, so every collective formula stays one formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dtypes import COMPUTE_DTYPE, FP4_TENSOR_CORE_DTYPES, normalize_dtype
from .errors import FrontierError

INTRA_NODE_LINKS = ("nvlink", "pcie")


@dataclass(frozen=True)
class GPUSpec:
    name: str                      #: canonical id, e.g. ``h100_sxm``
    marketing_name: str            #: the CUDA device name (``torch.cuda.get_device_name``)
    sm_count: int                  #: streaming multiprocessors (for wave quantisation)
    memory_bytes: float            #: HBM (or GDDR) capacity, bytes
    hbm_bandwidth: float           #: HBM (or GDDR) bytes/s
    peak_flops: dict = field(default_factory=dict)  #: compute dtype -> dense FLOP/s ('fp4': FP4 tensor cores)
    gpus_per_node: int = 8         #: GPUs of one scale-up domain (NVLink, or PCIe without NVLink); NVL72: 72
    nvlink_bandwidth: float = 450e9   #: intra-node bytes/s per GPU, one direction (PCIe figure when no NVLink)
    network_bandwidth: float = 50e9   #: inter-node (RDMA) bytes/s per GPU, one direction
    network_latency_s: float = 10e-6  #: inter-node point-to-point latency, seconds
    nvlink_latency_s: float = 3e-6    #: intra-node point-to-point latency, seconds (PCIe when no NVLink)
    l2_bytes: float = 50e6
    intra_node_link: str = "nvlink"   #: 'nvlink' or 'pcie' (no NVLink: collectives cross PCIe)
    gpus_per_tray: int | None = None  #: GPUs per physical host/tray when smaller than the node (NVL72: 4)
    sm_arch: int = 0                  #: CUDA compute capability x 10 where a kernel choice depends on it (90: Hopper
                                      #: sm_90, 100: sm_100)

    def __post_init__(self):
        if self.intra_node_link not in INTRA_NODE_LINKS:
            raise FrontierError(f"GPU '{self.name}': intra_node_link must be one of {INTRA_NODE_LINKS}")

    def flops(self, dtype: str) -> float:
        """Dense tensor-core FLOP/s for a kernel running on ``dtype`` (falls back to bf16)."""
        compute = COMPUTE_DTYPE[normalize_dtype(dtype)]
        return self.peak_flops.get(compute, self.peak_flops["bf16"])

    @property
    def has_fp4(self) -> bool:
        """FP4 tensor cores (Blackwell): NVFP4/MXFP4 GEMMs run natively, not as weight-only kernels."""
        return "fp4" in self.peak_flops

    @property
    def has_trtllm_gen_kernels(self) -> bool:
        """Data-centre Blackwell (sm_100 / sm_103): TensorRT-LLM's trtllm-gen attention kernels run here
        (``isSMCompatible`` in cpp/tensorrt_llm/kernels/trtllmGenKernels/fmha/fmhaKernels.h)."""
        return self.sm_arch in (100, 103)

    def check_dtype(self, dtype: str) -> str:
        """The canonical ``dtype``, or a one-line error when it needs FP4 tensor cores this GPU lacks."""
        d = normalize_dtype(dtype)
        if d in FP4_TENSOR_CORE_DTYPES and not self.has_fp4:
            fp4 = ", ".join(g for g, s in GPUS.items() if s.has_fp4)
            raise FrontierError(f"{d} needs FP4 tensor cores, which {self.name} lacks (they are on: {fp4}); "
                                "use fp8, or mxfp4 (weight-only, w4a16) for MXFP4 checkpoints")
        return d

    @property
    def nvlink_domain(self) -> int:
        """GPUs one GPU reaches over NVLink, itself included (1 for PCIe-only cards)."""
        return self.gpus_per_node if self.intra_node_link == "nvlink" else 1

    def check_nvlink_domain(self, n: int) -> int:
        """``n`` if one NVLink domain of ``n`` GPUs can be built from this GPU, else a one-line error.

        An NVLink domain cannot be wider than the hardware's (8 GPUs of an HGX board, 72 of an NVL72 rack),
        is made of whole trays (NVL72: 4-GPU trays, so 36 for an NVL36 half rack), and does not exist on
        PCIe-only cards (``n`` must be 1 there)."""
        if self.intra_node_link != "nvlink":
            if n != 1:
                raise FrontierError(f"{self.name} has no NVLink (its GPUs talk over PCIe): nvlink_domain must be 1; "
                                    "give the GPUs of one server as gpus_per_node")
            return n
        if n > self.gpus_per_node:
            wider = ", ".join(f"{g} ({s.gpus_per_node})" for g, s in GPUS.items()
                              if s.intra_node_link == "nvlink" and s.gpus_per_node > self.gpus_per_node)
            raise FrontierError(f"{self.name} reaches at most {self.gpus_per_node} GPUs over NVLink, not {n}"
                                + (f"; rack-scale NVLink domains: {wider}" if wider else ""))
        if self.tray_size < self.gpus_per_node and n % self.tray_size:
            raise FrontierError(f"an NVLink domain of {self.name} is made of whole {self.tray_size}-GPU trays: "
                                f"{n} is not a multiple of {self.tray_size}")
        return n

    @property
    def tray_size(self) -> int:
        """GPUs per physical host/tray."""
        return self.gpus_per_tray or self.gpus_per_node


_GiB = 2**30

GPUS: dict[str, GPUSpec] = {
    "a100_sxm": GPUSpec(
        "a100_sxm", "NVIDIA A100-SXM4-80GB", sm_count=108, memory_bytes=80 * _GiB,
        hbm_bandwidth=2.039e12, peak_flops={"bf16": 312e12, "int8": 624e12},
        nvlink_bandwidth=300e9, network_bandwidth=25e9, l2_bytes=40e6),
    "h100_sxm": GPUSpec(
        "h100_sxm", "NVIDIA H100 80GB HBM3", sm_count=132, memory_bytes=80 * _GiB,
        hbm_bandwidth=3.35e12, peak_flops={"bf16": 989e12, "fp8": 1979e12, "int8": 1979e12},
        nvlink_bandwidth=450e9, network_bandwidth=50e9, sm_arch=90),
    # H800 SXM5: the H100 SXM5 die and memory (132 SMs, 80 GB HBM3 at 3.35 TB/s, same tensor peaks) with
    # NVLink cut to 400 GB/s total (H800 datasheet), i.e. 200 GB/s per direction (H100: 900 / 450).
    "h800_sxm": GPUSpec(
        "h800_sxm", "NVIDIA H800", sm_count=132, memory_bytes=80 * _GiB,
        hbm_bandwidth=3.35e12, peak_flops={"bf16": 989e12, "fp8": 1979e12, "int8": 1979e12},
        nvlink_bandwidth=200e9, network_bandwidth=50e9, sm_arch=90),
    "h200_sxm": GPUSpec(
        "h200_sxm", "NVIDIA H200", sm_count=132, memory_bytes=141 * _GiB,
        hbm_bandwidth=4.8e12, peak_flops={"bf16": 989e12, "fp8": 1979e12, "int8": 1979e12},
        nvlink_bandwidth=450e9, network_bandwidth=50e9, sm_arch=90),
    # B200 (HGX/DGX B200): aic b200_sxm.yaml (NVIDIA Blackwell datasheet): 180 GiB HBM3e at 7.7 TB/s (HGX
    # B200: 62 TB/s over 8 GPUs), 2.25 PF bf16, 4.5 PF fp8/int8, 9 PF fp4 dense; NVLink 5 1.8 TB/s total.
    # 148 SMs (of the die pair's 160), 126 MB L2 (CUDA deviceQuery). DGX B200: one 400 Gb/s ConnectX-7 per GPU.
    "b200_sxm": GPUSpec(
        "b200_sxm", "NVIDIA B200", sm_count=148, memory_bytes=180 * _GiB,
        hbm_bandwidth=7.7e12,
        peak_flops={"bf16": 2250e12, "fp8": 4500e12, "int8": 4500e12, "fp4": 9000e12},
        nvlink_bandwidth=900e9, network_bandwidth=50e9, l2_bytes=126e6, sm_arch=100),
    # B300 (HGX B300, Blackwell Ultra, sm_103): aic b300_sxm.yaml (Blackwell Ultra datasheet): 275,040 MiB
    # HBM3e (nvidia-smi) at 7.75 TB/s, 2.25 PF bf16, 4.5 PF fp8, 14 PF fp4 dense; int8 cut to 153.5 TOPS.
    # Same NVLink 5 as B200; one 800 Gb/s ConnectX-8 per GPU. SMs/L2 as B200 (the Blackwell Ultra blog's
    # 160 SMs is the full die pair).
    "b300_sxm": GPUSpec(
        "b300_sxm", "NVIDIA B300 SXM6 AC", sm_count=148, memory_bytes=275040 * 2**20,
        hbm_bandwidth=7.75e12,
        peak_flops={"bf16": 2250e12, "fp8": 4500e12, "int8": 153.5e12, "fp4": 14000e12},
        nvlink_bandwidth=900e9, network_bandwidth=100e9, l2_bytes=126e6, sm_arch=103),
    # GB200 NVL72: 72 Blackwell GPUs in one NVLink domain (18 compute trays x 4 GPUs, 9 NVLink switch trays),
    # 1.8 TB/s NVLink 5 per GPU to every other GPU of the rack. aic gb200.yaml: 189,471 MiB HBM3e (nvidia-smi)
    # at 8 TB/s, 2.5 PF bf16, 5 PF fp8/int8, 10 PF fp4 dense. One 400 Gb/s ConnectX-7 per GPU between racks
    # (GB200 NVL72 reference design).
    "gb200": GPUSpec(
        "gb200", "NVIDIA GB200", sm_count=148, memory_bytes=189471 * 2**20,
        hbm_bandwidth=8.0e12,
        peak_flops={"bf16": 2500e12, "fp8": 5000e12, "int8": 5000e12, "fp4": 10000e12},
        gpus_per_node=72, gpus_per_tray=4, nvlink_bandwidth=900e9, network_bandwidth=50e9,
        l2_bytes=126e6, sm_arch=100),
    # GB300 NVL72 (Blackwell Ultra): same rack topology as GB200 NVL72. aic gb300.yaml: 284,208 MiB HBM3e
    # (nvidia-smi) at 8 TB/s, 2.5 PF bf16, 5 PF fp8, 15 PF fp4 dense, int8 165 TOPS; one 800 Gb/s
    # ConnectX-8 per GPU between racks.
    "gb300": GPUSpec(
        "gb300", "NVIDIA GB300", sm_count=148, memory_bytes=284208 * 2**20,
        hbm_bandwidth=8.0e12,
        peak_flops={"bf16": 2500e12, "fp8": 5000e12, "int8": 165e12, "fp4": 15000e12},
        gpus_per_node=72, gpus_per_tray=4, nvlink_bandwidth=900e9, network_bandwidth=100e9,
        l2_bytes=126e6, sm_arch=103),
    # RTX PRO 6000 Blackwell Server Edition (GB202, sm_120): no NVLink; 8 cards per server talk over PCIe
    # Gen5 x16 (64 GB/s per direction). aic rtx_pro_6000_server.yaml: 97,887 MiB GDDR7 (nvidia-smi) at
    # 1.792 TB/s; dense tensor peaks scaled to the observed 2430 MHz: 467.8 TF bf16, 935.6 TF fp8/int8,
    # 1871.2 TF fp4. 188 SMs (24,064 CUDA cores), 128 MiB L2 (NVIDIA RTX Blackwell architecture whitepaper).
    # Inter-node: aic's 400 Gb/s placeholder. PCIe P2P latency: a few us above NVLink's (the measured
    # collective tables carry the real figures).
    "rtx_pro_6000_server": GPUSpec(
        "rtx_pro_6000_server", "NVIDIA RTX PRO 6000 Blackwell Server Edition", sm_count=188,
        memory_bytes=97887 * 2**20, hbm_bandwidth=1.792e12,
        peak_flops={"bf16": 467.8e12, "fp8": 935.6e12, "int8": 935.6e12, "fp4": 1871.2e12},
        intra_node_link="pcie", nvlink_bandwidth=64e9, nvlink_latency_s=5e-6, network_bandwidth=50e9,
        l2_bytes=128 * 2**20),
    # L40S (AD102, sm_89): no NVLink, PCIe Gen4 x16 (32 GB/s per direction). aic l40s.yaml (L40S datasheet):
    # 46,068 MiB GDDR6 at 864 GB/s, 362.05 TF bf16, 733 TF fp8/int8 dense; no FP4. 142 SMs, 96 MB L2.
    "l40s": GPUSpec(
        "l40s", "NVIDIA L40S", sm_count=142, memory_bytes=46068 * 2**20, hbm_bandwidth=864e9,
        peak_flops={"bf16": 362.05e12, "fp8": 733e12, "int8": 733e12},
        intra_node_link="pcie", nvlink_bandwidth=32e9, nvlink_latency_s=5e-6, network_bandwidth=50e9,
        l2_bytes=96 * 2**20),
    # Not a GPU: lets profiles measured with `frontier-calib profile --device cpu` be fitted, so the
    # profile -> fit -> predict pipeline is testable without a GPU. Its numbers mean nothing for serving.
    "cpu": GPUSpec(
        "cpu", "host CPU (pipeline testing only)", sm_count=2, memory_bytes=16 * _GiB,
        hbm_bandwidth=20e9, peak_flops={"bf16": 2e11, "fp8": 2e11, "int8": 2e11},
        gpus_per_node=1, nvlink_bandwidth=10e9, network_bandwidth=1e9, l2_bytes=8e6),
}

#: spellings seen in the wild -> canonical id (matched after lower-casing and folding '-'/'_'/spaces)
_GPU_ALIASES = {
    "h100": "h100_sxm", "h100 sxm": "h100_sxm", "h100 sxm5": "h100_sxm", "nvidia h100 80gb hbm3": "h100_sxm",
    "h800": "h800_sxm", "h800 sxm": "h800_sxm", "h800 sxm5": "h800_sxm", "nvidia h800": "h800_sxm",
    "h200": "h200_sxm", "h200 sxm": "h200_sxm", "nvidia h200": "h200_sxm",
    "a100": "a100_sxm", "a100 sxm": "a100_sxm", "a100 sxm4": "a100_sxm", "nvidia a100 sxm4 80gb": "a100_sxm",
    "b200": "b200_sxm", "b200 sxm": "b200_sxm", "hgx b200": "b200_sxm", "dgx b200": "b200_sxm",
    "nvidia b200": "b200_sxm",
    "b300": "b300_sxm", "b300 sxm": "b300_sxm", "b300 sxm6": "b300_sxm", "hgx b300": "b300_sxm",
    "dgx b300": "b300_sxm", "nvidia b300": "b300_sxm", "nvidia b300 sxm6 ac": "b300_sxm",
    "gb200 nvl72": "gb200", "gb200nvl72": "gb200", "nvidia gb200": "gb200",
    "gb300 nvl72": "gb300", "gb300nvl72": "gb300", "nvidia gb300": "gb300",
    "rtx pro 6000": "rtx_pro_6000_server", "rtxpro6000": "rtx_pro_6000_server",
    "rtx pro 6000 server": "rtx_pro_6000_server", "rtx pro 6000 blackwell": "rtx_pro_6000_server",
    "rtx pro 6000 blackwell server edition": "rtx_pro_6000_server",
    "nvidia rtx pro 6000 blackwell server edition": "rtx_pro_6000_server", "rtx6000 pro": "rtx_pro_6000_server",
    "rtx 6000 pro": "rtx_pro_6000_server", "pro6000": "rtx_pro_6000_server",
    "nvidia l40s": "l40s", "l40 s": "l40s",
}


def _fold(name: str) -> str:
    """Lower case, '-', '_' and runs of blanks as one space: ``RTX-PRO_6000`` -> ``rtx pro 6000``."""
    return " ".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


def get_gpu(name: str) -> GPUSpec:
    """Look up a GPU by id (``h100_sxm``) or common alias (``H100``, ``RTX PRO 6000``, ``GB200 NVL72``)."""
    key = str(name).strip().lower()
    if key in GPUS:
        return GPUS[key]
    folded = _fold(name)
    gid = _GPU_ALIASES.get(folded) or next((g for g in GPUS if _fold(g) == folded), None)
    if gid is None:
        raise FrontierError(f"unknown GPU '{name}'; known: {', '.join(sorted(GPUS))} "
                            "(add one in frontier_calib/hardware.py)")
    return GPUS[gid]


#: substrings of CUDA device names, most specific first (GB200 before B200, H800 before H100)
_DEVICE_TOKENS = (("gb300", "gb300"), ("gb200", "gb200"), ("b300", "b300_sxm"), ("b200", "b200_sxm"),
                  ("rtx pro 6000", "rtx_pro_6000_server"), ("l40s", "l40s"), ("h800", "h800_sxm"),
                  ("h200", "h200_sxm"), ("h100", "h100_sxm"), ("a100", "a100_sxm"))


def gpu_from_device_name(device_name: str) -> str | None:
    """Best-effort map from a CUDA device name (``torch.cuda.get_device_name``) to a GPU id."""
    low = _fold(device_name)
    for gid, spec in GPUS.items():
        if _fold(spec.marketing_name) == low:
            return gid
    for token, gid in _DEVICE_TOKENS:
        if token in low:
            return gid
    return None
