"""Deployments as YAML files people can read: parse, validate, and turn into simulator replicas.

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
    overheads: {step_s: 0.002, per_seq_s: 5.0e-6, prefill_step_s: 0.001}   # seconds
    cluster: {gpus_per_node: 8, nodes: 1}

See docs/deployments.md for every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .cost.memory import MemoryPlan, plan_memory
from .cost.worker import Overheads, WorkerSpec
from .dtypes import normalize_dtype
from .errors import FrontierError, InputError
from .hardware import get_gpu
from .model_spec import ModelSpec, load_model
from .sim.config import SchedulerConfig

TOP_KEYS = {"model", "gpu", "engine", "dtype", "moe_dtype", "kv_dtype", "replicas", "parallel", "scheduler",
            "router", "routing", "overheads", "cluster", "profiles", "name", "mode", "description"}
PARALLEL_KEYS = {"tp", "pp", "ep", "attention_dp", "moe_tp"}
CLUSTER_KEYS = {"gpus_per_node", "nodes"}
ENGINES = ("vllm", "sglang", "trtllm")
ROUTERS = ("round_robin", "least_outstanding", "prefix_affinity")


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

    @property
    def total_gpus(self) -> int:
        return self.replicas * self.worker.gpus

    def describe(self) -> str:
        w = self.worker
        return (f"{self.name}: {w.model.name} on {self.replicas} x {w.gpus} {w.gpu} ({w.engine}, dtype {w.dtype}, "
                f"tp={w.tp} pp={w.pp} ep={w.ep} attention_dp={w.attention_dp}); "
                f"KV capacity {self.memory.kv_tokens:,} tokens ({self.memory.kv_blocks:,} blocks) per rank")


def load_deployment(path: str | Path) -> Deployment:
    """Read and validate a deployment YAML file."""
    path = Path(path)
    if not path.exists():
        raise InputError("deployment file not found", path=str(path))
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({exc})", path=str(path)) from None
    if not isinstance(raw, dict):
        raise InputError("expected a mapping of deployment fields", path=str(path))
    return deployment_from_dict(raw, source=str(path), base_dir=path.parent)


def _section(raw: dict, key: str, allowed: set | None, src: str) -> dict:
    sec = raw.get(key) or {}
    if not isinstance(sec, dict):
        raise InputError("expected a mapping", path=src, field=key)
    if allowed is not None:
        unknown = sorted(set(sec) - allowed)
        if unknown:
            raise InputError(f"unknown key(s) {unknown}", path=src, field=key, fix=f"allowed: {sorted(allowed)}")
    return sec


def _int(sec: dict, key: str, default: int, src: str, where: str | None) -> int:
    v = sec.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"must be a positive whole number, got {v!r}", path=src,
                         field=f"{where}.{key}" if where else key)
    return v


def _fraction(sec: dict, key: str, default: float, src: str, where: str) -> float:
    v = sec.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise InputError(f"must be a number in (0, 1], got {v!r}", path=src, field=f"{where}.{key}")
    return float(v)


def deployment_from_dict(raw: dict, *, source: str = "<dict>", base_dir: Path | None = None) -> Deployment:
    src = source
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}", path=src, field=unknown[0], fix=f"allowed: {sorted(TOP_KEYS)}")
    mode = raw.get("mode", "colocated")
    if mode != "colocated":
        raise InputError(f"mode '{mode}' is not supported yet (only 'colocated')", path=src, field="mode")
    for key in ("model", "gpu"):
        if key not in raw:
            raise InputError("required field missing", path=src, field=key)
    model_ref = str(raw["model"])
    if base_dir is not None and (base_dir / model_ref).exists():
        model_ref = str(base_dir / model_ref)
    try:
        model: ModelSpec = load_model(model_ref)
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field="model") from None
    gpu = str(raw["gpu"])
    try:
        spec = get_gpu(gpu)
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field="gpu") from None
    engine = str(raw.get("engine", "vllm"))
    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}'", path=src, field="engine", fix=f"one of {ENGINES}")
    dtypes = {}
    for key, default in (("dtype", model.dense_weight_dtype or model.weight_dtype), ("moe_dtype", None),
                         ("kv_dtype", "bf16")):
        v = raw.get(key, default)
        if v is None:
            v = raw.get("dtype", model.weight_dtype) if key == "moe_dtype" else default
        try:
            dtypes[key] = normalize_dtype(v, where=key)
        except FrontierError as exc:
            raise InputError(str(exc), path=src, field=key) from None
    par = _section(raw, "parallel", PARALLEL_KEYS, src)
    tp, pp = _int(par, "tp", 1, src, "parallel"), _int(par, "pp", 1, src, "parallel")
    ep, dp = _int(par, "ep", 1, src, "parallel"), _int(par, "attention_dp", 1, src, "parallel")
    moe_gpus = tp * dp
    moe_tp = _int(par, "moe_tp", max(1, moe_gpus // ep), src, "parallel")
    if model.is_moe and moe_tp * ep != moe_gpus:
        raise InputError(f"moe_tp ({moe_tp}) x ep ({ep}) must equal tp x attention_dp ({moe_gpus}): MoE layers "
                         "run on the same GPUs as attention", path=src, field="parallel")
    try:
        model.check_parallel(tp, ep if model.is_moe else 1, pp=pp, moe_tp=moe_tp if model.is_moe else None)
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field="parallel") from None
    if ep > 1 and not model.is_moe:
        raise InputError(f"ep={ep} needs an MoE model; {model.name} is dense", path=src, field="parallel.ep")
    clu = _section(raw, "cluster", CLUSTER_KEYS, src)
    gpus_per_node = _int(clu, "gpus_per_node", spec.gpus_per_node, src, "cluster")
    nodes = clu.get("nodes")
    if tp > gpus_per_node:
        raise InputError(f"tp={tp} spans more than one node ({gpus_per_node} GPUs per node); tensor parallelism "
                         "across nodes is not modelled", path=src, field="parallel.tp")
    replicas = _int(raw, "replicas", 1, src, None)
    routing = str(raw.get("routing", "power_law_1.01"))
    if routing != "balanced" and not routing.startswith("power_law_"):
        raise InputError(f"unknown routing '{routing}'", path=src, field="routing",
                         fix="use 'balanced' or 'power_law_<alpha>', e.g. power_law_1.2")
    ov = _section(raw, "overheads", None, src)
    try:
        overheads = Overheads.for_engine(engine, **ov)
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field="overheads") from None
    worker = WorkerSpec(model=model, gpu=spec.name, engine=engine, dtype=dtypes["dtype"],
                        moe_dtype=dtypes["moe_dtype"], kv_dtype=dtypes["kv_dtype"], tp=tp, pp=pp, ep=ep,
                        attention_dp=dp, moe_tp=moe_tp, routing=routing, overheads=overheads)
    if nodes is not None:
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            raise InputError(f"must be a positive whole number, got {nodes!r}", path=src, field="cluster.nodes")
        if replicas * worker.gpus > nodes * gpus_per_node:
            raise InputError(f"{replicas} replicas x {worker.gpus} GPUs = {replicas * worker.gpus} GPUs, but the "
                             f"cluster has {nodes} x {gpus_per_node}", path=src, field="replicas")
    sched_raw = dict(_section(raw, "scheduler", None, src))
    util = _fraction(sched_raw, "gpu_memory_utilization", 0.9, src, "scheduler")
    sched_raw.pop("gpu_memory_utilization", None)
    sched_raw.setdefault("policy", engine)
    # like vLLM, max_model_len defaults to the model's context length
    if sched_raw.get("max_model_len") is None and model.max_position_embeddings:
        sched_raw["max_model_len"] = int(model.max_position_embeddings)
    allowed = {f.name for f in fields(SchedulerConfig)} - {"num_kv_blocks"}
    bad = sorted(set(sched_raw) - allowed)
    if bad:
        raise InputError(f"unknown scheduler key(s) {bad}", path=src, field="scheduler",
                         fix=f"allowed: {sorted(allowed | {'gpu_memory_utilization'})}")
    block_size = _int(sched_raw, "block_size", 16, src, "scheduler")
    try:
        memory = plan_memory(worker, gpu_memory_utilization=util, block_size=block_size)
    except FrontierError as exc:  # the model does not fit: more GPUs (parallel) is the usual fix
        raise InputError(str(exc), path=src, field="parallel") from None
    try:
        sched = SchedulerConfig(**sched_raw, num_kv_blocks=memory.kv_blocks)
    except (FrontierError, TypeError, ValueError) as exc:
        msg = str(exc).removeprefix("scheduler: ").removeprefix("scheduler.")
        if isinstance(exc, TypeError):
            msg = f"a value has the wrong type ({exc})"
        raise InputError(msg, path=src, field="scheduler") from None
    if model.max_position_embeddings and sched.max_model_len > model.max_position_embeddings:
        raise InputError(f"max_model_len {sched.max_model_len} exceeds the model's context length "
                         f"{model.max_position_embeddings}", path=src, field="scheduler.max_model_len")
    if sched.policy == "vllm" and memory.kv_tokens < sched.max_model_len:
        # vLLM refuses to start when one request of max_model_len tokens cannot fit in the KV cache
        raise InputError(f"max_model_len {sched.max_model_len} is more than the KV cache holds "
                         f"({memory.kv_tokens:,} tokens)", path=src, field="scheduler.max_model_len",
                         fix="lower max_model_len, raise gpu_memory_utilization or use more GPUs")
    router = str(raw.get("router", "round_robin"))
    if router not in ROUTERS:
        raise InputError(f"unknown router '{router}'", path=src, field="router", fix=f"one of {ROUTERS}")
    profiles = raw.get("profiles")
    if profiles is not None and not isinstance(profiles, str):
        raise InputError(f"expected a folder path, got {profiles!r}", path=src, field="profiles")
    if profiles is not None and base_dir is not None and not Path(profiles).is_absolute():
        profiles = str(base_dir / profiles)
    name = str(raw.get("name") or Path(source).stem)
    return Deployment(name=name, worker=worker, scheduler=sched, replicas=replicas, router=router, memory=memory,
                      gpu_memory_utilization=util, gpus_per_node=gpus_per_node, nodes=nodes, profiles=profiles,
                      source=source, raw=raw)


def token_budget(sched: SchedulerConfig) -> int:
    """The most tokens one iteration can carry under this scheduler (for the cost tables)."""
    vals = [sched.max_num_batched_tokens, sched.max_num_seqs]
    if not sched.enable_chunked_prefill:  # a whole prompt (up to max_model_len) can be one chunk
        vals += [sched.max_model_len]
    if sched.policy == "sglang":
        vals += [sched.chunked_prefill_size or 0, sched.max_prefill_tokens]
    if sched.policy == "trtllm":
        vals += [sched.max_num_tokens or 0]
    return int(max(vals))


def build_replicas(dep: Deployment, *, progress: bool = False):
    """Simulator replicas for the deployment: replicas x attention_dp schedulers sharing one cost model."""
    from .cost.cache import cost_model_for
    from .sim.replica import ReplicaSpec

    sched = dep.scheduler
    cost = cost_model_for(dep.worker, max_tokens=token_budget(sched),
                          max_seqs=max(sched.max_num_seqs, sched.max_batch_size or 0),
                          max_model_len=sched.max_model_len, profiles_root=dep.profiles, progress=progress)
    specs = []
    for r in range(dep.replicas):
        for d in range(dep.worker.attention_dp):
            name = f"r{r}" if dep.worker.attention_dp == 1 else f"r{r}.dp{d}"
            specs.append(ReplicaSpec(scheduler=sched, cost=cost, name=name))
    return specs, cost
