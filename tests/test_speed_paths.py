"""The speed paths (issue 15) give the answers of the slow paths they replace, bit for bit, and head folding
(decode attention beyond the tables' KV heads) does what it says.

* scalar cost-table lookups == the vectorised ones (every grid point and random queries);
* model sets loaded once per process are reused, and reloaded when the folder changes;
* reject reasons worked out once per row are the scheduler's own answers;
* head folding: factors, which rows it rewrites, and the pairing that measures its error;
* the replay benchmark's ``--vs-vidur`` says in one line what is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from frontier_calib.cost.head_fold import (error_summary, fold_decode_query, fold_factor, folding_pairs,
                                           trained_max_kv_heads)

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- cost lookups

def test_scalar_prefill_lookup_is_the_vectorised_one_bit_for_bit(cost):
    t = cost.tables
    rng = np.random.default_rng(0)
    q = np.concatenate([rng.integers(1, cost.max_tokens + 50, 4000), t["q_grid"], t["q_grid"] + 1, [0, 1]])
    kv = np.concatenate([rng.integers(1, cost.max_model_len + 500, 4000), t["kv_grid"][:len(t["q_grid"])],
                         t["kv_grid"][-len(t["q_grid"]):] - 1, [0, 5]])
    vec = cost._prefill_attention_ms(q, kv)
    one = np.array([cost._prefill_lookup.one(a, b) for a, b in zip(q.tolist(), kv.tolist())])
    assert np.array_equal(one, vec)


def test_decode_times_match_the_scalar_step_and_the_plain_formula(cost):
    """decode_times (in place, per-batch terms cached) equals iteration_time of the same decode-only step and
    the formula written out with fresh temporaries."""
    kv = np.arange(1, 4000, 37, dtype=np.int64) * 16 + 3
    for b in (1, 7, 64, cost.max_seqs):
        d = cost.decode_times(b, kv)
        ref = []
        for s in kv.tolist():
            ref.append(cost.iteration_time(np.zeros(0, np.int64), np.zeros(0, np.int64), b, s))
        assert np.array_equal(d, np.array(ref))
        mean = np.clip(kv / b, 1, cost.tables["kv_grid"][-1])
        att = np.exp2(np.interp(np.log2(mean), np.log2(cost.tables["kv_grid"]), cost.tables["decode_ms"][b - 1]))
        run_tok, graphed = cost.engine_time.padded_tokens(b, b, False)
        gpu = (cost._token_lookup(run_tok) + cost._lm_head_lookup(b) + att) / 1e3
        ov = cost.overheads
        launch = 0.0 if graphed else cost.kernels * ov.launch_s
        cpu = ov.step_s + ov.per_seq_s * b + ov.per_token_s * b
        t = np.maximum(np.maximum(gpu, launch), cpu + launch) if cost.engine_time.overlap \
            else cpu + np.maximum(gpu, launch)
        assert np.array_equal(d, np.maximum(t, ov.out_token_s * b))


def test_scalar_decode_step_is_decode_times_bit_for_bit(cost):
    """decode_time_one (a replay's one-step decode stretches) == decode_times of one step: on grid points (np.interp
    returns the table value there), between them, below 1 token and beyond the grid, for every batch size."""
    grid = cost.tables["kv_grid"]
    rng = np.random.default_rng(1)
    for b in range(1, cost.max_seqs + 1):
        kv = np.concatenate([(grid * b).astype(np.int64), rng.integers(1, int(grid[-1]) * b * 2, 40), [0, 1, b - 1]])
        vec = cost.decode_times(b, kv)
        one = np.array([cost.decode_time_one(b, s) for s in kv.tolist()])
        assert np.array_equal(one, vec), b
    for b in (0, cost.max_seqs + 1):   # outside the table: the array path's answer
        assert cost.decode_time_one(b, 1000 * max(b, 1)) == cost.decode_times(b, np.array([1000.0 * max(b, 1)]))[0]


def test_a_speculative_replay_prices_its_verify_steps_in_fast_forward_and_step_by_step(llama_replicas):
    """A SpeculativeCost hands unknown attributes to the model it wraps; its decode steps must still be its own
    (verify + draft), not the wrapped model's scalar decode step: one step at a time == fast-forwarded."""
    from frontier_calib.cost.speculative import METHODS, SpeculativeCost, SpeculativeSpec
    from frontier_calib.sim import ReplicaSpec
    from frontier_calib.sim.engine import _Replay
    from frontier_calib.sim.testing import poisson_trace

    specs, cm = llama_replicas
    sp = SpeculativeSpec("mtp", 2, (0.7, 0.5), METHODS["mtp"].draft_layers, 0)
    wrapped = SpeculativeCost(cm, sp, 32)
    rep_specs = [ReplicaSpec(specs[0].scheduler, wrapped, speculative=sp)]
    trace = poisson_trace(60, 4.0, 400, 60, seed=3)
    a = _Replay(trace, rep_specs, "round_robin", 0, False, False, True, False).run()
    b = _Replay(trace, rep_specs, "round_robin", 0, False, False, False, False).run()
    for col in ("first_token_s", "completion_s", "itl_max_s"):
        np.testing.assert_allclose(a.requests[col], b.requests[col], rtol=1e-9, atol=1e-9)


def test_mixed_steps_accept_lists_and_arrays_alike(cost):
    a = cost.iteration_time(np.array([100, 37]), np.array([612, 37]), 12, 9000)
    b = cost.iteration_time([100, 37], [612, 37], 12, 9000)
    assert a == b and a > 0


# ----------------------------------------------------------------------------------------------- model sets

def test_model_sets_load_once_per_process_and_reload_after_a_refit(frontier_cache, llama_deployment):
    from frontier_calib.cost.cache import needed_families
    from frontier_calib.opmodel.registry import cached_model_set, family_cache_dir, loaded_model_set

    w = llama_deployment.worker
    cached_model_set(w.gpu, w.engine, families=needed_families(w))   # fitted (once per session)
    d = family_cache_dir(w.gpu, w.engine, "gemm")
    a, b = loaded_model_set(d), loaded_model_set(d)
    assert a is not b and a.models.keys() == b.models.keys()
    assert all(a.models[k] is b.models[k] for k in a.models)          # the same loaded boosters
    m = next(iter(a.models.values()))
    m.n_predicted, m.n_out_of_range = 5, 3
    loaded_model_set(d)
    assert (m.n_predicted, m.n_out_of_range) == (0, 0)                 # each caller warns afresh
    idx = d / "index.json"
    st = idx.stat()
    os.utime(idx, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))   # what a refit does (index.json last)
    c = loaded_model_set(d)
    assert all(c.models[k] is not a.models[k] for k in a.models)
    x = pd.DataFrame({"dtype": "bf16", "m": [1, 64, 4096], "n": 4096, "k": 4096})
    assert np.array_equal(a.predict("gemm", x), c.predict("gemm", x))


# ----------------------------------------------------------------------------------------------- scheduler

def test_reject_reasons_are_shared_by_replicas_with_the_same_limits():
    from frontier_calib.sim.config import SchedulerConfig
    from frontier_calib.sim.requests import RequestTable
    from frontier_calib.sim.schedulers import make_scheduler

    cfg = SchedulerConfig(policy="vllm", num_kv_blocks=64, block_size=16, max_model_len=2048)
    small = SchedulerConfig(policy="vllm", num_kv_blocks=8, block_size=16, max_model_len=2048)
    reqs = RequestTable(np.arange(4), np.zeros(4), [10, 3000, 500, 0], [5, 5, 5, 5])
    a, b, c = (make_scheduler(x, reqs) for x in (cfg, cfg, small))
    want = [a.reject_reason(r) for r in range(4)]
    assert want == [None, "max_model_len", None, "empty_prompt"]
    assert [a.rejection(r) for r in range(4)] == want == [b.rejection(r) for r in range(4)]
    assert a.rejections is b.rejections and c.rejections is not a.rejections
    assert [c.rejection(r) for r in range(4)] == [c.reject_reason(r) for r in range(4)]
    assert c.rejection(2) == "kv_capacity"


# ----------------------------------------------------------------------------------------------- head folding

def test_fold_factor_is_the_smallest_that_fits():
    assert fold_factor(8, 8) == 1 and fold_factor(3, 8) == 1
    assert fold_factor(32, 8) == 4 and fold_factor(64, 8) == 8 and fold_factor(16, 8) == 2
    assert fold_factor(40, 8) == 5 and fold_factor(12, 8) == 2      # 12 -> 6 KV heads
    assert fold_factor(11, 8) == 11                                   # prime: down to one KV head


def test_fold_rewrites_only_rows_above_the_range():
    df = pd.DataFrame({"batch_size": [3, 3, 5], "kv_len": [100, 100, 7], "num_heads": [32, 8, 64],
                       "num_kv_heads": [32, 8, 16], "head_dim": 128})
    assert fold_decode_query(df, None) is df
    assert fold_decode_query(df[df.num_kv_heads <= 8], 8).equals(df[df.num_kv_heads <= 8])
    out = fold_decode_query(df, 8)
    assert out["batch_size"].tolist() == [12, 3, 10]
    assert out["num_heads"].tolist() == [8, 8, 32] and out["num_kv_heads"].tolist() == [8, 8, 8]
    assert out["kv_len"].tolist() == [100, 100, 7] and df["batch_size"].tolist() == [3, 3, 5]   # input untouched


def test_folding_pairs_measure_the_fold_on_held_out_rows():
    """A table where latency depends only on the KV bytes (b x kv x KV heads): folding is exact. Scaling the
    8-KV-head rows by 1.1 shows up as -9.1% (the fold predicts them from the unscaled 2- and 4-head rows)."""
    rows = []
    for b in (1, 2, 4, 8, 16, 32):
        for kvh in (1, 2, 4, 8):
            for g in (1, 4):
                lat = 1e-3 * b * 1024 * kvh * (1.1 if kvh == 8 else 1.0)
                rows.append({"batch_size": b, "kv_len": 1024, "num_heads": g * kvh, "num_kv_heads": kvh,
                             "head_dim": 128, "window": 0, "dtype": "bf16", "kv_dtype": "bf16", "kernel": "k",
                             "latency_ms": lat})
    pairs = folding_pairs(pd.DataFrame(rows))
    assert set(pairs["factor"]) == {2, 4, 8}
    assert np.allclose(pairs["error"], 1 / 1.1 - 1)
    s = error_summary(pairs)
    assert s["rows"].tolist() == [2 * 5, 2 * 4, 2 * 3]   # batches whose f-fold is still in the table
    assert np.allclose(s["median_abs_pct"], (1 - 1 / 1.1) * 100)


def test_mha_decode_queries_fold_into_the_fitted_range(cost, llama_deployment):
    """Llama-2-7B (32 KV heads) on one H100: the decode grid's queries land inside the fitted KV-head range."""
    from frontier_calib.cost.cache import needed_families
    from frontier_calib.opmodel.registry import cached_model_set

    w = llama_deployment.worker
    models = cached_model_set(w.gpu, w.engine, families=needed_families(w))
    assert trained_max_kv_heads(None) is None
    hi = trained_max_kv_heads(models)
    assert hi is not None and hi < 32
    from frontier_calib.attention import QueryContext, attention_layers

    kind, window, _ = attention_layers(w.model)[0]
    fam, df = kind.decode_query(QueryContext(w, window, models), np.array([1, 128]), np.array([100, 4096]))
    assert fam == "attention_decode" and df["num_kv_heads"].max() == 32
    out = fold_decode_query(df, hi)
    assert out["num_kv_heads"].max() <= hi
    assert (out["batch_size"] * out["num_kv_heads"]).tolist() == (df["batch_size"] * df["num_kv_heads"]).tolist()
    assert not models.models[("attention_decode", "bf16")].out_of_range(out).any()
    assert models.models[("attention_decode", "bf16")].out_of_range(df).any()


# ----------------------------------------------------------------------------------------------- benchmark

@pytest.mark.parametrize("make", ["missing", "not_vidur"])
def test_vs_vidur_without_a_checkout_is_a_one_line_error(tmp_path, make):
    path = tmp_path / "vidur"
    if make == "not_vidur":
        path.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_replay_azure.py"), "--vs-vidur", str(path)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert str(path) in lines[0] and "34.5" in lines[0]
    assert ("does not exist" if make == "missing" else "has no vidur/main.py") in lines[0]


FAKE_VIDUR = '''
import csv, sys
args = sys.argv[1:]
flags = dict(zip(args[::2], args[1::2]))
assert flags["--request_generator_config_type"] == "trace_replay", flags
assert flags["--replica_config_model_name"] == "meta-llama/Llama-2-7b-hf"
assert flags["--sarathi_scheduler_config_chunk_size"] == "512"
rows = list(csv.DictReader(open(flags["--trace_request_generator_config_trace_file"])))
times = [float(r["arrived_at"]) for r in rows]
assert times == sorted(times) and rows[0]["Time"] == rows[0]["arrived_at"]
print("fake vidur replayed", len(rows), "requests")
'''


def test_vs_vidur_runs_the_checkout_on_the_same_requests(tmp_path, frontier_cache):
    trace = REPO.parent / "shared" / "traces" / "azure_llm_inference_2023_conv.csv"
    if not trace.exists():
        pytest.skip("needs ../shared/traces")
    pkg = tmp_path / "vidur" / "vidur"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(FAKE_VIDUR)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_replay_azure.py"), "--requests", "300",
                        "--vs-vidur", str(tmp_path / "vidur")], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "Vidur: " in p.stdout and "x this run" in p.stdout
    bad = tmp_path / "bad" / "vidur"
    bad.mkdir(parents=True)
    (bad / "__init__.py").write_text("")
    (bad / "main.py").write_text("raise SystemExit('error: unrecognized arguments: --foo')")
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_replay_azure.py"), "--requests", "300",
                        "--vs-vidur", str(tmp_path / "bad")], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("bench_replay_azure: Vidur exited with status 1: error:")


# ----------------------------------------------------------------------------------------------- lazy imports

#: modules a replay of cached cost tables does without (frontier_calib/lazy.py): importing them costs about a quarter
#: of the replay benchmark's process on the project's 2 cores
NOT_FOR_A_CACHED_REPLAY = ("pandas", "pyarrow", "xgboost", "sklearn", "scipy", "matplotlib", "tqdm")


#: run before the code under test: notes which frontier_calib line first imported each heavy module
_WHO_IMPORTS = f"""
import sys, traceback
WHO = {{}}
class _Who:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in {NOT_FOR_A_CACHED_REPLAY!r} and top not in WHO:
            mine = [f for f in traceback.extract_stack() if "frontier_calib" in f.filename]
            WHO[top] = f"{{mine[-1].filename.split('frontier_calib')[-1]}}:{{mine[-1].lineno}}" if mine else "?"
        return None
sys.meta_path.insert(0, _Who())
"""


def _modules_after(code: str, env=None) -> dict:
    """{heavy module: the frontier_calib file and line that imported it} after running ``code``."""
    heavy = NOT_FOR_A_CACHED_REPLAY
    code = _WHO_IMPORTS + code + f"\nprint(repr({{m: WHO.get(m) for m in {heavy!r} if m in sys.modules}}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env=env).stdout
    return eval(out.strip().splitlines()[-1])


def test_the_replay_modules_import_no_heavy_module():
    assert _modules_after("import frontier_calib.deployment, frontier_calib.sim, frontier_calib.traces, "
                          "frontier_calib.cost.cache, frontier_calib.cli") == {}


def test_a_replay_of_cached_tables_imports_no_heavy_module(llama_replicas, frontier_cache, tmp_path):
    """The replay benchmark's path (deployment, Azure CSV, Poisson arrivals, cached tables, simulate, summary) never
    imports pandas or the fitting libraries; reading ``result.requests`` then builds the same table as before."""
    csv = tmp_path / "azure.csv"
    csv.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"
                   "2023-11-16 18:15:50.9951690,396,109\n2023-11-16 18:16:03.1,1200,3\n")
    code = (f"from frontier_calib.deployment import build_replicas, load_deployment\n"
            f"from frontier_calib.sim import simulate\nfrom frontier_calib.traces import load_trace, poisson\n"
            f"dep = load_deployment({str(REPO / 'deployments' / 'llama2-7b-h100-vllm.yaml')!r})\n"
            f"trace = load_trace({str(csv)!r})\ntrace = trace.with_arrivals(poisson(2.0).sample(3, seed=0))\n"
            f"result = simulate(trace, build_replicas(dep)[0], router=dep.router, seed=0)\n"
            f"assert result.summary['completed'] == 3")
    env = dict(os.environ, FRONTIER_CALIB_CACHE=str(frontier_cache))   # llama_replicas cached the tables there
    assert _modules_after(code, env) == {}
    assert "pandas" in _modules_after(code + "\nresult.requests", env)


def test_a_trace_of_columns_is_the_trace_of_its_frame():
    """canonical_trace of a dict of columns (no DataFrame until read) == canonical_trace of the same DataFrame:
    the table, head, new arrivals, validation errors."""
    from frontier_calib.errors import InputError
    from frontier_calib.traces import canonical_trace

    rng = np.random.default_rng(0)
    cols = {"arrival_s": rng.random(50) * 10, "input_tokens": rng.integers(1, 900, 50),
            "output_tokens": rng.integers(1, 90, 50).astype(float)}
    a, b = canonical_trace(dict(cols)), canonical_trace(pd.DataFrame(cols))
    assert a.__dict__.get("_columns") is not None and a.__dict__.get("_frame") is None
    for x, y in ((a, b), (a.head(7), b.head(7)),
                 (a.with_arrivals(np.arange(50.0)[::-1]), b.with_arrivals(np.arange(50.0)[::-1]))):
        assert x.num_requests == y.num_requests and x.duration_s == y.duration_s
        for name in ("request_id", "arrival_s", "input_tokens", "output_tokens"):
            assert np.array_equal(x.column(name), y.column(name)) and x.column(name).dtype == y.column(name).dtype
        pd.testing.assert_frame_equal(x.requests, y.requests, check_exact=True)
    assert a.__dict__["_columns"] is None   # read once: the DataFrame is the trace from then on
    assert np.array_equal(a.column("arrival_s"), b.column("arrival_s")) and a.has_column("input_tokens")
    for bad, field in (({"arrival_s": [0.0, 1.0], "input_tokens": [5, 0], "output_tokens": [1, 1]}, "input_tokens"),
                       ({"arrival_s": [0.0, np.inf], "input_tokens": [5, 6], "output_tokens": [1, 1]}, "arrival_s"),
                       ({"arrival_s": [0.0, 1.0], "input_tokens": [5, 6.5], "output_tokens": [1, 1]}, "input_tokens"),
                       ({"request_id": [3, 3], "arrival_s": [0.0, 1.0], "input_tokens": [5, 6],
                         "output_tokens": [1, 1]}, "request_id")):
        errors = []
        for table in (bad, pd.DataFrame(bad)):
            with pytest.raises(InputError) as exc:
                canonical_trace(table, source="t.csv")
            errors.append(str(exc.value))
        assert errors[0] == errors[1] and field in errors[0]


def test_plain_azure_csvs_read_without_pandas_give_the_pandas_reading(tmp_path):
    """The Azure reader's plain path and its pandas path (which also reads everything else) give the same trace; a
    file the plain path does not take (quoted fields, another stamp style, a bad count) goes to pandas, which names
    the bad value."""
    from frontier_calib.errors import InputError
    from frontier_calib.traces import azure

    rows = ["2023-11-16 18:15:46.6805900,374,44", "2023-11-16 18:15:50.9951690,396,109",
            "2023-11-17 00:00:01,12,1", "2023-11-16 23:59:59.999999999,7,2", "2023-11-16 18:15:46.6805900,5,5"]
    path = tmp_path / "a.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    plain, slow = azure._read_plain(path), azure._read_with_pandas(path)
    assert plain is not None
    assert np.array_equal(plain[0] - plain[0].min(), slow[0]) and all(map(np.array_equal, plain[1:], slow[1:]))
    stamps = pd.to_datetime(pd.Series([r.split(",")[0] for r in rows]), format="ISO8601")
    assert np.array_equal(azure._seconds_since_first(plain[0]), (stamps - stamps.min()).dt.total_seconds())
    quoted = tmp_path / "q.csv"
    quoted.write_text('TIMESTAMP,ContextTokens,GeneratedTokens\n"2023-11-16T18:15:46.68",374,44\n')
    assert azure._read_plain(quoted) is None
    assert azure.read_azure(quoted).num_requests == 1
    shifted = tmp_path / "s.csv"   # one line with four fields, one with two: same field count, misaligned
    shifted.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,374,44,9\n2023-11-16 18:15:47,3\n")
    assert azure._read_plain(shifted) is None
    bad = tmp_path / "b.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,374,44\n2023-11-16 18:15:47,0,3\n")
    assert azure._read_plain(bad) is None
    with pytest.raises(InputError, match="ContextTokens"):
        azure.read_azure(bad)


def test_a_replay_result_builds_its_table_once_from_its_columns(llama_replicas):
    from frontier_calib.sim import simulate, summary_from_requests
    from frontier_calib.traces import synthetic_trace

    trace = synthetic_trace(40, input_len=300, output_len=20, seed=0)
    res = simulate(trace, llama_replicas[0], seed=0)
    assert type(res.__dict__["_requests"]) is dict
    frame = res.requests
    assert res.requests is frame and list(frame.columns)[:3] == ["request_id", "replica", "status"]
    assert summary_from_requests(frame, res.itls) == res.summary   # the DataFrame path agrees with the columns one
