"""Serving engines: one module per engine, each registering one :class:`EngineRecord` (scheduler, KV cache kind,
default overheads, CUDA-graph capture sizes, overlap, token-budget rule, memory rule).

Built in: ``vllm``, ``sglang``, ``trtllm``. Look engines up with :func:`get_engine` (errors list the known
names); add one with :func:`register_engine`. See ``docs/extending.md``.
"""

from .base import (CACHE_KINDS, DEFAULT_ENGINE, ENGINES, OVERHEAD_FIELDS, EngineRecord, default_overlap, engine_names,
                   engine_version, get_engine, overhead_seconds, register_engine, token_budget)
from . import vllm, sglang, trtllm  # noqa: F401,E402  (register the built-in engines, in this order)

__all__ = ["CACHE_KINDS", "DEFAULT_ENGINE", "ENGINES", "OVERHEAD_FIELDS", "EngineRecord", "default_overlap",
           "engine_names", "engine_version", "get_engine", "overhead_seconds", "register_engine", "token_budget"]
