"""The engine record and its registry: everything the simulator knows about one serving engine, in one place.

A serving engine is one :class:`EngineRecord` in one module of this package (``vllm.py``, ``sglang.py``,
``trtllm.py``). Every place that takes an engine name (deployment YAML ``engine:``, ``scheduler.policy``, the cost
model's engine time, memory planning, calibration files, CLI options) looks it up with :func:`get_engine`, whose
error lists the registered names. ``docs/extending.md`` walks through adding one.

Light on purpose (no pandas, no simulator imports): ``names.py`` and ``sim/config.py`` import it. The scheduler
class is named by ``"package.module:Class"`` and imported when a replica is built, so this package never imports
the simulator.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..errors import FrontierError

#: the engine of a deployment (and a SchedulerConfig) that names none
DEFAULT_ENGINE = "vllm"

#: KV cache kinds a scheduler can run on: ``paged`` (vLLM-style blocks with automatic prefix caching,
#: ``sim/kv_cache.py``) and ``radix`` (SGLang's radix tree, ``sim/radix_cache.py``)
CACHE_KINDS = ("paged", "radix")

#: the per-step CPU overhead fields an engine record gives defaults for (seconds; meaning:
#: :class:`frontier_calib.cost.worker.Overheads`)
OVERHEAD_FIELDS = ("step_s", "per_seq_s", "per_token_s", "prefill_step_s", "launch_s", "out_token_s",
                   "frontend_s", "frontend_per_token_s")


def overhead_seconds(key: str, value, *, where: str = "") -> float:
    """``value`` as the seconds of overhead field ``key``; FrontierError (prefixed by ``where``) unless it is a
    number >= 0. The one check for engine records, deployments' ``overheads:`` and calibration files."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise FrontierError(f"{where}overhead {key} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def engine_version(text) -> tuple[int, ...] | None:
    """``'0.12.0'``, ``'v0.18.0'``, ``'1.1.0rc2.post2'`` -> (major, minor, patch); None when ``text`` names no
    numbered release (``'glm5-hopper'``, empty, NaN)."""
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text or "").strip())
    return None if m is None else tuple(int(g or 0) for g in m.groups())


def default_overlap(engine: str, version=None) -> bool:
    """Whether ``engine`` at ``version`` overlaps CPU scheduling with the GPU step by default (and so plans step
    n+1 while step n runs): the record's ``overlap``, off before its ``overlap_since`` version. An unknown or
    unnumbered version gets the record's ``overlap``."""
    rec = get_engine(engine)
    v, since = engine_version(version), engine_version(rec.overlap_since)
    if not rec.overlap or v is None or since is None:
        return rec.overlap
    return v >= since


@dataclass(frozen=True, eq=False)   # records compare (and hash) by identity: one registered record per engine
class EngineRecord:
    """One serving engine: its scheduler, its KV cache, its default engine time and its token-budget rule.

    Scheduling (``sim/``):

    * ``scheduler``: the scheduling policy, a :class:`~frontier_calib.sim.schedulers.base.Scheduler` subclass or
      its ``"package.module:Class"`` path; built as ``cls(cfg, reqs, cache, role)``;
    * ``cache``: ``'paged'`` or ``'radix'`` (:data:`CACHE_KINDS`);
    * the token-budget rule of :class:`~frontier_calib.sim.config.SchedulerConfig`: ``max_running_field`` /
      ``step_budget_field`` name a scheduler field that, when set, replaces ``max_num_seqs`` /
      ``max_num_batched_tokens`` (TensorRT-LLM's ``max_batch_size`` / ``max_num_tokens``);
      ``step_budget_binds``: every scheduled token, decode included, counts against the step budget (False for
      SGLang, whose decode steps have no token budget); ``chunk_multiple_of_block``: prefill chunks are whole KV
      blocks; ``budget_fields``: further scheduler fields (tokens) that bound one iteration, for the cost tables
      (:meth:`token_budget`).

    Engine time (``cost/engine_time.py``, ``cost/worker.py``):

    * ``overheads``: default CPU overheads in seconds, one per :data:`OVERHEAD_FIELDS` entry;
    * ``capture_sizes(max_num_seqs)``: the captured CUDA-graph sizes, ascending (tokens when ``graph_mixed``,
      else decode batch sizes); ``graph_mixed``: mixed prefill/decode steps also replay graphs; ``graph_pad``:
      a batch between two sizes is padded up (False: only exact sizes replay a graph); ``overlap``: CPU
      scheduling of step n+1 overlaps step n on the GPU; ``overlap_recurrent_state``: the overlap stays on for a
      model whose layers keep a recurrent state per sequence (linear attention, Mamba: ``state_bytes_per_sequence``
      of :mod:`frontier_calib.attention`; False where the engine turns its overlap off for them by default);
      ``time_source``: where these defaults come from.

    Memory (``cost/memory.py``, deployment parsing):

    * ``kv_fraction_of_free``: the memory fraction is a share of what is free after the weights (TensorRT-LLM's
      ``free_gpu_memory_fraction``), not of the whole GPU;
    * ``kv_must_hold_max_model_len``: the engine refuses to start when one ``max_model_len`` request does not
      fit in the KV cache (vLLM);
    * ``window_kv_ratio``: what sliding-window layers (gpt-oss) keep. None: at most their window per running
      sequence (TensorRT-LLM's one KV pool per window size, sized by window x layers); a number r: r x their
      bytes per token of the full-attention layers' tokens (SGLang's hybrid SWA pool, ``swa_full_tokens_ratio``
      0.8; vLLM 1.0: charged like full layers).

    ``mxfp4_moe_on_fp4``: how the engine runs an MXFP4 checkpoint's experts on GPUs with FP4 tensor cores by
    default: ``mxfp4_fp8`` (activations quantized to MXFP8, w4a8) or ``mxfp4`` (MXFP4 x BF16, w4a16).

    ``overlap_since``: the first engine version whose default is ``overlap`` (earlier versions schedule after
    each step: :func:`default_overlap`); None: every version.

    ``jit_compile_s``: seconds the engine loop stands still when a Triton kernel it launches is compiled again
    for a new specialization (a compile-time constant that takes a new value); which kernels do so is a fact of
    the attention kind (``AttentionKind.prefill_recompiles``, e.g. SGLang's gated-DeltaNet prefill). 0: none.

    Chunked prefill: ``chunked_prefill_default``: the engine chunks prompts unless told not to (its default
    ``enable_chunked_prefill``; the silicon replay takes it, ``validate/silicon.py``); ``prompt_must_fit_step_budget``:
    without chunked prefill the engine needs only each *prompt* to fit the step token budget and rejects a longer
    one when it arrives (TensorRT-LLM), instead of refusing to start when ``max_model_len`` exceeds the budget
    (vLLM: :meth:`~frontier_calib.sim.config.SchedulerConfig.validate`); a prompt that fits waits until it fits
    next to the step's other tokens (the scheduler's head-of-line rule).

    ``nvlink_a2a``: the engine picks its own expert-parallel dispatch/combine (``"nvlink_one_sided"``:
    TensorRT-LLM's NVLinkOneSided all-to-all where the EP group lies inside one NVLink domain of NVLink-5 GPUs and
    exceeds the top-k, :mod:`frontier_calib.cost.nvlink_a2a`; all-gather + reduce-scatter everywhere else, never
    DeepEP by default); None: the ``moe_a2a`` (DeepEP) tables where they exist, else all-gather/reduce-scatter.

    ``shared_experts_aux_stream``: the Hugging Face architectures whose shared experts the engine runs on a second
    CUDA stream beside the router and routed experts in the steps that replay a captured CUDA graph, so that such
    an MoE layer takes the longer of the two paths instead of their sum (eager steps run them one after the other;
    priced by :class:`~frontier_calib.cost.iteration.IterationCostModel`'s table of CUDA-graph steps); () for none.

    ``whole_gpu_gemms``: the (GPU ``sm_arch``, expert format) pairs on which the engine runs a checkpoint's GEMMs, the
    routed experts' grouped GEMMs and the shared experts' alike, as kernels that launch one CTA per SM holding the SM's
    shared memory (persistent, whole-GPU kernels). Two such kernels cannot be resident at once, so on these pairs the
    ``shared_experts_aux_stream`` overlap is limited to what the routed path runs besides its grouped GEMMs: the
    router GEMM (:meth:`~frontier_calib.cost.iteration.IterationCostModel._moe_paths`). () for none.

    ``allreduce_norm_fusion``: the architectures whose layers, under tensor parallelism without attention DP, fuse
    each residual add + RMSNorm into the TP all-reduce before it (one kernel, no pass of its own over the
    activations) when the all-reduce's message is at most ``allreduce_fusion_max_bytes`` (the fused kernels'
    workspace); which of a layer's two norms fuse is the architecture's (:meth:`~frontier_calib.cost.iteration.
    IterationCostModel._elementwise_ms`). () for none.

    ``routing_kernels``: the engine's MoE routing, as a function ``(model, worker, gpu) -> int`` of the kernels one
    MoE layer's top-k selection launches beyond the one fused top-k kernel the ``moe`` tables time (0: one fused
    kernel; SGLang's fallback for grouped routing its fused gate does not cover, ``engines/sglang.py``); priced by
    :mod:`frontier_calib.cost.moe_gate`. None: always one fused kernel.

    ``aliases``: other spellings accepted for ``name``; ``public_tables``: aiconfigurator-core ships kernel tables
    for this engine under its name (imported on first use; False: profile its tables, ``docs/profiling.md``).
    """

    name: str
    description: str
    scheduler: str | type
    cache: str
    overheads: Mapping[str, float]
    capture_sizes: Callable[[int], tuple[int, ...]]
    graph_mixed: bool
    graph_pad: bool
    overlap: bool
    overlap_recurrent_state: bool = True
    time_source: str = ""
    step_budget_binds: bool = True
    max_running_field: str | None = None
    step_budget_field: str | None = None
    chunk_multiple_of_block: bool = False
    budget_fields: tuple[str, ...] = ()
    kv_fraction_of_free: bool = False
    kv_must_hold_max_model_len: bool = False
    window_kv_ratio: float | None = None
    aliases: tuple[str, ...] = ()
    public_tables: bool = False
    overlap_since: str | None = None   #: first version whose default overlaps CPU scheduling (None: every version)
    mxfp4_moe_on_fp4: str = "mxfp4"    #: the MoE format MXFP4 experts (gpt-oss) run in on FP4 tensor cores
    jit_compile_s: float = 0.0         #: engine-loop seconds of one Triton JIT compile on the serving host
    chunked_prefill_default: bool = True       #: the engine's default ``enable_chunked_prefill``
    prompt_must_fit_step_budget: bool = False  #: no chunking: reject a prompt over the budget (not max_model_len)
    nvlink_a2a: str | None = None   #: the engine picks its EP dispatch/combine (None: DeepEP tables or NCCL)
    #: architectures whose shared experts run on a second CUDA stream beside the routed ones in CUDA-graph steps
    shared_experts_aux_stream: tuple[str, ...] = ()
    #: (GPU sm_arch, expert format) pairs whose GEMMs each hold every SM (the aux stream overlaps the router GEMM only)
    whole_gpu_gemms: tuple[tuple[int, str], ...] = ()
    #: architectures whose residual add + RMSNorm run inside the TP all-reduce (messages up to the next field, bytes)
    allreduce_norm_fusion: tuple[str, ...] = ()
    allreduce_fusion_max_bytes: int = 0
    #: (model, worker, gpu) -> top-k kernels an MoE layer's routing launches beyond one fused kernel (None: none)
    routing_kernels: Callable | None = None
    source: str = field(default="", compare=False)   #: engine code / docs the record's facts come from

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise FrontierError(f"engine record: name must be a non-empty string, got {self.name!r}")
        if self.cache not in CACHE_KINDS:
            raise FrontierError(f"engine {self.name}: cache must be one of {CACHE_KINDS}, got {self.cache!r}")
        missing = sorted(set(OVERHEAD_FIELDS) - set(self.overheads))
        extra = sorted(set(self.overheads) - set(OVERHEAD_FIELDS))
        if missing or extra:
            raise FrontierError(f"engine {self.name}: overheads must give exactly {list(OVERHEAD_FIELDS)} "
                                f"(missing {missing}, unknown {extra})")
        for k, v in self.overheads.items():
            overhead_seconds(k, v, where=f"engine {self.name}: ")
        if not 0.0 <= float(self.jit_compile_s) <= 10.0:
            raise FrontierError(f"engine {self.name}: jit_compile_s must be seconds in [0, 10], "
                                f"got {self.jit_compile_s!r}")
        if self.routing_kernels is not None and not callable(self.routing_kernels):
            raise FrontierError(f"engine {self.name}: routing_kernels must be a function (model, worker, gpu) -> int")
        if not callable(self.capture_sizes):
            raise FrontierError(f"engine {self.name}: capture_sizes must be a function of max_num_seqs")
        if not (isinstance(self.scheduler, type) or (isinstance(self.scheduler, str) and ":" in self.scheduler)):
            raise FrontierError(f"engine {self.name}: scheduler must be a Scheduler class or 'package.module:Class', "
                                f"got {self.scheduler!r}")
        object.__setattr__(self, "overheads", MappingProxyType({k: float(v) for k, v in self.overheads.items()}))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "shared_experts_aux_stream", tuple(self.shared_experts_aux_stream))
        pairs = tuple(tuple(p) if isinstance(p, (tuple, list)) else (p,) for p in self.whole_gpu_gemms)
        if not all(len(p) == 2 and isinstance(p[0], int) and not isinstance(p[0], bool) and p[0] > 0
                   and isinstance(p[1], str) and p[1] for p in pairs):
            raise FrontierError(f"engine {self.name}: whole_gpu_gemms must be (sm_arch, expert format) pairs such as "
                                f"(90, 'fp8_block'), got {self.whole_gpu_gemms!r}")
        object.__setattr__(self, "whole_gpu_gemms", pairs)
        object.__setattr__(self, "allreduce_norm_fusion", tuple(self.allreduce_norm_fusion))

    def scheduler_class(self) -> type:
        """The scheduler class (imported on first use when given as ``"package.module:Class"``)."""
        if isinstance(self.scheduler, type):
            return self.scheduler
        module, _, attr = self.scheduler.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise FrontierError(f"engine {self.name}: cannot import scheduler {self.scheduler!r} ({exc})") from None

    # the token-budget rule (SchedulerConfig and the cost tables read it here)
    def max_running(self, cfg) -> int:
        """Most requests running at once under scheduler settings ``cfg``."""
        v = getattr(cfg, self.max_running_field) if self.max_running_field else None
        return int(v) if v is not None else int(cfg.max_num_seqs)

    def step_token_budget(self, cfg) -> int:
        """Most tokens (prefill + decode) in one step under ``cfg``."""
        v = getattr(cfg, self.step_budget_field) if self.step_budget_field else None
        return int(v) if v is not None else int(cfg.max_num_batched_tokens)

    def token_budget(self, cfg) -> int:
        """The most tokens one iteration can carry under ``cfg`` (the cost tables are built up to it)."""
        vals = [cfg.max_num_batched_tokens, cfg.max_num_seqs]
        if not cfg.enable_chunked_prefill and not self.prompt_must_fit_step_budget:
            vals += [cfg.max_model_len]   # a whole prompt (up to max_model_len) can be one chunk
        vals += [getattr(cfg, f) or 0 for f in self.budget_fields]
        return int(max(vals))


#: the registered engines by name (built-ins: vllm, sglang, trtllm); add one with :func:`register_engine`
ENGINES: dict[str, EngineRecord] = {}
_ALIASES: dict[str, str] = {}


def register_engine(record: EngineRecord, *, replace: bool = False) -> EngineRecord:
    """Add ``record`` to the registry (``replace=True`` to swap a registered record of the same name)."""
    if not isinstance(record, EngineRecord):
        raise FrontierError(f"register_engine takes an EngineRecord, got {type(record).__name__}")
    for n in (record.name, *record.aliases):
        owner = ENGINES.get(n) or ENGINES.get(_ALIASES.get(n, ""))
        if owner is not None and not (replace and owner.name == record.name):
            raise FrontierError(f"engine name {n!r} is already registered (engine {owner.name})")
    old = ENGINES.get(record.name)
    if old is not None:
        for a in old.aliases:
            _ALIASES.pop(a, None)
    ENGINES[record.name] = record
    for a in record.aliases:
        _ALIASES[a] = record.name
    return record


def engine_names() -> tuple[str, ...]:
    """The registered engine names, in registration order."""
    return tuple(ENGINES)


def get_engine(name: str) -> EngineRecord:
    """The record of engine ``name`` (or an alias); FrontierError listing the registered names."""
    rec = ENGINES.get(name) or ENGINES.get(_ALIASES.get(name, ""))
    if rec is None:
        raise FrontierError(f"unknown engine '{name}'; known: {', '.join(sorted(ENGINES)) or '(none)'}")
    return rec


def token_budget(cfg) -> int:
    """The most tokens one iteration can carry under scheduler settings ``cfg`` (its policy's rule)."""
    return get_engine(cfg.policy).token_budget(cfg)
