"""The cost model (frontier_calib.cost) on the real fitted operator models: Llama-2-7b on one H100 with vLLM.

Physics sanity (more work never costs less), the fast-forward contract with the simulator, the table cache,
breakdowns, and the memory plan (weights, KV bytes per token, KV blocks) worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from frontier_calib.cost.cache import cost_model_for, needed_families
from frontier_calib.cost.iteration import (IterationCostModel, _monotone, hierarchical_allreduce_ms,
                                           nvlink_collective_ms, ring_allreduce_ms)
from frontier_calib.cost.memory import NCCL_BYTES, RESERVED_BYTES, plan_memory
from frontier_calib.cost.worker import Overheads, WorkerSpec, tp_nodes
from frontier_calib.engines import get_engine
from frontier_calib.errors import FrontierError
from frontier_calib.hardware import get_gpu
from frontier_calib.model_spec import load_model

EMPTY = np.zeros(0, dtype=np.int64)


@pytest.fixture(scope="module")
def models(frontier_cache, worker):
    from frontier_calib.opmodel.registry import cached_model_set

    return cached_model_set(worker.gpu, worker.engine, families=needed_families(worker))


@pytest.fixture(scope="module")
def long_prefill_cost(frontier_cache, worker):
    """Tables wide enough for a 4096-token prefill chunk in one step (token budget 4096)."""
    return cost_model_for(worker, max_tokens=4096, max_seqs=8, max_model_len=4096)


# ----------------------------------------------------------------------------------------------- physics

def test_needs_only_gemm_and_attention(worker):
    assert needed_families(worker) == ["gemm", "attention_prefill", "attention_decode"]


def test_decode_step_grows_with_batch_size(cost):
    for kv_per_seq in (16, 512, 4096):
        times = np.array([cost.decode_times(b, [b * kv_per_seq])[0] for b in range(1, cost.max_seqs + 1)])
        assert np.all(np.diff(times) >= 0), f"a larger decode batch got cheaper at kv={kv_per_seq}"
        for b in (1, 2, 4, 8, 16, 32, 64):  # and strictly at every doubling
            assert times[2 * b - 1] > times[b - 1]


def test_decode_step_grows_with_kv_length(cost):
    for b in (1, 8, 64, 128):
        kv = np.arange(1, cost.max_model_len + 1)
        times = cost.decode_times(b, b * kv)
        assert np.all(np.diff(times) >= 0), f"longer KV got cheaper at batch {b}"
        assert times[4095] > times[2047] > times[1023] > times[127]


def test_decode_step_magnitude_is_plausible(cost):
    # one sequence: ~13.5 GB of bf16 weights read once per step at 3.35 TB/s (~4 ms) plus ~2 ms engine overhead
    one = cost.iteration_time(EMPTY, EMPTY, 1, 128)
    assert 0.004 < one < 0.015
    # 64 sequences x 2048 tokens of KV: 64 GiB of KV reads, ~20 ms at HBM speed on top
    big = cost.iteration_time(EMPTY, EMPTY, 64, 64 * 2048)
    assert 0.02 < big < 0.1


def test_prefill_with_cached_prefix_costs_between_no_prefix_and_full_prefill(cost, long_prefill_cost):
    for cm in (cost, long_prefill_cost):
        chunk = cm.iteration_time(np.array([512]), np.array([512]), 0, 0)
        on_prefix = cm.iteration_time(np.array([512]), np.array([4096]), 0, 0)
        assert on_prefix > chunk
    full = long_prefill_cost.iteration_time(np.array([4096]), np.array([4096]), 0, 0)
    on_prefix = long_prefill_cost.iteration_time(np.array([512]), np.array([4096]), 0, 0)
    assert full > on_prefix
    # about the same answer from the deployment's own (512-token budget) tables (other grid points)
    assert cost.iteration_time(np.array([512]), np.array([4096]), 0, 0) == pytest.approx(on_prefix, rel=0.01)


def test_prefill_grows_with_chunk_and_with_prefix(long_prefill_cost):
    cm = long_prefill_cost
    q = np.array([1, 16, 64, 256, 512, 1024, 2048, 4096])
    t_q = [cm.iteration_time(np.array([x]), np.array([x]), 0, 0) for x in q]
    assert np.all(np.diff(t_q) > 0)
    kv = np.arange(256, 4097, 16)
    t_kv = [cm.iteration_time(np.array([256]), np.array([k]), 0, 0) for k in kv]
    assert np.all(np.diff(t_kv) >= 0)


def test_mixed_step_costs_more_than_either_part(cost):
    pre = cost.iteration_time(np.array([256]), np.array([256]), 0, 0)
    dec = cost.iteration_time(EMPTY, EMPTY, 32, 32 * 1000)
    both = cost.iteration_time(np.array([256]), np.array([256]), 32, 32 * 1000)
    assert both > max(pre, dec)
    assert both < pre + dec  # the weights are read once


def test_tables_are_monotone_in_every_axis(cost):
    t = cost.tables
    assert np.all(np.diff(t["token_ms"]) >= 0)
    assert np.all(np.diff(t["lm_head_ms"]) >= 0)
    for name in ("decode_ms", "prefill_ms"):
        assert np.all(np.diff(t[name], axis=0) >= 0), name
        assert np.all(np.diff(t[name], axis=1) >= 0), name


def test_monotone_helper_keeps_monotone_input_and_fixes_dips():
    a = np.array([1.0, 2.0, 3.0, 5.0])
    assert np.array_equal(_monotone(a, 0), a)
    fixed = _monotone(np.array([1.0, 3.0, 2.0, 4.0]), 0)
    assert np.all(np.diff(fixed) >= 0) and fixed[0] == 1.0 and fixed[-1] == 4.0
    grid = np.random.default_rng(0).normal(size=(20, 30)).cumsum(axis=0).cumsum(axis=1)
    grid += np.random.default_rng(1).normal(scale=2.0, size=grid.shape)
    both = _monotone(_monotone(grid, 0), 1)
    assert np.all(np.diff(both, axis=0) >= 0) and np.all(np.diff(both, axis=1) >= 0)


# ---------------------------------------------------------------------------------- simulator contract

@pytest.mark.parametrize("b,kv_sum", [(1, 1), (1, 4096), (7, 3000), (64, 64 * 777), (128, 128 * 4096),
                                      (200, 200 * 1000)])
def test_decode_times_equals_iteration_time_exactly(cost, b, kv_sum):
    assert cost.decode_times(b, np.array([kv_sum]))[0] == cost.iteration_time(EMPTY, EMPTY, b, kv_sum)


def test_decode_times_is_vectorised_iteration_time(cost):
    sums = np.array([16 * 10, 16 * 100, 16 * 1000, 16 * 4000])
    assert list(cost.decode_times(16, sums)) == [cost.iteration_time(EMPTY, EMPTY, 16, int(s)) for s in sums]


def test_empty_step_costs_nothing(cost):
    assert cost.iteration_time(EMPTY, EMPTY, 0, 0) == 0.0


def test_times_are_seconds_with_the_engine_overheads(cost, worker):
    """Without CPU/GPU overlap the scheduler's CPU time adds to the kernels (engine_time.step_seconds)."""
    from dataclasses import replace

    ov = worker.overheads   # the engine's, after the shipped calibration
    serial = IterationCostModel(replace(worker, overlap=False), None, max_tokens=cost.max_tokens,
                                max_seqs=cost.max_seqs, max_model_len=cost.max_model_len, tables=cost.tables)
    b = serial.breakdown(EMPTY, EMPTY, 16, 16 * 100)          # 16 is a captured size: no padding
    assert b.overhead_ms == pytest.approx((ov.step_s + 16 * (ov.per_seq_s + ov.per_token_s)) * 1e3)


@pytest.mark.parametrize("q,kv,nd,kvsum", [([512], [512], 0, 0), ([512], [4096], 0, 0), ([], [], 64, 64 * 900),
                                           ([100, 30, 7], [1100, 30, 2000], 20, 20 * 1500),
                                           ([1], [1], 1, 1)])
def test_breakdown_sums_to_total(cost, q, kv, nd, kvsum):
    q, kv = np.array(q, dtype=np.int64), np.array(kv, dtype=np.int64)
    b = cost.breakdown(q, kv, nd, kvsum)
    assert b.total_ms == pytest.approx(cost.iteration_time(q, kv, nd, kvsum) * 1e3, rel=1e-12)
    assert min(b.token_ops_ms, b.lm_head_ms) > 0 and b.overhead_ms >= 0   # overlap can hide the CPU time
    assert (b.prefill_attention_ms > 0) == (len(q) > 0)
    assert (b.decode_attention_ms > 0) == (nd > 0)


def test_prefill_chunks_of_one_step_run_as_one_batched_call(cost):
    one = cost.breakdown(np.array([200]), np.array([1200]), 0, 0).prefill_attention_ms
    three = cost.breakdown(np.array([200] * 3), np.array([1200] * 3), 0, 0).prefill_attention_ms
    # one variable-length call: the batched table between batch 2 and 4, below three separate calls
    assert three == pytest.approx(min(3 * one, max(cost._prefill_batched_one(3, 200.0, 1200.0), one)))
    assert one < three < 3 * one
    # the batched table is the operator model's own prediction at that batch size
    lo, hi = cost._prefill_batched_one(2, 200, 1200), cost._prefill_batched_one(4, 200, 1200)
    assert lo <= three <= hi
    # uneven chunks: never less than the largest alone, never more than separate calls
    q, kv = np.array([2000, 10, 10]), np.array([3000, 500, 500])
    mixed = cost.breakdown(q, kv, 0, 0).prefill_attention_ms
    singles = [cost.breakdown(q[i:i + 1], kv[i:i + 1], 0, 0).prefill_attention_ms for i in range(3)]
    assert max(singles) <= mixed <= sum(singles)


def test_batched_prefill_table_reads_the_batch_axis(cost, models):
    from frontier_calib.attention import QueryContext
    from frontier_calib.cost.iteration import PREFILL_BATCHES

    b = PREFILL_BATCHES.index(8)
    kind, window, layers = cost._attention_layers[0]
    fam, df = kind.prefill_query(QueryContext(cost.worker, window, models), np.array([256]), np.array([1024]))
    assert "batch_size" in df.columns
    want = layers * models.predict(fam, df.assign(batch_size=8))[0]
    assert cost._prefill_batch_lookup[b].one(256, 1024) == pytest.approx(want, rel=0.15)   # grid interpolation


# ------------------------------------------------------------------------------------------ the cache

def test_cached_tables_give_identical_answers_to_fresh_ones(frontier_cache, worker, models, cost):
    kw = dict(max_tokens=cost.max_tokens, max_seqs=cost.max_seqs, max_model_len=cost.max_model_len)
    fresh = IterationCostModel(worker, models, **kw)
    loaded = cost_model_for(worker, **kw)
    assert loaded.models is None  # came from the .npz, no XGBoost involved
    assert sorted(fresh.tables) == sorted(loaded.tables)
    for k in fresh.tables:
        assert np.array_equal(fresh.tables[k], loaded.tables[k]), k
    rng = np.random.default_rng(0)
    for _ in range(200):  # steps the scheduler can issue: at most max_tokens tokens, max_seqs decodes
        n = int(rng.integers(0, 4))
        q = rng.integers(1, 120, n)
        kv = q + rng.integers(0, 3000, n)
        nd = int(rng.integers(0, cost.max_seqs + 1))
        kvsum = int(nd * rng.integers(1, 4000)) if nd else 0
        assert q.sum() + nd <= cost.max_tokens
        assert fresh.iteration_time(q, kv, nd, kvsum) == loaded.iteration_time(q, kv, nd, kvsum)
    for b in (1, 5, 77, 128):
        sums = b * np.array([1, 10, 333, 4096])
        assert np.array_equal(fresh.decode_times(b, sums), loaded.decode_times(b, sums))


def test_cache_files_and_keys(frontier_cache, worker, cost):
    files = sorted((frontier_cache / "cost_tables").glob("Llama-2-7b-h100_sxm-vllm-*.npz"))
    assert files, "the cost tables were not cached"
    # another table limit is another entry; the same one is a hit
    before = set(files)
    cost_model_for(worker, max_tokens=cost.max_tokens, max_seqs=cost.max_seqs, max_model_len=cost.max_model_len)
    assert set((frontier_cache / "cost_tables").glob("Llama-2-7b-*.npz")) == before


def test_overheads_are_not_baked_into_the_tables(frontier_cache, worker, cost):
    from dataclasses import replace

    slow = replace(worker, overheads=replace(worker.overheads, step_s=0.01), overlap=False)
    cm = cost_model_for(slow, max_tokens=cost.max_tokens, max_seqs=cost.max_seqs, max_model_len=cost.max_model_len)
    assert cm.models is None  # same tables, loaded from the cache
    serial = IterationCostModel(replace(worker, overlap=False), None, max_tokens=cost.max_tokens,
                                max_seqs=cost.max_seqs, max_model_len=cost.max_model_len, tables=cost.tables)
    delta = cm.iteration_time(EMPTY, EMPTY, 8, 8000) - serial.iteration_time(EMPTY, EMPTY, 8, 8000)
    assert delta == pytest.approx(0.01 - worker.overheads.step_s)


def test_fp16_checkpoint_uses_the_16_bit_kernel_tables(frontier_cache, worker, models):
    from dataclasses import replace

    kw = dict(max_tokens=64, max_seqs=4, max_model_len=512)
    bf16 = IterationCostModel(worker, models, **kw)
    fp16 = IterationCostModel(replace(worker, dtype="fp16", kv_dtype="fp16"), models, **kw)
    for k in bf16.tables:
        assert np.array_equal(bf16.tables[k], fp16.tables[k]), k


def test_overheads_reject_bad_values():
    with pytest.raises(FrontierError, match="unknown overhead"):
        Overheads.for_engine("vllm", kernel_s=1)
    for bad in (-0.001, "fast", float("nan"), True):
        with pytest.raises(FrontierError, match=">= 0"):
            Overheads.for_engine("vllm", step_s=bad)
    assert Overheads.for_engine("sglang").step_s == get_engine("sglang").overheads["step_s"]


# ------------------------------------------------------------------------ tensor parallelism across nodes

H100 = get_gpu("h100_sxm")
BYTES = np.geomspace(256, 2**30, 40)   # all-reduce buffers, bytes


def test_ring_allreduce_by_hand():
    assert np.all(ring_allreduce_ms(BYTES, 1, 50e9, 10e-6) == 0)   # one rank: nothing to exchange
    # 4 ranks: 6 steps of nbytes / 4 each -> 1.5 x 1 GB / 50 GB/s = 30 ms, plus 6 x 10 us
    assert ring_allreduce_ms(1e9, 4, 50e9, 10e-6) == pytest.approx(30.0 + 0.06)


def test_hierarchical_allreduce_by_hand():
    # 2 nodes of 8 H100: NVLink reduce-scatter and all-gather of 80 MB (7/8 x 80 MB / 450 GB/s + 7 x 3 us each),
    # then a 2-rank ring of the 10 MB shard over the network (2 steps of 5 MB at 50 GB/s + 2 x 10 us)
    nb = 80e6
    intra = (7 / 8 * nb / 450e9 + 7 * 3e-6) * 1e3
    inter = (nb / 8 / 50e9 + 2 * 10e-6) * 1e3
    assert hierarchical_allreduce_ms(nb, 2, 8, H100) == pytest.approx(2 * intra + inter)
    assert hierarchical_allreduce_ms(nb, 3, 1, H100) == pytest.approx(ring_allreduce_ms(nb, 3, 50e9, 10e-6))


def test_hierarchical_allreduce_on_one_node_is_the_intra_node_result():
    calls = []

    def intra(op, nbytes, g):
        calls.append((op, g))
        return np.full(np.shape(nbytes), 0.25 if op == "reduce_scatter" else 0.5)

    assert np.array_equal(hierarchical_allreduce_ms(BYTES, 1, 8, H100, intra), np.full(len(BYTES), 0.75))
    assert calls == [("reduce_scatter", 8), ("all_gather", 8)]
    default = hierarchical_allreduce_ms(BYTES, 1, 8, H100)
    assert np.array_equal(default, nvlink_collective_ms("reduce_scatter", BYTES, 8, H100)
                          + nvlink_collective_ms("all_gather", BYTES, 8, H100))


def test_hierarchical_allreduce_grows_with_bytes_and_nodes():
    by_nodes = np.array([hierarchical_allreduce_ms(BYTES, nodes, 8, H100) for nodes in range(1, 17)])
    assert np.all(np.diff(by_nodes, axis=1) > 0), "a larger buffer got cheaper"
    assert np.all(np.diff(by_nodes, axis=0) > 0), "more nodes got cheaper"


def test_tp_nodes_counts_whole_nodes_and_rejects_partial_ones():
    assert [tp_nodes(tp, 8) for tp in (1, 2, 8, 16, 64)] == [1, 1, 1, 2, 8]
    assert tp_nodes(4, 2) == 2 and tp_nodes(3, 1) == 3
    for tp, g in ((12, 8), (10, 4), (16, 6)):
        with pytest.raises(FrontierError, match=f"tp={tp} spans more than one node .{g} GPUs per node. but is not "
                                                f"a multiple of {g}: tensor parallelism across nodes must use whole"):
            tp_nodes(tp, g)


@pytest.fixture(scope="module")
def tp_costs(frontier_cache, worker):
    """Llama-2-7b on H100 / vLLM at tp 1..64 (small tables), with the collective models."""
    from dataclasses import replace

    from frontier_calib.opmodel.registry import cached_model_set

    fams = needed_families(replace(worker, tp=2))
    models = cached_model_set(worker.gpu, worker.engine, families=fams)
    return models, {tp: IterationCostModel(replace(worker, tp=tp), models, max_tokens=64, max_seqs=4, max_model_len=256)
                    for tp in (2, 8, 16, 32, 64)}


def test_tp_allreduce_inside_a_node_is_the_profiled_custom_allreduce(tp_costs, worker):
    import pandas as pd

    models, costs = tp_costs
    n = np.arange(1, 65)
    for tp in (2, 8):
        want = models.predict("collective", pd.DataFrame({
            "op": "all_reduce", "implementation": "custom", "dtype": "bf16", "num_gpus": tp,
            "message_bytes": n * worker.model.hidden_size * 2}))
        assert np.array_equal(costs[tp]._tp_allreduce_ms(n), want)


def test_tp_allreduce_across_nodes_is_hierarchical_and_costs_more(tp_costs, worker):
    import pandas as pd

    models, costs = tp_costs
    n = np.array([1, 8, 64, 512, 4096, 32768])
    nbytes = n * worker.model.hidden_size * 2

    def nccl(op, b, g):
        return models.predict("collective", pd.DataFrame({"op": op, "implementation": "nccl", "dtype": "bf16",
                                                          "num_gpus": g, "message_bytes": b}))

    ms = {tp: costs[tp]._tp_allreduce_ms(n) for tp in (8, 16, 32, 64)}
    assert np.array_equal(ms[16], np.maximum(hierarchical_allreduce_ms(nbytes, 2, 8, H100, nccl), ms[8]))
    for lo, hi in ((8, 16), (16, 32), (32, 64)):
        assert np.all(ms[hi] > ms[lo]), (lo, hi)
    # the fitted NCCL stages wobble by ~1% between neighbouring sizes (the token tables smooth that, _monotone);
    # over 16x more bytes the time grows
    assert np.all(np.diff(costs[64]._tp_allreduce_ms(16 ** np.arange(5))) > 0)


# ----------------------------------------------------------------------------------------------- memory

def test_llama2_7b_memory_plan_by_hand():
    m = load_model("Llama-2-7b")
    w = WorkerSpec(model=m, gpu="h100_sxm", engine="vllm", dtype="bf16")
    plan = plan_memory(w, gpu_memory_utilization=0.9, block_size=16)
    # KV: 2 (K and V) x 32 layers x 32 KV heads x 128 head dim x 2 bytes
    assert plan.kv_bytes_per_token == 2 * 32 * 32 * 128 * 2 == 524_288
    # weights: embeddings + LM head (32000 x 4096 each) + 32 x (4 x 4096^2 attention + 3 x 4096 x 11008 MLP), bf16
    # + 2 RMSNorm weights per layer and a final one
    params = 2 * 32000 * 4096 + 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 4096
    assert params == pytest.approx(6.74e9, rel=1e-3)
    assert plan.weight_bytes == 2 * params
    assert plan.weight_bytes == pytest.approx(13.5e9, rel=0.01)
    gpu = get_gpu("h100_sxm").memory_bytes
    assert plan.gpu_bytes == gpu
    assert plan.usable_bytes == gpu * 0.9
    assert plan.reserved_bytes == RESERVED_BYTES + NCCL_BYTES[1]
    tokens = int((gpu * 0.9 - plan.weight_bytes - RESERVED_BYTES) // 524_288)
    assert plan.kv_tokens == tokens
    assert plan.kv_blocks == tokens // 16
    assert 100_000 < plan.kv_tokens < 130_000  # ~60 GB of KV
    # a lower utilisation leaves fewer blocks; a bigger block size fewer, larger blocks
    assert plan_memory(w, gpu_memory_utilization=0.5).kv_blocks < plan.kv_blocks
    assert plan_memory(w, block_size=32).kv_blocks == tokens // 32


def test_trtllm_fraction_is_of_the_free_memory():
    """TensorRT-LLM's free_gpu_memory_fraction is a share of what the weights and activations leave free, vLLM's
    gpu_memory_utilization a share of the whole GPU: the same worker gets (G - W - R) x f vs G x f - W - R bytes."""
    m = load_model("Llama-2-7b")
    vllm = plan_memory(WorkerSpec(model=m, gpu="h100_sxm", engine="vllm", dtype="bf16"), gpu_memory_utilization=0.9)
    trt = plan_memory(WorkerSpec(model=m, gpu="h100_sxm", engine="trtllm", dtype="bf16"), gpu_memory_utilization=0.9)
    gpu, w, r = vllm.gpu_bytes, vllm.weight_bytes, vllm.reserved_bytes
    assert trt.kv_tokens == int((gpu - w - r) * 0.9 // trt.kv_bytes_per_token)
    assert vllm.kv_tokens == int((gpu * 0.9 - w - r) // vllm.kv_bytes_per_token)
    # the difference is 10% of weights + reserved: for a model that fills most of the GPU it is most of the KV
    assert (trt.kv_tokens - vllm.kv_tokens) * trt.kv_bytes_per_token == pytest.approx(0.1 * (w + r), rel=1e-3)


def test_tp_splits_weights_and_kv():
    m = load_model("Llama-2-7b")
    one = plan_memory(WorkerSpec(model=m, gpu="h100_sxm", engine="vllm", dtype="bf16"))
    two = plan_memory(WorkerSpec(model=m, gpu="h100_sxm", engine="vllm", dtype="bf16", tp=2))
    assert two.kv_bytes_per_token == one.kv_bytes_per_token / 2
    assert two.weight_bytes < 0.55 * one.weight_bytes
    assert two.kv_tokens > 2 * one.kv_tokens


def test_fp8_kv_halves_bytes_per_token():
    m = load_model("Llama-2-7b")
    plan = plan_memory(WorkerSpec(model=m, gpu="h100_sxm", engine="vllm", dtype="bf16", kv_dtype="fp8"))
    assert plan.kv_bytes_per_token == 262_144


def test_model_that_does_not_fit_is_rejected_with_the_reason():
    m = load_model("Meta-Llama-3.1-405B")
    with pytest.raises(FrontierError, match="does not fit on h100_sxm") as exc:
        plan_memory(WorkerSpec(model=m, gpu="h100_sxm", engine="vllm", dtype="bf16"))
    assert "GiB" in str(exc.value) and "more GPUs" in str(exc.value)


@pytest.mark.parametrize("util", [0, -0.1, 1.01])
def test_bad_utilisation_is_rejected(util):
    m = load_model("Llama-2-7b")
    with pytest.raises(FrontierError, match="gpu_memory_utilization"):
        plan_memory(WorkerSpec(model=m, gpu="h100_sxm", engine="vllm"), gpu_memory_utilization=util)
