"""Seeded MoE token routing for the benchmarks: which experts each token goes to.

* ``balanced``: token t goes to experts (t*topk + j) mod E, j < topk: every expert gets the same
  number of tokens (+-1), every token distinct experts.
* ``power_law_<alpha>`` (e.g. ``power_law_1.2``): expert popularity p_e ~ (r_e + 1)^-alpha over a
  seeded random ranking r of the experts; each token draws topk **distinct** experts with
  probability proportional to p (Gumbel-top-k sampling). Larger alpha = more skew.

With expert parallelism the benchmark computes the experts of the **busiest** EP rank: the slowest
rank sets the pace of the layer.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import FrontierError

_POWER = re.compile(r"^power_law_(\d+(?:\.\d+)?)$")


def parse_distribution(name: str) -> tuple[str, float]:
    """('balanced', 0.0) or ('power_law', alpha); FrontierError for other spellings."""
    if name == "balanced":
        return "balanced", 0.0
    m = _POWER.match(name)
    if m and float(m.group(1)) > 0:
        return "power_law", float(m.group(1))
    raise FrontierError(f"unknown routing distribution '{name}'; use 'balanced' or 'power_law_<alpha>' "
                        "(e.g. power_law_1.2)")


def route(num_tokens: int, num_experts: int, topk: int, distribution: str, seed: int = 0) -> np.ndarray:
    """Expert ids, int64 array [num_tokens, topk], distinct within each row, deterministic in ``seed``."""
    if topk > num_experts:
        raise FrontierError(f"topk {topk} exceeds {num_experts} experts")
    kind, alpha = parse_distribution(distribution)
    if kind == "balanced":
        flat = np.arange(num_tokens * topk, dtype=np.int64) % num_experts
        return flat.reshape(num_tokens, topk)
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(num_experts)
    logp = -alpha * np.log(ranks + 1.0)
    gumbel = rng.gumbel(size=(num_tokens, num_experts))
    return np.argsort(-(logp + gumbel), axis=1)[:, :topk].astype(np.int64)


def busiest_rank(ids: np.ndarray, num_experts: int, ep: int) -> tuple[int, int]:
    """[lo, hi) expert range of the EP rank that receives the most token assignments
    (ranks own contiguous expert ranges; ties go to the lowest rank)."""
    per_rank = num_experts // ep
    loads = np.bincount((ids // per_rank).ravel(), minlength=ep)
    rank = int(np.argmax(loads))
    return rank * per_rank, (rank + 1) * per_rank
