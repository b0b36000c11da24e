"""CPU profiling end to end: canonical tables, resumability, budget, torch-absent error, kernel checks."""

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from frontier_calib.errors import FrontierError
from frontier_calib.model_spec import load_model
from frontier_calib.profiling.commands import profile
from frontier_calib.profiling.estimate import CPU_SPEC
from frontier_calib.profiling.journal import Journal
from frontier_calib.profiling.plan import Limits, Shape, build_plan, tiny_model
from frontier_calib.profiling.timing import Timer, TimingConfig
from frontier_calib.profiles.store import available, load_family, read_table

TINY = ["--device", "cpu", "--tiny", "--no-progress", "--repeats", "2", "--warmup", "1",
        "--max-num-batched-tokens", "16", "--max-num-seqs", "4", "--max-model-len", "64"]


def test_torch_absent_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)         # `import torch` now raises ImportError
    res = CliRunner().invoke(profile, ["gemm", "--out", str(tmp_path), "--model", "Llama-2-7b", *TINY])
    assert isinstance(res.exception, FrontierError)
    assert "profiling needs PyTorch" in str(res.exception) and "--dry-run works without it" in str(res.exception)
    res = CliRunner().invoke(profile, ["gemm", "--out", str(tmp_path), "--model", "Llama-2-7b", "--dry-run"])
    assert res.exit_code == 0 and "gemm" in res.output


# ------------------------------------------------------------------ everything below needs torch

def _torch():
    return pytest.importorskip("torch")


def test_cpu_profile_writes_valid_canonical_tables(tmp_path):
    _torch()
    res = CliRunner().invoke(profile, ["all", "--out", str(tmp_path), "--model", "Mixtral-8x7B-v0.1", *TINY],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "only exercise the profile -> fit -> predict pipeline" in res.output
    assert "collective: skipped in a single process" in res.output
    tables = available(tmp_path)
    assert set(tables["family"]) == {"gemm", "attention_prefill", "attention_decode", "moe"}
    assert set(tables["gpu"]) == {"cpu"} and set(tables["engine"]) == {"torch"}
    for _, t in tables.iterrows():
        df = read_table(t["path"], t["family"])             # validates against the canonical schema
        assert len(df) > 0 and (df["latency_ms"] > 0).all()
        assert df["engine_version"].iloc[0] == _torch().__version__
    gemm = load_family("gemm", "cpu", "torch", root=tmp_path)
    assert set(gemm["kernel"]) == {"torch_mm"}
    assert set(load_family("moe", "cpu", "torch", root=tmp_path)["kernel"]) == {"torch_grouped_loop"}
    meta = json.loads((tmp_path / "cpu" / "torch" / "profile_meta.json").read_text())
    env = meta["runs"][-1]["environment"]
    assert env["torch"] == _torch().__version__ and "pipeline" in env["note"]
    assert meta["runs"][-1]["timing"]["repeats"] == 2
    assert meta["families"]["gemm"]["table_rows"] == len(gemm)


def _small_plan():
    model = tiny_model(load_model("Mixtral-8x7B-v0.1"))
    return build_plan([model], ["gemm"], tps=[1], limits=Limits(max_num_batched_tokens=8))


def _settings(tmp_path, **kw):
    from frontier_calib.profiling.runner import RunSettings
    return RunSettings(out=tmp_path, gpu="cpu", engine="torch", engine_version="test", device="cpu",
                       timing=TimingConfig(warmup=0, repeats=1, flush_l2=False), progress=False, **kw)


def test_resume_after_crash_skips_done_shapes(tmp_path):
    torch = _torch()
    from frontier_calib.profiling import kernels_gemm
    from frontier_calib.profiling.runner import run_plan

    plan = _small_plan()
    total = plan.total()
    calls = []

    def crashing(shape, ctx):
        if len(calls) == 3:
            raise RuntimeError("injected crash")
        calls.append(shape.key)
        return kernels_gemm.prepare(shape, ctx)

    with pytest.raises(RuntimeError, match="injected crash"):
        run_plan(plan, _settings(tmp_path), torch=torch, spec=CPU_SPEC, preparers={"gemm": crashing})
    fdir = tmp_path / "cpu" / "torch"
    assert len(Journal(fdir / "gemm.journal.jsonl").records()) == 3
    assert len(read_table(fdir / "gemm.parquet", "gemm")) == 3        # finished rows survive the crash

    again = []

    def counting(shape, ctx):
        again.append(shape.key)
        return kernels_gemm.prepare(shape, ctx)

    (res,) = run_plan(plan, _settings(tmp_path), torch=torch, spec=CPU_SPEC, preparers={"gemm": counting})
    assert res.already_done == 3 and res.measured == total - 3
    assert not set(again) & set(calls)                                  # nothing measured twice
    df = read_table(fdir / "gemm.parquet", "gemm")
    assert len(df) == total and not df.duplicated(["dtype", "m", "n", "k"]).any()
    lines = (fdir / "gemm.journal.jsonl").read_text().splitlines()
    assert len(lines) == total


def test_ctrl_c_keeps_rows_and_truncated_journal_line_is_ignored(tmp_path):
    torch = _torch()
    from frontier_calib.profiling import kernels_gemm
    from frontier_calib.profiling.runner import run_plan

    plan = _small_plan()
    n = []

    def interrupting(shape, ctx):
        if len(n) == 2:
            raise KeyboardInterrupt
        n.append(1)
        return kernels_gemm.prepare(shape, ctx)

    (res,) = run_plan(plan, _settings(tmp_path), torch=torch, spec=CPU_SPEC, preparers={"gemm": interrupting})
    assert res.stopped == "interrupted" and res.measured == 2 and res.table_rows == 2
    journal = tmp_path / "cpu" / "torch" / "gemm.journal.jsonl"
    with open(journal, "a") as fh:
        fh.write('{"key": "gemm|dtype=bf16;m=1')                   # a line cut short by a crash
    assert len(Journal(journal).records()) == 2


def test_budget_stops_early(tmp_path):
    torch = _torch()
    from frontier_calib.profiling.runner import run_plan

    (res,) = run_plan(_small_plan(), _settings(tmp_path, budget_s=0.0), torch=torch, spec=CPU_SPEC)
    assert res.stopped == "budget" and res.measured == 0


def test_unsupported_shapes_are_journaled_as_skipped(tmp_path):
    torch = _torch()
    from frontier_calib.profiling.runner import run_plan

    plan = build_plan([tiny_model(load_model("Mixtral-8x7B-v0.1"))], ["gemm"], tps=[1], dtypes=["int4_wo"],
                      limits=Limits(max_num_batched_tokens=2))
    (res,) = run_plan(plan, _settings(tmp_path), torch=torch, spec=CPU_SPEC)
    assert res.skipped == plan.total() and res.table is None
    (res2,) = run_plan(plan, _settings(tmp_path), torch=torch, spec=CPU_SPEC)
    assert res2.already_done == plan.total()                             # not retried on rerun


def test_timer_reports_median_milliseconds():
    torch = _torch()
    import time

    timer = Timer(torch, "cpu", TimingConfig(warmup=1, repeats=5, flush_l2=True))
    calls = []
    m = timer.measure(lambda: (calls.append(1), time.sleep(0.002)))
    assert len(calls) == 6 and m.repeats == 5 and m.method == "perf_counter"
    assert 1.5 < m.median_ms < 50 and m.min_ms <= m.median_ms <= m.max_ms


def test_prefix_mask_matches_full_causal_attention():
    torch = _torch()
    from frontier_calib.profiling.kernels_attention import causal_mask

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 10, 8, generator=g) for _ in range(3))
    full = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    chunk = torch.nn.functional.scaled_dot_product_attention(q[:, :, 6:], k, v,
                                                             attn_mask=causal_mask(torch, 4, 10, 0, "cpu"))
    assert torch.allclose(chunk, full[:, :, 6:], atol=1e-5)
    m = causal_mask(torch, 2, 6, 3, "cpu")
    assert m.tolist() == [[False, False, True, True, True, False], [False, False, False, True, True, True]]


def test_moe_reference_matches_dense_computation():
    torch = _torch()
    from frontier_calib.profiling.kernels_common import KernelContext
    from frontier_calib.profiling.kernels_moe import prepare
    from frontier_calib.profiling.routing import route

    shape = Shape.make("moe", dtype="fp32", num_tokens=6, hidden_size=16, inter_size=8, topk=2, num_experts=4,
                       moe_tp=1, moe_ep=1, distribution="balanced")
    ctx = KernelContext(torch=torch, device="cpu", backend="torch", seed=0)
    bench = prepare(shape, ctx)
    assert bench.kernel == "torch_grouped_loop"
    got = bench.fn().clone()
    x, out, w13, w2, groups = bench.keep
    ids = route(6, 4, 2, "balanced")
    expect = torch.zeros_like(got)
    for j, idx, wts in groups:
        for row, t in enumerate(idx.tolist()):
            h = w13[j] @ x[t]
            y = w2[j] @ (torch.nn.functional.silu(h[:8]) * h[8:])
            expect[t] += y * wts[row, 0]
    assert torch.allclose(got, expect, atol=1e-4)
    assert sum(len(idx) for _, idx, _ in groups) == ids.size


def test_profile_fit_predict_end_to_end(tmp_path, monkeypatch):
    _torch()
    pytest.importorskip("xgboost")
    model_mod = pytest.importorskip("frontier_calib.opmodel.model")
    from frontier_calib import hardware
    from frontier_calib.profiling.estimate import CPU_SPEC

    monkeypatch.setitem(hardware.GPUS, "cpu", CPU_SPEC)   # until hardware.py has a 'cpu' entry
    res = CliRunner().invoke(profile, ["gemm", "--out", str(tmp_path), "--model", "Mixtral-8x7B-v0.1",
                                       "--tp", "1,2", *TINY], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    table = load_family("gemm", "cpu", "torch", root=tmp_path)
    model = model_mod.OperatorModel("gemm", gpu="cpu", n_estimators=100).fit(table)
    pred = model.predict(table)
    assert pred.shape == (len(table),) and np.isfinite(pred).all() and (pred > 0).all()
    ratio = np.median(pred / table["latency_ms"].to_numpy())
    assert 0.5 < ratio < 2.0


def test_collectives_under_torchrun_gloo(tmp_path):
    """Two CPU processes under torchrun (gloo): the collective table lands in ROOT/cpu/any/."""
    torch = _torch()
    import subprocess

    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    script = tmp_path / "launch.py"
    script.write_text("import sys\nfrom frontier_calib.profiling.commands import profile\n"
                      "profile.main(sys.argv[1:], standalone_mode=True)\n")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
           "comm", "--out", str(out), "--device", "cpu", "--tiny", "--no-progress", "--repeats", "2",
           "--max-num-batched-tokens", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    df = read_table(out / "cpu" / "any" / "collective.parquet", "collective")
    assert set(df["num_gpus"]) == {2} and set(df["engine"]) == {"any"}
    assert {"all_reduce", "all_gather", "all_to_all"} <= set(df["op"])
    assert "gloo has no reduce_scatter" in proc.stdout
