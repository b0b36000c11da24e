"""Scheduling policies: which requests run in the next engine step, and with how many tokens.

Which policy and KV cache an engine uses is its record's ``scheduler`` and ``cache`` (``frontier_calib/engines/``).
"""

from __future__ import annotations

from ...engines import get_engine
from .base import Scheduler, StepPlan
from .sglang import SGLangScheduler
from .trtllm import TRTLLMScheduler
from .vllm import VLLMScheduler


def make_scheduler(cfg, reqs, role: str = "both") -> Scheduler:
    """The scheduler of engine ``cfg.policy`` with its record's KV cache (``radix``: the radix tree of
    ``sim/radix_cache.py``; ``paged``: the paged cache with prefix caching of ``sim/kv_cache.py``)."""
    from ..kv_cache import KVCacheManager
    from ..radix_cache import RadixCache

    rec = get_engine(cfg.policy)
    cache_cls = RadixCache if rec.cache == "radix" else KVCacheManager
    cache = cache_cls(cfg.num_kv_blocks, cfg.block_size, cfg.enable_prefix_caching,
                      cache_finished=reqs.hash_ids is not None)
    sched = rec.scheduler_class()(cfg, reqs, cache, role)
    sched.policy = rec.name   # a registered engine that reuses another's scheduler class reports its own name
    return sched


__all__ = ["Scheduler", "StepPlan", "VLLMScheduler", "SGLangScheduler", "TRTLLMScheduler", "make_scheduler"]
