"""Names a user types (engine, GPU): checked against the known ones, with one-line errors that list them.

Light on purpose (no pandas): command modules call these before any work starts.
"""

from __future__ import annotations

from collections.abc import Iterable

from .engines import engine_names
from .errors import FrontierError
from .hardware import get_gpu


def unknown(kind: str, name: str, known: Iterable[str], where: str = "") -> FrontierError:
    """The one error for a name that is not one of ``known``."""
    return FrontierError(f"unknown {kind} '{name}'{where}; known: {', '.join(sorted(known)) or '(none)'}")


def gpu_id(name: str) -> str:
    """Canonical GPU id (``h100_sxm``) for an id or alias (``H100``); FrontierError listing the known ones."""
    return get_gpu(name).name


def gpu_ids(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(gpu_id(n) for n in names))


def check_engine(name: str, known: Iterable[str] | None = None, where: str = "") -> str:
    """``name`` if it is one of ``known`` engines (default: the registered ones, ``frontier_calib/engines/``), else
    FrontierError listing them."""
    known = engine_names() if known is None else tuple(known)
    if name not in known:
        raise unknown("engine", name, known, where)
    return name
