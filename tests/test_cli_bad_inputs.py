"""Every command, fed a new user's mistakes (unknown names, bad or unwritable paths, empty files, a reused
``--out``), stops before its work with exit status 2, one ``error:`` line and no traceback; and the documented
ways out (``--overwrite``, aliases, ``--hash-block-size``) work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from frontier_calib.cli import main
from frontier_calib.cost.calibration import read_calibration
from frontier_calib.options import gpus_callback

REPO = Path(__file__).resolve().parents[1]
DEPLOYMENT = REPO / "deployments" / "llama2-7b-h100-vllm.yaml"
TRACE = REPO / "traces" / "poisson_lognormal_1k.csv"
TRACE_SPEC = REPO / "traces" / "specs" / "poisson_lognormal_1k.yaml"
SWEEP = REPO / "sweeps" / "llama2-7b-small.yaml"
KNOWN_GPUS = "a100_sxm, b200_sxm"   # the start of every unknown-GPU error's list


def fails(args: list[str], *expected: str) -> str:
    """Run ``frontier-calib ARGS``; assert one `error:` line containing each of ``expected``; return it."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception   # no exception escaped the CLI
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def ok(args: list[str]) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


@pytest.fixture()
def a_file(tmp_path) -> Path:
    f = tmp_path / "a_file"
    f.write_text("x\n")
    return f


@pytest.fixture()
def earlier_run(tmp_path) -> Path:
    d = tmp_path / "earlier"
    d.mkdir()
    (d / "summary.json").write_text("{}\n")
    return d


@pytest.fixture()
def empty_file(tmp_path) -> Path:
    f = tmp_path / "empty.yaml"
    f.write_text("")
    return f


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch, request):
    """A cache folder of this test's own: no command may create it while refusing its inputs (tests that
    replay use the session's cache of fitted models instead)."""
    if "llama_replicas" in request.fixturenames:
        yield None
        return
    monkeypatch.setenv("FRONTIER_CALIB_CACHE", str(tmp_path / "cache"))
    yield tmp_path / "cache"
    assert not (tmp_path / "cache").exists()


def unwritable_place(tmp_path) -> Path:
    """A folder nobody may create files in: a read-only folder (as a user), /proc (as root)."""
    if os.geteuid() != 0:
        ro = tmp_path / "read_only"
        ro.mkdir()
        ro.chmod(0o500)
        return ro / "out"
    if not Path("/proc/self").exists():
        pytest.skip("running as root on a system without /proc: no place root cannot write")
    return Path("/proc/frontier-calib-test/out")


# ------------------------------------------------------------------------------------------- unknown names
@pytest.mark.parametrize("args, expected", [
    (["fit", "--gpu", "h100_sxm", "--engine", "vlm"], ["unknown engine 'vlm'", "sglang, trtllm, vllm"]),
    (["fit", "--gpu", "h101", "--engine", "vllm"], ["unknown GPU 'h101'", KNOWN_GPUS]),
    (["fit", "--gpu", "h100_sxm", "--engine", "vllm", "--family", "gem"],
     ["unknown operator family 'gem'", "attention_decode"]),
    (["profiles", "show", "--gpu", "H100", "--engine", "vlm"], ["unknown engine 'vlm'", "vllm"]),
    (["profiles", "show", "--gpu", "h101", "--engine", "vllm"], ["unknown GPU 'h101'", KNOWN_GPUS]),
    # a known GPU with no tables anywhere (not bundled, not importable): `cpu` is the pipeline-testing spec
    (["profiles", "show", "--gpu", "cpu", "--engine", "vllm"], ["unknown GPU 'cpu' in the profile tables",
                                                                "h100_sxm"]),
    (["profiles", "show", "--gpu", "h100", "--engine", "vllm", "--family", "gem"], ["unknown operator family"]),
    (["profile", "gemm", "--model", "Llama-2-7b", "--out", "x", "--dry-run", "--engine", "vlm"],
     ["unknown engine 'vlm'", "torch"]),
    (["profile", "gemm", "--model", "Llama-2-7b", "--out", "x", "--dry-run", "--gpu", "h101"], ["unknown GPU 'h101'"]),
    (["validate", "silicon", "--gpu", "h101"], ["unknown GPU 'h101'", KNOWN_GPUS]),
    (["validate", "silicon", "--engine", "vlm"], ["unknown engine 'vlm'", "sglang, trtllm, vllm"]),
    (["calibrate", "--gpu", "h101"], ["unknown GPU 'h101'"]),
    (["calibrate", "--engine", "vlm"], ["unknown engine 'vlm'"]),
    (["traces", "show", str(TRACE), "--format", "azur"], ["unknown trace format 'azur'", "mooncake"]),
])
def test_unknown_names_are_errors_listing_the_known_ones(args, expected):
    fails(args, *expected)


@pytest.mark.parametrize("key, value", [("gpu", "h101"), ("engine", "vlm")])
def test_replay_of_a_deployment_with_an_unknown_name(tmp_path, key, value):
    dep = tmp_path / "dep.yaml"
    text = DEPLOYMENT.read_text()
    text = text.replace("gpu: h100_sxm", f"gpu: {value}") if key == "gpu" else text.replace(
        "engine: vllm", f"engine: {value}")
    assert value in text
    dep.write_text(text)
    line = fails(["replay", "-d", dep, "-t", TRACE, "--out", tmp_path / "out"], f"'{value}'")
    assert ("h100_sxm" if key == "gpu" else "sglang") in line
    assert not (tmp_path / "out").exists()


def test_gpu_aliases_are_accepted_where_names_are_taken(tmp_path):
    assert gpus_callback(None, None, ("H100", "h100_sxm", "h200")) == ("h100_sxm", "h200_sxm")
    assert "== gemm" in ok(["profiles", "show", "--gpu", "H100", "--engine", "vllm", "--family", "gemm"])
    assert "target: h200_sxm" in ok(["profile", "gemm", "--model", "Llama-2-7b", "--out", tmp_path / "p",
                                     "--dry-run", "--gpu", "H200"])
    dep = tmp_path / "dep.yaml"
    dep.write_text(DEPLOYMENT.read_text().replace("gpu: h100_sxm", "gpu: H100"))
    from frontier_calib.deployment import load_deployment

    assert load_deployment(dep).worker.gpu == "h100_sxm"


def test_calibration_keys_take_gpu_aliases_and_refuse_unknown_gpus(tmp_path):
    cal = tmp_path / "cal.yaml"
    cal.write_text("overheads:\n  vllm@H100: {step_s: 0.001}\nbenchmark_desync:\n  vllm@h200: 0.5\n")
    doc = read_calibration(cal)
    assert list(doc["overheads"]) == ["vllm@h100_sxm"] and doc["benchmark_desync"] == {"vllm@h200_sxm": 0.5}
    cal.write_text("overheads:\n  vllm@h101: {step_s: 0.001}\n")
    fails(["validate", "silicon", "--calibration", cal, "--out", tmp_path / "o"], "unknown GPU 'h101'",
          "overheads.vllm@h101")


# ----------------------------------------------------------------------------------------- output paths
def _out_commands(out: Path, extra_file: Path) -> list[list]:
    """Each command writing a result folder, pointed at ``out``."""
    return [
        ["replay", "-d", DEPLOYMENT, "-t", TRACE, "--out", out],
        ["demo", "--out", out],
        ["validate", "silicon", "--out", out],
        ["validate", "trace", "-d", DEPLOYMENT, "-t", TRACE, "--out", out],
        ["calibrate", "--out", extra_file, "--report-dir", out],
    ]


def test_out_under_a_regular_file_is_refused_before_the_work(tmp_path, a_file):
    out = a_file / "out"
    for args in _out_commands(out, tmp_path / "cal.yaml"):
        fails(args, str(out), "is a file, not a folder")
    fails(["sweep", SWEEP, "--out", out], "is a file, not a folder")
    fails(["traces", "generate", TRACE_SPEC, "--out", a_file / "t.csv"], "is a file, not a folder")
    fails(["calibrate", "--out", a_file / "cal.yaml"], "--out", "is a file, not a folder")
    fails(["calibrate", "--out", tmp_path / "cal"], "--out", "would be the calibration file itself")
    fails(["fit", "--gpu", "h100_sxm", "--engine", "vllm", "--out", out], "is a file, not a folder")
    fails(["profile", "gemm", "--model", "Llama-2-7b", "--device", "cpu", "--tiny", "--out", out], "is a file")
    fails(["profiles", "import", "aiconfigurator", "--gpu", "h100_sxm", "--out", out], "is a file, not a folder")


def test_out_in_an_unwritable_place_is_refused(tmp_path):
    out = unwritable_place(tmp_path)
    for args in _out_commands(out, tmp_path / "cal.yaml"):
        fails(args, str(out), "cannot be written")
    fails(["sweep", SWEEP, "--out", out], "cannot be written")
    fails(["traces", "generate", TRACE_SPEC, "--out", out / "t.csv"], "cannot be written")


def test_fit_report_json_is_checked_before_fitting(tmp_path, a_file, monkeypatch):
    import frontier_calib.opmodel.commands as fit_commands

    def no_fit(*a, **k):
        raise AssertionError("fit ran before its output paths were checked")

    monkeypatch.setattr(fit_commands, "fit_all", no_fit)
    fails(["fit", "--gpu", "h100_sxm", "--engine", "vllm", "--out", tmp_path / "m", "--report-json",
           a_file / "r.json"], "--report-json", "is a file, not a folder")
    fails(["fit", "--gpu", "h100_sxm", "--engine", "vllm", "--out", tmp_path / "m", "--report-json",
           unwritable_place(tmp_path) / "r.json"], "--report-json", "cannot be written")


def test_an_earlier_run_is_refused_without_overwrite(tmp_path, earlier_run):
    before = sorted(p.name for p in earlier_run.iterdir())
    for args in _out_commands(earlier_run, tmp_path / "cal.yaml"):
        fails(args, str(earlier_run), "holds an earlier run", "--overwrite")
    assert sorted(p.name for p in earlier_run.iterdir()) == before
    old_trace = tmp_path / "old.csv"
    old_trace.write_text("old\n")
    fails(["traces", "generate", TRACE_SPEC, "--out", old_trace], "exists", "--overwrite")
    assert old_trace.read_text() == "old\n"
    old_cal = tmp_path / "cal.yaml"
    old_cal.write_text("old\n")
    fails(["calibrate", "--out", old_cal, "--report-dir", tmp_path / "new_report"], "exists", "--overwrite")


def test_traces_generate_overwrite_replaces_the_file(tmp_path):
    out = tmp_path / "t.csv"
    out.write_text("old\n")
    ok(["traces", "generate", TRACE_SPEC, "--out", out, "--overwrite"])
    assert len(pd.read_csv(out, comment="#")) == 1000


def test_replay_overwrite_replaces_the_whole_set(tmp_path, llama_replicas):
    out = tmp_path / "out"
    ok(["replay", "-d", DEPLOYMENT, "-t", TRACE, "--limit", "20", "--out", out, "--timeline"])
    assert sorted(p.name for p in out.iterdir()) == ["requests.parquet", "summary.json", "timeline.json"]
    fails(["replay", "-d", DEPLOYMENT, "-t", TRACE, "--limit", "20", "--out", out, "--csv"], "holds an earlier run")
    ok(["replay", "-d", DEPLOYMENT, "-t", TRACE, "--limit", "10", "--out", out, "--csv", "--overwrite"])
    assert sorted(p.name for p in out.iterdir()) == ["requests.csv", "summary.json"]   # nothing of the old run
    assert json.loads((out / "summary.json").read_text())["completed"] == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]                        # no staging left behind


def test_sweep_resumes_its_own_folder_and_refuses_others(tmp_path, earlier_run):
    fails(["sweep", SWEEP, "--out", earlier_run], "holds files that are not a sweep's results", "--overwrite")
    other = tmp_path / "other"
    other.mkdir()
    (other / "sweep.json").write_text(json.dumps({"name": "another-sweep"}))
    fails(["sweep", SWEEP, "--out", other], "another sweep ('another-sweep')", "--overwrite")
    assert (other / "sweep.json").exists()


# ------------------------------------------------------------------------------------------- empty inputs
def test_empty_files_say_they_are_empty(tmp_path, empty_file):
    empty_trace = tmp_path / "empty.csv"
    empty_trace.write_text("")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n\n")
    fails(["traces", "show", empty_trace], "the file is empty")
    fails(["traces", "show", empty_trace, "--format", "azure"], "the file is empty")
    fails(["traces", "show", blank], "only blank lines")
    fails(["replay", "-d", DEPLOYMENT, "-t", empty_trace, "--out", tmp_path / "o"], "the file is empty")
    fails(["validate", "trace", "-d", DEPLOYMENT, "-t", empty_trace, "--out", tmp_path / "o"], "the file is empty")
    fails(["replay", "-d", empty_file, "-t", TRACE, "--out", tmp_path / "o"], "the file is empty")
    fails(["sweep", empty_file, "--out", tmp_path / "o"], "the file is empty")
    fails(["traces", "generate", empty_file, "--out", tmp_path / "t.csv"], "the file is empty")
    fails(["validate", "silicon", "--calibration", empty_file, "--out", tmp_path / "o"], "the file is empty")
    assert not (tmp_path / "o").exists()


def test_mooncake_hash_ids_hint_names_a_real_option(tmp_path):
    trace = tmp_path / "mooncake.jsonl"
    rows = [{"timestamp": 0, "input_length": 40, "output_length": 5, "hash_ids": [1, 2, 3]},
            {"timestamp": 10, "input_length": 20, "output_length": 5, "hash_ids": [1, 2]}]
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fails(["traces", "show", trace], "hash_ids", "--hash-block-size N")      # 40 tokens are 1 block of 512
    assert "mooncake" in ok(["traces", "show", trace, "--hash-block-size", "16"])   # 3 blocks of 16: consistent


def test_infeasible_sweep_point_prints_its_reason(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(f"name: infeasible\nbase: {DEPLOYMENT}\naxes:\n  parallel.tp: [3]\n"
                     f"trace: {{path: {TRACE}, limit: 10}}\nrates: [4]\nslo: {{ttft_p90_s: 1.0}}\n")
    out = ok(["sweep", sweep, "--out", tmp_path / "o", "--quiet", "--no-plots"])
    assert "infeasible point" in out and "tp=3 does not divide 32 attention heads" in out
