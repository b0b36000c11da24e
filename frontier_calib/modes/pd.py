"""Prefill/decode-disaggregated deployments (``mode: pd``): parse, validate, build simulator replicas.

::

    mode: pd
    model: DeepSeek-V3
    gpu: h200_sxm
    engine: sglang                       # shared; a pool may override engine, dtype, moe_dtype, routing, overheads
    dtype: fp8_block
    kv_dtype: bf16                       # the same in both pools (the KV moves as it is)
    prefill:
      workers: 1                         # prefill instances
      parallel: {tp: 8}
      scheduler: {max_num_batched_tokens: 16384, max_num_seqs: 64}
    decode:
      workers: 1
      parallel: {tp: 1, attention_dp: 8, ep: 8}
      scheduler: {max_num_batched_tokens: 256, max_num_seqs: 256}
    link: {kind: rdma, bandwidth_gbps: 400, latency_us: 10, transfer: whole}   # per GPU; default from the GPU
    router: {prefill: round_robin, decode: least_outstanding}
    ttft: decode                         # decode | prefill
    cluster: {gpus_per_node: 8, nodes: 2}

Each attention-DP rank of every worker is a scheduler of its own (named ``p<i>[.dp<j>]`` and ``d<i>[.dp<j>]``).
Each prefill scheduler sends its KV over a link of its own whose bandwidth is the per-GPU bandwidth times the GPUs
of that rank (``tp × pp``: every GPU ships its share through its own NIC). See docs/deployments.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..attention import kv_bytes_per_token, state_bytes_per_sequence
from ..cost.memory import MemoryPlan
from ..cost.worker import WorkerSpec
from ..engines import DEFAULT_ENGINE
from ..errors import InputError
from ..hardware import GPUSpec
from ..model_spec import ModelSpec
from ..sim.config import SchedulerConfig
from ..sim.disagg import DECODE_ROUTERS, TRANSFER_MODES, TTFT_DEFINITIONS, KVTransferSpec
from ..sim.links import LinkSpec
from .base import DeploymentMode, register_mode
from .build import cost_model, rank_replica_specs, speculative_cost
from .fields import (check_top_keys, parse_cluster, parse_cluster_link, parse_dtypes, parse_engine,
                     parse_engine_options, parse_int, parse_link, parse_model_gpu, parse_overheads, parse_parallel,
                     parse_profiles, parse_routing, parse_scheduler, parse_section, parse_speculative_section,
                     routing_fields)

PD_TOP_KEYS = {"mode", "model", "gpu", "engine", "dtype", "moe_dtype", "kv_dtype", "routing", "overheads",
               "calibration", "profiles", "name", "description", "prefill", "decode", "link", "router", "ttft",
               "cluster", "engine_options"}
POOL_KEYS = {"workers", "parallel", "scheduler", "engine", "dtype", "moe_dtype", "kv_dtype", "routing", "overheads",
             "calibration", "engine_options", "speculative"}
LINK_KEYS = {"kind", "bandwidth_gbps", "bandwidth_bytes_s", "latency_us", "transfer"}
PREFILL_ROUTERS = ("round_robin", "least_outstanding", "prefix_affinity", "kv_aware")


def kv_transfer_bytes_per_token(model: ModelSpec, kv_dtype: str) -> float:
    """Bytes of KV cache one prompt token moves from prefill to decode, all layers, counted once.

    GQA/MHA: 2 (K, V) × KV heads × head_dim × layers × dtype bytes (= ``kv_bytes_per_token(tp)`` per GPU × tp
    ranks when tp ≤ KV heads; heads replicated by a larger tp are sent once). MLA: the latent
    (kv_lora_rank + qk_rope_head_dim) × layers × bytes, sent once (every TP rank holds all of it).
    """
    return kv_bytes_per_token(model, kv_dtype, tp=1)


@dataclass
class Pool:
    """One side of a PD deployment: ``workers`` instances of ``worker`` (each tp × attention_dp × pp GPUs)."""

    role: str
    workers: int
    worker: WorkerSpec
    scheduler: SchedulerConfig
    memory: MemoryPlan
    gpu_memory_utilization: float
    speculative: object = None   #: decode pool: SpeculativeSpec (cost/speculative.py) or None

    @property
    def gpus(self) -> int:
        return self.workers * self.worker.gpus


@dataclass
class LinkConfig:
    """Prefill -> decode link: per-GPU ``bandwidth_bytes_s`` (one direction), ``latency_s``, ``kind``, and the
    ``transfer`` mode ('whole' | 'layerwise')."""

    kind: str
    bandwidth_bytes_s: float
    latency_s: float
    transfer: str = "whole"


@dataclass
class PDDeployment:
    """A validated prefill/decode-disaggregated deployment."""

    name: str
    prefill: Pool
    decode: Pool
    link: LinkConfig
    router: dict                  # {'prefill': ..., 'decode': ...}; simulate() accepts it as is
    ttft: str
    gpus_per_node: int
    nodes: int | None
    profiles: str | None = None
    source: str = ""
    raw: dict = field(default_factory=dict)

    mode = "pd"

    # what the co-located Deployment offers, so `frontier-calib replay` can print and summarise it
    @property
    def worker(self) -> WorkerSpec:
        return self.decode.worker

    @property
    def entry_overheads(self):
        """The prefill workers' overheads: requests enter at the prefill pool."""
        return self.prefill.worker.overheads

    @property
    def frontend_s(self) -> float:
        """Seconds from a client sending a request to a prefill worker's scheduler seeing it."""
        return self.entry_overheads.frontend_s

    @property
    def memory(self) -> MemoryPlan:
        return self.decode.memory

    @property
    def replicas(self) -> int:
        return self.prefill.workers + self.decode.workers

    @property
    def total_gpus(self) -> int:
        return self.prefill.gpus + self.decode.gpus

    def describe(self) -> str:
        def pool(p: Pool) -> str:
            w = p.worker
            return (f"{p.workers} x {w.gpus} GPUs (tp={w.tp} pp={w.pp} ep={w.ep} attention_dp={w.attention_dp}, "
                    f"{w.engine}, KV {p.memory.kv_tokens:,} tokens per rank"
                    + (f", speculative: {p.speculative.describe()})" if p.speculative is not None else ")"))
        lk = self.link
        return (f"{self.name}: {self.decode.worker.model.name} on {self.decode.worker.gpu}, PD: prefill "
                f"{pool(self.prefill)}; decode {pool(self.decode)}; link {lk.kind} "
                f"{lk.bandwidth_bytes_s / 1e9:g} GB/s per GPU, {lk.latency_s * 1e6:g} us, {lk.transfer}; "
                f"ttft at {self.ttft}")


def pool_a2a_backend(engine: str, role: str) -> str:
    """The EP all-to-all kernels a PD pool's steps run: SGLang's ``--deepep-mode auto`` picks DeepEP's normal
    kernels for a batch with prefill (extend) and the low-latency ones for decode and speculative-verify batches
    (``DeepEPMode.resolve`` in ``sglang/srt/layers/moe/utils.py``), so a prefill pool always runs the normal
    kernels and a decode pool the low-latency ones, whatever its tokens per rank (an MTP verify step of 88
    sequences x 2 tokens is still a decode batch).
    DeepEP itself (SGLang's ``--moe-a2a-backend`` defaults to ``none``) is what the public GB200 / GB300 DeepSeek-R1
    recipes launch with attention DP: every InferenceX srt-slurm decode section of those GPUs sets
    ``moe-a2a-backend: deepep``, ``deepep-mode: low_latency``, and their fp8 prefill sections ``deepep-mode: normal``
    (files in validate/disagg_decode.py; the fp4 1k1k DEP4 prefill sections set no all-to-all backend). The B200
    DEP8 decode recipes set none either: ``allgather`` below.
    Other engines: ``auto`` (by tokens per rank, cost/iteration.py). A pool whose ``parallel.ep_dispatch`` is
    ``allgather`` (a server launched without ``--moe-a2a-backend deepep``) runs no all-to-all kernels instead
    (:data:`~frontier_calib.cost.worker.ALLGATHER`)."""
    if engine != "sglang":
        return "auto"
    return "deepep_normal" if role == "prefill" else "deepep_ll"


def _pool(raw: dict, role: str, model: ModelSpec, spec: GPUSpec, shared: dict, gpus_per_node: int, src: str,
          base_dir) -> Pool:
    if role not in raw:
        raise InputError("required section missing for mode: pd", path=src, field=role)
    sec = parse_section(raw, role, POOL_KEYS, src)
    workers = parse_int(sec, "workers", 1, src, role)
    engine = parse_engine(sec, shared["engine"], src, role)
    dtypes = parse_dtypes(sec, model, src, role, base=shared["dtypes"], spec=spec)
    par = parse_parallel(sec, model, gpus_per_node, src, role, sm_count=spec.sm_count)
    a2a_backend = par.pop("a2a_backend", None) or pool_a2a_backend(engine, role)   # parallel.ep_dispatch wins
    routing = parse_routing(sec, shared["routing"], src, role, model=model, base_dir=base_dir)
    if engine == shared["engine"] and "overheads" not in sec and "calibration" not in sec:
        overheads = shared["overheads"]
    else:
        top = {"calibration": raw["calibration"]} if "calibration" in raw else {}   # the pool's own key wins
        overheads = parse_overheads({**top, **sec}, engine, spec.name, src, base_dir, role,
                                    base=parse_section(raw, "overheads", None, src))
    options = {**shared["engine_options"], **parse_engine_options(sec, src, role)}   # the pool's keys win
    worker = WorkerSpec(model=model, gpu=spec.name, engine=engine, dtype=dtypes["dtype"],
                        moe_dtype=dtypes["moe_dtype"], kv_dtype=dtypes["kv_dtype"], **routing_fields(routing),
                        overheads=overheads, gpus_per_node=gpus_per_node, node_link=parse_cluster_link(raw, src),
                        a2a_backend=a2a_backend, **options, **par)
    sched, memory, util = parse_scheduler(sec, worker, src, role)
    if role == "prefill" and sec.get("speculative") is not None:
        raise InputError("speculative decoding runs on the decode pool", path=src, field="prefill.speculative",
                         fix="move the speculative section into decode:")
    speculative = parse_speculative_section(sec, sched, src, role)
    return Pool(role, workers, worker, sched, memory, util, speculative)


def _link(raw: dict, spec: GPUSpec, one_node: bool, src: str) -> LinkConfig:
    kind, bw, lat, sec = parse_link(raw, spec, one_node, src, LINK_KEYS)
    transfer = str(sec.get("transfer", "whole"))
    if transfer not in TRANSFER_MODES:
        raise InputError(f"unknown transfer mode '{transfer}'", path=src, field="link.transfer",
                         fix=f"one of {TRANSFER_MODES}")
    return LinkConfig(kind, bw, lat, transfer)


def pd_deployment_from_dict(raw: dict, *, source: str = "<dict>", base_dir: Path | None = None) -> PDDeployment:
    """Validate a ``mode: pd`` mapping (errors name the file and the field, e.g. ``decode.parallel.ep``)."""
    src = source
    check_top_keys(raw, PD_TOP_KEYS, "pd", ("prefill", "decode"), src)
    model, spec = parse_model_gpu(raw, src, base_dir)
    engine = parse_engine(raw, DEFAULT_ENGINE, src)
    shared = {"engine": engine, "dtypes": parse_dtypes(raw, model, src, spec=spec),
              "routing": parse_routing(raw, "power_law_1.01", src, model=model, base_dir=base_dir),
              "overheads": parse_overheads(raw, engine, spec.name, src, base_dir),
              "engine_options": parse_engine_options(raw, src)}
    gpus_per_node, nodes = parse_cluster(raw, spec, src)
    pre = _pool(raw, "prefill", model, spec, shared, gpus_per_node, src, base_dir)
    dec = _pool(raw, "decode", model, spec, shared, gpus_per_node, src, base_dir)
    if pre.worker.kv_dtype != dec.worker.kv_dtype:
        raise InputError(f"prefill kv_dtype {pre.worker.kv_dtype} differs from decode kv_dtype "
                         f"{dec.worker.kv_dtype}: the KV cache is transferred as it is", path=src,
                         field="decode.kv_dtype")
    if dec.scheduler.max_model_len < pre.scheduler.max_model_len:
        raise InputError(f"decode max_model_len {dec.scheduler.max_model_len} is below prefill's "
                         f"{pre.scheduler.max_model_len}: requests the prefill pool accepts could never decode",
                         path=src, field="decode.scheduler.max_model_len")
    total = pre.gpus + dec.gpus
    if nodes is not None and total > nodes * gpus_per_node:
        raise InputError(f"prefill {pre.gpus} + decode {dec.gpus} = {total} GPUs, but the cluster has "
                         f"{nodes} x {gpus_per_node}", path=src, field="cluster.nodes")
    link = _link(raw, spec, total <= gpus_per_node, src)
    rt = raw.get("router", {}) or {}
    if isinstance(rt, str):
        rt = {"prefill": rt, "decode": rt if rt in DECODE_ROUTERS else "round_robin"}
    if not isinstance(rt, dict):
        raise InputError("expected a mapping {prefill: ..., decode: ...}", path=src, field="router")
    bad = sorted(set(rt) - {"prefill", "decode"})
    if bad:
        raise InputError(f"unknown key(s) {bad}", path=src, field="router", fix="allowed: ['decode', 'prefill']")
    router = {"prefill": str(rt.get("prefill", "round_robin")), "decode": str(rt.get("decode", "round_robin"))}
    if router["prefill"] not in PREFILL_ROUTERS:
        raise InputError(f"unknown router '{router['prefill']}'", path=src, field="router.prefill",
                         fix=f"one of {PREFILL_ROUTERS}")
    if router["prefill"] == "kv_aware":   # prefill side: KV-aware = the longest cached prefix
        router["prefill"] = "prefix_affinity"
    if router["decode"] not in DECODE_ROUTERS:
        raise InputError(f"unknown router '{router['decode']}'", path=src, field="router.decode",
                         fix=f"one of {DECODE_ROUTERS}")
    ttft = str(raw.get("ttft", "decode"))
    if ttft not in TTFT_DEFINITIONS:
        raise InputError(f"unknown ttft definition '{ttft}'", path=src, field="ttft", fix=f"one of {TTFT_DEFINITIONS}")
    name = str(raw.get("name") or Path(source).stem)
    return PDDeployment(name=name, prefill=pre, decode=dec, link=link, router=router, ttft=ttft,
                        gpus_per_node=gpus_per_node, nodes=nodes, profiles=parse_profiles(raw, src, base_dir),
                        source=source, raw=raw)


def pool_replica_specs(pool: Pool, cost, prefix: str, kv_transfer=None) -> list:
    """One ReplicaSpec per attention-DP rank of every worker of ``pool``. ``kv_transfer``: a function
    name -> KVTransferSpec (prefill pool). A pool with speculative decoding prices its steps with
    :class:`~frontier_calib.cost.speculative.SpeculativeCost` over ``cost``."""
    cost = speculative_cost(cost, pool.speculative, pool.worker.model)
    return rank_replica_specs(pool.workers, pool.worker.attention_dp, pool.scheduler, cost, prefix, role=pool.role,
                              kv_transfer=kv_transfer, speculative=pool.speculative)


def build_pd_replicas(dep: PDDeployment, *, progress: bool = False, costs: dict | None = None):
    """(replica specs, {'prefill': cost model, 'decode': cost model}) of a PD deployment. ``costs``: use these
    cost models instead of building them (tests)."""
    costs = costs or {p.role: cost_model(p.worker, p.scheduler, p.speculative, dep.profiles, progress)
                      for p in (dep.prefill, dep.decode)}
    w = dep.prefill.worker
    lanes = w.tp * w.pp                       # GPUs of one prefill attention-DP rank, each with its own NIC
    per_token = kv_transfer_bytes_per_token(w.model, w.kv_dtype)
    per_request = state_bytes_per_sequence(w.model, tp=1)   # linear-attention state, all layers, sent once
    lk = dep.link

    def transfer(name: str) -> KVTransferSpec:
        link = LinkSpec(f"{name}->decode", lk.bandwidth_bytes_s * lanes, lk.latency_s, lk.kind)
        return KVTransferSpec(per_token, link, lk.transfer, w.model.num_layers, bytes_per_request=per_request)

    specs = pool_replica_specs(dep.prefill, costs["prefill"], "p", transfer)
    specs += pool_replica_specs(dep.decode, costs["decode"], "d")
    return specs, costs


def pd_config(model: str, gpu: str, *, engine: str = "vllm", prefill: dict, decode: dict, **top) -> dict:
    """A ``mode: pd`` mapping from flat per-pool settings, e.g. from a measured benchmark row::

        pd_config("DeepSeek-V3", "h200_sxm", engine="sglang", dtype="fp8_block",
                  prefill=dict(workers=1, tp=8, pp=1, attention_dp=1, moe_tp=1, ep=8),
                  decode=dict(workers=1, tp=1, attention_dp=8, ep=8, scheduler={"max_num_seqs": 128}))

    Pool keys: workers, tp, pp, attention_dp, moe_tp, ep (``moe_ep`` is accepted for ep), scheduler (mapping),
    and any pool override (dtype, kv_dtype, routing, ...). ``top``: other top-level keys (link, router, ttft...).
    Pass the result to :func:`frontier_calib.modes.deployment_from_dict`.
    """
    def pool(p: dict) -> dict:
        p = dict(p)
        if "moe_ep" in p:
            p["ep"] = p.pop("moe_ep")
        par = {k: p.pop(k) for k in ("tp", "pp", "ep", "attention_dp", "moe_tp") if p.get(k) is not None}
        for k in ("tp", "pp", "ep", "attention_dp", "moe_tp"):
            p.pop(k, None)
        return {**p, "parallel": par}

    return {"mode": "pd", "model": model, "gpu": gpu, "engine": engine, "prefill": pool(prefill),
            "decode": pool(decode), **top}


PD = register_mode(DeploymentMode(
    name="pd", description="prefill/decode disaggregation: a prefill pool sends each prompt's KV to a decode pool",
    parse=pd_deployment_from_dict, build=build_pd_replicas, deployment=PDDeployment))

__all__ = ["PDDeployment", "Pool", "LinkConfig", "pd_deployment_from_dict", "build_pd_replicas", "pd_config",
           "kv_transfer_bytes_per_token", "PD"]
