"""The attention-kind record and its registry: one small record per kind of attention layer.

An attention kind says, for the layers of that kind, which operator families (profile tables) the cost model
needs, how a prefill chunk and a decode batch are asked of those families' fitted models, which projection GEMMs
the layer issues (and which of them the kind's module tables already include), what the layer keeps per cached
token (KV) and per running sequence (recurrent state), and which local benchmark kernels profile its families.
The cost model (:mod:`frontier_calib.cost.iteration`), the table cache (:mod:`frontier_calib.cost.cache`), memory
planning (:mod:`frontier_calib.cost.memory`) and the profiler (:mod:`frontier_calib.profiling.runner`) read kinds
only through this registry. ``docs/extending.md`` walks through adding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..dtypes import DTYPE_BYTES, normalize_dtype
from ..errors import FrontierError


def table_format(dtype: str) -> str:
    """The format whose kernel tables stand for ``dtype``: fp16 runs on the same tensor cores at the same
    rate and size as bf16 (the profile tables measure bf16 only)."""
    return "bf16" if dtype == "fp16" else dtype


@dataclass(frozen=True)
class QueryContext:
    """What a kind's queries may read: the worker (model, tp, formats), the sliding window of this group of
    layers (tokens, 0 = none) and the fitted models (``ModelSet``; a kind may look at what they were trained on,
    e.g. MLA's module vs kernel scope)."""

    worker: object
    window: int
    models: object


@dataclass(frozen=True)
class AttentionKind:
    """One kind of attention layer. Every callable takes the :class:`QueryContext` or the model spec.

    ``prefill_query(ctx, q_len, kv_len)`` and ``decode_query(ctx, batch_size, kv_len)`` return
    ``(family, query frame)``: one row per (chunk of q_len new tokens attending to kv_len keys) or per (decode
    batch of batch_size sequences with kv_len keys each); the frame's columns are the family's schema columns
    (:mod:`frontier_calib.profiles.schema`). The fitted model's milliseconds are for ONE layer.
    """

    name: str
    doc: str
    families: tuple                          #: operator families the kind's queries read (profile tables)
    prefill_query: Callable                  #: (ctx, q_len, kv_len) -> (family, DataFrame)
    decode_query: Callable                   #: (ctx, batch_size, kv_len) -> (family, DataFrame)
    kv_bytes_per_token: Callable             #: (model, kv_dtype_bytes, tp) -> bytes one cached token takes per layer
    state_bytes_per_sequence: Callable = lambda model, tp: 0.0  #: (model, tp) -> recurrent-state bytes per layer
    gemms: Callable | None = None            #: (model, tp) -> projection GemmShapes; None: model.attention_gemms. A
    #                                          kind whose ``release_path`` can be non-empty also takes the path:
    #                                          (model, tp, path)
    module_gemms: Callable = lambda ctx: frozenset()  #: (ctx) -> names of GEMMs the kind's tables already time
    windows: Callable = lambda model, layers: [(0, layers)]  #: (model, layers) -> [(window tokens, layers)]
    groups: Callable = lambda worker: {}     #: (worker) -> {family: dtype groups queried} (families split by dtype)
    profiling_kernels: dict = field(default_factory=dict)  #: family -> "module:function" benchmark preparer
    #: (ctx, "prefill" | "decode", q_len or batch_size array, kv_len array) -> milliseconds per layer of the kernels
    #: the kind runs that its tables do not time (an estimate the kind documents), added to the fitted time
    untimed_ms: Callable = lambda ctx, phase, sizes, kv: 0.0
    #: engines whose implementation of this kind's prefill JIT-compiles a kernel again for every new token count
    #: of a step (a compile-time constant that takes the count): such a step stalls the engine loop for the
    #: engine record's ``jit_compile_s`` the first time the server runs that count (the cost model keeps the
    #: counts seen, :meth:`frontier_calib.cost.iteration.IterationCostModel.iteration_time`)
    prefill_recompiles: tuple = ()
    #: (worker) -> the code path of this kind that the worker's engine release runs (``WorkerSpec.engine_version``):
    #: '' for the one the kind's tables, GEMM list and ``untimed_ms`` describe (the release the tables were profiled
    #: on, and a worker that names no release), else a name the kind's ``gemms`` and ``untimed_ms`` read. The cost
    #: tables' cache key holds the path, not the release number
    release_path: Callable = lambda worker: ""

    def projection_gemms(self, model, tp: int, path: str = "") -> list:
        """The projection GEMMs of one layer on one GPU for the release path ``path`` (:attr:`release_path`)."""
        if self.gemms is None:
            return model.attention_gemms(tp, self.name)
        return self.gemms(model, tp, path) if path else self.gemms(model, tp)


KINDS: dict[str, AttentionKind] = {}


def register(kind: AttentionKind, *, replace: bool = False) -> AttentionKind:
    """Add ``kind`` to the registry (``replace=True`` to override one of the same name)."""
    if kind.name in KINDS and not replace:
        raise FrontierError(f"attention kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> AttentionKind:
    if name not in KINDS:
        raise FrontierError(f"unknown attention kind {name!r}; registered: {', '.join(sorted(KINDS))}")
    return KINDS[name]


def model_kinds(model) -> list[tuple[AttentionKind, int]]:
    """[(kind, layers)] of a model, in its layer-kind order."""
    return [(get_kind(name), layers) for name, layers in model.attention_layer_kinds()]


def attention_layers(model) -> list[tuple[AttentionKind, int, int]]:
    """[(kind, window, layers)]: each kind's layers split by sliding window (what the cost model sums)."""
    out = []
    for kind, layers in model_kinds(model):
        out.extend((kind, w, n) for w, n in kind.windows(model, layers) if n)
    return out


def needed_families(worker) -> list[str]:
    """The attention families a worker's iterations query, in order, without repeats."""
    out: list[str] = []
    for kind, _ in model_kinds(worker.model):
        out += [f for f in kind.families if f not in out]
    return out


def needed_groups(worker) -> dict:
    """{family: dtype groups} the worker's attention queries read (families split by a dtype column)."""
    out: dict = {}
    for kind, _ in model_kinds(worker.model):
        for fam, groups in kind.groups(worker).items():
            out.setdefault(fam, set()).update(groups)
    return out


def kv_bytes_per_token(model, kv_dtype: str = "bf16", *, tp: int = 1) -> float:
    """KV-cache bytes one token occupies on one GPU, summed over all layers (kinds without a growing cache: 0)."""
    b = DTYPE_BYTES[normalize_dtype(kv_dtype, where="kv dtype")]
    return float(sum(kind.kv_bytes_per_token(model, b, tp) * layers for kind, layers in model_kinds(model)))


def state_bytes_per_sequence(model, *, tp: int = 1) -> float:
    """Recurrent-state bytes one running sequence holds on one GPU, summed over all layers (0 without linear
    attention): reserved per sequence slot, whatever its length."""
    return float(sum(kind.state_bytes_per_sequence(model, tp) * layers for kind, layers in model_kinds(model)))


def prefill_recompiles(model, engine: str) -> bool:
    """Whether ``engine`` compiles a kernel of one of ``model``'s layer kinds again for each new prefill token
    count (:attr:`AttentionKind.prefill_recompiles`)."""
    return any(engine in kind.prefill_recompiles for kind, _ in model_kinds(model))


def kv_dtype_groups(*families: str):
    """A ``groups`` callable: these families are split by the worker's KV-cache format."""
    def groups(worker):
        fmt = table_format(worker.kv_dtype)
        # an 8-bit KV cache also reads the 16-bit tables: they bound its decode time (cost/kv_format.py)
        return {f: {fmt, "bf16"} if fmt in ("fp8", "fp8_block", "int8") else {fmt} for f in families}
    return groups
