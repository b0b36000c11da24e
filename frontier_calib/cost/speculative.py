"""Speculative decoding: draft methods, the ``speculative:`` deployment section, and the cost of a verify step.

With speculative decoding a decode step of ``n`` sequences runs, per sequence, ``k`` = ``num_draft_tokens`` draft
tokens through a cheap drafter, then verifies them with **one** forward pass of the target model over ``k + 1``
query tokens per sequence (the last accepted token plus the ``k`` drafts). The step emits between 1 and ``k + 1``
tokens per sequence: the accepted prefix of the drafts plus one token sampled by the target model (the corrected
or bonus token). So:

* the target model's step sees ``(k + 1) x n`` query tokens: token-proportional operators (GEMMs, MoE,
  all-reduces) and the LM head run on ``(k + 1) n`` rows, and every query row attends its sequence's context.
  The attention is priced as ``(k + 1) n`` decode queries at the batch's mean context (each query row reads its
  context; kernels that fold the ``k + 1`` rows of a sequence into one pass over its KV are faster, so this is
  an upper bound for the attention share);
* the drafter adds what its layers cost, run ``k`` times on ``n`` rows each (one draft token per sequence per
  pass): ``draft_layers / num_layers`` of the target's per-layer token operators and decode attention, plus one
  LM-head pass over ``n`` rows (MTP and EAGLE heads share or copy the target's embedding and LM head);
  n-gram (prompt-lookup) drafting runs on the CPU and is not priced;
* how many tokens a step emits follows the acceptance: ``acceptance`` gives, for each draft position ``i``, the
  probability that draft ``i`` is accepted given drafts ``1..i-1`` were; the expected tokens per step (the "accept
  length" that SGLang and vLLM report, bonus token included) is ``1 + sum_i prod_{j<=i} a_j``. The simulator draws
  the tokens of each step from that distribution with a seed (:mod:`frontier_calib.sim.speculative`).

Methods are records in :data:`METHODS` (one per drafting scheme); add one there (see docs/extending.md).
Sources: DeepSeek-V3 technical report (arXiv 2412.19437, section 5.4.3: one MTP module, second-token acceptance
85-90%, 1.8x tokens per second); SGLang's DeepSeek docs (MTP via its EAGLE worker: 1.8x decode speed at batch 1,
1.5x at batch 32 on 8 x H200); SGLang and vLLM speculative-decoding docs (methods ``EAGLE``/``EAGLE3``/``NEXTN``
(MTP)/``NGRAM``; vLLM ``speculative_config`` ``method`` ``mtp``/``eagle``/``eagle3``/``ngram``,
``num_speculative_tokens``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class SpeculativeMethod:
    """One drafting scheme.

    ``draft_layers``: decoder layers of the target's width the drafter runs per draft token by default (0: the
    drafter needs no GPU work); a deployment may override it (``speculative.draft_layers``) for methods with
    ``layers_configurable``. ``lm_head``: each draft pass ends with an LM-head GEMM over its rows."""

    name: str
    draft_layers: int
    lm_head: bool
    layers_configurable: bool
    description: str
    source: str = ""


#: the drafting schemes a deployment can name in ``speculative.method``
METHODS: dict[str, SpeculativeMethod] = {}


def register_method(method: SpeculativeMethod) -> SpeculativeMethod:
    """Add a drafting scheme to :data:`METHODS` (its name must be new)."""
    if method.name in METHODS:
        raise ValueError(f"speculative method {method.name!r} is registered already")
    METHODS[method.name] = method
    return method


register_method(SpeculativeMethod(
    "mtp", draft_layers=1, lm_head=True, layers_configurable=True,
    description="the checkpoint's multi-token-prediction module(s): one decoder layer (+ a projection of "
                "embedding and hidden state) sharing the target's embedding and LM head, run once per draft token",
    source="DeepSeek-V3 report 2.2/5.4.3 (num_nextn_predict_layers: 1); SGLang NEXTN, vLLM method 'mtp'"))
register_method(SpeculativeMethod(
    "eagle", draft_layers=1, lm_head=True, layers_configurable=True,
    description="an EAGLE-style draft model: one (or a few) decoder layers of the target's width over the "
                "target's hidden states, run once per draft token, with an LM head",
    source="EAGLE/EAGLE-3 (Li et al. 2024/2025); SGLang EAGLE/EAGLE3, vLLM methods 'eagle'/'eagle3'"))
register_method(SpeculativeMethod(
    "ngram", draft_layers=0, lm_head=False, layers_configurable=False,
    description="prompt-lookup drafting: the drafts continue an n-gram match in the prompt and output so far, "
                "found on the CPU (no GPU work is priced)",
    source="vLLM method 'ngram' (prompt lookup), SGLang NGRAM"))


@dataclass(frozen=True)
class SpeculativeSpec:
    """A deployment's speculative decoding.

    ``acceptance[i]``: probability that draft token ``i + 1`` is accepted given the drafts before it were (one
    per draft position, each in [0, 1]); ``seed``: the seed of the simulator's per-step draws."""

    method: str
    num_draft_tokens: int
    acceptance: tuple
    draft_layers: int
    seed: int = 0

    @property
    def k(self) -> int:
        return self.num_draft_tokens

    def token_probabilities(self) -> np.ndarray:
        """P(a step emits t tokens per sequence) for t = 1 .. k + 1."""
        reach = np.concatenate(([1.0], np.cumprod(np.asarray(self.acceptance, dtype=float))))  # P(>= i accepted)
        p = reach - np.append(reach[1:], 0.0)
        return np.clip(p, 0.0, 1.0)

    @property
    def mean_tokens_per_step(self) -> float:
        """Expected tokens a verify step emits per sequence (the accept length, bonus token included)."""
        return float(1.0 + np.cumprod(np.asarray(self.acceptance, dtype=float)).sum())

    def describe(self) -> str:
        rates = ", ".join(f"{a:.3g}" for a in self.acceptance)
        return (f"{self.method}, {self.k} draft token(s), acceptance [{rates}] -> "
                f"{self.mean_tokens_per_step:.3f} tokens/step")


def rate_for_accept_length(length: float, k: int) -> float:
    """The per-position acceptance rate ``a`` (the same at every position) for which the expected tokens per step
    ``1 + a + a^2 + ... + a^k`` equals ``length`` (1 <= length <= k + 1)."""
    lo, hi = 0.0, 1.0
    for _ in range(100):   # the sum is increasing in a: bisection to double precision
        mid = 0.5 * (lo + hi)
        if 1.0 + sum(mid ** i for i in range(1, k + 1)) < length:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


SPECULATIVE_KEYS = {"method", "num_draft_tokens", "acceptance", "draft_layers", "seed"}


def parse_speculative(sec, src: str, field: str = "speculative") -> SpeculativeSpec | None:
    """The validated ``speculative:`` mapping of a deployment (None when absent). ``acceptance``: one rate for
    every draft position, a list of ``num_draft_tokens`` per-position rates, or ``{accept_length: L}`` (the
    measured mean tokens per verify step, bonus token included, as engines report it)."""
    if sec is None:
        return None
    if not isinstance(sec, dict):
        raise InputError("expected a mapping {method, num_draft_tokens, acceptance}", path=src, field=field)
    unknown = sorted(set(sec) - SPECULATIVE_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {unknown}", path=src, field=field, fix=f"allowed: {sorted(SPECULATIVE_KEYS)}")
    for key in ("method", "num_draft_tokens", "acceptance"):
        if key not in sec:
            raise InputError("required field missing", path=src, field=f"{field}.{key}")
    name = str(sec["method"])
    if name not in METHODS:
        raise InputError(f"unknown method '{name}'", path=src, field=f"{field}.method", fix=f"one of {sorted(METHODS)}")
    method = METHODS[name]
    k = sec["num_draft_tokens"]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 16:
        raise InputError(f"must be a whole number from 1 to 16, got {k!r}", path=src, field=f"{field}.num_draft_tokens")
    acc = _parse_acceptance(sec["acceptance"], k, src, f"{field}.acceptance")
    layers = sec.get("draft_layers", method.draft_layers)
    if layers != method.draft_layers and not method.layers_configurable:
        raise InputError(f"method '{name}' has no draft layers", path=src, field=f"{field}.draft_layers",
                         fix="remove draft_layers")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < (1 if method.draft_layers else 0):
        raise InputError(f"must be a positive whole number, got {layers!r}", path=src, field=f"{field}.draft_layers")
    seed = sec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"must be a whole number >= 0, got {seed!r}", path=src, field=f"{field}.seed")
    return SpeculativeSpec(name, k, acc, layers, seed)


def _parse_acceptance(v, k: int, src: str, field: str) -> tuple:
    def rate(x, where):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0.0 <= x <= 1.0:
            raise InputError(f"an acceptance rate must be a number in [0, 1], got {x!r}", path=src, field=where)
        return float(x)

    if isinstance(v, dict):
        if set(v) != {"accept_length"}:
            raise InputError("expected a rate, a list of per-position rates or {accept_length: L}", path=src,
                             field=field)
        length = v["accept_length"]
        if isinstance(length, bool) or not isinstance(length, (int, float)) or not 1.0 <= length <= k + 1:
            raise InputError(f"accept_length (mean tokens per verify step, bonus token included) must be in "
                             f"[1, {k + 1}] for {k} draft token(s), got {length!r}", path=src,
                             field=f"{field}.accept_length")
        return (rate_for_accept_length(float(length), k),) * k
    if isinstance(v, list):
        if len(v) != k:
            raise InputError(f"{len(v)} rate(s) for {k} draft token(s)", path=src, field=field,
                             fix=f"give one rate per draft position ({k}) or a single rate")
        return tuple(rate(x, f"{field}[{i}]") for i, x in enumerate(v))
    return (rate(v, field),) * k


def speculative_limits(spec: SpeculativeSpec | None, max_tokens: int, max_seqs: int) -> tuple[int, int]:
    """(tokens, decode rows) the cost tables must cover when every decode sequence verifies k + 1 tokens."""
    if spec is None:
        return int(max_tokens), int(max_seqs)
    return int(max_tokens + spec.k * max_seqs), int((spec.k + 1) * max_seqs)


def lookahead_blocks(spec: SpeculativeSpec | None, max_running: int, block_size: int) -> int:
    """KV blocks kept free for draft slots: each running sequence writes the KV of its ``k`` drafts past its
    accepted tokens before verification (engines allocate these lookahead slots with the step); on average that
    takes ``k / block_size`` extra blocks per sequence."""
    if spec is None:
        return 0
    return -(-(int(max_running) * spec.k) // int(block_size))


class SpeculativeCost:
    """A cost model (the simulator's ``IterationCost`` protocol) whose decode sequences verify ``k + 1`` tokens
    per step and run a drafter (see the module docstring). ``base``: the target model's cost model; it must give
    ``decode_kernel_ms`` (IterationCostModel) for a drafter with layers, else ``draft`` must (an AF pipeline's
    attention-side model). ``num_layers``: the target's decoder layers. Every other attribute is the base model's."""

    def __init__(self, base, spec: SpeculativeSpec, num_layers: int, draft=None):
        self.base = base
        self.draft = base if draft is None else draft
        self.speculative = spec
        self._rows = spec.k + 1
        self._draft_frac = spec.draft_layers / max(int(num_layers), 1)
        self._draft_passes = spec.k if spec.draft_layers else 0
        self._lm_head = METHODS[spec.method].lm_head

    def __getattr__(self, name):   # tables, breakdown, overheads, ...: the target model's
        base = self.__dict__.get("base")
        if base is None or name.startswith("__"):   # (while unpickling, before __dict__ is filled)
            raise AttributeError(name)
        return getattr(base, name)

    def draft_ms(self, num_decode: int, decode_kv_sums) -> np.ndarray:
        """Milliseconds of the drafter for ``num_decode`` sequences at each KV-length sum (k passes)."""
        kv = np.asarray(decode_kv_sums, dtype=float)
        if not self._draft_passes or num_decode <= 0:
            return np.zeros(kv.shape)
        token_ms, head_ms, attn_ms = self.draft.decode_kernel_ms(int(num_decode), kv)
        per_pass = self._draft_frac * (token_ms + attn_ms) + (head_ms if self._lm_head else 0.0)
        return self._draft_passes * per_pass

    def iteration_time(self, prefill_q, prefill_kv, num_decode: int, decode_kv_sum: int) -> float:
        q = np.asarray(prefill_q)
        if len(q) == 0:   # decode-only: identical to decode_times (the fast-forward contract)
            return float(self.decode_times(int(num_decode), np.array([decode_kv_sum], dtype=float))[0]) \
                if num_decode else 0.0
        r = self._rows
        t = self.base.iteration_time(prefill_q, prefill_kv, r * int(num_decode), r * int(decode_kv_sum))
        if num_decode:
            t += float(self.draft_ms(int(num_decode), np.array([decode_kv_sum], dtype=float))[0]) / 1e3
        return t

    def decode_times(self, num_decode: int, decode_kv_sums) -> np.ndarray:
        kv = np.asarray(decode_kv_sums, dtype=float)
        r, n = self._rows, int(num_decode)
        t = np.asarray(self.base.decode_times(r * n, r * kv), dtype=float)
        return t + self.draft_ms(n, kv) / 1e3
