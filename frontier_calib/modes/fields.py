"""Field parsers shared by every deployment mode: each reads one section of a deployment mapping, validates it,
and raises a one-line :class:`~frontier_calib.errors.InputError` naming the file and the field (``where`` is the
enclosing section, e.g. ``decode`` for ``decode.parallel.ep``). See docs/deployments.md for the fields.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from pathlib import Path

from ..cost.memory import plan_memory
from ..cost.node_link import parse_node_link
from ..cost.worker import ALLGATHER, Overheads, WorkerSpec, tp_nodes
from ..dtypes import normalize_dtype
from ..engines import engine_names, engine_version, get_engine
from ..errors import FrontierError, InputError
from ..hardware import get_gpu
from ..model_spec import ModelSpec, load_model
from ..sim.config import SchedulerConfig
from ..sim.links import LINK_KINDS

PARALLEL_KEYS = {"tp", "pp", "ep", "attention_dp", "moe_tp", "tbo", "comm_sms", "ep_dispatch"}
#: ``parallel.ep_dispatch`` values: the engine's own choice, or all-gather + reduce-scatter (cost/worker.py)
EP_DISPATCH = ("auto", ALLGATHER)
CLUSTER_KEYS = {"gpus_per_node", "nvlink_domain", "nodes", "link"}
ROUTERS = ("round_robin", "least_outstanding", "prefix_affinity")


def parse_section(raw: dict, key: str, allowed: set | None, src: str, field_name: str | None = None) -> dict:
    """The mapping ``raw[key]`` (empty when missing); ``field_name`` names it in errors (default ``key``)."""
    field_name = field_name or key
    sec = raw.get(key) or {}
    if not isinstance(sec, dict):
        raise InputError("expected a mapping", path=src, field=field_name)
    if allowed is not None:
        unknown = sorted(set(sec) - allowed)
        if unknown:
            raise InputError(f"unknown key(s) {unknown}", path=src, field=field_name,
                             fix=f"allowed: {sorted(allowed)}")
    return sec


def parse_int(sec: dict, key: str, default: int, src: str, where: str | None) -> int:
    """The whole number ``sec[key]`` (>= 1; ``default`` when missing); ``where`` names the section in errors."""
    v = sec.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"must be a positive whole number, got {v!r}", path=src,
                         field=f"{where}.{key}" if where else key)
    return v


def check_top_keys(raw: dict, allowed: set, mode: str, roles: tuple[str, str], src: str) -> None:
    """Reject unknown top-level keys of a disaggregated (``mode: pd`` / ``af``) deployment; per-pool settings
    placed at the top get a fix naming the two pool sections."""
    unknown = sorted(set(raw) - allowed)
    if unknown:
        fix = f"allowed with mode: {mode}: {sorted(allowed)}"
        if unknown[0] in ("parallel", "scheduler", "replicas"):
            fix = f"put parallel/scheduler/workers inside the {roles[0]}: and {roles[1]}: sections"
        raise InputError(f"unknown key(s) {unknown}", path=src, field=unknown[0], fix=fix)

def parse_link(raw: dict, spec, one_node: bool, src: str, allowed: set) -> tuple[str, float, float, dict]:
    """The ``link:`` section shared by ``mode: pd`` and ``mode: af``.

    Returns ``(kind, bandwidth in bytes/s, one-way latency in seconds, the raw section)``; defaults come
    from the GPU spec (NVLink inside one node, RDMA across nodes).
    """
    sec = parse_section(raw, "link", allowed, src)
    kind = str(sec.get("kind", "nvlink" if one_node else "rdma"))
    if kind not in LINK_KINDS:
        raise InputError(f"unknown link kind '{kind}'", path=src, field="link.kind", fix=f"one of {LINK_KINDS}")
    if "bandwidth_gbps" in sec and "bandwidth_bytes_s" in sec:
        raise InputError("give bandwidth_gbps or bandwidth_bytes_s, not both", path=src, field="link")
    bw = spec.nvlink_bandwidth if kind == "nvlink" else spec.network_bandwidth
    for key, scale in (("bandwidth_gbps", 1e9 / 8), ("bandwidth_bytes_s", 1.0)):
        if key in sec:
            v = math.inf if sec[key] == "inf" else sec[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise InputError(f"must be a number > 0 (or 'inf'), got {v!r}", path=src, field=f"link.{key}")
            bw = float(v) * scale
    lat = spec.nvlink_latency_s if kind == "nvlink" else spec.network_latency_s
    if "latency_us" in sec:
        v = sec["latency_us"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise InputError(f"must be a number >= 0, got {v!r}", path=src, field="link.latency_us")
        lat = float(v) * 1e-6
    return kind, bw, lat, sec


def _fraction(sec: dict, key: str, default: float, src: str, where: str) -> float:
    v = sec.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise InputError(f"must be a number in (0, 1], got {v!r}", path=src, field=f"{where}.{key}")
    return float(v)


def _f(where: str, key: str) -> str:
    """Field name ``key`` inside section ``where`` ('' at top level)."""
    return f"{where}.{key}" if where else key


def parse_model_gpu(raw: dict, src: str, base_dir: Path | None):
    """(ModelSpec, GPUSpec) of a deployment mapping."""
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
    try:
        spec = get_gpu(str(raw["gpu"]))
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field="gpu") from None
    return model, spec


def parse_engine(sec: dict, default: str, src: str, where: str = "") -> str:
    """The registered engine ``sec['engine']`` (``default`` when missing; an alias becomes the engine's name)."""
    engine = str(sec.get("engine", default))
    try:
        return get_engine(engine).name
    except FrontierError:
        raise InputError(f"unknown engine '{engine}'", path=src, field=_f(where, "engine"),
                         fix=f"one of {engine_names()}") from None


def parse_dtypes(sec: dict, model: ModelSpec, src: str, where: str = "", base: dict | None = None,
                 spec=None) -> dict:
    """dtype, moe_dtype, kv_dtype of ``sec``; missing keys fall back to ``base`` (a pool inherits the top level)
    and then to the checkpoint's formats. With ``spec`` (the GPU), formats it cannot run are an error."""
    out = _parse_dtypes(sec, model, src, where, base)
    if spec is not None:
        for key in ("dtype", "moe_dtype", "kv_dtype"):
            try:
                spec.check_dtype(out[key])
            except FrontierError as exc:
                raise InputError(str(exc), path=src, field=_f(where, key)) from None
    return out


def _parse_dtypes(sec: dict, model: ModelSpec, src: str, where: str, base: dict | None) -> dict:
    if base is not None:
        out = dict(base)
        if "dtype" in sec and "moe_dtype" not in sec and base.get("moe_from_dtype"):
            out["moe_dtype"] = None
        for key in ("dtype", "moe_dtype", "kv_dtype"):
            if key in sec:
                try:
                    out[key] = normalize_dtype(sec[key], where=key)
                except FrontierError as exc:
                    raise InputError(str(exc), path=src, field=_f(where, key)) from None
        if out["moe_dtype"] is None:
            out["moe_dtype"] = out["dtype"]
        return out
    dtypes = {}
    for key, default in (("dtype", model.dense_weight_dtype or model.weight_dtype), ("moe_dtype", None),
                         ("kv_dtype", "bf16")):
        v = sec.get(key, default)
        if v is None:
            v = sec.get("dtype", model.weight_dtype) if key == "moe_dtype" else default
        try:
            dtypes[key] = normalize_dtype(v, where=key)
        except FrontierError as exc:
            raise InputError(str(exc), path=src, field=_f(where, key)) from None
    dtypes["moe_from_dtype"] = sec.get("moe_dtype") is None
    return dtypes


def parse_parallel(sec: dict, model: ModelSpec, gpus_per_node: int, src: str, where: str = "",
                   sm_count: int | None = None) -> dict:
    """tp, pp, ep, attention_dp, moe_tp, tbo and comm_sms of the ``parallel`` mapping inside ``sec`` (validated;
    ``sm_count``: the GPU's SMs, the bound of ``comm_sms``), and ``a2a_backend`` ``'allgather'`` where its
    ``ep_dispatch`` says so (:data:`~frontier_calib.cost.worker.ALLGATHER`)."""
    pw = _f(where, "parallel")
    par = parse_section(sec, "parallel", PARALLEL_KEYS, src, pw)
    tp, pp = parse_int(par, "tp", 1, src, pw), parse_int(par, "pp", 1, src, pw)
    ep, dp = parse_int(par, "ep", 1, src, pw), parse_int(par, "attention_dp", 1, src, pw)
    moe_gpus = tp * dp
    moe_tp = parse_int(par, "moe_tp", max(1, moe_gpus // ep), src, pw)
    if model.is_moe and moe_tp * ep != moe_gpus:
        raise InputError(f"moe_tp ({moe_tp}) x ep ({ep}) must equal tp x attention_dp ({moe_gpus}): MoE layers "
                         "run on the same GPUs as attention", path=src, field=pw)
    try:
        model.check_parallel(tp, ep if model.is_moe else 1, pp=pp, moe_tp=moe_tp if model.is_moe else None)
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field=pw) from None
    if ep > 1 and not model.is_moe:
        raise InputError(f"ep={ep} needs an MoE model; {model.name} is dense", path=src, field=f"{pw}.ep")
    try:  # a tp group across nodes must take whole nodes; its all-reduce is then a hierarchical NCCL all-reduce
        tp_nodes(tp, gpus_per_node)
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field=f"{pw}.tp",
                         fix=f"use a tp of at most {gpus_per_node} or a multiple of it") from None
    tbo = par.get("tbo", sec.get("tbo", False) if not where else False)
    if not isinstance(tbo, bool):
        raise InputError(f"must be true or false, got {tbo!r}", path=src, field=f"{pw}.tbo")
    if tbo and ep < 2:
        raise InputError("tbo (two-batch overlap) hides EP all-to-all: it needs ep > 1", path=src,
                         field=f"{pw}.tbo")
    comm_sms = par.get("comm_sms")   # SMs the all-to-all holds while it overlaps compute (cost/overlap.py)
    if comm_sms is not None:
        whole = not isinstance(comm_sms, bool) and isinstance(comm_sms, int)
        if not whole or not 0 <= comm_sms < (sm_count if sm_count is not None else comm_sms + 1):
            below = f"from 0 to {sm_count - 1}" if sm_count is not None else ">= 0"
            raise InputError(f"must be a whole number of SMs {below}, got {comm_sms!r}", path=src,
                             field=f"{pw}.comm_sms", fix="e.g. comm_sms: 24 (DeepSeek's prefill; DeepEP's default 20)")
        if not tbo:
            raise InputError("comm_sms prices the SMs the all-to-all takes from the compute it overlaps: it needs "
                             "tbo: true", path=src, field=f"{pw}.comm_sms", fix="add tbo: true or remove comm_sms")
    out = {"tp": tp, "pp": pp, "ep": ep, "attention_dp": dp, "moe_tp": moe_tp, "tbo": tbo, "comm_sms": comm_sms}
    dispatch = par.get("ep_dispatch", "auto")
    if dispatch not in EP_DISPATCH:
        raise InputError(f"must be one of {', '.join(EP_DISPATCH)}, got {dispatch!r}", path=src,
                         field=f"{pw}.ep_dispatch", fix="ep_dispatch: allgather (SGLang without --moe-a2a-backend)")
    if dispatch == ALLGATHER:
        if ep < 2 or dp < 2:
            raise InputError("ep_dispatch prices how attention-DP ranks exchange tokens for the experts: it needs "
                             "ep > 1 and attention_dp > 1", path=src, field=f"{pw}.ep_dispatch",
                             fix="remove ep_dispatch")
        if tbo:
            raise InputError("tbo overlaps an all-to-all with compute; ep_dispatch: allgather runs none", path=src,
                             field=f"{pw}.ep_dispatch", fix="remove tbo or ep_dispatch")
        out["a2a_backend"] = ALLGATHER   # WorkerSpec.a2a_backend (only when set: a PD pool's own rule otherwise)
    return out


def parse_routing(sec: dict, default, src: str, where: str = "", model: ModelSpec | None = None,
                  base_dir: Path | None = None):
    """The expert-load model: a name ('balanced' | 'power_law_<alpha>') or, for ``{histogram: [...]}`` /
    ``{histogram_file: path}``, the validated per-expert loads as a tuple (see cost/moe_routing.py).
    Pass the result through :func:`routing_fields` to build a WorkerSpec."""
    from ..cost.moe_routing import check_routing_name, load_histogram_file, validate_histogram

    fw = _f(where, "routing")
    value = sec.get("routing", default)
    if isinstance(value, tuple):   # an inherited, already validated histogram
        return value
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"histogram", "histogram_file"})
        if unknown or len(value) != 1:
            raise InputError("expected {histogram: [load per expert, ...]} or {histogram_file: path}",
                             path=src, field=fw)
        if model is None or not model.is_moe:
            raise InputError("a routing histogram needs an MoE model", path=src, field=fw)
        try:
            if "histogram_file" in value:
                hp = Path(str(value["histogram_file"]))
                if base_dir is not None and not hp.is_absolute():
                    hp = base_dir / hp
                values = load_histogram_file(hp)
            else:
                values = value["histogram"]
            return validate_histogram(values, model.num_experts)
        except FrontierError as exc:
            raise InputError(str(exc), path=src, field=fw) from None
    routing = str(value)
    try:
        check_routing_name(routing)
        if routing == "histogram":
            raise FrontierError("give the loads as {histogram: [...]}")
    except FrontierError:
        raise InputError(f"unknown routing '{routing}'", path=src, field=fw,
                         fix="use 'balanced', 'power_law_<alpha>' (e.g. power_law_1.2) or {histogram: [...]}") from None
    return routing


def routing_fields(routing) -> dict:
    """WorkerSpec keyword arguments for a :func:`parse_routing` result."""
    if isinstance(routing, tuple):
        return {"routing": "histogram", "expert_histogram": routing}
    return {"routing": routing}


def parse_overheads(sec: dict, engine: str, gpu: str, src: str, base_dir: Path | None, where: str = "",
                    base: dict | None = None) -> Overheads:
    """The engine's per-iteration overheads: defaults, then a ``calibration:`` file's entry for ``engine`` (its
    ``engine@gpu`` entry when it has one for ``gpu``, the canonical GPU id; without the key, the shipped
    calibration, :data:`~frontier_calib.cost.calibration.DEFAULT_CALIBRATION`; ``none``: no calibration), then
    explicit ``overheads:`` keys."""
    ov = dict(base or {})
    ov.update(parse_section(sec, "overheads", None, src, _f(where, "overheads")))
    cal = sec.get("calibration")
    if cal is not None and not isinstance(cal, str):
        raise InputError(f"expected a file path or 'none', got {cal!r}", path=src, field=_f(where, "calibration"))
    from ..cost.calibration import calibration_path, load_calibration

    cal_path = calibration_path(cal, base_dir)   # absent: the shipped calibration; 'none': no calibration
    if cal_path is not None:  # a calibration file's overheads for this engine; explicit `overheads:` keys win
        ov = {**load_calibration(cal_path, gpu=gpu).get(engine, {}), **ov}  # ENGINE@GPU entries win
    try:
        return Overheads.for_engine(engine, **ov)
    except FrontierError as exc:
        raise InputError(str(exc), path=src, field=_f(where, "overheads")) from None


ENGINE_OPTION_KEYS = {"cuda_graph", "overlap", "custom_all_reduce", "version"}


def parse_engine_options(sec: dict, src: str, where: str = "") -> dict:
    """``engine_options``: ``cuda_graph`` (false = the engine runs eager: --enforce-eager, --disable-cuda-graph),
    ``overlap`` (CPU scheduling overlapped with the GPU step: vLLM --async-scheduling, SGLang/TRT-LLM overlap
    scheduler; default: the engine's, cost/engine_time.py), ``custom_all_reduce`` (false = tensor-parallel
    all-reduces run NCCL's kernel instead of the engine's custom one: vLLM --disable-custom-all-reduce, SGLang
    --disable-custom-all-reduce) and ``version`` (the engine release, e.g. ``"0.5.9"``: kinds whose code paths
    changed between releases price the one it runs, ``WorkerSpec.engine_version``; default: the release the
    kernel tables were profiled on)."""
    opts = parse_section(sec, "engine_options", ENGINE_OPTION_KEYS, src, _f(where, "engine_options"))
    out = {}
    for key in ("cuda_graph", "overlap", "custom_all_reduce"):
        if key in opts:
            if not isinstance(opts[key], bool):
                raise InputError(f"must be true or false, got {opts[key]!r}", path=src,
                                 field=_f(where, f"engine_options.{key}"))
            out[key] = opts[key]
    if "version" in opts:
        v = opts["version"]
        if isinstance(v, bool) or not isinstance(v, str) or engine_version(v) is None:
            raise InputError(f"must be a release number in quotes, such as \"0.5.9\", got {v!r}", path=src,
                             field=_f(where, "engine_options.version"), fix='write it as a string: version: "0.5.9"')
        out["engine_version"] = v.strip()
    return out


def parse_scheduler(sec: dict, worker: WorkerSpec, src: str, where: str = "", plan=None):
    """(SchedulerConfig, MemoryPlan, gpu_memory_utilization) of the ``scheduler`` mapping inside ``sec``.
    ``plan``: the memory planner (default :func:`~frontier_calib.cost.memory.plan_memory`)."""
    sw = _f(where, "scheduler")
    model, engine = worker.model, worker.engine
    sched_raw = dict(parse_section(sec, "scheduler", None, src, sw))
    util = _fraction(sched_raw, "gpu_memory_utilization", 0.9, src, sw)
    sched_raw.pop("gpu_memory_utilization", None)
    sched_raw.setdefault("policy", engine)
    # like vLLM, max_model_len defaults to the model's context length
    if sched_raw.get("max_model_len") is None and model.max_position_embeddings:
        sched_raw["max_model_len"] = int(model.max_position_embeddings)
    override = parse_int(sched_raw, "num_gpu_blocks_override", None, src, sw)
    sched_raw.pop("num_gpu_blocks_override", None)
    allowed = {f.name for f in fields(SchedulerConfig)} - {"num_kv_blocks"}
    bad = sorted(set(sched_raw) - allowed)
    if bad:
        raise InputError(f"unknown scheduler key(s) {bad}", path=src, field=sw,
                         fix=f"allowed: {sorted(allowed | {'gpu_memory_utilization', 'num_gpu_blocks_override'})}")
    block_size = parse_int(sched_raw, "block_size", 16, src, sw)
    pw = _f(where, "parallel")
    try:
        memory = (plan or plan_memory)(worker, gpu_memory_utilization=util, block_size=block_size)
    except FrontierError as exc:  # the model does not fit: more GPUs (parallel) is the usual fix
        raise InputError(str(exc), path=src, field=pw) from None
    if override is not None:   # the KV blocks the engine reported allocating (vLLM's "# GPU blocks: N")
        memory = replace(memory, kv_blocks=override, kv_tokens=override * block_size)
    try:
        sched = SchedulerConfig(**sched_raw, num_kv_blocks=memory.kv_blocks)
        if memory.state_bytes_per_sequence and override is None:   # linear attention: a state slot per sequence
            memory = (plan or plan_memory)(worker, gpu_memory_utilization=util, block_size=block_size,
                                           max_seqs=sched.max_num_seqs)
            sched = replace(sched, num_kv_blocks=memory.kv_blocks)
    except (FrontierError, TypeError, ValueError) as exc:
        msg = str(exc).removeprefix("scheduler: ").removeprefix("scheduler.")
        if isinstance(exc, TypeError):
            msg = f"a value has the wrong type ({exc})"
        raise InputError(msg, path=src, field=sw) from None
    if model.max_position_embeddings and sched.max_model_len > model.max_position_embeddings:
        raise InputError(f"max_model_len {sched.max_model_len} exceeds the model's context length "
                         f"{model.max_position_embeddings}", path=src, field=f"{sw}.max_model_len")
    if get_engine(sched.policy).kv_must_hold_max_model_len and memory.kv_tokens < sched.max_model_len:
        # vLLM refuses to start when one request of max_model_len tokens cannot fit in the KV cache
        raise InputError(f"max_model_len {sched.max_model_len} is more than the KV cache holds "
                         f"({memory.kv_tokens:,} tokens)", path=src, field=f"{sw}.max_model_len",
                         fix="lower max_model_len, raise gpu_memory_utilization or use more GPUs")
    return sched, memory, util


def parse_profiles(raw: dict, src: str, base_dir: Path | None) -> str | None:
    profiles = raw.get("profiles")
    if profiles is not None and not isinstance(profiles, str):
        raise InputError(f"expected a folder path, got {profiles!r}", path=src, field="profiles")
    if profiles is not None and base_dir is not None and not Path(profiles).is_absolute():
        profiles = str(base_dir / profiles)
    return profiles


def parse_cluster(raw: dict, spec, src: str) -> tuple[int, int | None]:
    """(GPUs of one scale-up domain, nodes or None) from the ``cluster`` section, checked against the GPU.

    ``nvlink_domain`` names the GPUs one GPU reaches over NVLink (72 on an NVL72 rack, 8 on an HGX board; 1 on
    PCIe-only cards) and must be buildable from the GPU (:meth:`~frontier_calib.hardware.GPUSpec.check_nvlink_domain`);
    ``gpus_per_node`` is the older spelling of the same domain (on PCIe cards: the GPUs of one server)."""
    clu = parse_section(raw, "cluster", CLUSTER_KEYS, src)
    gpus_per_node = parse_int(clu, "gpus_per_node", spec.gpus_per_node, src, "cluster")
    if "nvlink_domain" in clu:
        n = parse_int(clu, "nvlink_domain", spec.nvlink_domain, src, "cluster")
        try:
            spec.check_nvlink_domain(n)
        except FrontierError as exc:
            raise InputError(str(exc), path=src, field="cluster.nvlink_domain") from None
        if spec.intra_node_link == "nvlink":
            if "gpus_per_node" in clu and gpus_per_node != n:
                raise InputError(f"gpus_per_node {gpus_per_node} and nvlink_domain {n} disagree: on {spec.name} "
                                 "both name the GPUs that share NVLink", path=src, field="cluster.nvlink_domain",
                                 fix="give only nvlink_domain")
            gpus_per_node = n
    return gpus_per_node, parse_nodes(clu, src)


def parse_cluster_link(raw: dict, src: str):
    """The ``cluster.link`` of a deployment (:mod:`frontier_calib.cost.node_link`), None when absent."""
    return parse_node_link(parse_section(raw, "cluster", CLUSTER_KEYS, src), src)


def parse_nodes(clu: dict, src: str) -> int | None:
    nodes = clu.get("nodes")
    if nodes is not None and (isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1):
        raise InputError(f"must be a positive whole number, got {nodes!r}", path=src, field="cluster.nodes")
    return nodes


def parse_speculative_section(sec: dict, sched: SchedulerConfig, src: str, where: str = ""):
    """The ``speculative`` mapping inside ``sec`` (None when absent); keeps the drafts' lookahead KV blocks out of
    ``sched``'s KV cache (:func:`~frontier_calib.cost.speculative.lookahead_blocks`)."""
    from ..cost.speculative import lookahead_blocks, parse_speculative

    spec = parse_speculative(sec.get("speculative"), src, _f(where, "speculative"))
    if spec is not None:
        extra = lookahead_blocks(spec, sched.max_running, sched.block_size)
        if extra >= sched.num_kv_blocks:
            raise InputError(f"the draft tokens' KV slots ({extra} blocks) leave no KV cache "
                             f"({sched.num_kv_blocks} blocks)", path=src, field=_f(where, "speculative"),
                             fix="fewer num_draft_tokens, a lower max_num_seqs or more GPUs")
        sched.num_kv_blocks -= extra
    return spec
