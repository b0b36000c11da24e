"""Attention/FFN-disaggregated deployments (``mode: af``)::

    mode: af
    model: Qwen3-30B-A3B
    gpu: h100_sxm
    engine: vllm
    attention:                           # attention workers: hold the KV cache, schedule prefill and decode
      workers: 2
      parallel: {tp: 2, attention_dp: 1}
      scheduler: {max_num_batched_tokens: 2048, max_num_seqs: 256}
    ffn:                                 # FFN/expert workers: run every layer's MLP/MoE for all attention ranks
      workers: 1
      parallel: {ep: 4, moe_tp: 1}       # GPUs per FFN worker = ep x moe_tp
    micro_batches: 2                     # ping-pong micro-batches per iteration
    link: {kind: nvlink, bandwidth_gbps: 3600, latency_us: 3}   # per GPU, one direction; default from the GPU
    router: round_robin

Every attention-DP rank of every attention worker is a scheduler of its own (``a<i>[.dp<j>]``); they share one
:class:`~frontier_calib.cost.af.AFCost`. Attention GPUs hold attention weights, embeddings, lm_head and the KV
cache; FFN GPUs hold the MLP/expert weights (and no KV). Scope: decode-heavy AF where attention workers also run
the prefill chunks of their requests through the same ping-pong pipeline. See docs/deployments.md (AF section).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..attention import kv_bytes_per_token, state_bytes_per_sequence
from ..cost.memory import NCCL_BYTES, NCCL_BYTES_MANY, RESERVED_BYTES, MemoryPlan
from ..cost.worker import WorkerSpec
from ..dtypes import DTYPE_BYTES
from ..engines import DEFAULT_ENGINE
from ..errors import FrontierError, InputError
from ..hardware import get_gpu
from ..sim.config import SchedulerConfig
from .base import DeploymentMode, register_mode
from .build import cost_model, rank_replica_specs, speculative_cost, table_limits
from .fields import (ROUTERS, check_top_keys, parse_cluster, parse_cluster_link, parse_dtypes, parse_engine,
                     parse_engine_options, parse_int, parse_link, parse_model_gpu, parse_overheads, parse_parallel,
                     parse_profiles, parse_routing, parse_scheduler, parse_section, parse_speculative_section,
                     routing_fields)

AF_TOP_KEYS = {"mode", "model", "gpu", "engine", "dtype", "moe_dtype", "kv_dtype", "routing", "overheads",
               "calibration", "profiles", "name", "description", "attention", "ffn", "micro_batches", "link",
               "router", "cluster", "engine_options"}
ATTENTION_KEYS = {"workers", "parallel", "scheduler", "engine", "overheads", "calibration", "engine_options",
                  "speculative"}
FFN_KEYS = {"workers", "parallel"}
FFN_PARALLEL_KEYS = {"ep", "moe_tp", "tp"}
AF_LINK_KEYS = {"kind", "bandwidth_gbps", "bandwidth_bytes_s", "latency_us"}


def _dtype_bytes(worker: WorkerSpec, moe: bool) -> float:
    return DTYPE_BYTES.get(worker.moe_dtype if moe else worker.dtype, 2.0)


def attention_weight_bytes(worker: WorkerSpec) -> float:
    """Weights on one attention GPU: attention projections (sharded by tp), norms, embeddings and lm_head."""
    m = worker.model
    emb, head = m.embedding_params()
    emb_b = math.ceil(m.vocab_size / worker.tp) * m.hidden_size * 2.0
    layer = m.attention_params() / worker.tp * _dtype_bytes(worker, False) + 2 * m.hidden_size * 2.0
    return float(m.num_layers * layer + emb_b * (2 if head else 1) + m.hidden_size * 2.0)


def ffn_weight_bytes(worker: WorkerSpec, gpus: int) -> float:
    """Weights on one FFN GPU: dense MLPs and shared experts sharded over the worker's ``gpus``, routed experts
    split by ep (whole experts) and moe_tp, router replicated."""
    m = worker.model
    dense_b = _dtype_bytes(worker, False)
    b = m.num_dense_layers * m.dense_mlp_params() / gpus * dense_b if m.num_dense_layers else 0.0
    if m.is_moe:
        per = math.ceil(m.num_experts / worker.ep) * m.expert_params() / worker.moe_tp * _dtype_bytes(worker, True)
        per += m.num_shared_experts * m.expert_params() / gpus * dense_b + m.router_params() * 2.0
        b += m.num_moe_layers * per
    return float(b)


def plan_attention_memory(worker: WorkerSpec, *, gpu_memory_utilization: float = 0.9,
                          block_size: int = 16, max_seqs: int = 0) -> MemoryPlan:
    """KV capacity of one attention rank: plan_memory's rules with attention-only weights."""
    spec = get_gpu(worker.gpu)
    m = worker.model
    weights = attention_weight_bytes(worker)
    usable = spec.memory_bytes * gpu_memory_utilization
    reserved = RESERVED_BYTES + NCCL_BYTES.get(worker.tp * worker.attention_dp, NCCL_BYTES_MANY)
    per_token = kv_bytes_per_token(m, worker.kv_dtype, tp=worker.tp)
    state = state_bytes_per_sequence(m, tp=worker.tp)
    kv_free = usable - weights - reserved - state * max_seqs
    if kv_free <= per_token * block_size:
        raise FrontierError(f"{m.name} attention weights {weights / 2**30:.1f} GiB + reserved "
                            f"{reserved / 2**30:.1f} GiB leave no KV space on {worker.gpu} with tp={worker.tp}")
    tokens = int(kv_free // per_token)
    return MemoryPlan(spec.memory_bytes, usable, weights, reserved, per_token, tokens, tokens // block_size,
                      state, max_seqs)


@dataclass
class AFDeployment:
    """A validated attention/FFN-disaggregated deployment."""

    name: str
    worker: WorkerSpec            # the attention worker (what the replay summary names)
    ffn_worker: WorkerSpec        # the FFN worker (tp = its GPUs; ep, moe_tp; no attention-DP)
    scheduler: SchedulerConfig
    memory: MemoryPlan
    attention_workers: int
    ffn_workers: int
    ffn_gpus_per_worker: int
    micro_batches: int
    link_kind: str
    bandwidth_bytes_s: float      #: per GPU, one direction
    latency_s: float
    router: str
    gpu_memory_utilization: float
    gpus_per_node: int
    nodes: int | None
    ffn_weight_bytes: float = 0.0
    profiles: str | None = None
    source: str = ""
    raw: dict = field(default_factory=dict)
    speculative: object = None   #: attention workers' SpeculativeSpec (cost/speculative.py) or None

    mode = "af"

    @property
    def replicas(self) -> int:
        return self.attention_workers

    @property
    def attention_gpus(self) -> int:
        return self.attention_workers * self.worker.gpus

    @property
    def ffn_gpus(self) -> int:
        return self.ffn_workers * self.ffn_gpus_per_worker

    @property
    def total_gpus(self) -> int:
        return self.attention_gpus + self.ffn_gpus

    @property
    def entry_overheads(self):
        """The attention workers' overheads: requests enter there."""
        return self.worker.overheads

    @property
    def frontend_s(self) -> float:
        """Seconds from a client sending a request to an attention worker's scheduler seeing it."""
        return self.entry_overheads.frontend_s

    @property
    def ranks(self) -> int:
        return self.attention_workers * self.worker.attention_dp

    def describe(self) -> str:
        w, f = self.worker, self.ffn_worker
        return (f"{self.name}: {w.model.name} on {w.gpu}, AF: attention {self.attention_workers} x {w.gpus} GPUs "
                f"(tp={w.tp} attention_dp={w.attention_dp}, {w.engine}, KV {self.memory.kv_tokens:,} tokens per "
                f"rank); FFN {self.ffn_workers} x {self.ffn_gpus_per_worker} GPUs (ep={f.ep} moe_tp={f.moe_tp}); "
                f"{self.micro_batches} micro-batches; link {self.link_kind} {self.bandwidth_bytes_s / 1e9:g} GB/s "
                f"per GPU, {self.latency_s * 1e6:g} us")


def _link(raw: dict, spec, one_node: bool, src: str) -> tuple[str, float, float]:
    kind, bw, lat, _ = parse_link(raw, spec, one_node, src, AF_LINK_KEYS)
    return kind, bw, lat


def af_deployment_from_dict(raw: dict, *, source: str = "<dict>", base_dir: Path | None = None) -> AFDeployment:
    """Validate a ``mode: af`` mapping (errors name the file and the field, e.g. ``ffn.parallel.ep``)."""
    src = source
    check_top_keys(raw, AF_TOP_KEYS, "af", ("attention", "ffn"), src)
    for role in ("attention", "ffn"):
        if role not in raw:
            raise InputError("required section missing for mode: af", path=src, field=role)
    model, spec = parse_model_gpu(raw, src, base_dir)
    engine = parse_engine(raw, DEFAULT_ENGINE, src)
    dtypes = parse_dtypes(raw, model, src, spec=spec)
    routing = parse_routing(raw, "power_law_1.01", src, model=model, base_dir=base_dir)
    gpus_per_node, nodes = parse_cluster(raw, spec, src)

    # attention pool
    asec = parse_section(raw, "attention", ATTENTION_KEYS, src)
    aw = parse_int(asec, "workers", 1, src, "attention")
    a_engine = parse_engine(asec, engine, src, "attention")
    apar = parse_section(asec, "parallel", {"tp", "attention_dp"}, src, "attention.parallel")
    tp = parse_int(apar, "tp", 1, src, "attention.parallel")
    dp = parse_int(apar, "attention_dp", 1, src, "attention.parallel")
    par = parse_parallel({"parallel": {"tp": tp, "attention_dp": dp, "ep": 1, "moe_tp": tp * dp}}, model,
                         gpus_per_node, src, "attention")
    overheads = parse_overheads({**raw, **{k: asec[k] for k in ("overheads", "calibration") if k in asec}},
                                a_engine, spec.name, src, base_dir)
    options = {**parse_engine_options(raw, src), **parse_engine_options(asec, src, "attention")}
    worker = WorkerSpec(model=model, gpu=spec.name, engine=a_engine, dtype=dtypes["dtype"],
                        moe_dtype=dtypes["moe_dtype"], kv_dtype=dtypes["kv_dtype"], **routing_fields(routing),
                        overheads=overheads, gpus_per_node=gpus_per_node, node_link=parse_cluster_link(raw, src),
                        **options, **par)
    sched, memory, util = parse_scheduler(asec, worker, src, "attention", plan=plan_attention_memory)
    speculative = parse_speculative_section(asec, sched, src, "attention")

    # FFN pool
    fsec = parse_section(raw, "ffn", FFN_KEYS, src)
    fw = parse_int(fsec, "workers", 1, src, "ffn")
    fpar = parse_section(fsec, "parallel", FFN_PARALLEL_KEYS, src, "ffn.parallel")
    if model.is_moe:
        if "tp" in fpar:
            raise InputError("an MoE FFN pool is sized by ep and moe_tp (GPUs = ep x moe_tp)", path=src,
                             field="ffn.parallel.tp")
        ep, mtp = parse_int(fpar, "ep", 1, src, "ffn.parallel"), parse_int(fpar, "moe_tp", 1, src, "ffn.parallel")
        gpus = ep * mtp
        if model.num_experts % ep:
            raise InputError(f"ep={ep} does not divide {model.num_experts} experts", path=src, field="ffn.parallel.ep")
        if model.moe_intermediate_size % mtp:
            raise InputError(f"moe_tp={mtp} does not divide the expert intermediate size "
                             f"{model.moe_intermediate_size}", path=src, field="ffn.parallel.moe_tp")
    else:
        if "ep" in fpar or "moe_tp" in fpar:
            raise InputError(f"{model.name} is dense: size the FFN pool with tp", path=src, field="ffn.parallel")
        ep, mtp = 1, 1
        gpus = parse_int(fpar, "tp", 1, src, "ffn.parallel")
        if model.intermediate_size % gpus:
            raise InputError(f"tp={gpus} does not divide the MLP intermediate size {model.intermediate_size}",
                             path=src, field="ffn.parallel.tp")
    ffn_worker = WorkerSpec(model=model, gpu=spec.name, engine=a_engine, dtype=dtypes["dtype"],
                            moe_dtype=dtypes["moe_dtype"], kv_dtype=dtypes["kv_dtype"], **routing_fields(routing),
                            tp=gpus, ep=ep, moe_tp=mtp, attention_dp=1)
    fbytes = ffn_weight_bytes(ffn_worker, gpus)
    usable = spec.memory_bytes * util
    if fbytes + RESERVED_BYTES > usable:
        raise InputError(f"FFN weights {fbytes / 2**30:.1f} GiB per GPU + reserved {RESERVED_BYTES / 2**30:.1f} GiB "
                         f"exceed {usable / 2**30:.1f} GiB usable", path=src, field="ffn.parallel",
                         fix="raise ep (more FFN GPUs) or use a smaller moe_dtype")

    mb = parse_int(raw, "micro_batches", 1, src, None)
    total = aw * worker.gpus + fw * gpus
    if nodes is not None and total > nodes * gpus_per_node:
        raise InputError(f"attention {aw * worker.gpus} + FFN {fw * gpus} = {total} GPUs, but the cluster has "
                         f"{nodes} x {gpus_per_node}", path=src, field="cluster.nodes")
    kind, bw, lat = _link(raw, spec, total <= gpus_per_node, src)
    router = str(raw.get("router", "round_robin"))
    if router not in ROUTERS:
        raise InputError(f"unknown router '{router}'", path=src, field="router", fix=f"one of {ROUTERS}")
    return AFDeployment(name=str(raw.get("name") or Path(source).stem), worker=worker, ffn_worker=ffn_worker,
                        scheduler=sched, memory=memory, attention_workers=aw, ffn_workers=fw,
                        ffn_gpus_per_worker=gpus, micro_batches=mb, link_kind=kind, bandwidth_bytes_s=bw,
                        latency_s=lat, router=router, gpu_memory_utilization=util, gpus_per_node=gpus_per_node,
                        nodes=nodes, ffn_weight_bytes=fbytes, profiles=parse_profiles(raw, src, base_dir),
                        source=source, raw=raw, speculative=speculative)


def af_cost(dep: AFDeployment, attention_cm, ffn_cm):
    """The AFCost of one attention rank from the two component cost models."""
    from ..cost.af import AFCost, AttentionPart, FFNPart

    w = dep.worker
    # one attention rank sends through its tp GPUs; the FFN pool receives every rank's tokens through its GPUs
    bw = min(dep.bandwidth_bytes_s * w.tp, dep.bandwidth_bytes_s * dep.ffn_gpus / dep.ranks)
    return AFCost(AttentionPart(attention_cm), FFNPart(ffn_cm), layers=w.model.num_layers,
                  micro_batches=dep.micro_batches, ranks=dep.ranks, ffn_workers=dep.ffn_workers,
                  bytes_per_token=w.model.hidden_size * 2.0, bandwidth_bytes_s=bw, latency_s=dep.latency_s)


def build_af_replicas(dep: AFDeployment, *, progress: bool = False, costs: dict | None = None):
    """(replica specs, AFCost) of an AF deployment: one scheduler per attention-DP rank of every attention
    worker, all sharing one AFCost. ``costs``: {'attention': cm, 'ffn': cm} to use instead of building them."""
    from ..cost.cache import cost_model_for

    s = dep.scheduler
    if costs is None:
        max_tokens, _ = table_limits(s, dep.speculative)
        costs = {"attention": cost_model(dep.worker, s, dep.speculative, dep.profiles, progress),
                 # the FFN side only needs its token-op table: tiny attention grids
                 "ffn": cost_model_for(dep.ffn_worker,
                                       max_tokens=math.ceil(max_tokens * dep.ranks / dep.ffn_workers),
                                       max_seqs=1, max_model_len=2, profiles_root=dep.profiles, progress=progress)}
    cost = af_cost(dep, costs["attention"], costs["ffn"])
    # speculative: verify steps run the AF pipeline on k + 1 rows per sequence; the drafter's layers are priced
    # from the attention workers' co-located tables (a draft layer runs where the attention workers schedule)
    cost = speculative_cost(cost, dep.speculative, dep.worker.model, draft=costs["attention"])
    return rank_replica_specs(dep.attention_workers, dep.worker.attention_dp, s, cost, "a",
                              speculative=dep.speculative), cost


def af_summary(cost) -> dict:
    """Replay-summary entries of an AF deployment: per-pool utilisation and pipeline bubbles (cost/af.py)."""
    return {"af_pipeline": cost.pipeline_stats()}


AF = register_mode(DeploymentMode(
    name="af", description="attention/FFN disaggregation: attention workers ping-pong micro-batches with FFN workers",
    parse=af_deployment_from_dict, build=build_af_replicas, deployment=AFDeployment, summary=af_summary))

__all__ = ["AFDeployment", "af_deployment_from_dict", "build_af_replicas", "af_cost", "plan_attention_memory", "AF"]
