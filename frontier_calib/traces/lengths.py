"""Token-length distributions for prompts and outputs: every sample is an int64 array of values >= 1.

Every ``sample`` is deterministic for a given ``seed`` (an int, SeedSequence or numpy Generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import FrontierError
from .arrivals import Seed
from .params import positive, whole


class LengthDistribution:
    """Interface: ``sample(n, seed)`` -> int64 array of n token counts, each >= 1."""

    def sample(self, n: int, seed: Seed = 0) -> np.ndarray:
        return self._draw(whole("number of requests", n), np.random.default_rng(seed)).astype(np.int64)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class FixedLengths(LengthDistribution):
    """Always ``value`` tokens."""

    value: int

    def __post_init__(self) -> None:
        whole("value", self.value)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, self.value)


@dataclass(frozen=True)
class UniformLengths(LengthDistribution):
    """Whole numbers drawn uniformly from ``lo`` to ``hi`` tokens, both included."""

    lo: int
    hi: int

    def __post_init__(self) -> None:
        whole("lo", self.lo)
        if whole("hi", self.hi) < self.lo:
            raise FrontierError(f"uniform lengths need lo <= hi, got lo={self.lo}, hi={self.hi}")

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(self.lo, self.hi, size=n, endpoint=True)


@dataclass(frozen=True)
class LogNormalLengths(LengthDistribution):
    """Log-normal token counts with mean ``mean`` tokens and log-space std ``sigma``.

    The underlying normal has mu = ln(mean) - sigma^2 / 2, so the (unclipped) mean is ``mean``.
    Draws are rounded and clipped to [1, ``max_tokens``] (no upper bound if None).
    """

    mean: float
    sigma: float
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        positive("mean", self.mean)
        if not (isinstance(self.sigma, (int, float)) and self.sigma >= 0 and math.isfinite(self.sigma)):
            raise FrontierError(f"sigma must be a finite number >= 0, got {self.sigma!r}")
        if self.max_tokens is not None:
            whole("max_tokens", self.max_tokens)

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mu = math.log(self.mean) - self.sigma ** 2 / 2
        values = np.rint(rng.lognormal(mu, self.sigma, size=n))
        return np.clip(values, 1, self.max_tokens if self.max_tokens is not None else np.inf)


@dataclass(frozen=True, eq=False)
class EmpiricalLengths(LengthDistribution):
    """Resampled (with replacement) from observed token counts, e.g. the lengths of a real trace."""

    values: np.ndarray = field(repr=False)
    label: str = ""  #: where the values came from, for descriptions

    def __post_init__(self) -> None:
        values = np.asarray(self.values)
        if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer) or values.min() < 1:
            raise FrontierError("empirical lengths need a non-empty list of whole numbers >= 1")
        object.__setattr__(self, "values", values.astype(np.int64))

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(self.values, size=n, replace=True)


@dataclass(frozen=True)
class QuantileLengths(LengthDistribution):
    """Drawn by inverse CDF from a benchmark's reported percentiles (linear between them), e.g. inference-perf's
    ``prompt_len`` {min, p10, median, p90, max}: ``probs`` ascending in [0, 1] from 0 to 1, ``tokens`` the
    length at each."""

    probs: tuple
    tokens: tuple
    label: str = ""

    def __post_init__(self) -> None:
        p, t = np.asarray(self.probs, dtype=float), np.asarray(self.tokens, dtype=float)
        if p.ndim != 1 or p.size < 2 or p.size != t.size or p[0] != 0.0 or p[-1] != 1.0 or np.any(np.diff(p) <= 0):
            raise FrontierError("quantile lengths need increasing probabilities from 0 to 1, one length each")
        if not np.all(np.isfinite(t)) or t.min() < 1 or np.any(np.diff(t) < 0):
            raise FrontierError("quantile lengths need non-decreasing finite lengths >= 1")

    def _draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(n)
        return np.maximum(1, np.rint(np.interp(u, self.probs, self.tokens))).astype(np.int64)


def fixed(value: int) -> FixedLengths:
    """Always ``value`` tokens."""
    return FixedLengths(value)


def uniform(lo: int, hi: int) -> UniformLengths:
    """Uniform whole numbers in [lo, hi] tokens."""
    return UniformLengths(lo, hi)


def lognormal(mean: float, sigma: float, max_tokens: int | None = None) -> LogNormalLengths:
    """Log-normal with mean ``mean`` tokens, log-space std ``sigma``, clipped to [1, max_tokens]."""
    return LogNormalLengths(mean, sigma, max_tokens)


def empirical(values, label: str = "") -> EmpiricalLengths:
    """Resample from observed token counts (a list or array of whole numbers >= 1)."""
    return EmpiricalLengths(np.asarray(values), label)


def as_lengths(value: int | LengthDistribution) -> LengthDistribution:
    """A distribution as is; a plain whole number as :func:`fixed`."""
    return value if isinstance(value, LengthDistribution) else fixed(value)
