"""Co-located deployments (``mode: colocated``, the default): every replica runs prefill and decode.

A co-located deployment (all keys but ``model`` and ``gpu`` optional)::

    model: mistralai/Mixtral-8x7B-v0.1   # preset name/HF id, or a path to a config.json
    gpu: h100_sxm
    engine: vllm                         # whose kernels and scheduling policy: vllm | sglang | trtllm
    dtype: bf16                          # GEMM format: bf16 | fp8 | fp8_block | ...
    moe_dtype: bf16                      # routed-expert format (default: dtype)
    kv_dtype: bf16                       # KV-cache format
    replicas: 1
    parallel: {tp: 2, pp: 1, ep: 1, attention_dp: 1}   # moe_tp defaults to tp * attention_dp / ep
    scheduler: {max_num_batched_tokens: 2048, max_num_seqs: 128, max_model_len: 4096,
                enable_prefix_caching: true, gpu_memory_utilization: 0.9, block_size: 16}
    router: round_robin                  # round_robin | least_outstanding | prefix_affinity
    routing: power_law_1.01              # MoE expert load: balanced | power_law_<alpha>
    overheads: {step_s: 0.002, per_seq_s: 5.0e-6, prefill_step_s: 0.001, frontend_s: 0.0}   # seconds
    calibration: calib.yaml              # overheads fitted by `frontier-calib calibrate` (overheads: wins)
    engine_options: {cuda_graph: true, overlap: true}   # eager mode / CPU-GPU overlap (default: the engine's)
    speculative: {method: mtp, num_draft_tokens: 1, acceptance: 0.8}   # mtp | eagle | ngram (cost/speculative.py)
    cluster: {gpus_per_node: 8, nodes: 1}    # or {nvlink_domain: 72} on a GB200/GB300 NVL72 rack

See docs/deployments.md for every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..cost.memory import MemoryPlan
from ..cost.worker import Overheads, WorkerSpec
from ..engines import DEFAULT_ENGINE
from ..errors import InputError
from ..sim.config import SchedulerConfig
from .base import DeploymentMode, register_mode
from .build import cost_model, rank_replica_specs, speculative_cost
from .fields import (ROUTERS, parse_cluster, parse_cluster_link, parse_dtypes, parse_engine, parse_engine_options,
                     parse_int, parse_model_gpu, parse_overheads, parse_parallel, parse_profiles, parse_routing,
                     parse_scheduler, parse_speculative_section, routing_fields)

TOP_KEYS = {"model", "gpu", "engine", "dtype", "moe_dtype", "kv_dtype", "replicas", "parallel", "scheduler",
            "router", "routing", "overheads", "calibration", "cluster", "profiles", "name", "mode", "description",
            "tbo", "engine_options", "speculative"}


@dataclass
class Deployment:
    """A validated co-located deployment."""

    name: str
    worker: WorkerSpec
    scheduler: SchedulerConfig
    replicas: int
    router: str
    memory: MemoryPlan
    gpu_memory_utilization: float
    gpus_per_node: int
    nodes: int | None
    profiles: str | None = None
    source: str = ""
    raw: dict = field(default_factory=dict)
    speculative: object = None   #: SpeculativeSpec (cost/speculative.py) or None

    mode = "colocated"

    @property
    def total_gpus(self) -> int:
        return self.replicas * self.worker.gpus

    @property
    def entry_overheads(self) -> Overheads:
        """The overheads of the workers that receive new requests (their front-end latency applies)."""
        return self.worker.overheads

    @property
    def frontend_s(self) -> float:
        """Seconds from a client sending a request to the scheduler seeing it, before per-token tokenization."""
        return self.entry_overheads.frontend_s

    def describe(self) -> str:
        w = self.worker
        return (f"{self.name}: {w.model.name} on {self.replicas} x {w.gpus} {w.gpu} ({w.engine}, dtype {w.dtype}, "
                f"tp={w.tp} pp={w.pp} ep={w.ep} attention_dp={w.attention_dp}); "
                f"KV capacity {self.memory.kv_tokens:,} tokens ({self.memory.kv_blocks:,} blocks) per rank"
                + (f"; speculative: {self.speculative.describe()}" if self.speculative is not None else ""))


def colocated_from_dict(raw: dict, *, source: str = "<dict>", base_dir: Path | None = None) -> Deployment:
    """Validate a co-located deployment mapping (errors name the file and the field)."""
    src = source
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}", path=src, field=unknown[0], fix=f"allowed: {sorted(TOP_KEYS)}")
    model, spec = parse_model_gpu(raw, src, base_dir)
    engine = parse_engine(raw, DEFAULT_ENGINE, src)
    dtypes = parse_dtypes(raw, model, src, spec=spec)
    gpus_per_node, nodes = parse_cluster(raw, spec, src)
    par = parse_parallel(raw, model, gpus_per_node, src, sm_count=spec.sm_count)
    replicas = parse_int(raw, "replicas", 1, src, None)
    routing = parse_routing(raw, "power_law_1.01", src, model=model, base_dir=base_dir)
    overheads = parse_overheads(raw, engine, spec.name, src, base_dir)
    worker = WorkerSpec(model=model, gpu=spec.name, engine=engine, dtype=dtypes["dtype"],
                        moe_dtype=dtypes["moe_dtype"], kv_dtype=dtypes["kv_dtype"], **routing_fields(routing),
                        overheads=overheads, gpus_per_node=gpus_per_node, node_link=parse_cluster_link(raw, src),
                        **parse_engine_options(raw, src), **par)
    if nodes is not None and replicas * worker.gpus > nodes * gpus_per_node:
        raise InputError(f"{replicas} replicas x {worker.gpus} GPUs = {replicas * worker.gpus} GPUs, but the "
                         f"cluster has {nodes} x {gpus_per_node}", path=src, field="replicas")
    sched, memory, util = parse_scheduler(raw, worker, src)
    speculative = parse_speculative_section(raw, sched, src)
    router = str(raw.get("router", "round_robin"))
    if router not in ROUTERS:
        raise InputError(f"unknown router '{router}'", path=src, field="router", fix=f"one of {ROUTERS}")
    profiles = parse_profiles(raw, src, base_dir)
    name = str(raw.get("name") or Path(source).stem)
    return Deployment(name=name, worker=worker, scheduler=sched, replicas=replicas, router=router, memory=memory,
                      gpu_memory_utilization=util, gpus_per_node=gpus_per_node, nodes=nodes, profiles=profiles,
                      source=source, raw=raw, speculative=speculative)


def build_colocated_replicas(dep: Deployment, *, progress: bool = False):
    """(replica specs, cost model) of a co-located deployment: replicas x attention_dp schedulers sharing one cost
    model."""
    cost = cost_model(dep.worker, dep.scheduler, dep.speculative, dep.profiles, progress)
    cost = speculative_cost(cost, dep.speculative, dep.worker.model)
    return rank_replica_specs(dep.replicas, dep.worker.attention_dp, dep.scheduler, cost, "r",
                              speculative=dep.speculative), cost


COLOCATED = register_mode(DeploymentMode(
    name="colocated", description="every replica runs prefill and decode (the default)",
    parse=colocated_from_dict, build=build_colocated_replicas, deployment=Deployment))
