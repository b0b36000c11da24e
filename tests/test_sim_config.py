"""Scheduler settings are validated with the field named."""

from __future__ import annotations

import pytest

from frontier_calib.errors import FrontierError
from frontier_calib.sim import LinearCost, ReplicaSpec, SchedulerConfig, simulate
from frontier_calib.sim.testing import make_trace


@pytest.mark.parametrize("kw,word", [
    ({"policy": "tgi"}, "policy"),
    ({"block_size": 0}, "block_size"),
    ({"num_kv_blocks": -1}, "num_kv_blocks"),
    ({"max_num_batched_tokens": 64, "max_num_seqs": 128}, "budget"),
    ({"capacity_scheduler_policy": "static"}, "capacity_scheduler_policy"),
    ({"enable_chunked_prefill": False, "max_num_batched_tokens": 512, "max_model_len": 4096}, "chunked"),
    ({"schedule_conservativeness": 0}, "conservativeness"),
])
def test_invalid_configs(kw, word):
    with pytest.raises(FrontierError, match=word):
        SchedulerConfig(**kw)


def test_sglang_decodes_need_no_token_budget():
    SchedulerConfig(policy="sglang", max_num_batched_tokens=64, max_num_seqs=256)


def test_trtllm_limits_default_to_common_names():
    cfg = SchedulerConfig(policy="trtllm", max_num_batched_tokens=1024, max_num_seqs=64)
    assert cfg.step_token_budget == 1024 and cfg.max_running == 64
    cfg = SchedulerConfig(policy="trtllm", max_batch_size=8, max_num_tokens=256)
    assert cfg.step_token_budget == 256 and cfg.max_running == 8


def test_trace_problems_are_reported():
    import pandas as pd
    from frontier_calib.sim.testing import Trace
    bad = Trace(pd.DataFrame({"request_id": [0], "arrival_s": [0.0], "input_tokens": [5]}))
    with pytest.raises(FrontierError, match="output_tokens"):
        simulate(bad, [ReplicaSpec(SchedulerConfig(), LinearCost())])
    hashed = make_trace([0.0], [32], [2], hash_ids=[[1, 2]])
    with pytest.raises(FrontierError, match="hash_block_size"):
        simulate(hashed, [ReplicaSpec(SchedulerConfig(), LinearCost())])
    nan = make_trace([float("nan")], [5], [2])
    with pytest.raises(FrontierError, match="row 0"):
        simulate(nan, [ReplicaSpec(SchedulerConfig(), LinearCost())])
