"""Scheduling policies: which requests run in the next engine step, and with how many tokens."""

from __future__ import annotations

from .base import Scheduler, StepPlan
from .sglang import SGLangScheduler
from .trtllm import TRTLLMScheduler
from .vllm import VLLMScheduler

SCHEDULERS = {"vllm": VLLMScheduler, "sglang": SGLangScheduler, "trtllm": TRTLLMScheduler}


def make_scheduler(cfg, reqs, role: str = "both") -> Scheduler:
    """The policy ``cfg.policy`` with its KV cache (radix cache for sglang, paged APC otherwise)."""
    from ..kv_cache import KVCacheManager
    from ..radix_cache import RadixCache

    cache_cls = RadixCache if cfg.policy == "sglang" else KVCacheManager
    cache = cache_cls(cfg.num_kv_blocks, cfg.block_size, cfg.enable_prefix_caching,
                      cache_finished=reqs.hash_ids is not None)
    return SCHEDULERS[cfg.policy](cfg, reqs, cache, role)


__all__ = ["Scheduler", "StepPlan", "VLLMScheduler", "SGLangScheduler", "TRTLLMScheduler", "SCHEDULERS",
           "make_scheduler"]
