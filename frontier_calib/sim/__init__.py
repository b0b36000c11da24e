"""Replay engine: requests from a trace through replicas with vLLM / SGLang / TensorRT-LLM scheduling.

    from frontier_calib.sim import simulate, ReplicaSpec, SchedulerConfig, LinearCost
    result = simulate(trace, [ReplicaSpec(SchedulerConfig(policy="vllm"), LinearCost())])
    result.requests      # per-request DataFrame (seconds)
    result.summary       # vLLM bench-serve keys (milliseconds)

Modules: ``engine`` (event loop, :func:`simulate`), ``replica`` (steps, fast-forward), ``schedulers``
(policies), ``kv_cache`` / ``radix_cache`` (paged KV + prefix caching), ``decode_batch``, ``router``,
``arrivals``, ``requests``, ``metrics`` / ``results`` (outputs), ``cost_protocol`` (the cost-model interface).
"""

from .config import SchedulerConfig
from .cost_protocol import IterationCost, LinearCost
from .engine import simulate
from .metrics import summary_from_requests
from .replica import ReplicaSpec
from .results import REQUEST_COLUMNS, SimResult

__all__ = ["simulate", "ReplicaSpec", "SchedulerConfig", "SimResult", "IterationCost", "LinearCost",
           "summary_from_requests", "REQUEST_COLUMNS"]
