"""Expert load (routing model) and two-batch overlap for MoE layers.

Routing
-------
``WorkerSpec.routing`` is one of

* ``'balanced'`` or ``'power_law_<alpha>'``: the profile tables (``moe`` family, column ``distribution``) were
  measured with tokens routed under exactly these distributions, so the name is passed through to the
  fitted model as it is. ``power_law_1.01`` is the serving-benchmark default, ``power_law_1.2`` a stronger skew.
* ``'histogram'`` with ``WorkerSpec.expert_histogram`` = a user-supplied load per expert (token counts or any
  non-negative weights, one per expert, length = num_experts). Experts are placed on EP ranks contiguously
  (rank r holds experts ``r*E/ep .. (r+1)*E/ep - 1``, as vLLM/SGLang do without expert-placement balancing), and
  the most loaded rank sets the pace: its share of the routed tokens is ``max_rank_share`` (1/ep when balanced).
  The MoE table is then queried with the *balanced* distribution at the equivalent token count
  ``tokens × max_rank_share × ep``: the busiest rank receives as many (token, expert) pairs as every rank would
  under balanced routing of that many tokens. With ep = 1 (experts not split over ranks) a histogram has no
  effect (the grouped GEMM's sensitivity to per-expert skew inside one GPU is not modelled).

Two-batch overlap (TBO), experts only
-------------------------------------
The cost tables price a ``tbo`` worker's MoE layers with :mod:`.overlap` (the all-to-all under the whole layer's
compute, as DeepSeek and SGLang schedule it, and the SMs the communication holds). :func:`tbo_ms` is the narrower
form that prices the MoE part alone (``IterationCostModel._moe_ms``). With EP all-to-all (dispatch + combine), the
batch of n tokens is split into two micro-batches of ceil(n/2); while
one micro-batch communicates, the other computes. Per MoE layer, with c = expert compute of one micro-batch and
x = its dispatch + combine time::

    t = min(C(n) + X(n),  max(2·max(c, x) + min(c, x),  C(n),  X(n)))

The middle term is a two-job, two-stage pipeline (the first stage of the first micro-batch and the last stage
of the second cannot be hidden); the floor keeps the layer never faster than doing all compute (C(n), unsplit)
or all communication (X(n)) alone. Only the routed-expert part overlaps; attention, shared experts, norms and
TP all-reduces are not split. For small batches the halves cost nearly as much as the whole (latency-bound
kernels and all-to-all), so splitting would be a loss; engines then do not split (SGLang enables TBO above a
token threshold), hence the outer ``min`` with the unsplit time C(n) + X(n).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import FrontierError

ROUTING_NAMES = ("balanced",)   # plus 'power_law_<alpha>' and 'histogram'


def check_routing_name(routing: str) -> None:
    if routing in ("balanced", "histogram"):
        return
    if routing.startswith("power_law_"):
        try:
            alpha = float(routing[len("power_law_"):])
        except ValueError:
            alpha = float("nan")
        if alpha > 0:
            return
    raise FrontierError(f"unknown routing '{routing}'")


def validate_histogram(values, num_experts: int) -> tuple[float, ...]:
    """A per-expert load histogram as a tuple of floats, validated: length = num_experts, all >= 0, sum > 0."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise FrontierError(f"expected a list of per-expert loads, got {values!r}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v) \
                or v < 0:
            raise FrontierError(f"expert {i}: load must be a finite number >= 0, got {v!r}")
        out.append(float(v))
    if len(out) != num_experts:
        raise FrontierError(f"histogram has {len(out)} entries; the model has {num_experts} experts")
    if sum(out) <= 0:
        raise FrontierError("histogram is all zeros")
    return tuple(out)


def load_histogram_file(path: Path) -> list:
    """Per-expert loads from a file: JSON/YAML list (or mapping with key ``histogram``), or whitespace/comma
    separated numbers."""
    import yaml

    if not path.exists():
        raise FrontierError(f"histogram file not found: {path}")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and "histogram" in data:
        data = data["histogram"]
    if isinstance(data, list):
        return data
    try:
        return [float(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise FrontierError(f"{path}: expected a list of numbers") from None


def max_rank_share(histogram, ep: int) -> float:
    """Share of all routed (token, expert) pairs that the most loaded of ``ep`` ranks receives (contiguous
    placement of E/ep experts per rank). 1/ep for a uniform histogram."""
    h = np.asarray(histogram, dtype=float)
    ep = max(int(ep), 1)
    if len(h) % ep:
        raise FrontierError(f"{len(h)} experts do not split evenly over ep={ep} ranks")
    per_rank = h.reshape(ep, -1).sum(axis=1)
    return float(per_rank.max() / per_rank.sum())


def moe_query(routing: str, histogram, ep: int, tokens: np.ndarray) -> tuple[str, np.ndarray]:
    """(distribution, token counts) to query the MoE tables with for ``tokens`` routed tokens."""
    if routing != "histogram":
        return routing, tokens
    factor = max_rank_share(histogram, ep) * max(int(ep), 1)
    if abs(factor - 1.0) < 1e-12:
        return "balanced", tokens
    return "balanced", np.maximum(np.rint(np.asarray(tokens, dtype=float) * factor), 1).astype(np.int64)


def tbo_ms(compute_half, comm_half, compute_full, comm_full) -> np.ndarray:
    """MoE-layer time with two-batch overlap (see the module docstring); arrays of milliseconds."""
    c, x = np.asarray(compute_half, float), np.asarray(comm_half, float)
    cf, xf = np.asarray(compute_full, float), np.asarray(comm_full, float)
    t = np.maximum(2 * np.maximum(c, x) + np.minimum(c, x), np.maximum(cf, xf))
    return np.minimum(t, cf + xf)
