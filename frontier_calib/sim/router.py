"""Routing arriving requests over replicas: round-robin, least outstanding requests, prefix affinity.

Ties are broken with a ``random.Random(seed)``, so a replay is reproducible for a given seed.
"""

from __future__ import annotations

import random

from ..errors import FrontierError

ROUTERS = ("round_robin", "least_outstanding", "prefix_affinity")


class Router:
    name = "base"

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
        low = min(rep.outstanding for rep in replicas)
        return self._tie([rep for rep in replicas if rep.outstanding == low])


class PrefixAffinity(Router):
    """The replica whose prefix cache holds the longest prefix of the request; ties go to the least loaded."""

    name = "prefix_affinity"

    def choose(self, r, replicas):
        hits = []
        for rep in replicas:
            _, hit = rep.sched.lookup(r)
            hits.append(hit.blocks * rep.sched.bs)
        top = max(hits)
        tied = [rep for rep, h in zip(replicas, hits) if h == top]
        low = min(rep.outstanding for rep in tied)
        return self._tie([rep for rep in tied if rep.outstanding == low])


def make_router(name: str, seed: int = 0) -> Router:
    classes = {"round_robin": RoundRobin, "least_outstanding": LeastOutstanding, "prefix_affinity": PrefixAffinity}
    if name not in classes:
        raise FrontierError(f"unknown router {name!r}; choose one of {ROUTERS}")
    return classes[name](seed)
