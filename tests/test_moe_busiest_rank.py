"""The busiest EP rank under independently routed tokens (cost/moe_routing.py: busiest_rank_experts) and the floor
it puts under the synthetic power-law rows of the ``moe`` tables (IterationCostModel._moe_compute_ms)."""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.cost.iteration import IterationCostModel
from frontier_calib.cost.moe_routing import balanced_equivalent_tokens, busiest_rank_experts
from frontier_calib.cost.worker import WorkerSpec
from frontier_calib.errors import FrontierError
from frontier_calib.hardware import get_gpu
from frontier_calib.model_spec import load_model

from stub_models import StubModels


def test_one_rank_reads_the_expected_distinct_experts():
    """ep = 1: the distinct experts n tokens touch, E (1 - (1 - k/E)^n) in closed form."""
    n = np.array([1, 4, 16, 64])
    exact = 256 * (1 - (1 - 8 / 256) ** n)
    np.testing.assert_allclose(busiest_rank_experts(256, 8, 1, n), exact, rtol=0.03)


def test_busiest_of_eight_ranks_is_above_the_mean_rank_and_saturates():
    n = np.array([1, 4, 16, 64, 2000])
    d = busiest_rank_experts(256, 8, 8, n)
    mean_rank = 32 * (1 - (1 - 8 / 256) ** n)
    assert (d[:3] > mean_rank[:3] * 1.2).all() and d[3] > mean_rank[3]   # the max of 8 ranks, not the mean one
    assert (d <= np.minimum(32, n * 8)).all() and d[-1] == 32
    assert np.all(np.diff(d) > 0)
    np.testing.assert_array_equal(d, busiest_rank_experts(256, 8, 8, n))    # seeded
    # balanced rows: a rank holds n*topk/ep picks on as many experts, so the equivalent count is d*ep/topk
    np.testing.assert_array_equal(balanced_equivalent_tokens(256, 8, 8, n), np.rint(d).astype(int))
    np.testing.assert_array_equal(balanced_equivalent_tokens(256, 8, 4, [4]), np.rint(busiest_rank_experts(
        256, 8, 4, [4]) / 2).astype(int))


@pytest.mark.parametrize("args", [(256, 8, 3), (0, 8, 1), (8, 16, 1)])
def test_bad_layouts_are_refused(args):
    with pytest.raises(FrontierError, match="expert layout"):
        busiest_rank_experts(*args, [4])


def _fn(family, df):
    """moe: 0.01 ms per token on the balanced rows, half that on the power-law rows (the synthetic draw's busiest
    rank reads fewer experts); GEMMs slow enough that the dense-path bound never binds."""
    if family == "moe":
        per = np.where(df["distribution"] == "balanced", 0.01, 0.005)
        return per * df["num_tokens"].to_numpy()
    return np.full(len(df), 100.0)


def _moe_ms(routing, n, ep=8):
    w = WorkerSpec(model=load_model("DeepSeek-V3"), gpu="h100_sxm", engine="vllm", dtype="bf16", moe_dtype="bf16",
                   kv_dtype="bf16", tp=8, ep=ep, moe_tp=8 // ep, routing=routing)
    cm = IterationCostModel.__new__(IterationCostModel)   # a shell: the MoE pieces only, no tables built
    cm.worker, cm.models, cm.spec = w, StubModels(_fn), get_gpu(w.gpu)
    return cm._moe_compute_ms(np.asarray(n))


def test_power_law_rows_are_floored_by_the_balanced_rows_at_the_busiest_ranks_experts():
    n = np.array([4, 16])
    got = _moe_ms("power_law_1.01", n)
    floor = 0.01 * balanced_equivalent_tokens(256, 8, 8, n)
    np.testing.assert_allclose(got, floor)                  # 0.07 / 0.17 ms, not the power-law rows' 0.02 / 0.08
    assert (got > 0.005 * n).all()
    np.testing.assert_allclose(_moe_ms("balanced", n), 0.01 * n)   # an explicit routing is taken as it is
    big = np.array([512])                                   # every local expert active: the power-law row is larger
    np.testing.assert_allclose(_moe_ms("power_law_1.01", big), 0.005 * 512)
