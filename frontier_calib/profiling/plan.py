"""The shapes to profile, derived from models and parallel degrees (not a cartesian sweep).

For each model and tensor-parallel degree the plan takes the GEMMs a layer really issues on one
GPU (:meth:`ModelSpec.layer_gemms`, :meth:`ModelSpec.lm_head_gemm`), the attention head layout of
one TP shard, the expert shapes per (moe_tp, moe_ep), and crosses them only with the token counts
an engine can produce: a log grid up to ``max_num_batched_tokens`` (prefill chunks, GEMM rows,
MoE tokens), batch sizes up to ``max_num_seqs`` (decode) and KV lengths up to ``max_model_len``.
Shapes shared by several models or degrees are measured once.

A :class:`Shape` holds exactly the canonical columns of its family (``profiles/schema.py``) except
the common ones, so a measured shape becomes a canonical row by adding gpu/engine/kernel/latency.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import FrontierError
from ..model_spec import MLASpec, ModelSpec
from ..profiles.schema import FAMILIES
from .grid import geometric_grid, pow2_and_half_grid, pow2_grid

#: CLI family groups -> canonical families they fill
FAMILY_GROUPS: dict[str, tuple[str, ...]] = {
    "gemm": ("gemm",),
    "attention": ("attention_prefill", "attention_decode", "mla_prefill", "mla_decode"),
    "moe": ("moe",),
    "comm": ("collective",),
}
FAMILY_GROUPS["all"] = tuple(f for g in ("gemm", "attention", "moe", "comm") for f in FAMILY_GROUPS[g])

#: The MLA tables describe DeepSeek-V3-shaped MLA (the schema has no MLA dimension columns).
MLA_TABLE_DIMS = MLASpec(q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64,
                         v_head_dim=128)

COLLECTIVE_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")

#: columns that identify one operator configuration (the rest is the token / length grid)
CONFIG_COLUMNS = {
    "gemm": ("n", "k"),
    "attention_prefill": ("num_heads", "num_kv_heads", "head_dim", "window"),
    "attention_decode": ("num_heads", "num_kv_heads", "head_dim", "window"),
    "mla_prefill": ("num_heads",),
    "mla_decode": ("num_heads",),
    "moe": ("hidden_size", "inter_size", "topk", "num_experts", "moe_tp", "moe_ep"),
    "collective": ("op", "num_gpus"),
}


@dataclass(frozen=True)
class Limits:
    """Engine limits that bound the token grids (tokens, sequences)."""
    max_num_batched_tokens: int = 8192   #: tokens per engine step (prefill chunk / GEMM rows / MoE tokens)
    max_num_seqs: int = 256              #: sequences per decode batch
    max_model_len: int | None = None     #: tokens of context; None = min(model limit, 32768)
    min_prefill_tokens: int = 16         #: smallest prefill chunk profiled
    min_kv_len: int = 16                 #: smallest decode KV length profiled
    max_prefill_batch: int = 32          #: largest number of sequences in one prefill call

    @classmethod
    def tiny(cls) -> "Limits":
        """Limits for CPU pipeline tests: seconds, not hours."""
        return cls(max_num_batched_tokens=64, max_num_seqs=8, max_model_len=256, min_prefill_tokens=8,
                   min_kv_len=8, max_prefill_batch=2)

    def model_len(self, model: ModelSpec) -> int:
        if self.max_model_len is not None:
            return self.max_model_len
        return min(model.max_position_embeddings or 32768, 32768)


@dataclass(frozen=True)
class Shape:
    """One thing to measure: a family and the values of its canonical (non-common) columns."""
    family: str
    values: tuple  #: ((column, value), ...) in schema column order

    @classmethod
    def make(cls, family: str, **values) -> "Shape":
        cols = [c.name for c in FAMILIES[family].columns]
        missing = [c for c in cols if c not in values]
        extra = [k for k in values if k not in cols]
        if missing or extra:
            raise ValueError(f"{family} shape: missing {missing}, unexpected {extra}")
        return cls(family, tuple((c, values[c]) for c in cols))

    @property
    def key(self) -> str:
        """Stable identifier used by the resume journal."""
        return self.family + "|" + ";".join(f"{k}={v}" for k, v in self.values)

    def as_dict(self) -> dict:
        return dict(self.values)

    def __getitem__(self, col: str):
        for k, v in self.values:
            if k == col:
                return v
        raise KeyError(col)


@dataclass
class ProfilePlan:
    """Shapes per canonical family, plus notes on what was left out and why."""
    shapes: dict[str, list[Shape]]
    notes: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)

    def total(self) -> int:
        return sum(len(v) for v in self.shapes.values())

    def describe(self, family: str) -> str:
        """One line on what varies in a family: '10 (n,k) configs; m 1..8192 (26), n 8..32000 (8), ...'."""
        rows = [s.as_dict() for s in self.shapes.get(family, [])]
        if not rows:
            return "-"
        parts, prefix = [], ""
        group = CONFIG_COLUMNS.get(family)
        if group:
            n = len({tuple(r[c] for c in group) for r in rows})
            prefix = f"{n} ({','.join(group)}) configs; "
        for col in rows[0]:
            vals = sorted({r[col] for r in rows}, key=lambda v: (isinstance(v, str), v))
            if len(vals) == 1:
                parts.append(f"{col} {vals[0]}")
            elif group and col in group and len(group) > 1:
                continue
            elif all(isinstance(v, (int, float)) for v in vals):
                parts.append(f"{col} {vals[0]}..{vals[-1]} ({len(vals)})")
            else:
                parts.append(f"{col} {','.join(map(str, vals))}")
        return prefix + ", ".join(parts)


def expand_families(what: str) -> tuple[str, ...]:
    if what not in FAMILY_GROUPS:
        raise FrontierError(f"unknown family group '{what}'; use one of {', '.join(FAMILY_GROUPS)}")
    return FAMILY_GROUPS[what]


def tiny_model(spec: ModelSpec) -> ModelSpec:
    """A shrunken copy with the same structure (GQA ratio, MoE, shared experts, dense-first layers,
    MLA, sliding window) and CPU-sized dimensions, for pipeline tests only."""
    ratio = max(1, spec.num_heads // spec.num_kv_heads)
    mla = spec.mla
    if mla is not None:   # the latent/head widths stay (the MLA tables assume them); fewer heads, small q_lora
        mla = dataclasses.replace(mla, q_lora_rank=64 if mla.q_lora_rank else None)
    heads = 16 if mla is None else 4
    kv = max(1, heads // ratio) if mla is None else heads
    return dataclasses.replace(
        spec, name=f"{spec.name}-tiny", hidden_size=128, vocab_size=512, num_heads=heads, num_kv_heads=kv,
        head_dim=32 if mla is None else spec.head_dim, intermediate_size=256, mla=mla,
        num_experts=min(spec.num_experts, 8), topk=min(spec.topk, 2),
        moe_intermediate_size=64 if spec.is_moe else 0,
        sliding_window=min(spec.sliding_window, 32))


def build_plan(models: list[ModelSpec], families, *, tps=(1,), eps=(1,), dtypes=("bf16",),
               kv_dtypes=("bf16",), distributions=("balanced",), limits: Limits | None = None,
               comm_gpus=(), comm_implementation: str = "nccl", fits=None) -> ProfilePlan:
    """Derive and de-duplicate the shapes of ``families`` for ``models`` at the given degrees.

    ``fits(shape) -> bool`` (optional) drops shapes that would not fit the device's memory.
    ``comm_gpus`` lists the group sizes to plan collectives for (the torchrun world size);
    ``comm_implementation`` is the backend that will run them (nccl on GPUs, gloo on CPUs).
    """
    limits = limits or Limits()
    plan = ProfilePlan(shapes={f: [] for f in families}, models=[m.name for m in models], limits=limits)
    seen: set[str] = set()
    dropped: dict[str, int] = {}

    def add(shape: Shape):
        if shape.key in seen:
            return
        if fits is not None and not fits(shape):
            dropped[shape.family] = dropped.get(shape.family, 0) + 1
            return
        seen.add(shape.key)
        plan.shapes[shape.family].append(shape)

    valid = _valid_degrees(models, tps, plan.notes)
    for family in families:
        if family == "gemm":
            _plan_gemm(models, valid, dtypes, limits, add, plan.notes)
        elif family in ("attention_prefill", "attention_decode", "mla_prefill", "mla_decode"):
            _plan_attention(family, models, valid, dtypes, kv_dtypes, limits, add, plan.notes)
        elif family == "moe":
            _plan_moe(models, tps, eps, dtypes, distributions, limits, add, plan.notes)
        elif family == "collective":
            _plan_collective(models, comm_gpus, comm_implementation, limits, add, plan.notes)
        else:
            raise FrontierError(f"profiling the '{family}' family is not supported")
    for fam, n in dropped.items():
        plan.notes.append(f"{fam}: {n} shape(s) left out because they would not fit in device memory")
    plan.shapes = {f: v for f, v in plan.shapes.items() if v}
    return plan


# ---- per family ------------------------------------------------------------------------------

def _valid_degrees(models, tps, notes) -> dict[str, list[int]]:
    """TP degrees each model can run at; the others are noted and skipped."""
    out = {}
    for m in models:
        ok = []
        for tp in tps:
            try:
                m.check_parallel(tp)
                ok.append(tp)
            except FrontierError as exc:
                notes.append(f"skipped {m.name} at tp={tp}: {exc}")
        out[m.name] = ok
    return out


def _gemm_dtypes(dtypes) -> list[str]:
    return list(dict.fromkeys(dtypes))


def _act_dtypes(dtypes) -> list[str]:
    """Attention runs in the activation format: bf16 unless fp16 was asked for."""
    acts = [d for d in dtypes if d in ("bf16", "fp16")]
    return acts or ["bf16"]


def _plan_gemm(models, valid, dtypes, limits, add, notes):
    ms = pow2_and_half_grid(1, limits.max_num_batched_tokens)
    batched = set()
    for model in models:
        for tp in valid[model.name]:
            gemms = []
            if model.is_moe:
                gemms += model.layer_gemms(tp, moe_layer=True)
            if model.num_dense_layers:
                gemms += model.layer_gemms(tp, moe_layer=False)
            if model.mla is not None:
                gemms += model.layer_gemms(tp, moe_layer=model.is_moe, mla_absorbed=True)
            for kind, _ in model.attention_layer_kinds():   # hybrids: the other layer kinds' projections too
                if kind != model.full_attention_kind:
                    gemms += model.attention_gemms(tp, kind)
            gemms.append(model.lm_head_gemm(tp))
            for g in gemms:
                if g.count > 1:
                    batched.add(g.name)
                    continue
                for dtype in _gemm_dtypes(dtypes):
                    for m in ms:
                        add(Shape.make("gemm", dtype=dtype, m=m, n=g.n, k=g.k))
    if batched:
        notes.append(f"gemm: batched GEMMs {sorted(batched)} (per-head MLA absorption) are not plain GEMMs; "
                     "they are part of the MLA attention module and not in the gemm table")


def _head_layouts(model: ModelSpec, tps) -> list[tuple[int, int, int]]:
    """Distinct (heads, kv_heads, head_dim) per GPU over the TP degrees."""
    return list(dict.fromkeys((*model.heads_per_gpu(tp), model.head_dim) for tp in tps))


def _windows(model: ModelSpec) -> list[int]:
    if not model.sliding_window:
        return [0]
    if model.sliding_window_layers >= model.num_layers:
        return [model.sliding_window]
    return [0, model.sliding_window]


def _attention_dtype_pairs(dtypes, kv_dtypes) -> list[tuple[str, str]]:
    pairs = []
    for act in _act_dtypes(dtypes):
        for kv in kv_dtypes:
            pairs.append((act, act if kv in ("bf16", "fp16") else kv))
    return list(dict.fromkeys(pairs))


def _prefill_points(limits: Limits, max_len: int):
    """(batch_size, q_len, kv_len): chunks of q_len new tokens after a cached prefix of kv_len - q_len."""
    qs = pow2_grid(limits.min_prefill_tokens, limits.max_num_batched_tokens)
    first_prefix = max(limits.min_prefill_tokens, 1 << max(0, (max_len // 64).bit_length() - 1))
    prefixes = [0] + geometric_grid(first_prefix, max_len, 4)
    for b in pow2_grid(1, min(limits.max_prefill_batch, limits.max_num_seqs)):
        for q in qs:
            if b * q > limits.max_num_batched_tokens:
                continue
            kvs = [q + p for p in prefixes if q + p <= max_len] + [max_len]   # always reach max_model_len
            for kv in dict.fromkeys(kvs):
                if kv >= q:
                    yield b, q, kv


def _decode_points(limits: Limits, max_len: int):
    for b in pow2_and_half_grid(1, limits.max_num_seqs):
        for kv in pow2_grid(limits.min_kv_len, max_len):
            yield b, kv


def _plan_attention(family, models, valid, dtypes, kv_dtypes, limits, add, notes):
    mla_family = family.startswith("mla_")
    for model in models:
        tps = valid[model.name]
        if not tps or (model.mla is not None) != mla_family:
            continue
        if mla_family and not _mla_matches_table(model.mla):
            notes.append(f"{family}: skipped {model.name}: its MLA dimensions differ from the DeepSeek-V3 "
                         "layout the MLA tables assume")
            continue
        max_len = limits.model_len(model)
        pairs = _attention_dtype_pairs(dtypes, kv_dtypes)
        if mla_family:
            heads_list = sorted({model.heads_per_gpu(tp)[0] for tp in tps})
            for heads in heads_list:
                for dtype, kv_dtype in pairs:
                    if family == "mla_prefill":
                        for b, q, kv in _prefill_points(limits, max_len):
                            add(Shape.make(family, batch_size=b, q_len=q, kv_len=kv, num_heads=heads,
                                           scope="kernel", dtype=dtype, kv_dtype=kv_dtype))
                    else:
                        for b, kv in _decode_points(limits, max_len):
                            add(Shape.make(family, batch_size=b, kv_len=kv, num_heads=heads, scope="kernel",
                                           dtype=dtype, kv_dtype=kv_dtype))
            continue
        for heads, kv_heads, head_dim in _head_layouts(model, tps):
            for window in _windows(model):
                for dtype, kv_dtype in pairs:
                    common = dict(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, window=window,
                                  dtype=dtype, kv_dtype=kv_dtype)
                    if family == "attention_prefill":
                        for b, q, kv in _prefill_points(limits, max_len):
                            add(Shape.make(family, batch_size=b, q_len=q, kv_len=kv, **common))
                    else:
                        for b, kv in _decode_points(limits, max_len):
                            add(Shape.make(family, batch_size=b, kv_len=kv, **common))


def _mla_matches_table(mla: MLASpec) -> bool:
    t = MLA_TABLE_DIMS
    return (mla.kv_lora_rank, mla.qk_nope_head_dim, mla.qk_rope_head_dim, mla.v_head_dim) == \
        (t.kv_lora_rank, t.qk_nope_head_dim, t.qk_rope_head_dim, t.v_head_dim)


def moe_configs(model: ModelSpec, tps, eps, notes=None) -> list[tuple[int, int]]:
    """(moe_tp, moe_ep) pairs: for each tp and ep, ep GPUs hold whole experts and the remaining
    tp // ep split each expert's intermediate dimension (vLLM: TP-only -> (tp, 1); EP -> (1, ep))."""
    out = []
    for tp in tps:
        for ep in eps:
            moe_tp = tp // ep if (ep <= tp and tp % ep == 0) else 1
            try:
                model.check_parallel(tp, ep, moe_tp=moe_tp) if ep <= tp else model.check_parallel(1, ep)
            except FrontierError as exc:
                if notes is not None:
                    notes.append(f"moe: skipped {model.name} at tp={tp} ep={ep}: {exc}")
                continue
            out.append((moe_tp, ep))
    return list(dict.fromkeys(out))


def _plan_moe(models, tps, eps, dtypes, distributions, limits, add, notes):
    tokens = pow2_and_half_grid(1, limits.max_num_batched_tokens)
    for model in models:
        if not model.is_moe:
            continue
        for moe_tp, moe_ep in moe_configs(model, tps, eps, notes):
            for dtype in _gemm_dtypes(dtypes):
                for dist in distributions:
                    for t in tokens:
                        add(Shape.make("moe", dtype=dtype, num_tokens=t, hidden_size=model.hidden_size,
                                       inter_size=model.moe_intermediate_size, topk=model.topk,
                                       num_experts=model.num_experts, moe_tp=moe_tp, moe_ep=moe_ep,
                                       distribution=dist))


def _plan_collective(models, comm_gpus, implementation, limits, add, notes):
    if not comm_gpus:
        notes.append("collective: no group size > 1 (pass --tp 2,4,8 for a plan; measure under torchrun)")
        return
    hidden = max((m.hidden_size for m in models), default=8192)
    largest = limits.max_num_batched_tokens * hidden * 2          # one all-reduce of bf16 activations
    top = 1 << max(10, (largest - 1).bit_length())
    sizes = pow2_grid(1024, top)
    for n in sorted(set(comm_gpus)):
        for op in COLLECTIVE_OPS:
            for size in sizes:
                add(Shape.make("collective", op=op, implementation=implementation, dtype="bf16", num_gpus=n,
                               message_bytes=size))
