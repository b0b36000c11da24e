"""The disaggregated side of benchmarks/compare_aic_proxy.py: P/D layout parsing, MTP notes, AIConfigurator's
disagg arithmetic, and (with aiconfigurator-core installed) pricing of disaggregated rows."""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_aic_proxy.py"
_spec = importlib.util.spec_from_file_location("compare_aic_proxy", _PATH)
C = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(C)

PD = "P 7x(tp=1 pp=1 attention_dp=4 ep=4 moe_tp=1) / D 2x(tp=8 pp=1 attention_dp=1 ep=8 moe_tp=1)"


def test_parse_pd_layout_reads_both_worker_groups():
    (pn, p), (dn, d) = C.parse_pd_layout(PD)
    assert pn == 7 and p == {"tp": 1, "pp": 1, "attention_dp": 4, "ep": 4, "moe_tp": 1}
    assert dn == 2 and d == {"tp": 8, "pp": 1, "attention_dp": 1, "ep": 8, "moe_tp": 1}


def test_parse_pd_layout_skips_keys_that_are_not_gpu_counts():
    """A decode pool with parallel.ep_dispatch (validate/disagg_decode.py) is still the layout AIConfigurator prices."""
    (_, _), (dn, d) = C.parse_pd_layout("P 3x(tp=1 pp=1 attention_dp=8 ep=1 moe_tp=8) / "
                                        "D 1x(tp=1 pp=1 attention_dp=8 ep=8 moe_tp=1 ep_dispatch=allgather)")
    assert dn == 1 and d == {"tp": 1, "pp": 1, "attention_dp": 8, "ep": 8, "moe_tp": 1}


def test_parse_pd_layout_dense_model_defaults_moe_sizes_to_one():
    (pn, p), (dn, d) = C.parse_pd_layout("P 5x(tp=1 pp=1 attention_dp=1) / D 11x(tp=2 pp=1 attention_dp=1)")
    assert (pn, dn) == (5, 11)
    assert p["ep"] == p["moe_tp"] == 1 and d["tp"] == 2


@pytest.mark.parametrize("bad", [
    "tp=8 pp=1 attention_dp=1",                                     # an agg layout
    "P 1x(tp=8 pp=1) / P 2x(tp=8 pp=1)",                            # two prefill groups
    "P 1x(tp=8 pp=1)",                                              # no decode group
    "P 0x(tp=8 pp=1) / D 1x(tp=8 pp=1)",                            # no workers
    "P 1x(tp=8 pp=1 cp=2) / D 1x(tp=8 pp=1)",                       # a size this proxy does not know
    "P 1x(tp=x pp=1) / D 1x(tp=8 pp=1)",                            # not a number
    "P 1x(pp=1) / D 1x(tp=8 pp=1)",                                 # no tp
])
def test_parse_pd_layout_rejects_malformed_strings(bad):
    with pytest.raises(ValueError):
        C.parse_pd_layout(bad)


def test_mtp_from_notes():
    notes = ("agg label, tp_size 20: ...; MTP 3 (validate/harness.py); the 2026-04-06 GB200 TensorRT-LLM series "
             "(InferenceX dsr1-fp4-gb200-dynamo-trt): MTP with 3 draft token(s), 2.82 tokens per step (validate/harness.py)")
    assert C.mtp_from_notes(notes) == (3, 2.82)
    assert C.mtp_from_notes("fp8 label on a block-scaled FP8 checkpoint") == (0, 1.0)
    assert C.mtp_from_notes("") == (0, 1.0)


def test_aic_disagg_latencies_is_aiconfigurators_arithmetic():
    # 100 ms context at the prefill batch, 1023 decode steps of 10 ms
    ttft, tpot = C.aic_disagg_latencies(100.0, 10230.0, 1024)
    assert ttft == pytest.approx(100.0 * 1.1 * 1.8)
    assert tpot == pytest.approx(10.0 * 1.08)
    # MTP progress divides the decode TPOT only; no corrections give the raw worker times
    ttft, tpot = C.aic_disagg_latencies(100.0, 10230.0, 1024, tokens_per_step=2.5, prefill_scale=1.0,
                                        decode_scale=1.0, ttft_factor=1.0)
    assert (ttft, tpot) == pytest.approx((100.0, 4.0))
    assert C.aic_disagg_latencies(50.0, 0.0, 1)[1] == 0.0


def _row(**kw):
    r = {"id": "r1", "status": "ok", "mode": "disagg", "system": "b200_sxm", "backend": "trtllm",
         "model_path": "deepseek-ai/DeepSeek-V3", "isl": 8192, "osl": 1024, "concurrency": 128.0,
         "dtype": "fp8", "moe_dtype": "fp8_block", "kv_dtype": "fp8", "notes": "",
         "parallel": "P 1x(tp=1 pp=1 attention_dp=8 ep=8 moe_tp=1) / D 1x(tp=1 pp=1 attention_dp=8 ep=8 moe_tp=1)",
         "silicon_ttft_ms": 2000.0, "silicon_tpot_ms": 30.0, "pred_ttft_ms": 1900.0, "pred_tpot_ms": 29.0}
    r.update(kw)
    return r


@pytest.fixture(scope="module")
def aic():
    pytest.importorskip("aiconfigurator_core")


def test_disagg_rows_are_priced_per_worker(aic):
    rows = pd.DataFrame([_row(id="a", concurrency=128.0), _row(id="b", concurrency=512.0),
                         _row(id="c", parallel="tp=8 pp=1 attention_dp=1")])
    est = C.aic_disagg_estimates(rows).set_index("id")
    # the decode batch is the clients per decode attention-DP rank
    assert est.loc["a", "aic_decode_bs"] == 16 and est.loc["b", "aic_decode_bs"] == 64
    # TTFT is one prefill step at AIConfigurator's prefill batch of 1, whatever the load; TPOT grows with the batch
    assert est.loc["a", "aic_ttft_ms"] == pytest.approx(est.loc["b", "aic_ttft_ms"])
    assert est.loc["a", "aic_ttft_ms"] == pytest.approx(est.loc["a", "aic_prefill_ctx_ms"] * 1.1 * 1.8)
    assert est.loc["b", "aic_tpot_ms"] > est.loc["a", "aic_tpot_ms"] > 0
    # a whole batch of clients per prefill rank costs more than one request
    assert est.loc["b", "aic_prefill_ctx_clients_ms"] > est.loc["a", "aic_prefill_ctx_clients_ms"] > \
        est.loc["a", "aic_prefill_ctx_ms"]
    # a row whose layout is not P/D is counted with its reason, not priced
    assert math.isnan(est.loc["c", "aic_ttft_ms"]) and est.loc["c", "aic_error"].startswith("layout:")


def test_cli_disagg_table_and_bad_file(aic, tmp_path):
    rows = pd.DataFrame([_row(id="a"), _row(id="b", concurrency=512.0), _row(id="c", system="no_such_gpu")])
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    p = subprocess.run([sys.executable, str(_PATH), str(path), "--mode", "disagg"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "2 of 3 rows priced by the proxy" in p.stdout
    assert "b200_sxm/trtllm/disagg: 2 rows; TTFT MAPE ours" in p.stdout
    assert "no_such_gpu/trtllm/disagg: 1 rows not priced: 1 x " in p.stdout
    # the default mode keeps to agg rows
    p = subprocess.run([sys.executable, str(_PATH), str(path)], capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.startswith("0 of 0 rows priced")
    p = subprocess.run([sys.executable, str(_PATH), str(tmp_path / "missing.csv")], capture_output=True, text=True)
    assert p.returncode != 0 and p.stderr.strip().count("\n") == 0 and "missing.csv" in p.stderr
