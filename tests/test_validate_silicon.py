"""Silicon rows -> scenarios -> statuses with reasons; the benchmark protocol; the CLI's errors."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_calib.errors import CoverageError, FrontierError, InputError
from frontier_calib.validate import silicon as S

FIXTURES = Path(__file__).parent / "fixtures" / "validate"
SMALL_CSV = FIXTURES / "silicon_small.csv"


@pytest.fixture(scope="module")
def small():
    return S.read_silicon_csv(SMALL_CSV)


def _scn(df, rid, **kw):
    return S.scenario_for_row(df[df["id"] == rid].iloc[0].to_dict(), **kw)


def test_read_derives_concurrency_and_config_key(small):
    r = small.set_index("id")
    assert r.loc["llama8b_h100_vllm_tp1_512x64_c8", "concurrency"] == 8
    assert r.loc["llama8b_h100_vllm_tp1_512x64_c8", "concurrency_source"] == "silicon_concurrency"
    # the same deployment at another concurrency is the same configuration
    assert r.loc["llama8b_h100_vllm_tp1_512x64_c4", "config_key"] == r.loc["llama8b_h100_vllm_tp1_512x64_c8",
                                                                         "config_key"]
    assert r.loc["llama8b_h100_vllm_tp1_512x64_c4", "config_id"] == "11"
    assert r["config_key"].nunique() == len(r) - 1


def test_concurrency_fallbacks():
    assert S._concurrency({"mode": "agg", "batch_size": 16, "attention_dp_size": 4,
                           "silicon_data_source": "x"}) == (64.0, "batch_size x attention_dp")
    c, how = S._concurrency({"mode": "disagg", "decode_batch_size": 32, "decode_num_workers": 2,
                             "decode_attention_dp_size": 8, "silicon_data_source": ""})
    assert c == 512 and how.startswith("decode_batch_size")


def test_statuses_and_reasons(small, monkeypatch):
    want = {
        "llama8b_h100_vllm_tp1_512x64_c4": "ok",
        "glm5_h200_sglang_tp8_1024x1024_c8": "ok",   # DSA sparse attention (frontier_calib/attention/dsa.py)
        "dsr1_h200_trtllm_nvfp4_c16": "skipped:nvfp4 needs FP4 tensor cores, which h200_sxm lacks",
    }
    for rid, status in want.items():
        assert _scn(small, rid).status.startswith(status), rid
    row = small[small["id"] == "glm5_h200_sglang_tp8_1024x1024_c8"].iloc[0].to_dict()
    assert S.scenario_for_row({**row, "model_path": "acme/NoSuchModel-1B"}).status == \
        "skipped:unknown model acme/NoSuchModel-1B"
    # a family listed as not modelled yet is skipped with its reason (a model that loads is never skipped)
    monkeypatch.setitem(S.UNSUPPORTED_FAMILIES, "acme/", "model family not supported yet: Acme attention")
    assert S.scenario_for_row({**row, "model_path": "acme/NoSuchModel-1B"}).status == \
        "skipped:model family not supported yet: Acme attention"
    monkeypatch.setitem(S.UNSUPPORTED_FAMILIES, "zhipuai/glm-5", "model family not supported yet: GLM-5")
    assert _scn(small, "glm5_h200_sglang_tp8_1024x1024_c8").status == "ok"
    # a GPU with tables anywhere (bundle, data folder, public-data extra) replays; one without is a skip
    monkeypatch.setattr(S, "has_tables", lambda gpu, engine: gpu != "b200_sxm")
    assert _scn(small, "llama8b_b200_trtllm_c4").status == "skipped:no profile tables for b200_sxm/trtllm " \
                                                           "(bundled, in the data folder or in the public-data extra)"
    monkeypatch.setattr(S, "has_tables", lambda gpu, engine: True)
    b200 = _scn(small, "llama8b_b200_trtllm_c4")
    assert b200.status == "ok" and b200.deployment["gpu"] == "b200_sxm"
    bad = _scn(small, "qwen235_h200_vllm_inconsistent_c8")
    assert bad.status.startswith("skipped:inconsistent parallelism: moe_tp (2) x moe_ep (1) != tp (1)")


def test_model_aliases_and_formats(small):
    llama = _scn(small, "llama8b_h100_vllm_tp1_512x64_c4")
    assert llama.deployment["model"] == "Meta-Llama-3.1-8B"
    assert (llama.deployment["dtype"], llama.deployment["kv_dtype"]) == ("bf16", "bf16")
    assert llama.num_requests == 4 * Protocol_default_rounds()
    gpt = _scn(small, "gptoss_h100_vllm_fp4_c8")   # fp4 label on Hopper: the MXFP4 checkpoint, w4a16
    assert gpt.status == "ok"
    assert (gpt.deployment["dtype"], gpt.deployment["moe_dtype"]) == ("bf16", "mxfp4")
    assert any("MXFP4" in n for n in gpt.notes)


def Protocol_default_rounds():
    return S.Protocol().rounds


def test_engine_limits_do_not_cap_the_batch(small):
    d = _scn(small, "llama8b_h100_vllm_tp1_512x64_c8").deployment
    assert d["scheduler"]["max_num_seqs"] >= 8
    assert d["scheduler"]["max_num_batched_tokens"] == 8192
    row = small[small["id"] == "llama8b_h100_vllm_tp1_512x64_c8"].iloc[0].to_dict()
    row.update(concurrency=3000, backend="trtllm")
    d = S.scenario_for_row(row).deployment
    assert d["scheduler"]["max_num_seqs"] >= 3000 and d["scheduler"]["max_num_tokens"] >= 3000


def test_overheads_from_calibration_reach_the_deployment(small):
    scn = _scn(small, "llama8b_h100_vllm_tp1_512x64_c4", overheads={"vllm": {"step_s": 0.0005}})
    assert scn.deployment["overheads"] == {"step_s": 0.0005}
    other = _scn(small, "llama8b_h100_vllm_tp1_512x64_c4", overheads={"sglang": {"step_s": 0.0005}})
    assert "overheads" not in other.deployment


def test_does_not_fit(small):
    r70 = S.run_scenario(_scn(small, "llama70b_h100_vllm_bf16_tp1_c4"))
    assert r70["status"].startswith("skipped:does not fit: ")


def test_disagg_rows_become_pd_deployments(small):
    scn = _scn(small, "llama8b_h100_vllm_disagg_1p1d_c8")
    d = scn.deployment
    assert scn.status == "ok" and d["mode"] == "pd" and d["ttft"] == "decode"
    assert d["prefill"]["workers"] == 1 and d["decode"]["workers"] == 1
    assert d["prefill"]["scheduler"]["max_num_seqs"] == 1            # the row's prefill batch
    assert d["decode"]["scheduler"]["max_num_seqs"] >= 8
    assert S.PD_LAYOUT_ASSUMED not in scn.notes
    assert _scn(small, "dsr1_h200_trtllm_disagg_nocounts_c64").status == "skipped:" + S.PD_LAYOUT_MISSING
    nocount = _scn(small, "dsr1_h200_trtllm_disagg_nocounts_c64", assume_pd_layout=True)
    assert nocount.status == "ok" and S.PD_LAYOUT_ASSUMED in nocount.notes
    assert nocount.deployment["decode"]["parallel"] == {"tp": 8, "pp": 1, "attention_dp": 1, "ep": 8, "moe_tp": 1}
    from frontier_calib.deployment import deployment_from_dict

    dep = deployment_from_dict(scn.deployment)                      # deployment.py accepts it
    assert dep.mode == "pd" and dep.prefill.worker.model.name == "Meta-Llama-3.1-8B"


def test_classify_errors():
    assert S.classify_error(CoverageError("no 'moe' rows for dtype=['fp8_block']")).startswith(
        "missing profile coverage: no 'moe' rows")
    assert S.classify_error(InputError("x does not fit on h100_sxm", path="silicon row r1", field="parallel")) \
        .startswith("does not fit")
    assert S.classify_error(RuntimeError("boom")) == "internal error RuntimeError: boom"


def test_missing_coverage_is_a_skip_not_a_crash(small, monkeypatch):
    import frontier_calib.deployment as dep_mod

    def no_tables(dep, **kw):
        raise CoverageError("no 'moe' rows for dtype=['fp8_block'] on gpu=h200_sxm engine=trtllm")

    monkeypatch.setattr(dep_mod, "build_replicas", no_tables)
    res = S.run_scenario(_scn(small, "llama8b_h100_vllm_tp1_512x64_c4"))
    assert res["status"] == ("skipped:missing profile coverage: no 'moe' rows for dtype=['fp8_block'] on "
                             "gpu=h200_sxm engine=trtllm")
    assert math.isnan(res["pred_ttft_ms"])


# ------------------------------------------------------------------------------------------- protocol
def test_benchmark_trace_first_wave_is_spread_and_seeded():
    t = S.benchmark_trace(1024, 256, 16, 64, seed=3)
    out = t.requests["output_tokens"].to_numpy()
    assert t.concurrency == 16 and len(out) == 64
    assert (out[16:] == 256).all() and (t.requests["input_tokens"] == 1024).all()
    first = np.sort(out[:16])
    assert first.min() >= 1 and first.max() <= 256
    assert len(np.unique(first)) >= 14                     # spread over 1..osl, one slot per client
    assert (np.floor((first - 1) / 16) == np.arange(16)).sum() >= 12  # stratified: ~one per 1/N slot
    again = S.benchmark_trace(1024, 256, 16, 64, seed=3)
    assert (again.requests["output_tokens"].to_numpy() == out).all()
    plain = S.benchmark_trace(1024, 256, 16, 64, seed=3, desync=False)
    assert (plain.requests["output_tokens"] == 256).all()


def test_protocol_estimate_weights_regimes():
    p = S.Protocol(requests_per_client=10, simulated_rounds=3)
    n, N = 12, 4
    req = pd.DataFrame({"status": ["ok"] * n,
                        "ttft_s": [1.0] * N + [0.1] * N + [0.2] * N,
                        "tpot_s": [9.0] * N + [0.01] * N + [0.02] * N})
    est = S.protocol_estimate(req, N, p)
    assert est["pred_ttft_ms"] == pytest.approx((1.0 * 0.1 + 0.1 * 0.8 + 0.2 * 0.1) * 1e3)
    assert est["pred_tpot_ms"] == pytest.approx((0.01 * 8 + 0.02) / 9 * 1e3)   # first wave excluded
    full = S.Protocol(requests_per_client=3, simulated_rounds=3)           # every request replayed: plain mean
    est = S.protocol_estimate(req, N, full)
    assert est["pred_ttft_ms"] == pytest.approx(np.mean(req["ttft_s"]) * 1e3)
    assert est["pred_tpot_ms"] == pytest.approx(np.mean(req["tpot_s"][N:]) * 1e3)


def test_row_seed_is_stable():
    assert S.row_seed("abc") == S.row_seed("abc") != S.row_seed("abd")


# ------------------------------------------------------------------------------------------- CLI errors
def _cli():
    from frontier_calib.cli import _Group
    from frontier_calib.validate.commands import calibrate_cmd, validate

    return _Group("frontier-calib", commands={"validate": validate, "calibrate": calibrate_cmd})


def test_cli_missing_csv_names_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "silicon.csv"
    r = CliRunner().invoke(_cli(), ["validate", "silicon", "--csv", str(missing), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert str(missing) in r.output and "not found" in r.output
    assert not (tmp_path / "o").exists()


def test_cli_csv_missing_column_names_it(tmp_path):
    bad = tmp_path / "bad.csv"
    pd.read_csv(SMALL_CSV).drop(columns=["isl"]).to_csv(bad, index=False)
    r = CliRunner().invoke(_cli(), ["validate", "silicon", "--csv", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and str(bad) in r.output and "'isl'" in r.output


def test_cli_empty_selection(tmp_path):
    r = CliRunner().invoke(_cli(), ["validate", "silicon", "--csv", str(SMALL_CSV), "--gpu", "a100_sxm",
                                    "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no rows match" in r.output


def test_calibration_file_round_trip_and_desync(small, tmp_path):
    from frontier_calib.cost.calibration import read_calibration, write_calibration

    p = write_calibration(tmp_path / "c.yaml", {"vllm": {"step_s": 0.001, "per_seq_s": 0.0, "prefill_step_s": 0.002}},
                          benchmark_desync={"vllm": 0.25}, provenance={"held_out": {"ttft": {"mape": 0.3}}})
    doc = read_calibration(p)
    assert doc["overheads"]["vllm"]["prefill_step_s"] == 0.002 and doc["benchmark_desync"] == {"vllm": 0.25}
    scn = _scn(small, "llama8b_h100_vllm_tp1_512x64_c8", overheads=doc["overheads"], desync=doc["benchmark_desync"])
    assert scn.protocol.desync == 0.25 and scn.deployment["overheads"]["step_s"] == 0.001
    t = S.benchmark_trace(512, 64, 8, 48, seed=1, desync=0.25)
    first = t.requests["output_tokens"].to_numpy()[:8]
    assert (first == 64).sum() >= 6                # 2 of 8 clients spread, the others stay in step
    (tmp_path / "bad.yaml").write_text("overheads: {vllm: {step_s: -1}}\n")
    with pytest.raises(InputError, match="bad.yaml"):
        read_calibration(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("overheads: {vllm: {step_s: 0.001}}\nbenchmark_desync: {vllm: 2}\n")
    with pytest.raises(InputError, match="benchmark_desync.vllm"):
        read_calibration(tmp_path / "bad2.yaml")


def test_fp8_label_on_block_fp8_checkpoint_uses_block_kernels():
    """MiniMax-M2.5 / DeepSeek / Qwen3-235B-A22B-FP8 ship block-scaled FP8 experts: an 'fp8' row runs the fp8_block
    MoE kernels; a bf16 checkpoint quantized online to fp8 keeps per-tensor fp8; dense GEMMs keep the label."""
    row = {"gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "precision": "fp8"}
    for path in ("MiniMaxAI/MiniMax-M2.5", "deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-235B-A22B-FP8"):
        model, _ = S.resolve_model(path)
        d, notes = S.row_dtypes(row, model, "h200_sxm")
        assert (d["dtype"], d["moe_dtype"], d["kv_dtype"]) == ("fp8", "fp8_block", "fp8"), path
        assert any("fp8_block" in n for n in notes)
    model, _ = S.resolve_model("Qwen/Qwen3-30B-A3B")          # bf16 checkpoint, online fp8
    d, notes = S.row_dtypes(row, model, "h200_sxm")
    assert d["moe_dtype"] == "fp8" and not any("fp8_block" in n for n in notes)
    model, _ = S.resolve_model("MiniMaxAI/MiniMax-M2.5")
    d, _ = S.row_dtypes({**row, "moe_quant_mode": "fp8_block", "gemm_quant_mode": "fp8_block"}, model, "h200_sxm")
    assert d["moe_dtype"] == "fp8_block" and d["dtype"] == "fp8_block"


def test_engine_gpu_calibration_keys(small, tmp_path):
    """`calibrate --group-by engine-gpu` writes ENGINE@GPU keys: they win over the plain engine entry for rows on
    that GPU and do not touch rows on other GPUs; load_calibration resolves them for a deployment's GPU."""
    from frontier_calib.cost.calibration import calibration_for, load_calibration, read_calibration, write_calibration

    ov = {"vllm": {"step_s": 0.001}, "vllm@h100_sxm": {"step_s": 0.003}, "vllm@h200_sxm": {"step_s": 0.005}}
    p = write_calibration(tmp_path / "g.yaml", ov, benchmark_desync={"vllm": 1.0, "vllm@h100_sxm": 0.25})
    doc = read_calibration(p)
    assert calibration_for(doc["overheads"], "vllm", "h100_sxm") == {"step_s": 0.003}
    assert calibration_for(doc["overheads"], "vllm", "a100_sxm") == {"step_s": 0.001}   # falls back to the engine
    assert calibration_for(doc["overheads"], "sglang", "h100_sxm") is None
    scn = _scn(small, "llama8b_h100_vllm_tp1_512x64_c8", overheads=doc["overheads"], desync=doc["benchmark_desync"])
    assert scn.gpu == "h100_sxm"
    assert scn.deployment["overheads"] == {"step_s": 0.003} and scn.protocol.desync == 0.25
    assert load_calibration(p) == {"vllm": {"step_s": 0.001}}
    assert load_calibration(p, gpu="h200_sxm") == {"vllm": {"step_s": 0.005}}
    (tmp_path / "bad.yaml").write_text("overheads: {'tgi@h100_sxm': {step_s: 0.001}}\n")
    with pytest.raises(InputError, match="tgi"):
        read_calibration(tmp_path / "bad.yaml")


def test_split_by_engine_gpu_is_stratified():
    from frontier_calib.validate.calibrate import fit_groups, split_configs

    rng = np.random.default_rng(3)
    n = 400
    backend = rng.choice(["vllm", "sglang"], n)
    system = rng.choice(["h100_sxm", "h200_sxm"], n, p=[0.9, 0.1])
    df = pd.DataFrame({"backend": backend, "system": system,
                       "config_key": [f"{b}-{s}-k{i}" for b, s, i in zip(backend, system, rng.integers(0, 6, n))]})
    assert set(fit_groups(df, "engine-gpu")) == {"vllm@h100_sxm", "vllm@h200_sxm", "sglang@h100_sxm",
                                                  "sglang@h200_sxm"}
    for seed in range(6):
        train = split_configs(df, seed=seed, group_by="engine-gpu")
        assert df.assign(t=train).groupby("config_key")["t"].nunique().max() == 1
        for _, g in df.assign(t=train).groupby(["backend", "system"]):
            assert g["t"].any() and (~g["t"]).any()     # every engine x GPU on both sides
    with pytest.raises(ValueError):
        fit_groups(df, "model")


def test_int4_experts_with_bf16_attention_fit():
    """Kimi-K2.5 rows: int4 routed experts, bf16 attention (the memory plan counts the experts at 4 bits)."""
    from frontier_calib.deployment import deployment_from_dict

    dep = deployment_from_dict({"model": "Kimi-K2-Instruct", "gpu": "h200_sxm", "engine": "vllm", "dtype": "bf16",
                                "moe_dtype": "int4_wo", "parallel": {"tp": 8, "moe_tp": 8, "ep": 1},
                                "scheduler": {"max_model_len": 16384, "max_num_batched_tokens": 8192}})
    assert 50 * 2**30 < dep.memory.weight_bytes < 80 * 2**30      # ~1T params: experts at 0.5 B, the rest bf16


def test_row_id_that_contradicts_the_parallel_columns():
    """An agg row whose id spells its parallelism (TensorRT-LLM convention: tp = the replica's GPUs) and whose
    columns give another GPU count: the known export error (tp_size = the id's TP x EP, no attention DP) replays
    with the id's layout and a note; any other contradiction is skipped as inconsistent; ids without the pattern
    are not judged."""
    base = {"silicon_data_source": "silicon_concurrency=8", "backend": "trtllm", "model_path": "deepseek-ai/DeepSeek-R1",
            "system": "h200_sxm", "mode": "agg", "isl": 1024, "osl": 1024, "precision": "fp8",
            "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "pp_size": 1,
            "silicon_ttft_ms": 100.0, "silicon_tpot_ms": 10.0, "concurrency": 8}
    wide = {**base, "tp_size": 64, "attention_dp_size": 1, "moe_tp_size": 8, "moe_ep_size": 8}
    s = S.scenario_for_row({**wide, "id": "x_agg_1024x1024_c8_tp8_ep8_2000"})
    assert s.status == "ok" and S.ID_LAYOUT_NOTE in s.notes
    assert {k: s.deployment["parallel"][k] for k in ("tp", "attention_dp", "ep", "moe_tp")} == \
        {"tp": 8, "attention_dp": 1, "ep": 8, "moe_tp": 1}
    other = {**base, "tp_size": 32, "attention_dp_size": 1, "moe_tp_size": 4, "moe_ep_size": 8}   # not tp x ep
    s = S.scenario_for_row({**other, "id": "x_agg_1024x1024_c8_tp8_ep8_2000"})
    assert s.status.startswith("skipped:inconsistent parallelism: the row id says tp8_ep8 (8 GPUs)")
    assert "32 GPUs" in s.status
    dp = {**base, "tp_size": 1, "attention_dp_size": 64, "moe_tp_size": 8, "moe_ep_size": 8}
    assert "inconsistent parallelism" in S.scenario_for_row({**dp, "id": "y_c8_tp8_0_ep8_0_353"}).status
    one_node = {**base, "tp_size": 8, "attention_dp_size": 1, "moe_tp_size": 1, "moe_ep_size": 8}
    assert S.scenario_for_row({**one_node, "id": "z_c8_tp8_0_ep8_0_353"}).status == "ok"
    dp8 = {**base, "tp_size": 1, "attention_dp_size": 8, "moe_tp_size": 1, "moe_ep_size": 8}
    assert S.scenario_for_row({**dp8, "id": "z_c8_tp8_ep8_12"}).status == "ok"       # 8 GPUs either way
    assert S.scenario_for_row({**wide, "id": "dsv3_h200_trtllm_fp8_agg_c8_cfg181"}).status == "ok"   # no pattern


def test_blackwell_formats():
    """NVFP4 rows on FP4 tensor cores keep nvfp4 GEMMs and experts with an FP8 KV cache; gpt-oss's fp4 label is its
    MXFP4 checkpoint, whose experts each engine runs its own way on Blackwell (w4a8 for TensorRT-LLM and SGLang,
    w4a16 for vLLM); quant spellings go through dtypes.normalize_dtype (w4a8_mxfp4_mxfp8 -> mxfp4_fp8)."""
    fp4 = {"gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "precision": "fp4"}
    r1, note = S.resolve_model("nvidia/DeepSeek-R1-NVFP4")
    assert r1.name == "DeepSeek-R1" and "preset DeepSeek-R1" in note
    d, _ = S.row_dtypes(fp4, r1, "gb200", "trtllm")
    assert (d["dtype"], d["moe_dtype"], d["kv_dtype"]) == ("nvfp4", "nvfp4", "fp8")
    with pytest.raises(S.FrontierError, match="nvfp4 needs FP4 tensor cores, which h100_sxm lacks"):
        S.row_dtypes(fp4, r1, "h100_sxm", "trtllm")
    gpt, _ = S.resolve_model("openai/gpt-oss-120b")
    moe = {e: S.row_dtypes(fp4, gpt, "b200_sxm", e)[0] for e in ("trtllm", "sglang", "vllm")}
    assert {e: d["moe_dtype"] for e, d in moe.items()} == {"trtllm": "mxfp4_fp8", "sglang": "mxfp4_fp8",
                                                          "vllm": "mxfp4"}
    assert all(d["dtype"] == "bf16" and d["kv_dtype"] == "bf16" for d in moe.values())
    assert S.row_dtypes(fp4, gpt, "h100_sxm", "trtllm")[0]["moe_dtype"] == "mxfp4"
    w4a8 = {"gemm_quant_mode": "bf16", "moe_quant_mode": "w4a8_mxfp4_mxfp8", "precision": "bf16"}
    assert S.row_dtypes(w4a8, gpt, "b200_sxm", "trtllm")[0]["moe_dtype"] == "mxfp4_fp8"
    with pytest.raises(S.FrontierError, match="unknown quant mode int3"):
        S.row_dtypes({**w4a8, "moe_quant_mode": "int3"}, gpt, "b200_sxm", "trtllm")
    assert S.unsupported_family("Qwen/Qwen3-32B") is None



def test_clients_over_several_workers_replay_as_replicas():
    """An agg row whose silicon_concurrency is k (>= 2, whole) times batch_size x attention_dp spread its clients
    over k workers (aiconfigurator-core's aic-auto-gap-analysis rows: e.g. Qwen3-32B-NVFP4 TP2 on GB200, batch 14,
    448 clients = 32 workers): it replays as k replicas behind the router, with a note; otherwise one worker."""
    row = {"id": "q_gb200_trtllm_agg_15000x500_c448_tp2_0_epnone_2", "backend": "trtllm", "system": "gb200",
           "model_path": "nvidia/Qwen3-32B-NVFP4", "mode": "agg", "isl": 15000, "osl": 500, "precision": "fp4",
           "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4", "batch_size": 14, "tp_size": 2, "pp_size": 1,
           "attention_dp_size": 1, "moe_tp_size": 1, "moe_ep_size": 1, "silicon_ttft_ms": 746.4,
           "silicon_tpot_ms": 13.7, "silicon_data_source": "source_file=x.csv; silicon_concurrency=448"}
    s = S.scenario_for_row(row)
    assert s.status == "ok" and s.concurrency == 448
    assert s.deployment["replicas"] == 32
    assert S.REPLICAS_NOTE.format(n=448, k=32) in s.notes
    assert s.deployment["scheduler"]["max_num_seqs"] == 1024   # the cap stays above the 14 clients per worker
    assert S.agg_replicas(row, 448, 1) == 32
    assert S.agg_replicas(row, 448, 2) == 16                   # attention-DP ranks count in a worker's batch
    assert S.agg_replicas(row, 3000, 1) == 1                   # a caller's own concurrency: one worker
    assert S.agg_replicas({**row, "silicon_data_source": "silicon_concurrency=450"}, 450, 1) == 1   # not whole
    assert S.agg_replicas({**row, "batch_size": None}, 448, 1) == 1
    assert S.agg_replicas({**row, "silicon_data_source": "x"}, 448, 1) == 1   # concurrency from batch_size itself
    one = S.scenario_for_row({**row, "silicon_data_source": "silicon_concurrency=14"})
    assert "replicas" not in one.deployment and not any("replicas" in n for n in one.notes)


def test_harness_mtp_recipe_reaches_the_deployment():
    """The B200 TensorRT-LLM DeepSeek-R1 rows on image 1.2.0rc6.post3 are InferenceX's `-mtp` configs (MTP 3, or 1
    with attention DP; validate/harness.py): their deployment decodes with MTP at TensorRT-LLM's published accept
    lengths (2.82 / 1.92 tokens per step), noted per row; the rc6.post2 twins and other GPUs do not."""
    from frontier_calib.cost.speculative import parse_speculative
    row = {"id": "r1_b200_c8", "backend": "trtllm", "backend_version": "1.2.0rc6.post3", "system": "b200_sxm",
           "model_path": "deepseek-ai/DeepSeek-R1", "mode": "agg", "isl": 1024, "osl": 1024, "precision": "fp8",
           "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "tp_size": 8, "pp_size": 1, "attention_dp_size": 1,
           "moe_tp_size": 8, "moe_ep_size": 1, "silicon_ttft_ms": 150.0, "silicon_tpot_ms": 6.8,
           "silicon_data_source": "source_file=x.csv; silicon_concurrency=8"}
    s = S.scenario_for_row(row)
    assert s.status == "ok"
    assert s.deployment["speculative"] == {"method": "mtp", "num_draft_tokens": 3,
                                           "acceptance": {"accept_length": 2.82}}
    assert any("MTP with 3 draft token(s), 2.82 tokens per step" in n for n in s.notes)
    spec = parse_speculative(s.deployment["speculative"], "row", "speculative")
    assert spec.k == 3 and abs(spec.mean_tokens_per_step - 2.82) < 1e-9
    assert "attention_dp_balance" not in s.deployment["scheduler"]          # no attention DP: nothing to balance
    dep8 = S.scenario_for_row({**row, "tp_size": 1, "attention_dp_size": 8, "moe_tp_size": 1, "moe_ep_size": 8})
    assert dep8.deployment["speculative"] == {"method": "mtp", "num_draft_tokens": 1,
                                              "acceptance": {"accept_length": 1.92}}
    # every InferenceX DeepSeek B200 TensorRT-LLM script with DP attention: attention_dp_config balance 60 / 0
    for version in ("1.2.0rc6.post3", "1.2.0rc6.post2", "1.1.0rc2.post2"):
        d = S.scenario_for_row({**row, "backend_version": version, "tp_size": 1, "attention_dp_size": 8,
                                "moe_tp_size": 1, "moe_ep_size": 8})
        sch = d.deployment["scheduler"]
        assert (sch["attention_dp_balance"], sch["attention_dp_timeout_iters"],
                sch["attention_dp_batching_wait_iters"]) == (True, 60, 0), version
        assert any("attention-DP balance, timeout_iters 60, batching_wait_iters 0" in n for n in d.notes)
        assert ("speculative" in d.deployment) == (version == "1.2.0rc6.post3")
    assert S.build_deployment(dep8).scheduler.attention_dp_balance   # valid scheduler keys of a deployment
    for other in ({"backend_version": "1.2.0rc6.post2"}, {"system": "gb200"}, {"model_path": "Qwen/Qwen3-32B"}):
        o = S.scenario_for_row({**row, **other})
        assert o.status == "ok" and "speculative" not in o.deployment, other


def test_harness_memory_fraction_and_one_node_layout():
    """InferenceX's SGLang DeepSeek-R1 FP8 B200 script sets --mem-fraction-static 0.95 at TP4 and 0.82 at TP8
    (validate/harness.py); an agg row whose tp_size spans nodes but equals its moe_tp x moe_ep, with moe_tp fitting
    one node, replays as tp = moe_tp with that ep on one node, noted (the tp_size = TP x EP export error)."""
    row = {"id": "dsr1_b200_sglang_fp8_agg_8192x1024_c32_cfg271", "backend": "sglang", "backend_version": "0.5.9",
           "system": "b200_sxm", "model_path": "deepseek-ai/DeepSeek-R1", "mode": "agg", "isl": 8192, "osl": 1024,
           "precision": "fp8", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "tp_size": 4, "pp_size": 1,
           "attention_dp_size": 1, "moe_tp_size": 4, "moe_ep_size": 1, "silicon_ttft_ms": 1480.0,
           "silicon_tpot_ms": 34.1, "silicon_data_source": "db-dump/x; config_id=271; silicon_concurrency=32"}
    s = S.scenario_for_row(row)
    assert s.status == "ok" and s.deployment["scheduler"]["gpu_memory_utilization"] == 0.95
    assert any("memory fraction 0.95 at TP4" in n for n in s.notes)
    tp8 = S.scenario_for_row({**row, "tp_size": 8, "moe_tp_size": 8})
    assert tp8.deployment["scheduler"]["gpu_memory_utilization"] == 0.82
    assert "gpu_memory_utilization" not in S.scenario_for_row({**row, "precision": "fp4", "gemm_quant_mode": "nvfp4",
                                                               "moe_quant_mode": "nvfp4"}).deployment["scheduler"]
    assert "gpu_memory_utilization" not in S.scenario_for_row({**row, "system": "b300_sxm"}).deployment["scheduler"]
    wide = {**row, "tp_size": 64, "moe_tp_size": 8, "moe_ep_size": 8}
    w = S.scenario_for_row(wide)
    assert {k: w.deployment["parallel"][k] for k in ("tp", "attention_dp", "ep", "moe_tp")} == \
        {"tp": 8, "attention_dp": 1, "ep": 8, "moe_tp": 1}
    assert S.NODE_LAYOUT_NOTE.format(tp=64, mtp=8, ep=8, nodes=8, per_node=8) in w.notes
    four = S.scenario_for_row({**row, "tp_size": 16, "moe_tp_size": 4, "moe_ep_size": 4})
    assert (four.deployment["parallel"]["tp"], four.deployment["parallel"]["ep"]) == (4, 4)
    # not the pattern: TP across nodes with the experts split over all its GPUs, or expert parallelism only
    for other in ({"tp_size": 16, "moe_tp_size": 16, "moe_ep_size": 1}, {"tp_size": 16, "moe_tp_size": 1,
                                                                         "moe_ep_size": 16}):
        o = S.scenario_for_row({**row, **other})
        assert o.deployment["parallel"]["tp"] == 16 and not any("layout from the MoE columns" in n for n in o.notes)


def test_harness_mtp_recipe_h200_r1_rows():
    """The H200 TensorRT-LLM DeepSeek-R1 rows on image 1.1.0rc2.post2 are InferenceX's `dsr1-fp8-h200-trt-mtp` (its
    search space; validate/harness.py): MTP 3, or 1 with attention DP, at TensorRT-LLM's accept lengths; the
    db-dump DeepSeek-V3 rows of the same image and layout (`dsr1-fp8-h200-trt`) and the R1 rows without an image
    do not."""
    row = {"id": "2026_04_06_deepseek_r1_h200_sxm_trtllm_fp8_agg_1024x1024_c4_tp8_ep8_954", "backend": "trtllm",
           "backend_version": "1.1.0rc2.post2", "system": "h200_sxm", "model_path": "deepseek-ai/DeepSeek-R1",
           "mode": "agg", "isl": 1024, "osl": 1024, "precision": "fp8", "gemm_quant_mode": "fp8",
           "moe_quant_mode": "fp8", "tp_size": 8, "pp_size": 1, "attention_dp_size": 1, "moe_tp_size": 1,
           "moe_ep_size": 8, "silicon_ttft_ms": 150.0, "silicon_tpot_ms": 8.58,
           "silicon_data_source": "source_file=2026-04-06.csv; silicon_concurrency=4"}
    s = S.scenario_for_row(row)
    assert s.status == "ok"
    assert s.deployment["speculative"] == {"method": "mtp", "num_draft_tokens": 3,
                                           "acceptance": {"accept_length": 2.82}}
    assert any("dsr1-fp8-h200-trt-mtp" in n and "MTP with 3 draft token(s)" in n for n in s.notes)
    dep8 = S.scenario_for_row({**row, "tp_size": 1, "attention_dp_size": 8, "moe_tp_size": 1,
                               "silicon_data_source": "source_file=2026-03-25.csv; silicon_concurrency=128"})
    assert dep8.deployment["speculative"]["num_draft_tokens"] == 1
    assert dep8.deployment["speculative"]["acceptance"] == {"accept_length": 1.92}
    # the H200 scripts add attention_dp_config (balance, timeout 60, batching wait 0) with DP attention, for the
    # plain config's DeepSeek-V3 rows too; without attention DP there is nothing to balance
    for model in ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3"):
        sch = S.scenario_for_row({**row, "model_path": model, "tp_size": 1, "attention_dp_size": 8,
                                  "moe_tp_size": 1}).deployment["scheduler"]
        assert (sch["attention_dp_balance"], sch["attention_dp_timeout_iters"],
                sch["attention_dp_batching_wait_iters"]) == (True, 60, 0), model
    assert "attention_dp_balance" not in s.deployment["scheduler"]
    for other in ({"model_path": "deepseek-ai/DeepSeek-V3"}, {"backend_version": None}, {"system": "h100_sxm"},
                  {"backend": "vllm"}):
        o = S.scenario_for_row({**row, **other})
        assert "speculative" not in o.deployment, other


def test_source_file_names_each_series():
    """A row's data source, short: the two gap-analysis series by name, else the file of its source_file= part."""
    assert S.source_file("source_file=/Users/x/aic-auto-gap-analysis/data/h100_sxm/trtllm/1.0.0rc3/Qwen_Qwen3-32B"
                         ".csv; silicon_concurrency=8") == "aic-auto-gap-analysis"
    assert S.source_file("source_file=/y/gap-analysis.csv; model=Kimi") == "gap-analysis.csv"
    assert S.source_file("source_file=2026-04-06.csv; model=Llama-3.1-70B; silicon_concurrency=8") == "2026-04-06.csv"
    assert S.source_file("db-dump/2026-04-27; config_id=83; silicon_concurrency=4") == "2026-04-27"


def test_benchmark_trace_draws_prompt_lengths_from_the_range_ratio():
    """benchmark_serving's random dataset (InferenceX, --random-range-ratio 0.8): prompt lengths uniform over the
    integers int(0.8 x isl)..isl, seeded; output lengths keep osl."""
    t = S.benchmark_trace(1024, 256, 16, 640, seed=3, desync=0.0, prompt_ratio=0.8)
    ins = t.requests["input_tokens"].to_numpy()
    assert ins.min() >= 819 and ins.max() <= 1024 and len(np.unique(ins)) > 150   # 206 values, 640 draws
    assert abs(ins.mean() - (819 + 1024) / 2) < 10
    assert (t.requests["output_tokens"] == 256).all()
    again = S.benchmark_trace(1024, 256, 16, 640, seed=3, desync=0.0, prompt_ratio=0.8)
    assert (again.requests["input_tokens"].to_numpy() == ins).all()
    assert (S.benchmark_trace(1024, 256, 16, 64, seed=3).requests["input_tokens"] == 1024).all()
    with pytest.raises(FrontierError, match="prompt_ratio"):
        S.Protocol(prompt_ratio=0.0)


def test_inferencex_rows_get_the_harness_range_ratio():
    from frontier_calib.validate.harness import INFERENCEX_RANGE_RATIO, prompt_length_ratio

    assert INFERENCEX_RANGE_RATIO == 0.8
    for src in ("source_file=2026-03-25.csv; model=Qwen3.5-397B; silicon_concurrency=4",
                "db-dump/2026-04-27; config_id=733; silicon_concurrency=128; workflow_run_id=758",
                "source_file=qwen3.5-397b-gap-analysis.csv; silicon_concurrency=4"):
        assert prompt_length_ratio({"silicon_data_source": src}) == 0.8
    # the 2025 gap-analysis files were measured with genai-perf at fixed lengths
    assert prompt_length_ratio({"silicon_data_source": "source_file=/x/aic-auto-gap-analysis/data/a.csv"}) is None
    row = {"id": "r1", "silicon_data_source": "source_file=2026-03-25.csv; silicon_concurrency=4",
           "backend": "sglang", "model_path": "Qwen/Qwen3.5-397B-A17B", "system": "h200_sxm", "mode": "agg",
           "isl": 1024, "osl": 1024, "tp_size": 8, "moe_ep_size": 8, "moe_tp_size": 1, "attention_dp_size": 1,
           "pp_size": 1, "precision": "fp8", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8_block"}
    assert S.scenario_for_row(row).protocol.prompt_ratio == 0.8
    row["silicon_data_source"] = "source_file=/x/aic-auto-gap-analysis/data/a.csv; silicon_concurrency=4"
    assert S.scenario_for_row(row).protocol.prompt_ratio == 1.0


def test_inferencex_h200_sglang_scripts_without_kv_dtype_run_bf16_kv():
    """dsr1_fp8_h200.sh and glm5_fp8_h200.sh pass no --kv-cache-dtype: SGLang's auto is bf16 there (DeepSeek-R1's
    checkpoint quantizes no KV; DSA models default to bf16 KV on Hopper, fp8 on Blackwell); qwen3.5_fp8_h200.sh
    passes fp8_e4m3. The rows' precision column alone would read fp8 for all of them."""
    base = {"silicon_data_source": "source_file=2026-03-25.csv; silicon_concurrency=4", "backend": "sglang",
            "system": "h200_sxm", "mode": "agg", "isl": 1024, "osl": 1024, "tp_size": 8, "moe_tp_size": 8,
            "moe_ep_size": 1, "attention_dp_size": 1, "pp_size": 1, "precision": "fp8", "gemm_quant_mode": "fp8",
            "moe_quant_mode": "fp8_block"}
    kv = {}
    for rid, model, gpu in (("g", "zhipuai/GLM-5", "h200_sxm"), ("d", "deepseek-ai/DeepSeek-R1", "h200_sxm"),
                            ("q", "Qwen/Qwen3.5-397B-A17B", "h200_sxm"), ("b", "zhipuai/GLM-5", "b200_sxm")):
        scn = S.scenario_for_row({**base, "id": rid, "model_path": model, "system": gpu})
        assert scn.status == "ok", scn.status
        kv[rid] = scn.deployment["kv_dtype"]
        if kv[rid] == "bf16":
            assert any("KV cache bf16" in n for n in scn.notes)
    assert kv == {"g": "bf16", "d": "bf16", "q": "fp8", "b": "fp8"}


def test_inferencex_b200_sglang_scripts_poll_for_requests_every_10_or_30_steps():
    """qwen3.5_fp8_b200.sh / dsr1_fp8_b200.sh: --scheduler-recv-interval 10 below 16 clients, 30 from 16 (TP8),
    with their chunked-prefill and max-prefill sizes; never with attention DP."""
    from frontier_calib.validate.harness import apply_recipes

    def dep(tp):
        return {"parallel": {"tp": tp}, "scheduler": {}}

    row = {"system": "b200_sxm", "backend": "sglang", "model_path": "Qwen/Qwen3.5-397B-A17B", "precision": "fp8",
           "concurrency": 8}
    d = dep(4)
    apply_recipes(row, d, attention_dp=1)
    assert d["scheduler"]["scheduler_recv_interval"] == 10
    assert "gpu_memory_utilization" not in d["scheduler"]
    d = dep(4)
    apply_recipes({**row, "concurrency": 16}, d, attention_dp=1)
    assert d["scheduler"]["scheduler_recv_interval"] == 30
    d = dep(8)
    apply_recipes({**row, "model_path": "deepseek-ai/DeepSeek-R1", "concurrency": 64}, d, attention_dp=8)
    assert "scheduler_recv_interval" not in d["scheduler"]
    d = dep(4)
    apply_recipes({**row, "model_path": "deepseek-ai/DeepSeek-R1", "concurrency": 64}, d, attention_dp=1)
    assert d["scheduler"]["scheduler_recv_interval"] == 10 and d["scheduler"]["max_prefill_tokens"] == 8192
    d = dep(8)
    apply_recipes({**row, "model_path": "zhipuai/GLM-5", "concurrency": 64}, d, attention_dp=1)
    assert "scheduler_recv_interval" not in d["scheduler"]


# the InferenceX launch flags of session 10 (validate/harness.py): per recipe, the row it applies to, what it sets,
# and rows it must leave alone (another GPU, engine, model or precision)
_LAUNCH_FLAG_CASES = [
    # (recipe name, row, tp, expected {path: value}, rows that must not get it)
    ("dsr1-fp8-h200-sglang (launch flags)",
     {"system": "h200_sxm", "backend": "sglang", "model_path": "deepseek-ai/DeepSeek-R1", "precision": "fp8"}, 8,
     {"scheduler.chunked_prefill_size": 32768, "scheduler.max_prefill_tokens": 32768,
      "scheduler.gpu_memory_utilization": 0.82},
     [{"system": "h100_sxm"}, {"backend": "vllm"}, {"model_path": "zhipuai/GLM-5"}]),
    ("qwen3.5-fp8-h200-sglang",
     {"system": "h200_sxm", "backend": "sglang", "model_path": "Qwen/Qwen3.5-397B-A17B", "precision": "fp8"}, 8,
     {"scheduler.chunked_prefill_size": 16384, "scheduler.max_prefill_tokens": 16384, "scheduler.max_num_seqs": 128,
      "scheduler.gpu_memory_utilization": 0.8, "engine_options.overlap": True},
     [{"system": "b200_sxm"}, {"backend": "vllm"}]),
    ("qwen3.5-fp8-b200-sglang (radix cache off)",
     {"system": "b200_sxm", "backend": "sglang", "model_path": "Qwen/Qwen3.5-397B-A17B", "precision": "fp8"}, 4,
     {"engine_options.overlap": True}, [{"precision": "bf16"}, {"system": "b300_sxm"}, {"backend": "vllm"}]),
    ("qwen3.5-b300-sglang (radix cache off)",
     {"system": "b300_sxm", "backend": "sglang", "model_path": "Qwen/Qwen3.5-397B-A17B", "precision": "bf16"}, 8,
     {"engine_options.overlap": True}, [{"system": "b200_sxm"}, {"backend": "vllm"},
                                         {"model_path": "deepseek-ai/DeepSeek-R1"}]),
    ("glm5-fp8-h200-sglang (memory)",
     {"system": "h200_sxm", "backend": "sglang", "model_path": "zhipuai/GLM-5", "precision": "fp8"}, 8,
     {"scheduler.gpu_memory_utilization": 0.85}, [{"system": "b200_sxm"}, {"model_path": "Qwen/Qwen3.5-397B-A17B"}]),
    ("gptoss-fp4-b200-trt",
     {"system": "b200_sxm", "backend": "trtllm", "model_path": "openai/gpt-oss-120b", "precision": "fp4"}, 8,
     {"kv_dtype": "fp8", "scheduler.gpu_memory_utilization": 0.85, "scheduler.max_num_tokens": 20000},
     [{"system": "h100_sxm"}, {"backend": "sglang"}, {"model_path": "deepseek-ai/DeepSeek-R1"}]),
    ("gptoss-fp4-h200-trt",
     {"system": "h200_sxm", "backend": "trtllm", "model_path": "openai/gpt-oss-120b", "precision": "fp4"}, 4,
     {"kv_dtype": "bf16", "scheduler.gpu_memory_utilization": 0.85, "scheduler.max_num_tokens": 20000},
     [{"system": "h100_sxm"}, {"backend": "vllm"}]),
    ("gptoss-fp4-b200-vllm",
     {"system": "b200_sxm", "backend": "vllm", "model_path": "openai/gpt-oss-120b", "precision": "fp4"}, 1,
     {"kv_dtype": "fp8"}, [{"system": "h200_sxm"}, {"system": "h100_sxm"}, {"backend": "sglang"}]),
    ("minimaxm2.5-fp8-h100-vllm",
     {"system": "h100_sxm", "backend": "vllm", "model_path": "MiniMaxAI/MiniMax-M2.5", "precision": "fp8"}, 4,
     {"kv_dtype": "bf16"}, [{"system": "h200_sxm"}, {"system": "b200_sxm"}, {"backend": "sglang"}]),
    ("minimaxm2.5-fp8-h200-vllm",
     {"system": "h200_sxm", "backend": "vllm", "model_path": "MiniMaxAI/MiniMax-M2.5", "precision": "fp8"}, 4,
     {"scheduler.gpu_memory_utilization": 0.95}, [{"system": "h100_sxm"}, {"backend": "sglang"}]),
    ("minimaxm2.5-fp8-b200-vllm",
     {"system": "b200_sxm", "backend": "vllm", "model_path": "MiniMaxAI/MiniMax-M2.5", "precision": "fp8"}, 2,
     {"scheduler.block_size": 32}, [{"precision": "fp4"}, {"system": "b300_sxm"}]),
    ("minimaxm2.5-fp8-b300-vllm",
     {"system": "b300_sxm", "backend": "vllm", "model_path": "MiniMaxAI/MiniMax-M2.5", "precision": "fp8",
      "isl": 8192}, 2,
     {"scheduler.block_size": 32, "scheduler.max_num_batched_tokens": 16384},
     [{"precision": "fp4"}, {"system": "b200_sxm"}]),
    ("kimik2.5-int4-h200-vllm",
     {"system": "h200_sxm", "backend": "vllm", "model_path": "moonshotai/Kimi-K2.5", "precision": "int4"}, 8,
     {"scheduler.gpu_memory_utilization": 0.95, "scheduler.max_num_seqs": 16}, [{"system": "h100_sxm"}]),
    ("kimik2.5-int4-b200-vllm",
     {"system": "b200_sxm", "backend": "vllm", "model_path": "moonshotai/Kimi-K2.5", "precision": "int4"}, 8,
     {"scheduler.gpu_memory_utilization": 0.97}, [{"precision": "fp4"}, {"system": "b300_sxm"}]),
    ("kimik2.5-fp4-b200-vllm",
     {"system": "b200_sxm", "backend": "vllm", "model_path": "moonshotai/Kimi-K2.5", "precision": "fp4"}, 4,
     {"scheduler.max_num_seqs": 16}, [{"precision": "int4"}, {"system": "b300_sxm"}]),
    ("kimik2.5-fp4-b300-vllm",
     {"system": "b300_sxm", "backend": "vllm", "model_path": "moonshotai/Kimi-K2.5", "precision": "fp4"}, 4,
     {"scheduler.max_num_seqs": 16}, [{"system": "b200_sxm"}, {"backend": "sglang"}]),
]


def _lookup(dep, path):
    node = dep
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@pytest.mark.parametrize("name, row, tp, want, others", _LAUNCH_FLAG_CASES, ids=[c[0] for c in _LAUNCH_FLAG_CASES])
def test_inferencex_launch_flag_recipes(name, row, tp, want, others):
    """Each session-10 recipe (validate/harness.py) sets what its InferenceX script passes on the rows it matches,
    with a note naming it, and is not applied to rows of another GPU, engine, model or precision."""
    from frontier_calib.validate.harness import RECIPES, apply_recipes

    recipe = next(r for r in RECIPES if r.name == f"InferenceX {name}")

    def dep(r):
        # the replay's own values before the recipes: the cap above the clients, the other format of the KV cache
        d = {"parallel": {"tp": tp}, "scheduler": {"max_num_seqs": 1024}, "kv_dtype": "fp8" if
             want.get("kv_dtype") == "bf16" else "bf16"}
        return d, apply_recipes({**r, "concurrency": 16}, d, attention_dp=1)

    d, notes = dep(row)
    assert recipe.matches(row)
    for path, value in want.items():
        assert _lookup(d, path) == value, path
    assert any(n.startswith(recipe.name) for n in notes)
    for other in others:
        assert not recipe.matches({**row, **other}), other
        o, notes = dep({**row, **other})
        assert not any(n.startswith(recipe.name + ":") for n in notes), other


def test_inferencex_launch_flags_reach_a_valid_deployment():
    """The session-10 recipes through scenario_for_row: Qwen3.5 on H200 with SGLang keeps the overlap on
    (--disable-radix-cache) and its 128-request cap; Kimi-K2.5 on H200 with vLLM caps at the row's clients; both
    deployments build."""
    base = {"silicon_data_source": "source_file=2026-03-25.csv; silicon_concurrency=32", "mode": "agg",
            "isl": 1024, "osl": 1024, "pp_size": 1, "attention_dp_size": 1, "system": "h200_sxm"}
    q = S.scenario_for_row({**base, "id": "q", "backend": "sglang", "model_path": "Qwen/Qwen3.5-397B-A17B",
                            "tp_size": 8, "moe_tp_size": 1, "moe_ep_size": 8, "precision": "fp8",
                            "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8_block"})
    assert q.status == "ok"
    assert q.deployment["engine_options"] == {"overlap": True}
    assert q.deployment["scheduler"]["max_num_seqs"] == 128
    assert any("CPU/GPU overlap on" in n for n in q.notes)
    built = S.build_deployment(q)
    assert built.scheduler.max_num_seqs == 128 and built.scheduler.chunked_prefill_size == 16384
    k = S.scenario_for_row({**base, "id": "k", "backend": "vllm", "model_path": "moonshotai/Kimi-K2.5",
                            "tp_size": 8, "moe_tp_size": 8, "moe_ep_size": 1, "precision": "int4",
                            "gemm_quant_mode": "bf16", "moe_quant_mode": "int4_wo"})
    assert k.status == "ok" and k.deployment["scheduler"]["max_num_seqs"] == 32
    assert S.build_deployment(k).scheduler.max_num_seqs == 32
    # not with attention DP: a rank's cap is not the server's client count
    from frontier_calib.validate.harness import apply_recipes
    d = {"parallel": {"tp": 8}, "scheduler": {"max_num_seqs": 1024}}
    apply_recipes({"system": "h200_sxm", "backend": "vllm", "model_path": "moonshotai/Kimi-K2.5", "concurrency": 32},
                  d, attention_dp=8)
    assert d["scheduler"]["max_num_seqs"] == 1024


def test_trtllm_step_tokens_of_the_launch_scripts():
    """max_num_tokens as the harnesses compute it (hand-computed): aiconfigurator's generator bs + isl + 1500;
    InferenceX dsr1_fp8_h200_trt*.sh ((MTP + 1) x batch + isl + 64, rounded up to 64)."""
    from frontier_calib.validate.harness import StepTokens

    assert StepTokens(per_request=1, added=1500).value(8, 1024) == 2532
    mtp = StepTokens(per_request=None, added=64, multiple=64)
    assert mtp.value(4, 1024, draft_tokens=3) == 1152          # 4*4 + 1024 + 64 = 1104 -> 1152
    assert mtp.value(64, 8192, draft_tokens=0) == 8320         # 64 + 8192 + 64 = 8320 (a multiple of 64)
    assert StepTokens(per_request=0, osl=True).value(16, 8192, 1024) == 9216   # --max_num_tokens $MAX_MODEL_LEN
    assert StepTokens(per_request=None, added=64, multiple=64, at_least=8192).value(4, 1024) == 8192


def test_trtllm_rows_replay_without_chunked_prefill_and_their_harness_budget():
    """An aiconfigurator gap-analysis TensorRT-LLM row runs what the generator writes (no chunked prefill,
    max_num_tokens = bs + isl + 1500, max_batch_size = bs); a row of no known harness keeps TensorRT-LLM's
    default (no chunked prefill, the replay's 8192-token budget)."""
    from frontier_calib.validate.harness import apply_recipes
    from frontier_calib.validate.silicon import _scheduler

    from frontier_calib.sim.config import SchedulerConfig

    sched = _scheduler("trtllm", 8, 16384)
    assert "enable_chunked_prefill" not in sched and sched["max_num_tokens"] == 8192   # the engine's default
    assert SchedulerConfig(policy="trtllm", **sched).enable_chunked_prefill is False
    assert SchedulerConfig(policy="vllm", **_scheduler("vllm", 8, 16384)).enable_chunked_prefill is True
    row = {"system": "h100_sxm", "backend": "trtllm", "model_path": "Qwen/Qwen3-32B", "isl": 1024, "osl": 128,
           "concurrency": 8, "silicon_data_source": "source_file=/x/aic-auto-gap-analysis/data/h100_sxm/trtllm/"
                                                   "1.0.0rc3/Qwen_Qwen3-32B.csv; silicon_concurrency=8"}
    d = {"scheduler": dict(sched)}
    notes = apply_recipes(row, d, attention_dp=1)
    assert d["scheduler"]["max_num_tokens"] == 8 + 1024 + 1500 and d["scheduler"]["max_batch_size"] == 8
    assert SchedulerConfig(policy="trtllm", **d["scheduler"]).enable_chunked_prefill is False
    assert any("aiconfigurator" in n for n in notes)
    d = {"scheduler": dict(sched)}
    assert apply_recipes({**row, "silicon_data_source": "db-dump/2026-04-27"}, d, attention_dp=1) == []
    assert d["scheduler"]["max_num_tokens"] == 8192


def test_inferencex_llama70b_h200_trt_batch_waiting_only_at_1k1k_below_tp8():
    """70b_fp8_h200_trt_slurm.sh turns batch waiting on (ratio 0.9, 20 iterations) for ISL = OSL = 1024 and TP < 8
    only; its --max_num_tokens $MAX_MODEL_LEN is at least isl + osl (the same value is max_seq_len), floored at 8192."""
    import pytest

    from frontier_calib.errors import FrontierError
    from frontier_calib.sim import SchedulerConfig
    from frontier_calib.validate.harness import apply_recipes
    from frontier_calib.validate.silicon import _scheduler

    row = {"system": "h200_sxm", "backend": "trtllm", "model_path": "meta-llama/Llama-3.1-70B", "isl": 1024,
           "osl": 1024, "concurrency": 4, "silicon_data_source": "source_file=2026-04-06.csv; model=Llama-3.1-70B"}
    for tp, isl, osl, on in ((2, 1024, 1024, True), (8, 1024, 1024, False), (2, 8192, 1024, False)):
        d = {"scheduler": _scheduler("trtllm", 4, 16384), "parallel": {"tp": tp}}
        apply_recipes({**row, "isl": isl, "osl": osl}, d, attention_dp=1)
        s = d["scheduler"]
        assert s["max_num_tokens"] == max(8192, isl + osl)
        assert (s.get("batch_wait_timeout_iters"), s.get("batch_wait_max_tokens_ratio")) == ((20, 0.9) if on
                                                                                            else (None, None))
        SchedulerConfig(policy="trtllm", **s)   # a valid TensorRT-LLM configuration
    with pytest.raises(FrontierError, match="batch waiting"):
        SchedulerConfig(policy="vllm", batch_wait_timeout_iters=20)


def test_calibrate_steps_stay_inside_narrow_bounds():
    """A finite-difference step from any point inside a parameter's bounds lands inside them one way or the other
    (with per_seq_s bounded at 20 us, the old 20 us step went out of bounds both ways and every replay failed)."""
    from frontier_calib.validate.calibrate import BOUNDS, DELTAS, fd_step

    for p, (lo, hi) in BOUNDS.items():
        d = fd_step(p)
        assert 0 < d <= DELTAS[p] and d <= (hi - lo) / 4
        for x in np.linspace(lo, hi, 9):
            step = d if x + d <= hi else -d
            assert lo <= x + step <= hi
    assert BOUNDS["per_seq_s"][1] == pytest.approx(2.0e-5)
