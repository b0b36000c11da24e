"""Routing arriving requests over replicas: round-robin, least outstanding requests, prefix affinity.

Ties are broken with a ``random.Random(seed)``, so a replay is reproducible for a given seed.
"""

from __future__ import annotations

import random

from ..errors import FrontierError

ROUTERS = ("round_robin", "least_outstanding", "prefix_affinity")


class Router:
    """Chooses a replica for each arriving request. ``reads_cache``: whether :meth:`choose` looks at the replicas'
    KV-cache contents (then every replica's decode stretch in progress is brought up to the arrival time first;
    otherwise only the chosen replica's is, which gives the same times with far fewer cost-model calls)."""

    name = "base"
    reads_cache = False

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def choose(self, r: int, replicas: list):
        raise NotImplementedError

    def _tie(self, tied: list):
        return tied[0] if len(tied) == 1 else tied[self.rng.randrange(len(tied))]


class RoundRobin(Router):
    """Replicas in turn (skipping those that cannot serve the request)."""

    name = "round_robin"

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self._next = 0

    def choose(self, r, replicas):
        best = min(replicas, key=lambda rep: (rep.index - self._next) % (1 << 30))
        self._next = best.index + 1
        return best


class LeastOutstanding(Router):
    """The replica with the fewest unfinished (waiting + running) requests."""

    name = "least_outstanding"

    def choose(self, r, replicas):
        loads = [rep.outstanding for rep in replicas]
        low = min(loads)
        return self._tie([rep for rep, n in zip(replicas, loads) if n == low])


class PrefixAffinity(Router):
    """Cache-aware routing (as the SGLang / SMG router): the replica whose prefix cache holds the longest prefix of
    the request, ties to the least loaded; but the least loaded replica when the best match covers no more than
    ``cache_threshold`` of the prompt, or when load is imbalanced (max - min outstanding requests above
    ``balance_abs_threshold`` and max above ``balance_rel_threshold`` x min). Set ``balance_abs_threshold=None``
    and ``cache_threshold=0`` for pure longest-prefix routing."""

    name = "prefix_affinity"
    reads_cache = True

    def __init__(self, seed: int = 0, cache_threshold: float = 0.3, balance_abs_threshold: int | None = 64,
                 balance_rel_threshold: float = 1.5):
        super().__init__(seed)
        self.cache_threshold = cache_threshold
        self.balance_abs_threshold = balance_abs_threshold
        self.balance_rel_threshold = balance_rel_threshold

    def _least_loaded(self, replicas):
        low = min(rep.outstanding for rep in replicas)
        return self._tie([rep for rep in replicas if rep.outstanding == low])

    def choose(self, r, replicas):
        if len(replicas) == 1:
            return replicas[0]
        loads = [rep.outstanding for rep in replicas]
        hi, lo = max(loads), min(loads)
        if (self.balance_abs_threshold is not None and hi - lo > self.balance_abs_threshold
                and hi > self.balance_rel_threshold * lo):
            return self._least_loaded(replicas)
        hits = []
        for rep in replicas:
            _, hit = rep.sched.lookup(r)
            hits.append(hit.blocks * rep.sched.bs)
        top = max(hits)
        prompt = replicas[0].sched.reqs.n_in[r]
        if top == 0 or top <= self.cache_threshold * prompt:
            return self._least_loaded(replicas)
        return self._least_loaded([rep for rep, h in zip(replicas, hits) if h == top])


def make_router(name, seed: int = 0) -> Router:
    """A router by name, or ``name`` itself when it already is a :class:`Router`."""
    if isinstance(name, Router):
        return name
    classes = {"round_robin": RoundRobin, "least_outstanding": LeastOutstanding, "prefix_affinity": PrefixAffinity}
    if name not in classes:
        raise FrontierError(f"unknown router {name!r}; choose one of {ROUTERS}")
    return classes[name](seed)
