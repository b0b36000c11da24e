"""Synthetic traces composed from arrival processes (arrivals.py) and length distributions (lengths.py).

Everything is deterministic for a given ``seed``: the arrival times, each length column and (for shared
prefixes) the prompt order come from independent child streams of ``numpy.random.SeedSequence(seed)``,
so changing one distribution does not change the others' draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from ..lazy import pandas as pd

from .arrivals import ArrivalProcess, constant, gamma, poisson
from .lengths import LengthDistribution, as_lengths, empirical, fixed, lognormal, uniform
from .params import whole
from .schema import Trace, blocks_for, canonical_trace

__all__ = [
    "constant", "poisson", "gamma", "fixed", "uniform", "lognormal", "empirical",
    "synthetic_trace", "shared_prefix_trace", "closed_loop",
]


def synthetic_trace(num_requests: int, *, arrival: ArrivalProcess | None = None,
                    input_len: int | LengthDistribution, output_len: int | LengthDistribution,
                    seed: int = 0) -> Trace:
    """``num_requests`` requests with arrival times from ``arrival`` (None: all at 0 s) and token lengths
    from ``input_len`` / ``output_len`` (a distribution, or a whole number for a fixed length)."""
    n = whole("num_requests", num_requests)
    arrival_seed, input_seed, output_seed = np.random.SeedSequence(whole("seed", seed, 0)).spawn(3)
    input_dist, output_dist = as_lengths(input_len), as_lengths(output_len)
    frame = {   # plain columns: the trace builds its DataFrame only when read (Trace.from_columns)
        "arrival_s": arrival.sample(n, arrival_seed) if arrival is not None else np.zeros(n),
        "input_tokens": input_dist.sample(n, input_seed),
        "output_tokens": output_dist.sample(n, output_seed),
    }
    source = (f"synthetic: {n} requests, arrival={arrival!r}, input_tokens={input_dist!r}, "
              f"output_tokens={output_dist!r}, seed={seed}")
    return canonical_trace(frame, source=source)


def shared_prefix_trace(num_groups: int, prompts_per_group: int, system_prompt_len: int,
                        question_len: int | LengthDistribution, output_len: int | LengthDistribution, *,
                        arrival: ArrivalProcess | None = None, seed: int = 0, hash_block_size: int = 16) -> Trace:
    """Groups of prompts sharing a system prompt, like inference-perf's shared-prefix workload.

    Each prompt is the group's ``system_prompt_len``-token system prompt followed by its own question
    (``question_len`` tokens). ``hash_ids`` has one prefix-chained id per ``hash_block_size`` prompt
    tokens: the blocks lying wholly inside the system prompt carry the group's ids, shared by all its
    prompts; every later block is unique to its prompt. Prompts of all groups are shuffled (with
    ``seed``) and then given the arrival times in order, so groups interleave.
    """
    groups = whole("num_groups", num_groups)
    per_group = whole("prompts_per_group", prompts_per_group)
    system = whole("system_prompt_len", system_prompt_len, 0)
    block = whole("hash_block_size", hash_block_size)
    n = groups * per_group
    order_seed, arrival_seed, question_seed, output_seed = np.random.SeedSequence(whole("seed", seed, 0)).spawn(4)
    question_dist, output_dist = as_lengths(question_len), as_lengths(output_len)
    group_of = np.random.default_rng(order_seed).permutation(np.repeat(np.arange(groups), per_group))
    input_tokens = system + question_dist.sample(n, question_seed)
    shared = system // block
    next_id = groups * shared
    hash_ids = []
    for g, tokens in zip(group_of, input_tokens):
        own = blocks_for(int(tokens), block) - shared
        hash_ids.append(list(range(g * shared, (g + 1) * shared)) + list(range(next_id, next_id + own)))
        next_id += own
    frame = pd.DataFrame({
        "arrival_s": arrival.sample(n, arrival_seed) if arrival is not None else np.zeros(n),
        "input_tokens": input_tokens,
        "output_tokens": output_dist.sample(n, output_seed),
        "hash_ids": hash_ids,
    })
    source = (f"shared prefix: {groups} groups x {per_group} prompts, system prompt {system} tokens, "
              f"question={question_dist!r}, output_tokens={output_dist!r}, arrival={arrival!r}, seed={seed}")
    return canonical_trace(frame, hash_block_size=block, source=source)


def closed_loop(trace_or_lengths: Trace | tuple[Sequence[int], Sequence[int]], concurrency: int) -> Trace:
    """A closed-loop trace: ``concurrency`` clients each send their next request when the previous finishes.

    Takes a Trace (its rows keep their order) or a pair (input token counts, output token counts).
    All arrival times become 0; row order is the order in which requests are sent.
    """
    clients = whole("concurrency", concurrency)
    if isinstance(trace_or_lengths, Trace):
        trace = trace_or_lengths
        return replace(trace.with_arrivals(np.zeros(trace.num_requests)), concurrency=clients,
                       source=f"{trace.source}; closed loop, concurrency={clients}")
    inputs, outputs = trace_or_lengths
    frame = pd.DataFrame({"arrival_s": 0.0, "input_tokens": np.asarray(inputs), "output_tokens": np.asarray(outputs)})
    return canonical_trace(frame, concurrency=clients,
                           source=f"closed loop: {len(frame)} requests, concurrency={clients}")
