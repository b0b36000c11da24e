"""Argument checks for generator parameters: a bad value raises :class:`FrontierError` naming it."""

from __future__ import annotations

import math
from numbers import Integral, Real

from ..errors import FrontierError


def whole(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int if it is a whole number >= ``minimum`` (bools and floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise FrontierError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def positive(name: str, value: object, allow_inf: bool = False) -> float:
    """``value`` as a float if it is a number > 0 (finite unless ``allow_inf``)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and value > 0
    if not ok or (math.isinf(value) and not allow_inf) or math.isnan(value):
        allowed = "a number > 0" + (" (or inf)" if allow_inf else "")
        raise FrontierError(f"{name} must be {allowed}, got {value!r}")
    return float(value)
