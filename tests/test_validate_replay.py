"""Replays through the real cost model: `validate trace` on a vLLM --save-detailed fixture, `validate silicon`
end to end on the small CSV fixture, and `calibrate` (split by configuration, held-out error quoted).

These share the session's fitted operator models (tests/conftest.py): the Llama deployments below use the same
H100 / vLLM bf16 kernel tables as the Llama-2-7b replay tests. They are skipped when those tables are missing."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from frontier_calib.profiles import store

FIXTURES = Path(__file__).parent / "fixtures" / "validate"
REPO = Path(__file__).resolve().parents[1]
TRACE = FIXTURES / "vllm_bench_detailed_c4.json"
SMALL_CSV = FIXTURES / "silicon_small.csv"


def _have_tables(gpu="h100_sxm", engine="vllm"):
    root = store.bundled_root()
    return all(store.table_path(root, gpu, engine, f) is not None
               for f in ("gemm", "attention_prefill", "attention_decode"))


pytestmark = pytest.mark.skipif(not _have_tables(), reason="bundled h100_sxm/vllm profile tables are missing")


def _cli():
    from frontier_calib.cli import _Group
    from frontier_calib.validate.commands import calibrate_cmd, validate

    return _Group("frontier-calib", commands={"validate": validate, "calibrate": calibrate_cmd})


def test_validate_trace_on_vllm_fixture(tmp_path, frontier_cache):
    import matplotlib.image as mpimg

    out = tmp_path / "vt"
    r = CliRunner().invoke(_cli(), ["validate", "trace", "-d", str(REPO / "deployments" / "llama2-7b-h100-vllm.yaml"),
                                    "-t", str(TRACE), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["aggregate.csv", "cdf.png", "report.md", "requests.csv",
                                                     "summary.json"]
    s = json.loads((out / "summary.json").read_text())
    assert s["requests"] == 32 and s["replayed_ok"] == 32 and s["closed_loop_concurrency"] == 4
    agg = s["aggregate"]
    for m in ("ttft", "tpot", "itl", "e2el"):
        for st in ("mean", "median", "p90", "p99"):
            a = agg[f"{st}_{m}_ms"]
            assert a["measured"] > 0 and a["predicted"] > 0
    assert agg["mean_ttft_ms"]["measured"] == pytest.approx(json.loads(TRACE.read_text())["mean_ttft_ms"])
    assert agg["duration_s"]["measured"] == pytest.approx(json.loads(TRACE.read_text())["duration"])
    # the fixture is a plausible Llama-2-7b / H100 / vLLM run: the replay lands in the right range
    assert 0.5 < agg["mean_tpot_ms"]["predicted"] / agg["mean_tpot_ms"]["measured"] < 2
    per = pd.read_csv(out / "requests.csv")
    assert len(per) == 32 and {"measured_ttft_ms", "pred_ttft_ms", "ttft_ratio"} <= set(per.columns)
    assert mpimg.imread(out / "cdf.png").ndim == 3
    assert "mean_ttft_ms" in r.output


def test_validate_trace_without_measurements_is_an_error(tmp_path, frontier_cache):
    plain = tmp_path / "plain.csv"
    pd.DataFrame({"arrival_s": [0.0, 0.1], "input_tokens": [100, 200], "output_tokens": [10, 20]}).to_csv(plain,
                                                                                                          index=False)
    r = CliRunner().invoke(_cli(), ["validate", "trace", "-d", str(REPO / "deployments" / "llama2-7b-h100-vllm.yaml"),
                                    "-t", str(plain), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no measured per-request timings" in r.output and str(plain) in r.output


@pytest.fixture(scope="module")
def silicon_run(tmp_path_factory, frontier_cache):
    out = tmp_path_factory.mktemp("vs")
    # the vLLM rows: Llama-3.1-8B co-located and PD (the kernel tables the other replay tests fit too), the
    # gpt-oss MXFP4 row, and rows that are skipped before any replay
    r = CliRunner().invoke(_cli(), ["validate", "silicon", "--csv", str(SMALL_CSV), "--engine", "vllm",
                                    "--jobs", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_validate_silicon_end_to_end(silicon_run):
    out, output = silicon_run
    rows = pd.read_csv(out / "rows.csv")
    assert len(rows) == 6 and rows["status"].notna().all()          # never silently dropped
    st = dict(zip(rows["id"], rows["status"]))
    for rid in ("llama8b_h100_vllm_tp1_512x64_c4", "llama8b_h100_vllm_tp1_512x64_c8",
                "llama8b_h100_vllm_disagg_1p1d_c8"):
        assert st[rid] == "ok", (rid, st[rid])
    assert st["llama70b_h100_vllm_bf16_tp1_c4"].startswith("skipped:does not fit")
    assert st["qwen235_h200_vllm_inconsistent_c8"].startswith("skipped:inconsistent parallelism")
    assert all(s == "ok" or s.startswith("skipped:") for s in st.values())
    ok = rows[rows["status"] == "ok"]
    llama = ok[ok["id"].str.startswith("llama8b")].set_index("id")
    assert (llama["pred_ttft_ms"] > 0).all() and (llama["pred_tpot_ms"] > 0).all()
    # 8 clients decode slower than 4
    assert llama.loc["llama8b_h100_vllm_tp1_512x64_c8", "pred_tpot_ms"] >= \
        llama.loc["llama8b_h100_vllm_tp1_512x64_c4", "pred_tpot_ms"]
    assert "vllm/" in str(llama["profile_tables"].iloc[0])
    js = json.loads((out / "summary.json").read_text())
    assert js["coverage"]["total"] == 6 and js["run"]["jobs"] == 1
    assert {g["mode"] for g in js["groups"]} == {"agg", "disagg"}
    assert "ok " in output and "report ->" in output


def _calibration_csv(tmp_path):
    base = pd.read_csv(SMALL_CSV).iloc[:1]
    rows = []
    for k, (pp, dp) in enumerate([(1, 1), (2, 1), (1, 2), (2, 2)]):
        for conc in (2, 4):
            r = base.iloc[0].copy()
            r["id"] = f"cfg{k}_c{conc}"
            r["pp_size"], r["attention_dp_size"], r["batch_size"] = pp, dp, conc // dp
            r["silicon_data_source"] = f"config_id={k}; silicon_concurrency={conc}"
            r["isl"], r["osl"] = 256, 24
            r["silicon_ttft_ms"], r["silicon_tpot_ms"] = 30.0 + 5 * conc, 7.0 + 0.2 * conc
            rows.append(r)
    csv = tmp_path / "cal.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def test_calibrate_split_and_held_out(tmp_path, frontier_cache):
    """Four configurations of one small deployment family; calibrate fits vLLM's overheads on the training
    configurations and quotes the held-out error; validate silicon --calibration uses the file."""
    csv = _calibration_csv(tmp_path)
    cal = tmp_path / "calib.yaml"
    r = CliRunner().invoke(_cli(), ["calibrate", "--csv", str(csv), "--jobs", "1", "--max-rows", "2", "--seeds", "2",
                                    "--out", str(cal), "--report-dir", str(tmp_path / "calrep")])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(cal.read_text())
    assert set(doc["overheads"]) == {"vllm"} and set(doc["overheads"]["vllm"]) == {"step_s", "per_seq_s", "frontend_s"}
    from frontier_calib.cost.worker import OVERHEAD_BOUNDS

    for k, v in doc["overheads"]["vllm"].items():   # every fitted constant inside its physical bounds
        lo, hi = OVERHEAD_BOUNDS[k]
        assert lo <= v <= hi, (k, v)
    assert doc["provenance"]["held_out"]["after"]["ttft"]["n"] > 0
    spread = doc["provenance"]["held_out_over_seeds"]   # --seeds 2: the protocol ran on split seeds 0 and 1
    assert spread["seeds"] == [0, 1]
    assert spread["ttft_mape"]["min"] <= spread["ttft_mape"]["mean"] <= spread["ttft_mape"]["max"]
    assert "over 2 split seeds" in r.output
    split = pd.read_csv(tmp_path / "calrep" / "split.csv")
    assert split.groupby("config_key")["split"].nunique().max() == 1     # no configuration on both sides
    assert set(split["split"]) == {"train", "held_out"}
    md = (tmp_path / "calrep" / "report.md").read_text()
    assert "held-out error is the one to quote" in md and "| held-out | calibrated |" in md
    assert "held_out" in r.output and "after" in r.output

    out = tmp_path / "vs"
    r2 = CliRunner().invoke(_cli(), ["validate", "silicon", "--csv", str(csv), "--jobs", "1", "--calibration",
                                     str(cal), "--out", str(out)])
    assert r2.exit_code == 0, r2.output
    again = pd.read_csv(out / "rows.csv", dtype={"id": str}).set_index("id")
    calibrated = pd.read_csv(tmp_path / "calrep" / "rows_calibrated.csv", dtype={"id": str}).set_index("id")
    assert np.allclose(again.loc[calibrated.index, "pred_ttft_ms"], calibrated["pred_ttft_ms"])  # pure, seeded


def test_calibrate_per_engine_gpu(tmp_path, frontier_cache):
    """--group-by engine-gpu: one ENGINE@GPU entry per group, the split stratified by it, recorded in the
    provenance; --fit-rounds bounds the overhead rounds."""
    csv = _calibration_csv(tmp_path)
    cal = tmp_path / "calib.yaml"
    r = CliRunner().invoke(_cli(), ["calibrate", "--csv", str(csv), "--jobs", "1", "--max-rows", "2",
                                    "--group-by", "engine-gpu", "--fit-rounds", "1", "--out", str(cal),
                                    "--params", "step_s,per_seq_s", "--report-dir", str(tmp_path / "calrep")])
    assert r.exit_code == 0, r.output
    doc = yaml.safe_load(cal.read_text())
    assert set(doc["overheads"]) == {"vllm@h100_sxm"} and set(doc["benchmark_desync"]) == {"vllm@h100_sxm"}
    assert set(doc["overheads"]["vllm@h100_sxm"]) == {"step_s", "per_seq_s"}   # --params: the front-end not fitted
    assert doc["provenance"]["params"] == ["step_s", "per_seq_s"]
    assert doc["provenance"]["group_by"] == "engine-gpu" and doc["provenance"]["fit_rounds"] == 1
    split = pd.read_csv(tmp_path / "calrep" / "split.csv")
    assert set(split["group"]) == {"vllm@h100_sxm"} and set(split["split"]) == {"train", "held_out"}
    assert "per engine x GPU" in (tmp_path / "calrep" / "report.md").read_text()
    summary = json.loads((tmp_path / "calrep" / "summary.json").read_text())
    # 1 round: desync grid (5) + 1 overhead round (3: current + one step of each of the 2 constants) + grid again
    # (5) [+ 3 when desync moved] + check (1)
    assert len(summary["fits"]["vllm@h100_sxm"]["history"]) in (14, 17)


def test_calibrate_rejects_unknown_params(tmp_path):
    r = CliRunner().invoke(_cli(), ["calibrate", "--csv", str(tmp_path / "none.csv"), "--params", "step_s,latency",
                                    "--out", str(tmp_path / "c.yaml")])
    assert r.exit_code != 0 and "--params" in r.output and "latency" in r.output
    assert not (tmp_path / "c.yaml").exists()


def test_split_never_shares_a_configuration():
    from frontier_calib.validate.calibrate import split_configs

    rng = np.random.default_rng(0)
    backend = rng.choice(["vllm", "sglang", "trtllm"], 300)
    # a configuration key names one engine's deployment (config_key hashes the backend too)
    df = pd.DataFrame({"backend": backend,
                       "config_key": [f"{b}-k{i}" for b, i in zip(backend, rng.integers(0, 14, 300))]})
    for seed in range(5):
        train = split_configs(df, train_fraction=0.5, seed=seed)
        sides = df.assign(train=train).groupby("config_key")["train"].nunique()
        assert sides.max() == 1
        for eng, g in df.assign(train=train).groupby("backend"):
            assert g["train"].any() and (~g["train"]).any()
    assert (split_configs(df, seed=1) == split_configs(df, seed=1)).all()
    assert not (split_configs(df, seed=1) == split_configs(df, seed=2)).all()


def test_deployment_calibration_key(tmp_path, frontier_cache):
    from frontier_calib.cost.calibration import write_calibration
    from frontier_calib.deployment import load_deployment

    write_calibration(tmp_path / "c.yaml", {"vllm": {"step_s": 0.0007, "per_seq_s": 1e-6, "prefill_step_s": 0.0}},
                      provenance={"note": "test"})
    raw = yaml.safe_load((REPO / "deployments" / "llama2-7b-h100-vllm.yaml").read_text())
    raw["calibration"] = "c.yaml"
    raw["overheads"] = {"prefill_step_s": 0.002}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(raw))
    dep = load_deployment(tmp_path / "d.yaml")
    ov = dep.worker.overheads
    assert (ov.step_s, ov.per_seq_s, ov.prefill_step_s) == (0.0007, 1e-6, 0.002)   # explicit overheads win
    # an ENGINE@GPU entry for the deployment's GPU wins over the engine's; another GPU's entry is ignored
    write_calibration(tmp_path / "c.yaml", {"vllm": {"step_s": 0.0007}, "vllm@h100_sxm": {"step_s": 0.0009},
                                            "vllm@h200_sxm": {"step_s": 0.005}})
    assert load_deployment(tmp_path / "d.yaml").worker.overheads.step_s == 0.0009
    raw["gpu"] = "H100"   # an alias of h100_sxm: the entry is matched on the canonical GPU id
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(raw))
    assert load_deployment(tmp_path / "d.yaml").worker.overheads.step_s == 0.0009
    raw["gpu"] = "a100_sxm"
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(raw))
    assert load_deployment(tmp_path / "d.yaml").worker.overheads.step_s == 0.0007
    # a calibration file given inside one pool of a PD deployment: that pool gets the ENGINE@GPU entry too
    pd = yaml.safe_load((REPO / "deployments" / "deepseek-v3-h200-sglang-pd-1p1d.yaml").read_text())
    write_calibration(tmp_path / "c.yaml", {"sglang": {"step_s": 0.0007}, "sglang@h200_sxm": {"step_s": 0.0009}})
    pd["decode"]["calibration"] = "c.yaml"
    (tmp_path / "pd.yaml").write_text(yaml.safe_dump(pd))
    dep = load_deployment(tmp_path / "pd.yaml")
    assert dep.decode.worker.overheads.step_s == 0.0009
    assert dep.prefill.worker.overheads.step_s != 0.0009
    raw["gpu"] = "h100_sxm"
    raw["calibration"] = "missing.yaml"
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(raw))
    from frontier_calib.errors import InputError
    with pytest.raises(InputError, match="missing.yaml"):
        load_deployment(tmp_path / "d.yaml")
    assert math.isfinite(ov.step_s)


def test_desync_grid_profiles_out_the_front_end_latency(monkeypatch):
    """The desync share is chosen with the front-end latency at its best value for each share: a share whose
    replay is right up to a TTFT offset wins over one that is closer only because it inflates TTFT."""
    from frontier_calib.validate import calibrate as C

    meas_ttft, meas_tpot = np.array([300.0, 500.0, 800.0]), np.array([10.0, 20.0, 30.0])
    preds = {0.0: (meas_ttft * 1.0, meas_tpot * 0.97),     # synchronised: TTFT right, TPOT a bit low
             1.0: (meas_ttft - 25.0, meas_tpot)}            # spread: exact but 25 ms of front-end missing
    train = pd.DataFrame({"silicon_ttft_ms": meas_ttft, "silicon_tpot_ms": meas_tpot})
    f = C._Fitter("vllm", train, None, 1, False)

    def replay(points, desc):
        out = []
        for _, phi in points:
            t, p = preds.get(phi, (meas_ttft * 3, meas_tpot * 3))
            out.append(np.stack([t, p], axis=1))
        return np.array(out)

    monkeypatch.setattr(f, "replay", replay)
    theta = np.zeros(len(C.PARAMS))
    phi, fe = f.best_phi(theta, "test")
    assert phi == 1.0 and fe == pytest.approx(0.025)
    # without the profiling (front-end fixed at 0), the synchronised replay would have looked better
    fixed = [C._loss_terms(*preds[p], meas_ttft, meas_tpot).mean() for p in (0.0, 1.0)]
    assert fixed[0] < fixed[1]
