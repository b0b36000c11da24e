"""Arrival processes: when each of n requests arrives, in seconds, the first at 0.

``rate`` is requests per second; ``rate=inf`` sends every request at 0 (vLLM bench's default).
Every ``sample`` is deterministic for a given ``seed`` (an int, SeedSequence or numpy Generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .params import positive, whole

Seed = int | np.random.SeedSequence | np.random.Generator


class ArrivalProcess:
    """Interface: ``sample(n, seed)`` -> float64 array of n arrival times in seconds, first 0."""

    rate: float

    def sample(self, n: int, seed: Seed = 0) -> np.ndarray:
        n = whole("number of requests", n)
        if math.isinf(self.rate):
            return np.zeros(n)
        gaps = self._gaps(n - 1, np.random.default_rng(seed))
        return np.concatenate(([0.0], np.cumsum(gaps)))

    def _gaps(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class ConstantArrivals(ArrivalProcess):
    """One request every 1/rate seconds."""

    rate: float

    def __post_init__(self) -> None:
        positive("rate", self.rate, allow_inf=True)

    def _gaps(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, 1.0 / self.rate)


@dataclass(frozen=True)
class GammaArrivals(ArrivalProcess):
    """Gaps ~ Gamma(shape=burstiness, scale=1/(rate*burstiness)): mean gap 1/rate, as in vLLM bench.

    burstiness 1 is a Poisson process; < 1 is burstier, > 1 is more regular.
    """

    rate: float
    burstiness: float = 1.0

    def __post_init__(self) -> None:
        positive("rate", self.rate, allow_inf=True)
        positive("burstiness", self.burstiness)

    def _gaps(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.gamma(shape=self.burstiness, scale=1.0 / (self.rate * self.burstiness), size=n)


def constant(rate: float) -> ConstantArrivals:
    """Evenly spaced arrivals at ``rate`` requests/s."""
    return ConstantArrivals(rate)


def poisson(rate: float) -> GammaArrivals:
    """Poisson arrivals at ``rate`` requests/s (exponential gaps, i.e. gamma with burstiness 1)."""
    return GammaArrivals(rate, 1.0)


def gamma(rate: float, burstiness: float) -> GammaArrivals:
    """Gamma-distributed gaps with mean 1/``rate`` s and shape ``burstiness`` (vLLM bench's model)."""
    return GammaArrivals(rate, burstiness)
